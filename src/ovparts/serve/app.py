"""``create_app``: one FastAPI application with the JSON API and, mounted at ``/``, the Gradio page.

One process holds the models once; both front ends share them, their text-embedding caches and one gate,
so the limits hold for the sum of page and API traffic.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from .. import __version__
from ..errors import ConfigError
from ..models.base import PartSegModel
from .api import BodyLimit, build_router, install_error_handlers
from .limits import Limits
from .service import SegmentService, ServedModel

DESCRIPTION = """Open-vocabulary part segmentation: send an image and part names as text, get back the parts
found with their areas and scores and a label map (PNG or COCO RLE). Errors answer `{"detail": one sentence}`
with 413 (too large), 422 (unusable input), 429 (server full, retry) or 503 (timed out)."""


def create_app(
    models: PartSegModel | Sequence[ServedModel],
    limits: Limits | None = None,
    ui: bool = True,
    workdir: str | Path | None = None,
    model_name: str = "model",
) -> FastAPI:
    """Build the app. ``models`` is one model (served as ``model_name``) or several ``ServedModel``s.

    ``workdir`` holds the example photos and the page's downloads; by default a temporary folder that is
    removed when the app shuts down.
    """
    served = [ServedModel(model_name, models)] if isinstance(models, PartSegModel) else list(models)
    service = SegmentService(served, limits)
    own_workdir = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="ovparts-serve-")) if own_workdir else Path(workdir)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            service.gate.shutdown()
            if own_workdir:
                shutil.rmtree(folder, ignore_errors=True)

    app = FastAPI(title="ovparts", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.service = service
    install_error_handlers(app)
    app.include_router(build_router(service))
    app.add_middleware(BodyLimit, max_bytes=service.limits.max_body_bytes)
    if not ui:

        @app.get("/", include_in_schema=False)
        def root() -> RedirectResponse:
            return RedirectResponse("/docs")

        return app

    import gradio as gr

    from .ui import THEME, build_ui

    blocks = build_ui(service, folder)
    return gr.mount_gradio_app(
        app,
        blocks,
        path="",
        max_file_size=service.limits.max_upload_bytes,
        allowed_paths=[str(folder)],
        ssr_mode=False,
        theme=THEME,
        footer_links=[],  # Gradio's own API page would compete with the documented /docs
    )


def check_address(host: str, port: int) -> None:
    """Bind ``host``:``port`` once and let go, so a busy port or a host that is not this machine's is one
    sentence before the models load, instead of a log line and exit code 3 after "Serving on ..."."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError, OSError) as err:
        raise ConfigError(
            f"The host {host!r} does not resolve to an address; use 127.0.0.1, 0.0.0.0 or a name of this machine."
        ) from err
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"The port {port} on {host} is already in use; stop the other server or choose another --port."
            ) from err
        if err.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(
                f"The host {host!r} is not an address of this machine; use 127.0.0.1, 0.0.0.0 or one of its own."
            ) from err
        if err.errno in (errno.EACCES, errno.EPERM):
            raise ConfigError(
                f"Binding port {port} needs privileges this process lacks; choose a port above 1023."
            ) from err
        raise ConfigError(f"The server cannot listen on {host}:{port} ({err.strerror or err}).") from err


def serve(
    models: Sequence[ServedModel],
    host: str = "127.0.0.1",
    port: int = 7860,
    limits: Limits | None = None,
    ui: bool = True,
) -> None:
    """Run the app with uvicorn until interrupted (what ``ovparts serve`` calls)."""
    import uvicorn

    check_address(host, port)
    app = create_app(models, limits=limits, ui=ui)
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
    except SystemExit as exit_:  # uvicorn exits when it cannot bind after all (a race with another server)
        if exit_.code not in (None, 0):
            raise ConfigError(
                f"The server could not start on {host}:{port}; see the message above."
            ) from None
        raise
