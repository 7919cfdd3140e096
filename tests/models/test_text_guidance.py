"""Text guidance of the CAT-Seg and PartCATSeg heads, fed text that is *not* L2-normalised.

The official aggregators (CAT-Seg CVPR and old, PartCATSeg's two stages) build the text guidance as the
normalised mean over templates of the text as given, and normalise each template only for the cost volume
and, in the CVPR top-k branch, for the classes kept. These tests capture what enters the text-guidance
projection and compare it with that formula computed here, and check that the alternative order (normalise
each template, then average) would give something else on the same input, so they can fail.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ovparts.methods.catseg.model import CONFIGS as CATSEG_CONFIGS
from ovparts.methods.catseg.model import CatSegAggregator, CatSegConfig
from ovparts.methods.partcatseg.model import CONFIGS as PARTCATSEG_CONFIGS
from ovparts.methods.partcatseg.model import PartCatSegAggregator, PartCatSegConfig

TEMPLATES = ["a photo of a {}.", "a drawing of the {}.", "{}"]


def official_guidance(text: torch.Tensor) -> torch.Tensor:
    """normalize(mean over templates of the raw text): (..., T, P, C) -> (..., T, C)."""
    mean = text.mean(dim=-2)
    return mean / mean.norm(dim=-1, keepdim=True)


def template_first_guidance(text: torch.Tensor) -> torch.Tensor:
    """The other order: normalise each template, then average and normalise."""
    return official_guidance(text / text.norm(dim=-1, keepdim=True))


def raw_text(*shape: int, seed: int = 3) -> torch.Tensor:
    """Random text whose templates have very different norms, so the two orders disagree."""
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(*shape, generator=g)
    scale = torch.rand(*shape[:-1], 1, generator=g) * 4 + 0.1
    return text * scale


def capture_projection_inputs(head: torch.nn.Module) -> list[torch.Tensor]:
    """Record every input of ``head.text_guidance_proj`` (the guidance before its linear projection)."""
    seen: list[torch.Tensor] = []
    head.text_guidance_proj.register_forward_hook(lambda module, args, out: seen.append(args[0].detach()))
    return seen


def catseg_head(name: str, **head: object) -> CatSegAggregator:
    data = CATSEG_CONFIGS[name]
    config = CatSegConfig.from_dict({**data, "templates": TEMPLATES, "head": {**data["head"], **head}})
    torch.manual_seed(0)
    return CatSegAggregator(config.head_config).eval()


def catseg_inputs(head: CatSegAggregator, t: int, grid: int = 8) -> tuple:
    cfg = head.config
    torch.manual_seed(1)
    image = torch.randn(2, cfg.text_dim, grid, grid)
    d1, d2 = cfg.decoder_guidance_dims
    guidance = [
        torch.randn(2, cfg.appearance_dim, grid, grid),
        torch.randn(2, d1, 2 * grid, 2 * grid),
        torch.randn(2, d2, 4 * grid, 4 * grid),
    ]
    return image, raw_text(2, t, cfg.prompts, cfg.text_dim), guidance


@pytest.mark.parametrize("name", ["tiny", "tiny-old"])
def test_catseg_guidance_averages_the_raw_text_then_normalises(name):
    head = catseg_head(name)
    assert head.config.prompts == 3
    t = 5 if head.config.pad_len == 0 else head.config.pad_len - 1  # no top-k
    image, text, guidance = catseg_inputs(head, t)
    seen = capture_projection_inputs(head)
    with torch.no_grad():
        head(image, text, guidance)
    assert len(seen) == 1
    expected = official_guidance(text)
    torch.testing.assert_close(seen[0], expected, atol=1e-6, rtol=1e-5)
    # the test can fail: the per-template-first formula is far from it on this input
    assert (template_first_guidance(text) - expected).abs().max() > 1e-2


def test_catseg_top_k_guidance_averages_normalised_templates_of_the_kept_classes():
    head = catseg_head("tiny")
    pad_len = head.config.pad_len
    image, text, guidance = catseg_inputs(head, pad_len + 4)
    seen = capture_projection_inputs(head)
    with torch.no_grad():
        out = head(image, text, guidance)

    # classes ranked by their best cosine over templates and pixels, computed here from scratch
    cos = torch.einsum(
        "bchw,btpc->bthwp", image / image.norm(dim=1, keepdim=True), text / text.norm(dim=-1, keepdim=True)
    )
    keep = cos.flatten(2).amax(dim=-1).topk(pad_len, dim=1).indices.sort(dim=1).values
    assert len(seen) == 1 and seen[0].shape[1] == pad_len
    expected = torch.stack([template_first_guidance(text)[i, keep[i]] for i in range(text.shape[0])])
    torch.testing.assert_close(seen[0], expected, atol=1e-6, rtol=1e-5)
    raw_formula = torch.stack([official_guidance(text)[i, keep[i]] for i in range(text.shape[0])])
    assert (raw_formula - expected).abs().max() > 1e-2
    assert out.shape[1] == pad_len + 4


@pytest.mark.parametrize("name", ["tiny", "tiny-old"])
def test_catseg_logits_see_per_template_scale_only_through_the_guidance(name):
    head = catseg_head(name)
    t = 4
    image, text, guidance = catseg_inputs(head, t)
    with torch.no_grad():
        raw = head(image, text, guidance)
        normed = head(image, F.normalize(text, dim=-1), guidance)
        # one scale per class (same for all its templates) changes neither the cost nor the guidance
        rescaled = head(image, text * (torch.rand(2, t, 1, 1) * 5 + 0.1), guidance)
    assert (raw - normed).abs().max() > 1e-4
    torch.testing.assert_close(rescaled, raw, atol=1e-5, rtol=1e-4)


def partcatseg_head(object_layers: str) -> PartCatSegAggregator:
    config = PartCatSegConfig.from_dict({**PARTCATSEG_CONFIGS["tiny"], "templates": TEMPLATES})
    torch.manual_seed(0)
    return PartCatSegAggregator(config.head_config, object_layers=object_layers).eval()


@pytest.mark.parametrize("object_layers", ["separate", "shared"])
def test_partcatseg_both_stages_average_the_raw_text_then_normalise(object_layers):
    head = partcatseg_head(object_layers)
    cfg = head.config
    assert cfg.prompts == 3
    grid = 8
    torch.manual_seed(1)
    image = torch.randn(2, cfg.text_dim, grid, grid)
    d1, d2 = cfg.decoder_guidance_dims
    guidance = [
        torch.randn(2, cfg.appearance_dim, grid, grid),
        torch.randn(2, d1, 2 * grid, 2 * grid),
        torch.randn(2, d2, 4 * grid, 4 * grid),
    ]
    # 3 generalized parts, 2 objects, background; 4 object-specific parts + background
    part_object = raw_text(6, cfg.prompts, cfg.text_dim, seed=4)
    specific = raw_text(5, cfg.prompts, cfg.text_dim, seed=5)
    to_part, to_object = torch.tensor([0, 1, 1, 2]), torch.tensor([0, 0, 1, 1])
    seen = capture_projection_inputs(head)
    with torch.no_grad():
        out = head(image, part_object, specific, guidance, to_part, to_object)
        normed = head(
            image,
            F.normalize(part_object, dim=-1),
            F.normalize(specific, dim=-1),
            guidance,
            to_part,
            to_object,
        )

    assert len(seen) == 4  # stage A then stage B, twice
    for got, text in ((seen[0], part_object), (seen[1], specific)):
        expected = official_guidance(text).expand(2, -1, -1)
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
        assert (template_first_guidance(text) - official_guidance(text)).abs().max() > 1e-2
    # the stage-A cost normalises each template itself, so it is the same for either input
    torch.testing.assert_close(out["part_object_cost"], normed["part_object_cost"], atol=1e-6, rtol=1e-5)
    # stage B's cost is built from stage-A embeddings, which the guidance steers
    assert (out["specific_cost"] - normed["specific_cost"]).abs().max() > 0
    assert (out["specific_logits"] - normed["specific_logits"]).abs().max() > 1e-4
