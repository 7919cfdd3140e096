"""Stand-in segmenters for evaluation tests (no weights): answers derived from the ground truth.

A module of its own so that the subprocess scripts (``worker.py``) use the very same segmenter as the tests.
"""

import hashlib
import time
from types import SimpleNamespace

import numpy as np

from ovparts.data.io import read_rgb


class FakeSegmenter:
    """Answers with the ground truth of the image it is shown (found by pixel hash), optionally corrupted.

    It follows the Segmenter contract: with an object mask, each pixel may only take parts of its object and
    pixels outside every object get -1.
    """

    def __init__(self, dataset, corrupt=None):
        self.lookup = {hashlib.md5(read_rgb(s.image_path).tobytes()).hexdigest(): s for s in dataset}
        self.vocab = dataset.vocabulary
        self.corrupt = corrupt
        self.calls = []

    def __call__(self, image, vocab, object_mask=None):
        sample = self.lookup[hashlib.md5(np.ascontiguousarray(image).tobytes()).hexdigest()]
        self.calls.append(None if object_mask is None else object_mask.copy())
        part = sample.part_map.copy()
        if self.corrupt is not None:
            part = self.corrupt(part)
        if object_mask is not None:
            owner = np.where(part >= 0, vocab.part_to_object[np.clip(part, 0, None)], -1)
            wrong = (object_mask >= 0) & (owner != object_mask)
            for obj in np.unique(object_mask[wrong]):
                parts_of = vocab.parts_of(int(obj)) if obj >= 0 else []
                part[wrong & (object_mask == obj)] = parts_of[0] if parts_of else -1
            part[object_mask < 0] = -1
        return SimpleNamespace(part_map=part, object_map=sample.object_map.copy(), part_scores=None)


def shift(part):
    """A deterministic mistake: the part map moved two columns right."""
    return np.roll(part, 2, axis=1)


class SlowShifted(FakeSegmenter):
    """``shift``ed answers, ``delay`` seconds each: a run slow enough to be killed mid-way."""

    def __init__(self, dataset, delay=0.0):
        super().__init__(dataset, corrupt=shift)
        self.delay = delay

    def __call__(self, image, vocab, object_mask=None):
        time.sleep(self.delay)
        return super().__call__(image, vocab, object_mask)
