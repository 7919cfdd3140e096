import numpy as np
import pytest

from ovparts.errors import ConfigError
from ovparts.training.transforms import Compose, Triple, build_op


def _triple(height=40, width=60):
    """Left half part 0 / object 0, right half part 1 / object 1; the image encodes the column index."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = np.arange(width, dtype=np.uint8)[None]
    parts = np.where(np.arange(width)[None] < width // 2, 0, 1).repeat(height, 0).astype(np.int64)
    parts[0] = -1
    return Triple(image, parts, parts.copy())


@pytest.mark.parametrize(
    "spec",
    [
        {"op": "resize", "size": [32, 48]},
        {"op": "resize_shortest_edge", "size": 20, "max_size": 100},
        {"op": "random_crop", "size": 24},
        {"op": "random_resized_crop", "size": 32, "scale": [0.3, 1.0]},
        {"op": "hflip", "p": 1.0},
        {"op": "color_jitter", "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1},
        {"op": "color_aug_ssd"},
        {"op": "pad", "size": 64},
    ],
)
def test_labels_keep_their_ids_and_stay_aligned(spec):
    out = build_op(spec)(_triple(), np.random.default_rng(0))
    assert out.image.dtype == np.uint8 and out.image.shape[:2] == out.parts.shape == out.objects.shape
    assert set(np.unique(out.parts)) <= {-1, 0, 1}  # nearest neighbour: no blended ids
    np.testing.assert_array_equal(out.parts, out.objects)


def test_flip_moves_image_and_labels_together():
    triple = _triple()
    out = build_op({"op": "hflip", "p": 1.0})(triple, np.random.default_rng(0))
    np.testing.assert_array_equal(out.image, triple.image[:, ::-1])
    assert out.parts[5, 0] == 1 and out.parts[5, -1] == 0


def test_resize_shortest_edge_caps_the_long_side():
    out = build_op({"op": "resize_shortest_edge", "size": 30, "max_size": 40})(_triple(), None)
    assert out.size == (27, 40)


def test_pad_marks_padding_unlabelled():
    out = build_op({"op": "pad", "size": [50, 70], "fill": 7})(_triple(), None)
    assert out.size == (50, 70)
    assert (out.parts[40:] == -1).all() and (out.parts[:, 60:] == -1).all() and (out.image[45] == 7).all()


def test_same_generator_same_result():
    pipeline = Compose([{"op": "random_resized_crop", "size": 32}, {"op": "hflip"}, {"op": "color_aug_ssd"}])
    first = pipeline(_triple(), np.random.default_rng(42))
    second = pipeline(_triple(), np.random.default_rng(42))
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.parts, second.parts)


def test_bad_ops_are_refused():
    with pytest.raises(ConfigError, match="Unknown augmentation"):
        build_op({"op": "mosaic"})
    with pytest.raises(ConfigError, match="Bad arguments"):
        build_op({"op": "hflip", "prob": 0.5})
    with pytest.raises(ConfigError, match="'op' key"):
        build_op({"size": 3})
