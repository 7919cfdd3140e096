"""`ovparts benchmark --profile`: every stage of a CAT-Seg / PartCATSeg prediction timed and counted."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from ovparts.benchmarking.flops import ElementwiseCounter
from ovparts.benchmarking.profile import STAGES
from ovparts.cli import main
from ovparts.models.stages import OTHER, StageProfile, stage
from ovparts.runtime.precision import cpu_bf16_support, preferred_precision


@pytest.fixture(scope="module")
def profiles(tmp_path_factory):
    out = tmp_path_factory.mktemp("profile") / "profile.json"
    md = out.with_suffix(".md")
    args = ["benchmark", "--profile", "--size", "tiny", "--classes", "4", "--repeats", "1"]
    result = CliRunner().invoke(main, [*args, "--json", str(out), "--markdown", str(md)])
    assert result.exit_code == 0, result.output
    assert "no bf16 hardware" in result.output or "bf16 hardware:" in result.output
    return json.loads(out.read_text()), md.read_text(), result.output


def test_profile_has_every_stage_with_time_and_flops(profiles):
    data, markdown, output = profiles
    assert [p["model"] for p in data] == ["catseg", "partcatseg"]
    for profile in data:
        stages = {row["stage"]: row for row in profile["stages"]}
        assert tuple(stages) == STAGES
        for name in STAGES:
            if name == OTHER:
                continue
            assert stages[name]["seconds"] > 0, (profile["model"], name)
            assert stages[name]["flops"] > 0, (profile["model"], name)
            assert stages[name]["fraction_of_matmul"] > 0
        assert profile["matmul_flop_rate"] > 0
        assert sum(r["flops"] for r in profile["stages"]) == profile["total_flops"]
        # the decoder's convolutions dominate the head's FLOPs on the tiny model too
        assert stages["decoder"]["flops"] > stages["label assignment"]["flops"]
        assert f"{profile['model']} K=4" in output
    assert markdown.count("| spatial aggregation |") == 2


def test_profile_refuses_other_models():
    result = CliRunner().invoke(main, ["benchmark", "--profile", "--model", "clipseg", "--size", "tiny"])
    assert result.exit_code != 0
    assert "cost-aggregation" in result.output
    assert "Traceback" not in result.output


def test_stages_are_exclusive_and_add_up():
    a = torch.randn(64, 64)
    with StageProfile(count_flops=True) as profile:
        with stage("outer"):
            a @ a
            with stage("inner"):
                a @ a
                a @ a
        a + a
    assert profile.flops["outer"] == 2 * 64**3
    assert profile.flops["inner"] == 2 * 2 * 64**3
    assert profile.flops[OTHER] == 64 * 64  # one addition per element
    assert profile.total_seconds == pytest.approx(sum(profile.seconds.values()))
    assert stage("outside") is stage("anything")  # a shared no-op outside a profile


def test_elementwise_counter_counts_resizes_and_reductions_not_views():
    x = torch.randn(1, 2, 4, 4)
    with ElementwiseCounter() as counter:
        x.transpose(2, 3).reshape(2, 16)  # views/copies: nothing
    assert counter.total == 0
    with ElementwiseCounter() as counter:
        torch.nn.functional.interpolate(x, size=(8, 8), mode="bilinear")
    assert counter.total == 7 * 2 * 64
    with ElementwiseCounter() as counter:
        x.sum(dim=1)
    assert counter.total == x.numel()


@pytest.mark.parametrize(
    ("flags", "support", "precision"),
    [
        ({"avx512f", "amx_bf16", "avx512_bf16"}, "amx_bf16", "bf16"),
        ({"avx512f", "avx512_bf16"}, "avx512_bf16", "bf16"),
        ({"avx512f", "avx2"}, None, "fp32"),
    ],
)
def test_cpu_bf16_detection_from_flags(flags, support, precision):
    assert cpu_bf16_support(flags) == support
    assert preferred_precision("cpu", flags) == precision


@pytest.mark.parametrize("bf16", [True, False])
def test_cuda_precision_choice(monkeypatch, bf16):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert preferred_precision("cuda") == ("bf16" if bf16 else "fp16")


@pytest.mark.slow
def test_reduced_precision_benchmark_reports_its_speedup_against_fp32(tmp_path):
    out = tmp_path / "bf16.json"
    args = ["benchmark", "--size", "tiny", "--model", "catseg", "--classes", "3", "--repeats", "2"]
    args += ["--batch", "1", "--no-peers", "--in-process", "--precision", "bf16", "--json", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    row = json.loads(out.read_text())["rows"][0]
    fp32 = row["fp32"]
    assert len(fp32["times_s"]) == len(row["times_s"]) == 2
    assert fp32["speedup"] == pytest.approx(fp32["latency_s"] / row["latency_s"])
    assert "bf16 speed-up" in result.output
    assert "bf16 hardware" in result.output
