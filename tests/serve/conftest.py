"""Fixtures for the web server: apps on the tiny model, real uvicorn servers on free loopback ports."""

from __future__ import annotations

import importlib.util
import io
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from PIL import Image

# Without the demo extra there is nothing to test here; say so instead of failing on imports.
if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("gradio") is None:
    collect_ignore_glob = ["test_*.py"]
    print("tests/serve skipped: the demo extra is not installed (pip install 'ovparts[demo]').")


def free_port() -> int:
    """A port nobody listens on right now, on loopback only."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def encode(array, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def chelsea_jpeg(chelsea) -> bytes:
    return encode(chelsea)


class LiveServer:
    """uvicorn running an app in a thread, so a browser or a load client can reach it over TCP."""

    def __init__(self, app, port: int) -> None:
        import uvicorn

        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("The test server did not start within 30 seconds.")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture(scope="session")
def live_server(tiny_clipseg, tmp_path_factory) -> Iterator[LiveServer]:
    """The full app (page + API) on the tiny CLIPSeg checkpoint, on a free loopback port."""
    from ovparts.serve import ServedModel, create_app

    app = create_app(
        [ServedModel("clipseg", tiny_clipseg, weights="tiny-fixture")],
        workdir=tmp_path_factory.mktemp("serve"),
    )
    with LiveServer(app, free_port()) as server:
        yield server
