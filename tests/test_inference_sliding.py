"""The Segmenter's sliding-window option (CAT-Seg's official evaluation)."""

from __future__ import annotations

import numpy as np
import torch

import ovparts
from ovparts.inference import SlidingWindow, window_starts
from ovparts.models.base import PartLogits


def test_official_geometry_is_two_by_two_windows():
    assert window_starts(640, 384, 0.333) == [0, 256]
    assert window_starts(100, 40, 0.5) == [0, 20, 40, 60]
    assert window_starts(50, 40, 0.5) == [0, 10]
    assert window_starts(30, 40, 0.5) == [0]


class ConstantModel(torch.nn.Module):
    """A stand-in whose logit for class c is logit(p_c) everywhere, except on the last (global) view."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.calls = []

    @property
    def preprocess(self):
        from ovparts.models.base import Preprocess

        return Preprocess((8, 8))

    def predict(self, pixel_values, vocab):
        self.calls.append(pixel_values.shape)
        n = pixel_values.shape[0]
        logits = torch.zeros(n, len(vocab), 4, 4)
        logits[-1] = 2.0  # the global view says sigmoid(2) everywhere
        return PartLogits(parts=logits)


def test_windows_are_averaged_then_mixed_with_the_global_view():
    model = ConstantModel(config=type("C", (), {"background_threshold": 0.5})())
    seg = ovparts.Segmenter(model, sliding_window=SlidingWindow(canvas=12, overlap=0.5), keep_scores=True)
    vocab = ovparts.Vocabulary.parse("dog: head, tail")
    result = seg(np.zeros((20, 30, 3), dtype=np.uint8), vocab)
    assert model.calls == [torch.Size([4 + 1, 3, 8, 8])]  # 2x2 windows + global view in one batch
    expected = (0.5 + torch.sigmoid(torch.tensor(2.0)).item()) / 2
    assert result.part_scores.shape == (2, 20, 30)
    assert np.allclose(result.part_scores, expected, atol=1e-5)


def test_catseg_uses_the_sliding_window_by_default_on_a_non_square_image(chelsea):
    model = ovparts.load_model("catseg", config="tiny")
    vocab = ovparts.Vocabulary.parse("cat: head, ear, leg")
    sliding = ovparts.Segmenter(model)
    assert sliding.sliding_window == SlidingWindow(canvas=48, overlap=0.333, window=32)
    image = chelsea[:50, :80]
    result = sliding(image, vocab)
    assert result.part_map.shape == (50, 80) and result.part_scores.shape == (3, 50, 80)
    single = ovparts.Segmenter(model, sliding_window=False)(image, vocab)
    assert single.part_map.shape == (50, 80)
    assert not np.allclose(result.part_scores, single.part_scores)
