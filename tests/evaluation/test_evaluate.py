"""Protocols and ``ovparts.evaluate`` end to end, on hand-built samples and on synthetic benchmarks."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import ovparts
from ovparts import Vocabulary
from ovparts.data import InMemoryDataset, Region, Sample, load_dataset
from ovparts.errors import ConfigError, DatasetError
from ovparts.evaluation import RULES, evaluate_rules, seen_ids_for

VOCAB = Vocabulary.parse("cat: head, body; dog: head, tail", unseen_objects=["dog"])  # parts 0 1 | 2 3


def tiny_sample(tmp_path: Path) -> Sample:
    """6x6: cat in columns 0-2 (head row 0-2, body row 3-5), dog in columns 3-4 (head/tail), column 5 empty."""
    parts = np.full((6, 6), -1)
    parts[:3, :3], parts[3:, :3] = 0, 1
    parts[:3, 3:5], parts[3:, 3:5] = 2, 3
    objects = np.full((6, 6), -1)
    objects[:, :3], objects[:, 3:5] = 0, 1
    image = tmp_path / "img.png"
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(image)
    regions = [Region(0, objects == 0, "cat"), Region(1, objects == 1, "dog")]
    return Sample("img", image, parts, objects, regions)


class Scripted:
    """Returns a fixed answer per protocol call: ``with_mask`` when given an object mask, else ``without``."""

    def __init__(self, without, with_mask=None, objects=None):
        self.without, self.with_mask, self.objects, self.masks = without, with_mask, objects, []

    def __call__(self, image, vocab, object_mask=None):
        self.masks.append(object_mask)
        part = self.without if object_mask is None else self.with_mask
        return SimpleNamespace(part_map=np.array(part), object_map=self.objects)


def test_oracle_obj_passes_the_union_of_records_and_scores_only_part_pixels(tmp_path):
    sample = tiny_sample(tmp_path)
    pred = sample.part_map.copy()
    pred[:, 5] = 0  # predictions on unlabelled pixels never count
    pred[0, 0] = 1  # one cat head pixel called body
    seg = Scripted(None, with_mask=pred)
    report = ovparts.evaluate(seg, InMemoryDataset([sample], VOCAB), "oracle_obj", progress=False)
    assert len(seg.masks) == 1 and np.array_equal(seg.masks[0], sample.object_map)
    # head: 8/9 hit, body gets 1 extra -> IoU head 8/9, body 9/10, dog parts 1
    assert report.result.iou == pytest.approx([800 / 9, 90, 100, 100])
    assert report.counts == {"images": 1, "records": 2, "no_part_labels": 0, "errors": 0}


def test_oracle_obj_overlapping_objects_get_one_call_per_record(tmp_path):
    sample = tiny_sample(tmp_path)
    sample.regions[1].mask = sample.regions[1].mask.copy()
    sample.regions[1].mask[:, 2] = True  # dog region overlaps the cat's column 2
    seg = Scripted(None, with_mask=sample.part_map)
    ovparts.evaluate(seg, InMemoryDataset([sample], VOCAB), "oracle_obj", progress=False)
    assert len(seg.masks) == 2
    assert set(np.unique(seg.masks[1]).tolist()) == {-1, 1}


def test_pred_all_background_on_part_pixels_is_a_miss_under_ovparts_only(tmp_path):
    sample = tiny_sample(tmp_path)
    pred = sample.part_map.copy()
    pred[3:, 3:5] = -1  # dog tail predicted as background
    seg = Scripted(pred)
    dataset = InMemoryDataset([sample], VOCAB)
    ours = ovparts.evaluate(seg, dataset, "pred_all", "ovparts", progress=False)
    assert seg.masks == [None]
    assert ours.result.iou == pytest.approx([100, 100, 100, 0])
    assert ours.metrics["mIoU-unseen"] == pytest.approx(50)
    official = ovparts.evaluate(seg, dataset, "pred_all", "ov_parts", progress=False)
    assert np.isnan(official.result.iou[3])  # the N x N block never sees the miss


def test_pred_obj_uses_predicted_objects(tmp_path):
    sample = tiny_sample(tmp_path)
    predicted_objects = sample.object_map.copy()
    predicted_objects[:, 3:5] = -1  # the object detector misses the dog
    pred_with_mask = np.where(predicted_objects >= 0, sample.part_map, -1)
    seg = Scripted(None, with_mask=pred_with_mask, objects=predicted_objects)
    report = ovparts.evaluate(seg, InMemoryDataset([sample], VOCAB), "pred_obj", progress=False)
    assert seg.masks[0] is None and np.array_equal(seg.masks[1], predicted_objects)
    assert report.metrics["mIoU-seen"] == pytest.approx(100)
    assert report.metrics["mIoU-unseen"] == pytest.approx(0)
    external = Scripted(None, with_mask=sample.part_map)
    ovparts.evaluate(
        external,
        InMemoryDataset([sample], VOCAB),
        "pred_obj",
        object_predictor=lambda image: sample.object_map,
        progress=False,
    )
    assert len(external.masks) == 1


def test_overlapping_records_are_each_scored(tmp_path):
    """Two instances sharing pixels are two records: shared pixels count twice, as in the official loaders."""
    sample = tiny_sample(tmp_path)
    sample.regions.append(Region(0, sample.object_map == 0, "cat#2"))
    report = ovparts.evaluate(
        Scripted(None, sample.part_map), InMemoryDataset([sample], VOCAB), progress=False
    )
    assert report.confusion[0, 0] == 18


def test_wrong_prediction_size_is_a_clear_error(tmp_path):
    sample = tiny_sample(tmp_path)
    with pytest.raises(ovparts.OvpartsError, match="original image size"):
        ovparts.evaluate(
            Scripted(np.zeros((3, 3))), InMemoryDataset([sample], VOCAB), "pred_all", progress=False
        )


@pytest.mark.parametrize("name", ["pascal_part_116", "ade20k_part_234", "partimagenet", "partimagenet_ood"])
@pytest.mark.parametrize("protocol", ["oracle_obj", "pred_all", "pred_obj"])
def test_perfect_segmenter_scores_100_under_every_rule(synthetic_root, fake_segmenter, name, protocol):
    seg = fake_segmenter(name, synthetic_root)
    report = ovparts.evaluate(seg, name, root=synthetic_root, protocol=protocol, progress=False)
    assert report.metrics["mIoU"] == pytest.approx(100)
    assert report.counts["records"] > 0 and report.counts["errors"] == 0
    for rule, metrics in evaluate_rules(report).items():
        assert metrics["mIoU"] == pytest.approx(100), rule


def test_errors_lower_the_score_and_report_round_trips(synthetic_root, fake_segmenter, tmp_path):
    def shift(part):
        return np.roll(part, 3, axis=1)

    seg = fake_segmenter("pascal_part_116", synthetic_root, corrupt=shift)
    report = ovparts.evaluate(
        seg, "pascal_part_116", root=synthetic_root, average="partclipseg", progress=False
    )
    assert 0 < report.metrics["mIoU"] < 100
    assert "h-bIoU" in report.metrics and "BoundaryIoU-aeroplane's body" in report.official
    path = report.save(tmp_path / "out" / "report.json")
    data = json.loads(path.read_text())
    assert data["protocol"] == "oracle_obj" and data["average"] == "partclipseg"
    assert data["versions"]["ovparts"] == ovparts.__version__
    assert len(data["per_class"]) == 116
    assert data["counts"]["no_part_labels"] == report.counts["no_part_labels"] > 0
    assert list((tmp_path / "out").iterdir()) == [path]  # no temporary file left behind
    assert "mIoU" in report.table(per_class=True) and "aeroplane's body" in report.table(per_class=True)


def test_missing_image_is_skipped_and_counted_or_fails_strict(fresh_root, fake_segmenter):
    root = fresh_root("pascal_part_116")
    seg = fake_segmenter("pascal_part_116", root.parent)
    victim = sorted((root / "images" / "val").iterdir())[0]
    data = load_dataset("pascal_part_116", root)
    victim.write_bytes(b"not a jpeg")
    report = ovparts.evaluate(seg, data, progress=False)
    assert report.counts["errors"] == 1 and victim.name in report.skipped[0]["path"]
    with pytest.raises(DatasetError, match=victim.name):
        ovparts.evaluate(seg, load_dataset("pascal_part_116", root), strict=True, progress=False)


def test_limit_save_predictions_and_bad_arguments(synthetic_root, fake_segmenter, tmp_path):
    seg = fake_segmenter("ade20k_part_234", synthetic_root)
    report = ovparts.evaluate(
        seg,
        "ade20k_part_234",
        root=synthetic_root,
        limit=2,
        save_predictions=tmp_path / "pred",
        progress=False,
    )
    assert report.counts["images"] == 2
    saved = sorted(p.name for p in (tmp_path / "pred").iterdir())
    assert len(saved) == 2 and all(p.endswith(".png") for p in saved)
    with pytest.raises(ConfigError, match="protocol"):
        ovparts.evaluate(seg, "ade20k_part_234", root=synthetic_root, protocol="magic")
    with pytest.raises(ConfigError, match="root"):
        ovparts.evaluate(seg, "ade20k_part_234")
    assert set(RULES) == {"ovparts", "ov_parts", "partclipseg", "partcatseg"}


def test_cross_dataset_seen_split_by_part_name():
    pascal = Vocabulary.from_benchmark("pascal_part_116")
    seen = seen_ids_for(pascal, "ade20k_part_234")
    names = {pascal.names[i] for i in seen}
    assert "person's head" in names and "cat's head" not in names


def test_part_ids_outside_the_vocabulary_are_a_clear_error(tmp_path):
    sample = tiny_sample(tmp_path)
    with pytest.raises(ovparts.OvpartsError, match="does not fit the vocabulary of 4 parts"):
        ovparts.evaluate(
            Scripted(np.full((6, 6), 9)), InMemoryDataset([sample], VOCAB), "pred_all", progress=False
        )
