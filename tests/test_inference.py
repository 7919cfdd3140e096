import numpy as np
import pytest
import torch
from PIL import Image

import ovparts
from ovparts.errors import ImageError, MaskError, VocabularyError
from ovparts.inference import Segmenter
from ovparts.models.base import PartLogits

VOCAB = "cat: head, ear, eye, leg; dog: head, tail"


def test_result_at_original_size(tiny_clipseg, chelsea):
    vocab = ovparts.Vocabulary.parse(VOCAB)
    result = Segmenter(tiny_clipseg)(chelsea, vocab)
    h, w = chelsea.shape[:2]
    assert result.part_map.shape == result.object_map.shape == result.confidence.shape == (h, w)
    assert result.part_scores.shape == (len(vocab), h, w)
    assert result.part_map.min() >= -1 and result.part_map.max() < len(vocab)
    # object map is consistent with the part map in Pred-All
    labelled = result.part_map >= 0
    assert np.array_equal(result.object_map[labelled], vocab.part_to_object[result.part_map[labelled]])
    assert (result.object_map[~labelled] == -1).all()
    # the label is the most probable part wherever one is chosen
    best = result.part_scores.argmax(axis=0)
    assert np.array_equal(best[labelled], result.part_map[labelled])
    rows = result.summary()
    assert abs(sum(r["share"] for r in rows) + (~labelled).mean() - 1) < 1e-9


def test_inputs_path_pil_array_agree(tiny_clipseg, chelsea, chelsea_path):
    seg = Segmenter(tiny_clipseg)
    from_path = seg(chelsea_path, VOCAB).part_map
    from_pil = seg(Image.open(chelsea_path), VOCAB).part_map
    assert np.array_equal(from_path, from_pil)
    assert seg(chelsea, VOCAB).part_map.shape == from_path.shape


def test_oracle_obj_restricts_parts_to_the_pixels_object(tiny_clipseg, chelsea):
    vocab = ovparts.Vocabulary.parse(VOCAB)
    h, w = chelsea.shape[:2]
    mask = np.full((h, w), 255, dtype=np.uint8)
    mask[:, : w // 2] = 0  # cat on the left
    mask[: h // 2, w // 2 :] = 1  # dog top right; bottom right: no object
    result = Segmenter(tiny_clipseg)(chelsea, vocab, object_mask=mask)
    assert result.protocol == "oracle_obj"
    left, top_right, bottom_right = (
        result.part_map[:, : w // 2],
        result.part_map[: h // 2, w // 2 :],
        result.part_map[h // 2 :, w // 2 :],
    )
    assert set(np.unique(left)) <= set(vocab.parts_of("cat"))
    assert set(np.unique(top_right)) <= set(vocab.parts_of("dog"))
    assert (bottom_right == -1).all()
    assert (result.object_map[h // 2 :, w // 2 :] == -1).all() and (result.object_map[:, : w // 2] == 0).all()


def test_object_mask_errors(tiny_clipseg, chelsea, tmp_path):
    vocab = ovparts.Vocabulary.parse(VOCAB)
    seg = Segmenter(tiny_clipseg)
    with pytest.raises(MaskError, match="is 10x10"):
        seg(chelsea, vocab, object_mask=np.zeros((10, 10), np.uint8))
    with pytest.raises(MaskError, match="holds id 7"):
        seg(chelsea, vocab, object_mask=np.full(chelsea.shape[:2], 7, np.uint8))
    with pytest.raises(MaskError, match="does not exist"):
        seg(chelsea, vocab, object_mask=tmp_path / "missing.png")


class FixedModel(torch.nn.Module):
    """A stand-in model with hand-set logits, to check the label rules exactly."""

    def __init__(self, parts, background=None):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.parts, self.background = parts, background
        self.config = type("C", (), {"background_threshold": 0.5})()

    preprocess = ovparts.models.base.Preprocess((2, 2))

    def predict(self, pixel_values, vocab):
        return PartLogits(parts=self.parts, background=self.background)


def test_background_rules_by_hand():
    vocab = ovparts.Vocabulary.parse("a: x, y")
    image = np.zeros((2, 2, 3), np.uint8)
    # logits per pixel (row-major): part x, part y
    x = torch.tensor([[3.0, -3.0], [-3.0, 0.2]])
    y = torch.tensor([[0.0, 2.0], [-4.0, 0.1]])
    parts = torch.stack([x, y])[None]
    result = Segmenter(FixedModel(parts))(image, vocab)
    # sigmoid(-3) < 0.5 and sigmoid(-4) < 0.5 at pixel (1,0): background
    assert result.part_map.tolist() == [[0, 1], [-1, 0]]
    background = torch.tensor([[[[5.0, -5.0], [-5.0, 5.0]]]])
    result = Segmenter(FixedModel(parts, background))(image, vocab)
    assert result.part_map.tolist() == [[-1, 1], [0, -1]]


def test_bad_vocabulary_and_image(tiny_clipseg, tmp_path):
    seg = Segmenter(tiny_clipseg)
    with pytest.raises(VocabularyError):
        seg(np.zeros((8, 8, 3), np.uint8), " ; ")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"<html>not an image</html>")
    with pytest.raises(ImageError, match="not an image format"):
        seg(broken, VOCAB)
