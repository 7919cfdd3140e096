"""The one COCO RLE codec (readers decode with it, the server encodes with it): round trips, edge cases,
refusals of malformed input, and agreement with pycocotools when present."""

from __future__ import annotations

import numpy as np
import pytest

from ovparts.data import coco_rle as rle

SHAPES = [(1, 1), (3, 5), (17, 4), (64, 33)]


def random_masks(seed: int = 0):
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        for density in (0.0, 0.02, 0.5, 0.98, 1.0):
            yield rng.random(shape) < density
    # Long runs give counts that need several 5-bit groups and negative differences.
    big = np.zeros((300, 451), bool)
    big[40:260, 100:300] = True
    big[0, 0] = True
    yield big


def test_counts_round_trip_and_start_with_zeros():
    for mask in random_masks():
        counts = rle.encode_counts(mask)
        assert sum(counts) == mask.size
        assert all(c > 0 for c in counts[1:]) and counts[0] >= 0
        column_major = mask.ravel(order="F")
        assert counts[0] == (
            0 if column_major[0] else np.argmax(column_major) if column_major.any() else mask.size
        )
        np.testing.assert_array_equal(rle.decode_counts(counts, mask.shape), mask)


def test_string_form_round_trips_through_its_inverse():
    for mask in random_masks(1):
        counts = rle.encode_counts(mask)
        text = rle.counts_to_string(counts)
        assert text.isascii() and all(48 <= ord(ch) < 48 + 64 for ch in text)
        assert rle.string_to_counts(text) == counts
        np.testing.assert_array_equal(rle.decode(rle.encode(mask)), mask)


def test_list_counts_decode_too():
    mask = np.eye(4, dtype=bool)
    assert rle.decode({"size": [4, 4], "counts": rle.encode_counts(mask)}).tolist() == mask.tolist()
    for mask in random_masks(3):
        plain = rle.encode(mask, compressed=False)
        assert plain["counts"] == rle.encode_counts(mask) and plain["size"] == list(mask.shape)
        np.testing.assert_array_equal(rle.decode(plain), mask)
        compact = rle.encode(mask)
        assert compact["counts"] == rle.counts_to_string(plain["counts"])
        # pycocotools hands out the compact form as bytes
        np.testing.assert_array_equal(rle.decode({**compact, "counts": compact["counts"].encode()}), mask)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2-D"):
        rle.encode_counts(np.zeros(4, bool))
    with pytest.raises(ValueError, match="covers 3 pixels, expected 4"):
        rle.decode_counts([1, 2], (2, 2))
    with pytest.raises(ValueError, match="negative run"):
        rle.decode_counts([-1, 5], (2, 2))
    with pytest.raises(ValueError, match="outside its alphabet"):
        rle.string_to_counts("0\x00")
    with pytest.raises(ValueError, match="outside its alphabet"):
        rle.string_to_counts("0é")
    with pytest.raises(ValueError, match="malformed"):
        rle.string_to_counts("P")  # a continuation bit with nothing after it
    with pytest.raises(ValueError, match="malformed"):
        rle.string_to_counts("o" * 13 + "1")  # a count of more than 64 bits
    assert rle.string_to_counts("o" * 12 + "1") == [int("1" + "11111" * 12, 2)]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_agrees_with_pycocotools():
    mask_api = pytest.importorskip(
        "pycocotools.mask", reason="pycocotools is optional; install it to cross-check"
    )
    for mask in random_masks(2):
        ours = rle.encode(mask)
        theirs = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert ours["counts"] == theirs["counts"].decode("ascii")
        assert ours["size"] == list(theirs["size"])
        np.testing.assert_array_equal(mask_api.decode({**ours, "counts": ours["counts"].encode()}), mask)
        np.testing.assert_array_equal(rle.decode(theirs), mask)
