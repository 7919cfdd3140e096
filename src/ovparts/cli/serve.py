"""`ovparts serve`: the web demo and JSON API in one process."""

from __future__ import annotations

from collections.abc import Callable

import click

from ..errors import ConfigError
from ..methods import DEFAULT_MODEL
from . import no_text_cache_option


def _limit(
    flag: str,
    default: float,
    kind: click.ParamType,
    help: str,
    env_suffix: str | None = None,
    envvar: str | None = None,
) -> Callable:
    """A server limit: its default shown in --help, and where it has one its environment variable
    (``OVPARTS_SERVE_<env_suffix>``, or ``envvar`` for a variable shared beyond the server)."""
    envvar = envvar or (f"OVPARTS_SERVE_{env_suffix}" if env_suffix else None)
    extra = {"envvar": envvar, "show_envvar": True} if envvar else {}
    return click.option(flag, default=default, show_default=True, type=kind, help=help, **extra)


@click.command("serve")
@no_text_cache_option
@click.option(
    "--model",
    "model_names",
    multiple=True,
    default=(DEFAULT_MODEL,),
    show_default=True,
    help="Method to load (see `ovparts models`); repeat to offer several on the page and the API.",
)
@click.option(
    "--weights",
    "weights_list",
    multiple=True,
    help="Checkpoint folder, published name (`ovparts weights list`) or hub id, one per --model.",
)
@click.option(
    "--config",
    "config_name",
    help="Named config for randomly initialised models (e.g. 'tiny'); testing only.",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, mps ...")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; 0.0.0.0 exposes the demo to the network.",
)
@click.option("--port", default=7860, show_default=True, type=click.IntRange(0, 65535))
@click.option("--no-ui", is_flag=True, help="Serve the JSON API only, without the Gradio page.")
@_limit("--max-upload-mb", 10.0, click.FloatRange(min=0.001), "Largest image upload.", "MAX_UPLOAD_MB")
@_limit("--max-pixels", 4096 * 4096, click.IntRange(min=1), "Largest image area.", "MAX_PIXELS")
@_limit("--max-parts", 256, click.IntRange(min=1), "Largest vocabulary.")
@_limit("--max-name-length", 64, click.IntRange(min=1), "Longest object or part name.")
@_limit(
    "--timeout",
    60.0,
    click.FloatRange(min=0.001),
    "Seconds before a request answers 503; the request's work is stopped then too.",
    "TIMEOUT",
)
@_limit(
    "--working-pixels",
    1024 * 1024,
    click.IntRange(min=1),
    "Larger images are segmented at a copy resized to this many pixels; the label map is scaled back.",
    "WORKING_PIXELS",
)
@_limit(
    "--max-pixel-parts",
    1024 * 1024 * 256,
    click.IntRange(min=1),
    "Largest working pixels x parts of one request (413 beyond).",
    "MAX_PIXEL_PARTS",
)
@_limit(
    "--max-request-mb",
    3072.0,
    click.FloatRange(min=1),
    "Largest estimated peak memory of one request (413 beyond); times --concurrency for the server.",
    "MAX_REQUEST_MB",
)
@_limit(
    "--text-cache-mb",
    256.0,
    click.FloatRange(min=0),
    "Text embeddings kept per model for vocabularies seen before (least recently used dropped).",
    envvar="OVPARTS_TEXT_CACHE_MB",
)
@_limit("--concurrency", 1, click.IntRange(min=1), "Model runs at once.")
@click.option(
    "--queue",
    "queue_size",
    default=8,
    show_default=True,
    type=click.IntRange(min=0),
    help="Requests waiting before new ones get 429.",
)
def serve(
    model_names: tuple[str, ...],
    weights_list: tuple[str, ...],
    config_name: str | None,
    device: str,
    host: str,
    port: int,
    no_ui: bool,
    max_upload_mb: float,
    max_pixels: int,
    max_parts: int,
    max_name_length: int,
    timeout: float,
    working_pixels: int,
    max_pixel_parts: int,
    max_request_mb: float,
    text_cache_mb: float,
    concurrency: int,
    queue_size: int,
) -> None:
    """Run the web demo (at /) and the JSON API (/v1/segment, /v1/models, /healthz, /docs) in one process.

    Models load once at start-up; the page and the API share them, their text-embedding caches and limits.
    """
    try:
        from ..serve import Limits, ServedModel
        from ..serve import serve as run_server
        from ..serve.app import check_address
    except ImportError as err:
        raise ConfigError(
            f"ovparts serve needs the demo extra ({err.name} is missing): pip install 'ovparts[demo]'."
        ) from err
    from ..models.registry import load_model, model_spec
    from ..text.cache import set_budget
    from ..validation import check_device

    check_device(device)
    for name in model_names:  # every name checked before the first (slow) load
        model_spec(name)
    if weights_list and len(weights_list) != len(model_names):
        raise ConfigError(f"Give one --weights per --model ({len(model_names)}), or none for the defaults.")
    if len(set(model_names)) != len(model_names):
        raise ConfigError("A model is named twice with --model; name each once.")
    limits = Limits(
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_pixels=max_pixels,
        max_parts=max_parts,
        max_name_length=max_name_length,
        timeout_s=timeout,
        max_concurrency=concurrency,
        max_queue=queue_size,
        working_pixels=working_pixels,
        max_pixel_parts=max_pixel_parts,
        max_request_bytes=int(max_request_mb * 2**20),
    )
    check_address(host, port)  # a busy port or an unknown host is one sentence, before the slow loads
    served = []
    for index, name in enumerate(model_names):
        weights = weights_list[index] if weights_list else None
        click.echo(f"Loading {name} ...", err=True)
        model = load_model(name, weights=weights, config=config_name, device=device)
        set_budget(model, int(text_cache_mb * 2**20))
        label = weights or ("random:" + config_name if config_name else "default")
        served.append(ServedModel(name, model, weights=label))
    where = "localhost" if host in ("127.0.0.1", "::1") else host
    click.echo(f"Serving on http://{where}:{port}/ (API docs at /docs); press Ctrl+C to stop.", err=True)
    run_server(served, host=host, port=port, limits=limits, ui=not no_ui)
