"""The `ovparts` command line. Errors a user can fix print one sentence and exit with code 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .errors import EXIT_USER_ERROR, ConfigError, OvpartsError, VocabularyError
from .segment_outputs import RECORD_KEY as RECORD
from .segment_outputs import file_sha256


class OvpartsGroup(click.Group):
    """Turns ovparts' typed errors into one line on stderr and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OvpartsError as err:
            click.echo(f"Error: {err}", err=True)
            ctx.exit(EXIT_USER_ERROR)


@click.group(cls=OvpartsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ovparts")
def main() -> None:
    """Open-vocabulary part segmentation: label every pixel of an image with parts named in plain text.

    \b
    Example:
      ovparts segment photo.jpg --vocab "cat: head, ear, leg, tail" --out out/
    """


def build_vocabulary(vocab: str | None, benchmark: str | None):
    from .vocabulary import Vocabulary

    if (vocab is None) == (benchmark is None):
        raise VocabularyError("Give exactly one of --vocab 'dog: head, tail' or --benchmark NAME.")
    return Vocabulary.parse(vocab) if vocab is not None else Vocabulary.from_benchmark(benchmark)


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--vocab", help='Parts to find, e.g. "dog: head, torso, leg; cat: ear".')
@click.option(
    "--benchmark",
    type=click.Choice(["pascal_part_116", "ade20k_part_234", "partimagenet", "partimagenet_ood"]),
    help="Use a benchmark's whole vocabulary instead of --vocab.",
)
@click.option(
    "--model", "model_name", default="clipseg", show_default=True, help="Method; see `ovparts models`."
)
@click.option(
    "--weights",
    help="Checkpoint folder or hub id. Default: the method's published weights (clipseg: CIDAS/clipseg-rd64-refined).",
)
@click.option(
    "--config",
    "config_name",
    help="Named config for a randomly initialised model (e.g. 'tiny'); testing only.",
)
@click.option("--revision", help="Pin a hub revision (commit hash or tag) for --weights.")
@click.option("--out", "out_dir", default="ovparts-out", show_default=True, help="Output folder.")
@click.option(
    "--object-mask",
    type=click.Path(dir_okay=False),
    help="PNG of object ids (none = 255 in 8-bit, 65535 in 16-bit) for Oracle-Obj: each pixel may only take parts of its object. One image only.",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, mps ...")
@click.option("--background-threshold", type=float, help="Probability below which a pixel is background.")
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Skip images whose outputs already exist from the same image content, model, weights, vocabulary "
    "and options (resume a batch).",
)
@click.option(
    "--compile",
    "compile_model",
    is_flag=True,
    help="Compile the image encoder and decoder with torch.compile (inductor; on CPU needs a C++ compiler). "
    "The first image pays the compile time (tens of seconds to minutes), so it pays off on batches only.",
)
def segment(
    images: tuple[str, ...],
    vocab: str | None,
    benchmark: str | None,
    model_name: str,
    weights: str | None,
    config_name: str | None,
    revision: str | None,
    out_dir: str,
    object_mask: str | None,
    device: str,
    background_threshold: float | None,
    skip_existing: bool,
    compile_model: bool,
) -> None:
    """Segment IMAGES into parts; writes NAME.parts.png, NAME.overlay.png and NAME.json into --out.

    NAME.parts.png holds part ids (the order of the vocabulary; 255 = no part, or 65535 with 16 bits for
    vocabularies of 255+ parts), NAME.overlay.png the photo tinted by part with a legend, NAME.json each
    part's pixel share and mean probability, the no-part value, and a record of what was written. Outputs
    never replace an input or a file ovparts did not write; outputs of another image of the same name are
    kept and the new ones take the next free name (NAME-2).
    """
    from tqdm import tqdm

    from .imageio import load_image, save_png, save_text
    from .inference import Segmenter
    from .models.registry import load_model
    from .outputs import check_output_dir, terminate_cleanly
    from .segment_outputs import make_record, plan_outputs
    from .validation import check_background_threshold
    from .visualize import label_png, no_part_value, overlay

    vocabulary = build_vocabulary(vocab, benchmark)
    if object_mask is not None and len(images) > 1:
        raise VocabularyError("--object-mask applies to a single image; run one image at a time with it.")
    check_background_threshold(background_threshold)
    out = check_output_dir(out_dir)
    settings = {
        "model": model_name,
        "weights": weights or ("random:" + config_name if config_name else "default"),
        "revision": revision,
        "vocabulary": vocabulary.format(),
        "background_threshold": background_threshold,
        "object_mask_sha256": file_sha256(object_mask) if object_mask is not None else None,
    }
    protected = [Path(p) for p in images] + ([Path(object_mask)] if object_mask else [])
    targets = plan_outputs(images, out, protected, settings, skip_existing)
    model = load_model(model_name, weights=weights, config=config_name, device=device, revision=revision)
    segmenter = Segmenter(model, background_threshold=background_threshold, compile=compile_model)
    failures = 0
    no_part = no_part_value(len(vocabulary))
    with terminate_cleanly():
        for target in tqdm(targets, disable=len(images) < 2, unit="image"):
            if target.skip:
                continue
            try:
                picture = load_image(target.image)
                result = segmenter(picture, vocabulary, object_mask=object_mask)
            except OvpartsError as err:
                failures += 1
                tqdm.write(f"Error: {err}", file=sys.stderr)
                continue
            parts_path, overlay_path, json_path = target.paths
            report = {
                "image": str(target.image),
                "size": [picture.width, picture.height],
                "model": model_name,
                "weights": settings["weights"],
                "protocol": result.protocol,
                "vocabulary": vocabulary.format(),
                "no_part": no_part,
                "no_part_share": float((result.part_map < 0).mean()),
                "parts": result.summary(),
            }
            # A pending record first (it claims the two PNGs), the complete one last: its presence and
            # the PNGs' recorded hashes mark an image as finished for --skip-existing.
            save_text(json_path, json.dumps({RECORD: make_record(target, settings, False)}, indent=2))
            save_png(parts_path, label_png(result.part_map, len(vocabulary)))
            save_png(overlay_path, overlay(picture, result.part_map, vocabulary))
            report[RECORD] = make_record(target, settings, True)
            save_text(json_path, json.dumps(report, indent=2))
            if len(images) < 2:
                click.echo(
                    f"Wrote {out / target.stem}.parts.png, .overlay.png and .json "
                    f"({len(report['parts'])} parts found)."
                )
    if failures:
        click.echo(
            f"{failures} of {len(images)} images could not be segmented; see the errors above.", err=True
        )
        sys.exit(EXIT_USER_ERROR)


@main.command("models")
def list_models() -> None:
    """List the available methods and their named configs."""
    from .models.registry import available_models, model_spec

    for name in available_models():
        spec = model_spec(name)
        weights = spec.default_weights or "none published (train or convert)"
        click.echo(
            f"{name:14s} {spec.description}\n{'':14s} configs: {', '.join(spec.configs)}; weights: {weights}"
        )


@main.command()
@click.option(
    "--model",
    "model_names",
    multiple=True,
    default=("clipseg",),
    show_default=True,
    help="Method to load (see `ovparts models`); repeat to offer several on the page and the API.",
)
@click.option(
    "--weights", "weights_list", multiple=True, help="Checkpoint folder or hub id, one per --model."
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
@click.option(
    "--max-upload-mb",
    envvar="OVPARTS_SERVE_MAX_UPLOAD_MB",
    show_envvar=True,
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Largest image upload.",
)
@click.option(
    "--max-pixels",
    envvar="OVPARTS_SERVE_MAX_PIXELS",
    show_envvar=True,
    default=4096 * 4096,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest image area.",
)
@click.option(
    "--max-parts", default=256, show_default=True, type=click.IntRange(min=1), help="Largest vocabulary."
)
@click.option(
    "--max-name-length",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Longest object or part name.",
)
@click.option(
    "--timeout",
    envvar="OVPARTS_SERVE_TIMEOUT",
    show_envvar=True,
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Seconds before a request answers 503; the request's work is stopped then too.",
)
@click.option(
    "--working-pixels",
    envvar="OVPARTS_SERVE_WORKING_PIXELS",
    show_envvar=True,
    default=1024 * 1024,
    show_default=True,
    type=click.IntRange(min=1),
    help="Larger images are segmented at a copy resized to this many pixels; the label map is scaled back.",
)
@click.option(
    "--max-pixel-parts",
    envvar="OVPARTS_SERVE_MAX_PIXEL_PARTS",
    show_envvar=True,
    default=1024 * 1024 * 256,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest working pixels x parts of one request (413 beyond).",
)
@click.option(
    "--max-request-mb",
    envvar="OVPARTS_SERVE_MAX_REQUEST_MB",
    show_envvar=True,
    default=3072.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Largest estimated peak memory of one request (413 beyond); times --concurrency for the server.",
)
@click.option(
    "--text-cache-mb",
    envvar="OVPARTS_TEXT_CACHE_MB",
    show_envvar=True,
    default=256.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Text embeddings kept per model for vocabularies seen before (least recently used dropped).",
)
@click.option(
    "--concurrency", default=1, show_default=True, type=click.IntRange(min=1), help="Model runs at once."
)
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
        from .serve import Limits, ServedModel
        from .serve import serve as run_server
        from .serve.app import check_address
    except ImportError as err:
        raise ConfigError(
            f"ovparts serve needs the demo extra ({err.name} is missing): pip install 'ovparts[demo]'."
        ) from err
    from .models.registry import load_model, model_spec
    from .text_cache import set_budget
    from .validation import check_device

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


def _register_commands() -> None:
    from .cli_benchmark import benchmark
    from .cli_eval import COMMANDS
    from .cli_train import COMMANDS as TRAIN_COMMANDS
    from .convert.cli import convert_group

    for command in (*COMMANDS, convert_group, *TRAIN_COMMANDS, benchmark):
        main.add_command(command)


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
