"""`ovparts serve`: options reach the app, mistakes end in one line and exit code 2 before anything binds."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ovparts.cli import main


@pytest.fixture
def captured(monkeypatch):
    """Replace the blocking server with a recorder of what it would have served."""
    import ovparts.serve

    calls = []
    monkeypatch.setattr(ovparts.serve, "serve", lambda served, **kwargs: calls.append((served, kwargs)))
    return calls


def invoke(*args):
    return CliRunner().invoke(main, ["serve", *map(str, args)], catch_exceptions=False)


def test_options_become_limits_and_models(captured):
    result = invoke(
        "--config", "tiny", "--port", 8123, "--max-parts", 7, "--queue", 3, "--timeout", 5,
        "--max-upload-mb", 2, "--max-pixels", 5000, "--max-name-length", 9, "--no-ui",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ((served, kwargs),) = captured
    assert [s.name for s in served] == ["clipseg"] and served[0].weights == "random:tiny"
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == 8123 and kwargs["ui"] is False
    limits = kwargs["limits"]
    assert (limits.max_parts, limits.max_queue, limits.timeout_s) == (7, 3, 5.0)
    assert (limits.max_upload_bytes, limits.max_pixels, limits.max_name_length) == (2 * 2**20, 5000, 9)


def test_defaults_bind_to_loopback(captured):
    assert invoke("--config", "tiny").exit_code == 0
    assert captured[0][1]["host"] == "127.0.0.1" and captured[0][1]["port"] == 7860


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--model", "nosuchmodel", "--config", "tiny"], "Unknown model"),
        (["--model", "clipseg", "--weights", "a", "--weights", "b"], "one --weights per --model"),
        (["--model", "clipseg", "--model", "clipseg", "--config", "tiny"], "named twice"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(captured, args, words):
    result = invoke(*args)
    assert result.exit_code == 2
    assert words in result.output and result.output.count("\n") == 1, result.output
    assert not captured


def test_work_bounds_and_cache_budget_from_options_and_env(captured, monkeypatch):
    monkeypatch.setenv("OVPARTS_SERVE_MAX_REQUEST_MB", "300")
    result = invoke(
        "--config", "tiny", "--port", 0, "--working-pixels", 5000, "--max-pixel-parts", 90000,
        "--text-cache-mb", 1,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ((served, kwargs),) = captured
    limits = kwargs["limits"]
    assert (limits.working_pixels, limits.max_pixel_parts) == (5000, 90000)
    assert limits.max_request_bytes == 300 * 2**20
    assert served[0].model.backbone._text_cache.max_bytes == 2**20


def test_busy_port_and_unknown_host_are_one_sentence_before_loading(captured):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = invoke("--config", "tiny", "--port", busy.getsockname()[1])
    assert result.exit_code == 2 and "already in use" in result.output, result.output
    assert "Loading" not in result.output and "Serving" not in result.output
    result = invoke("--config", "tiny", "--host", "no-such-host.invalid")
    assert result.exit_code == 2 and "does not resolve" in result.output, result.output
    result = invoke("--config", "tiny", "--device", "bogus")
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "device" in result.output
    assert not captured
