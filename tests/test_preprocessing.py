"""Test-time chains equal to the official ones (docs/catseg.md, docs/partcatseg.md, docs/clipseg.md).

Each expected tensor is computed here independently, with plain PIL / torch calls in the order the official
code runs them (detectron2 ResizeShortestEdge -> normalise -> ImageList pad -> F.interpolate), so these tests
fail on the earlier chain (a PIL resize of the photo straight to the network size).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import ovparts
from ovparts.errors import ConfigError
from ovparts.inference import SlidingWindow
from ovparts.methods.catseg.model import CatSegConfig
from ovparts.methods.partcatseg.model import PartCatSegConfig
from ovparts.models.base import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, PartLogits, Preprocess
from ovparts.preprocessing import shortest_edge_size

CATSEG = Preprocess(
    (384, 384), CLIP_MEAN, CLIP_STD, shortest_edge=640, max_size=2560, size_divisibility=32,
    activation_before_resize=True,
)  # fmt: skip


def official_normalise(pixels_255: torch.Tensor, mean, std) -> torch.Tensor:
    """detectron2 style: 0-255 floats, mean / std in 0-255 units."""
    m = torch.tensor([v * 255 for v in mean]).view(1, 3, 1, 1)
    s = torch.tensor([v * 255 for v in std]).view(1, 3, 1, 1)
    return (pixels_255 - m) / s


def uint8_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float()


class Recorder(torch.nn.Module):
    """A stand-in model: records its input and returns hand-set logits at ``out`` x ``out``."""

    def __init__(self, preprocess: Preprocess, logits: torch.Tensor | None = None, out: int = 4):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.config = type("C", (), {"background_threshold": 0.5})()
        self.preprocess = preprocess
        self.fixed, self.out, self.inputs = logits, out, []

    def predict(self, pixel_values, vocab):
        self.inputs.append(pixel_values.clone())
        if self.fixed is not None:
            return PartLogits(parts=self.fixed.expand(pixel_values.shape[0], -1, -1, -1))
        return PartLogits(parts=torch.zeros(pixel_values.shape[0], len(vocab), self.out, self.out))


def test_shortest_edge_sizes_match_detectron2_examples():
    assert shortest_edge_size(300, 451, 640, 2560) == (640, 962)  # CAT-Seg, chelsea
    assert shortest_edge_size(300, 451, 640, 768) == (511, 768)  # PartCATSeg, long side capped
    assert shortest_edge_size(451, 300, 640, 768) == (768, 511)  # portrait
    assert shortest_edge_size(500, 500, 640, None) == (640, 640)


def test_catseg_sliding_input_is_interpolated_from_the_short_edge_image(chelsea):
    """Windows of F.interpolate(962x640 PIL resize -> 640x640), global view F.interpolate(... -> 384)."""
    model = Recorder(CATSEG)
    seg = ovparts.Segmenter(model, sliding_window=SlidingWindow(640, 0.333), keep_scores=True)
    seg(chelsea, "cat: head, ear")
    (got,) = model.inputs

    photo = Image.fromarray(chelsea)
    assert photo.size == (451, 300)
    base = uint8_tensor(photo.resize((962, 640), Image.BILINEAR))
    canvas = F.interpolate(base, size=(640, 640), mode="bilinear", align_corners=False)
    unfold = torch.nn.Unfold(kernel_size=384, stride=int(384 * (1 - 0.333)))
    windows = unfold(canvas)[0].T.reshape(-1, 3, 384, 384)
    global_view = F.interpolate(base, size=(384, 384), mode="bilinear", align_corners=False)
    expected = official_normalise(torch.cat([windows, global_view]), CLIP_MEAN, CLIP_STD)
    assert got.shape == (5, 3, 384, 384)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=0)

    # the earlier chain (PIL resizes of the photo itself) is far from it
    old = ovparts.Segmenter(Recorder(Preprocess((384, 384), CLIP_MEAN, CLIP_STD)), sliding_window=True)
    old_views = old._sliding_views(photo, 640, (384, 384))
    assert (old_views[1] - expected[-1:]).abs().max() > 0.05


def test_catseg_sliding_output_sigmoid_per_window_then_fold_then_resize(chelsea):
    """Window logits -> resize to 384 -> sigmoid -> overlap-average, 50/50 with the global view, -> photo."""
    torch.manual_seed(0)
    logits = torch.randn(1, 2, 4, 4) * 3
    seg = ovparts.Segmenter(
        Recorder(CATSEG, logits), sliding_window=SlidingWindow(640, 0.333), keep_scores=True
    )
    got = seg(chelsea, "cat: head, ear").part_scores
    probs = torch.sigmoid(F.interpolate(logits, size=(384, 384), mode="bilinear", align_corners=False))
    fold = torch.nn.Fold((640, 640), kernel_size=384, stride=256)
    unfold = torch.nn.Unfold(kernel_size=384, stride=256)
    windows = fold(probs.expand(4, -1, -1, -1).flatten(1).T) / fold(unfold(torch.ones(1, 1, 640, 640)))
    merged = (windows + F.interpolate(probs, size=(640, 640), mode="bilinear", align_corners=False)) / 2
    expected = F.interpolate(merged, size=(300, 451), mode="bilinear", align_corners=False)[0]
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)


def test_catseg_vit_l_windows_stay_384_and_the_model_resizes_them(chelsea):
    """The official sliding window hard-codes 384 windows; ViT-L/14 gets them interpolated to 336."""
    spec = Preprocess((336, 336), CLIP_MEAN, CLIP_STD, shortest_edge=640, max_size=2560, size_divisibility=32)
    model = Recorder(spec)
    default = ovparts.Segmenter(model, sliding_window=True).sliding_window  # config without sliding fields
    assert default.window is None
    ovparts.Segmenter(model, sliding_window=SlidingWindow(640, 0.333, window=384))(chelsea, "cat: head")
    assert model.inputs[-1].shape == (5, 3, 384, 384)
    config = CatSegConfig(image_size=336)
    assert config.sliding_window_size == 384
    with pytest.raises(ConfigError, match="sliding_window_size"):
        CatSegConfig(sliding_window_size=700)


def test_partcatseg_network_input_is_the_capped_short_edge_image(chelsea):
    model = ovparts.load_model("partcatseg", config="tiny")
    pixels = ovparts.Segmenter(model).pixel_values(Image.fromarray(chelsea))
    resized = uint8_tensor(Image.fromarray(chelsea).resize((768, 511), Image.BILINEAR))
    assert pixels.shape == (1, 3, 511, 768)
    torch.testing.assert_close(pixels, official_normalise(resized, CLIP_MEAN, CLIP_STD), atol=2e-5, rtol=0)


def partcatseg_encoder_inputs(model, image: np.ndarray) -> dict[str, torch.Tensor]:
    """The CLIP and DINO encoders' inputs during one Segmenter call."""
    seen: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(module, args):
            seen[name] = args[0].clone()

        return hook

    model.backbone.register_forward_pre_hook(keep("clip"))
    tokens = model.dino.tokens
    model.dino.tokens = lambda x: (keep("dino")(None, (x,)), tokens(x))[1]
    ovparts.Segmenter(model)(image, "cat: head, ear")
    return seen


def padded_then_interpolated(resized: Image.Image, mean, std, side: int) -> torch.Tensor:
    """Official: normalise (0-255 units), ImageList zero pad to 32, F.interpolate to the encoder's size."""
    normalised = official_normalise(uint8_tensor(resized), mean, std)
    h, w = normalised.shape[-2:]
    padded = F.pad(normalised, (0, -w % 32, 0, -h % 32), value=0.0)
    return F.interpolate(padded, size=(side, side), mode="bilinear", align_corners=False)


def test_partcatseg_encoders_see_the_padded_image_interpolated_each_to_its_size(chelsea):
    """CLIP: pad(CLIP-normalised 768x511, 32) -> image_size; DINO: pad(ImageNet-normalised, 32) ->
    dino_image_size, both from the 768x511 image (not DINO's from CLIP's 384 input)."""
    model = ovparts.load_model("partcatseg", config="tiny")
    seen = partcatseg_encoder_inputs(model, chelsea)
    resized = Image.fromarray(chelsea).resize((768, 511), Image.BILINEAR)
    cfg = model.config
    clip = padded_then_interpolated(resized, CLIP_MEAN, CLIP_STD, cfg.image_size)
    dino = padded_then_interpolated(resized, IMAGENET_MEAN, IMAGENET_STD, cfg.dino_image_size)
    torch.testing.assert_close(seen["clip"], clip, atol=2e-5, rtol=0)
    torch.testing.assert_close(seen["dino"], dino, atol=2e-5, rtol=0)


def test_partcatseg_pads_each_normalisation_with_its_own_zero(chelsea):
    """A small short edge (40 -> 40x60, padded to 64x64) makes the padding visible in both encoders' inputs:
    the DINO copy is padded after its own normalisation, so its pad is not the CLIP mean colour."""
    from ovparts.methods.partcatseg.model import CONFIGS, PartCatSeg

    config = PartCatSegConfig.from_dict({**CONFIGS["tiny"], "test_short_edge": 40, "test_max_size": 60})
    model = PartCatSeg(config).eval()
    seen = partcatseg_encoder_inputs(model, chelsea)
    resized = Image.fromarray(chelsea).resize((60, 40), Image.BILINEAR)
    dino = padded_then_interpolated(resized, IMAGENET_MEAN, IMAGENET_STD, config.dino_image_size)
    torch.testing.assert_close(seen["dino"], dino, atol=2e-5, rtol=0)
    clip = padded_then_interpolated(resized, CLIP_MEAN, CLIP_STD, config.image_size)
    torch.testing.assert_close(seen["clip"], clip, atol=2e-5, rtol=0)
    # re-normalising the padded CLIP copy instead gives the DINO pad the CLIP mean colour: a visible change
    m, s = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    nm, ns = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    wrong = (padded_then_interpolated(resized, CLIP_MEAN, CLIP_STD, config.dino_image_size) * s + m - nm) / ns
    assert (wrong - seen["dino"]).abs().max() > 1e-3


def test_catseg_without_sliding_pads_then_interpolates_in_the_model(chelsea):
    model = ovparts.load_model("catseg", config="tiny")
    seg = ovparts.Segmenter(model, sliding_window=False)
    pixels = seg.pixel_values(Image.fromarray(chelsea))
    assert pixels.shape == (1, 3, 640, 962)
    side = model.config.image_size
    by_hand = F.interpolate(
        F.pad(pixels, (0, 30, 0, 0)), size=(side, side), mode="bilinear", align_corners=False
    )
    vocab = ovparts.Vocabulary.parse("cat: head, ear")
    torch.testing.assert_close(model.predict(pixels, vocab).parts, model.predict(by_hand, vocab).parts)


@pytest.mark.parametrize("before", [True, False])
def test_activation_order_and_no_padding_crop(chelsea, before):
    """CAT-Seg / PartCATSeg: sigmoid at the network's resolution, then the whole map (padding included, as
    detectron2's sem_seg_postprocess leaves it on a 96x96 map) resized to the photo. CLIPSeg: resize first."""
    torch.manual_seed(1)
    logits = torch.randn(1, 2, 4, 4) * 4
    spec = Preprocess(
        (8, 8), shortest_edge=16, max_size=20, size_divisibility=32, activation_before_resize=before
    )
    got = ovparts.Segmenter(Recorder(spec, logits), keep_scores=True)(chelsea, "cat: head, ear").part_scores
    size = chelsea.shape[:2]
    probs_first = F.interpolate(torch.sigmoid(logits), size=size, mode="bilinear", align_corners=False)[0]
    logits_first = torch.sigmoid(F.interpolate(logits, size=size, mode="bilinear", align_corners=False))[0]
    expected, other = (probs_first, logits_first) if before else (logits_first, probs_first)
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-6)
    assert np.abs(got - other.numpy()).max() > 1e-3


def test_oracle_masking_commutes_with_the_resize(chelsea):
    """The official PartCATSeg masks other objects' channels (-1) at 96x96 before the resize; ovparts masks after
    it. A constant channel stays constant under bilinear resizing, so the label maps agree."""
    torch.manual_seed(2)
    logits = torch.randn(1, 3, 4, 4) * 3
    spec = Preprocess(
        (8, 8), shortest_edge=16, max_size=20, size_divisibility=32, activation_before_resize=True
    )
    vocab = ovparts.Vocabulary.parse("cat: head, ear; dog: head")
    mask = np.zeros(chelsea.shape[:2], np.uint8)
    got = ovparts.Segmenter(Recorder(spec, logits))(chelsea, vocab, object_mask=mask).part_map
    probs = torch.sigmoid(logits)[0]
    probs[2] = -1.0  # "dog's head" is not a part of the GT object (cat)
    expected = F.interpolate(probs[None], size=chelsea.shape[:2], mode="bilinear", align_corners=False)[0]
    assert np.array_equal(got, expected.argmax(0).numpy())


def test_clipseg_keeps_the_processor_chain(tiny_clipseg, chelsea):
    spec = tiny_clipseg.preprocess
    assert spec.shortest_edge is None and not spec.activation_before_resize
    pixels = ovparts.Segmenter(tiny_clipseg).pixel_values(Image.fromarray(chelsea))
    h, w = spec.size
    resized = uint8_tensor(Image.fromarray(chelsea).resize((w, h), Image.BILINEAR))
    torch.testing.assert_close(pixels, official_normalise(resized, spec.mean, spec.std), atol=2e-5, rtol=0)


def test_configs_select_the_official_chain_by_default():
    catseg, partcatseg = CatSegConfig(), PartCatSegConfig()
    assert (catseg.test_short_edge, catseg.test_max_size, catseg.size_divisibility) == (640, 2560, 32)
    assert (partcatseg.test_short_edge, partcatseg.test_max_size, partcatseg.size_divisibility) == (
        640,
        768,
        32,
    )
    spec = ovparts.load_model("partcatseg", config="tiny").preprocess
    assert spec.to_dict()["shortest_edge"] == 640 and spec.activation_before_resize
    for name in ("partclipseg", "clipseg"):
        assert ovparts.load_model(name, config="tiny").preprocess.shortest_edge is None
    with pytest.raises(ConfigError, match="test_short_edge"):
        CatSegConfig(test_short_edge=0)
    with pytest.raises(ConfigError, match="size_divisibility"):
        PartCatSegConfig(size_divisibility=-1)
