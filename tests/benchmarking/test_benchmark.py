"""`ovparts benchmark` on tiny models: every model, its peer, and the JSON fields the docs rely on."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from ovparts.benchmarking import MODELS, benchmark_vocabulary, build_case
from ovparts.cli import main

ROW_FIELDS = {
    "model",
    "k",
    "latency_s",
    "text_s",
    "images_per_s",
    "batch",
    "peak_rss_bytes",
    "forward_peak_bytes",
    "image_size",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "report.json"
    args = ["benchmark", "--size", "tiny", "--classes", "3", "--classes", "7", "--repeats", "1"]
    result = CliRunner().invoke(main, [*args, "--batch", "2", "--in-process", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "speed-up" in result.output
    return json.loads(out.read_text())


def test_every_model_and_k_has_a_row_with_a_peer(report):
    rows = report["rows"]
    assert [(r["model"], r["k"]) for r in rows] == [(m, k) for m in MODELS for k in (3, 7)]
    for row in rows:
        assert set(row) >= ROW_FIELDS
        assert row["latency_s"] > 0 and row["images_per_s"] > 0 and row["batch"] == 2
        peer = row["peer"]
        assert peer["latency_s"] > 0 and peer["name"]
        assert row["speedup"] == pytest.approx(peer["latency_s"] / row["latency_s"])


def test_encoder_flop_rate_measured_once_per_model_against_matmul(report):
    meta = report["meta"]
    assert meta["matmul_flop_rate"] > 0 and meta["precision"] == "fp32"
    for row in report["rows"]:
        if row["k"] == 3:
            assert row["encoder_flops"] > 0
            assert row["matmul_flop_rate"] > 0  # measured beside the encoder, in the same process
            assert row["encoder_fraction_of_matmul"] == pytest.approx(
                row["encoder_flop_rate"] / row["matmul_flop_rate"]
            )
        else:
            assert "encoder_flops" not in row


def test_isolated_process_run(tmp_path):
    out = tmp_path / "one.json"
    args = ["benchmark", "--size", "tiny", "--model", "catseg", "--classes", "2", "--repeats", "1"]
    result = CliRunner().invoke(main, [*args, "--batch", "1", "--no-peers", "--json", str(out)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())["rows"]
    assert row["peak_rss_bytes"] > 0 and "peer" not in row and "images_per_s" not in row


@pytest.mark.parametrize("k", [1, 20, 116, 234, 300])
def test_benchmark_vocabulary_has_k_distinct_parts(k):
    vocab = benchmark_vocabulary(k)
    assert len(vocab) == k == len(set(vocab.names))


# clipseg's peer is transformers itself; its parity is tested in tests/models/test_clipseg.py.
@pytest.mark.parametrize("model", [m for m in MODELS if m != "clipseg"])
def test_peer_computes_the_same_logits(model):
    """The peer paths are references, not strawmen: on the same weights they give ovparts' logits."""
    device = torch.device("cpu")
    ours = build_case(model, "tiny", 5, device)
    peer = build_case(model, "tiny", 5, device, variant="peer")
    peer.model.load_state_dict(ours.model.state_dict())
    pixels = torch.randn(1, 3, *ours.image_size)
    with torch.inference_mode():
        if model == "partcatseg":  # compare every head output (both stages' logits and costs)
            expected, reference = ours.model(pixels, ours.vocab), peer.forward(pixels)
            for key, value in expected.items():
                torch.testing.assert_close(value, reference[key], rtol=1e-4, atol=1e-4)
            return
        logits = ours.forward(pixels)
        reference = peer.forward(pixels)
    expected = logits.parts if model == "catseg" else torch.cat([logits.parts, logits.background], dim=1)
    torch.testing.assert_close(expected, reference, rtol=1e-4, atol=1e-4)


def test_unknown_model_is_one_sentence():
    result = CliRunner().invoke(main, ["benchmark", "--model", "nope"])
    assert result.exit_code == 2 and "No benchmark for model 'nope'" in result.output
