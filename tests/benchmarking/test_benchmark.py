"""`ovparts benchmark` on tiny models: every model, its peer, and the JSON fields the docs rely on."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from ovparts.benchmarking import MODELS, PEERS, benchmark_vocabulary, build_case
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


def test_every_model_and_k_has_a_row_with_its_peers(report):
    rows = report["rows"]
    assert [(r["model"], r["k"]) for r in rows] == [(m, k) for m in MODELS for k in (3, 7)]
    for row in rows:
        assert set(row) >= ROW_FIELDS
        assert row["latency_s"] > 0 and row["images_per_s"] > 0 and row["batch"] == 2
        assert list(row["peers"]) == list(PEERS[row["model"]])
        for peer in row["peers"].values():
            assert peer["latency_s"] > 0 and peer["name"]
            assert peer["speedup"] == pytest.approx(peer["latency_s"] / row["latency_s"])
            # timed round by round against ovparts: one time per repeat on each side
            assert len(peer["times_s"]) == len(row["times_s"]) == 1
            assert peer["speedup_rounds"] == pytest.approx(peer["times_s"][0] / row["times_s"][0])


@pytest.mark.parametrize("model", ["catseg", "partcatseg"])
def test_reference_paths_encode_the_image_once_per_class(model):
    """The reference peers' defining cost: K encoder runs per image, where ovparts runs one."""
    calls = {"reference": [], "ovparts": []}
    for variant, seen in calls.items():
        case = build_case(model, "tiny", 4, torch.device("cpu"), variant=variant)
        patches = case.model.backbone.clip.vision_model.embeddings.patch_embedding
        handle = patches.register_forward_hook(lambda *args, seen=seen: seen.append(1))
        with torch.inference_mode():
            case.forward(torch.randn(1, 3, *case.image_size))
        handle.remove()
    assert len(calls["reference"]) == 4 and len(calls["ovparts"]) == 1


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


@pytest.mark.slow
def test_isolated_process_run(tmp_path):
    out = tmp_path / "one.json"
    args = ["benchmark", "--size", "tiny", "--model", "catseg", "--classes", "2", "--repeats", "1"]
    result = CliRunner().invoke(main, [*args, "--batch", "1", "--no-peers", "--json", str(out)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())["rows"]
    assert row["peak_rss_bytes"] > 0 and "peers" not in row and "images_per_s" not in row


@pytest.mark.slow
def test_isolated_workers_alternate_with_peers(tmp_path):
    """Separate worker processes per variant, two rounds each: every side has its own peak and two times."""
    out = tmp_path / "two.json"
    args = ["benchmark", "--size", "tiny", "--model", "partclipseg", "--classes", "3", "--repeats", "2"]
    result = CliRunner().invoke(main, [*args, "--batch", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())["rows"]
    assert set(row["peers"]) == {"reference", "official"}
    for peer in row["peers"].values():
        assert len(peer["times_s"]) == 2 and peer["peak_rss_bytes"] > 0
    assert "vs reference" in result.output and "vs official" in result.output


def test_peer_option_runs_only_the_named_peer_and_text_timing_can_be_skipped(tmp_path):
    out = tmp_path / "official.json"
    args = ["benchmark", "--size", "tiny", "--model", "catseg", "--classes", "3", "--repeats", "1"]
    options = ["--batch", "1", "--peer", "official", "--no-text-timing", "--json", str(out)]
    result = CliRunner().invoke(main, [*args, *options])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())["rows"]
    assert set(row["peers"]) == {"official"}
    assert "text_s" not in row and "speedup_incl_text" not in row["peers"]["official"]
    assert "with text" not in result.output
    wrong = CliRunner().invoke(main, [*args, "--peer", "transformers"])
    assert wrong.exit_code != 0 and "No model measured here has a peer 'transformers'" in wrong.output


@pytest.mark.parametrize("k", [1, 20, 116, 234, 300])
def test_benchmark_vocabulary_has_k_distinct_parts(k):
    vocab = benchmark_vocabulary(k)
    assert len(vocab) == k == len(set(vocab.names))


# clipseg's peer is transformers itself; its parity is tested in tests/models/test_clipseg.py.
@pytest.mark.parametrize(("model", "variant"), [(m, v) for m in MODELS if m != "clipseg" for v in PEERS[m]])
def test_peer_computes_the_same_logits(model, variant):
    """The peer paths are references, not strawmen: on the same weights they give ovparts' logits."""
    device = torch.device("cpu")
    ours = build_case(model, "tiny", 5, device)
    peer = build_case(model, "tiny", 5, device, variant=variant)
    peer.model.load_state_dict(ours.model.state_dict())
    if model in ("catseg", "partcatseg"):  # the official head layout, on the peer's model only
        assert any("forward" in vars(m) for m in peer.model.modules())
        assert not any("forward" in vars(m) for m in ours.model.modules())
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


@pytest.mark.slow
def test_compile_flag_compiles_ovparts_and_reports_the_first_call(tmp_path):
    out = tmp_path / "compiled.json"
    args = ["benchmark", "--size", "tiny", "--model", "clipseg", "--classes", "2", "--repeats", "1"]
    result = CliRunner().invoke(
        main, [*args, "--batch", "1", "--no-peers", "--in-process", "--compile", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert report["meta"]["compiled"] is True and "compiled" in result.output
    # the first call pays inductor's code generation (seconds); later calls reuse the graphs (milliseconds)
    assert row["first_call_s"] > 5 * row["latency_s"]


def test_markdown_table_has_a_row_per_setting_and_peer(report):
    from ovparts.benchmarking import format_markdown

    table = format_markdown(report).splitlines()
    rows = [line for line in table if line.startswith("| ") and "---" not in line][1:]  # minus the header
    expected = sum(1 + len(row["peers"]) for row in report["rows"])
    assert len(rows) == expected
    assert all(line.count("|") == table[2].count("|") for line in rows)
