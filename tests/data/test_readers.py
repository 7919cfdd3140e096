"""Every reader on synthetic data in its official layout, including every kind of bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from ovparts.data import (
    ADE20KPart234,
    PartImageNet,
    PartImageNetOOD,
    PascalPart116,
    check_dataset,
    info_text,
    load_dataset,
)
from ovparts.errors import DatasetError
from ovparts.vocabulary import benchmark_table


def test_pascal_records_are_image_x_object_class(synthetic_root):
    data = load_dataset("pascal", synthetic_root, "val")
    assert isinstance(data, PascalPart116) and len(data) == 3
    samples = list(data)
    table = benchmark_table("pascal_part_116")
    for sample in samples:
        raw_part = np.asarray(
            Image.open(data.root / "annotations_detectron2_part" / "val" / f"{sample.key}.png")
        )
        assert np.array_equal(sample.part_map == -1, raw_part == 255)  # 255 -> -1
        assert sample.part_map.dtype == np.int64
        for region in sample.regions:
            assert np.array_equal(region.mask, sample.object_map == region.object_id)
            gt = sample.region_gt(region)
            owners = {table["part_to_object"][str(p)] for p in np.unique(gt[gt >= 0])}
            assert owners == {region.object_id}
    # the boat (object without part classes) is drawn in every other image and is dropped, not scored
    assert data.skips.counts() == {"no_part_labels": 2}
    assert all("boat" in s.reason for s in data.skips.items)


def test_ade_val_adds_unseen_instances_from_training_images(synthetic_root):
    data = load_dataset("ade20k_part_234", synthetic_root, "val")
    samples = list(data)
    unseen = set(benchmark_table("ade20k_part_234")["unseen_object_ids"])
    from_train = [s for s in samples if s.key.startswith("training/")]
    assert from_train, "the synthetic training split holds unseen instances"
    assert all(r.object_id in unseen for s in from_train for r in s.regions)
    val_only = ADE20KPart234(synthetic_root, "val", include_train_unseen=False)
    assert all(s.key.startswith("validation/") for s in val_only)
    first = samples[0]
    assert len(first.regions) == 2 and first.regions[0].object_id == first.regions[1].object_id  # instances
    raw = np.asarray(
        Image.open(data.root / "annotations_detectron2_part" / "validation" / "ADE_validation_00000001.png")
    )
    assert raw.dtype == np.uint16 and np.array_equal(first.part_map == -1, raw == 65535)


def test_ade_train_split_keeps_every_instance(synthetic_root):
    samples = list(load_dataset("ade20k_part_234", synthetic_root, "train"))
    assert sum(len(s.regions) for s in samples) == 6


def test_partimagenet_draws_polygons_and_filters_the_subset_in_memory(synthetic_root):
    train = load_dataset("partimagenet", synthetic_root, "train")
    table = benchmark_table("partimagenet")
    seen = {o["id"] for o in table["object_classes"] if o["seen"]}
    assert isinstance(train, PartImageNet)
    assert train.filtered == 2  # one unseen object, one wnid outside the 40 objects
    assert all(s.regions[0].object_id in seen for s in train)
    files_before = sorted(p.name for p in (train.root / "images" / "train").iterdir())
    assert len(files_before) == 4  # nothing deleted on disk
    val = list(load_dataset("partimagenet", synthetic_root, "val"))
    assert len(val) == 3
    for sample in val:
        (region,) = sample.regions
        assert np.array_equal(region.mask, sample.part_map >= 0)
        wnid = sample.key.split("_")[0]
        assert table["object_classes"][region.object_id]["wnid"] == wnid
        assert {
            table["part_to_object"][str(p)] for p in np.unique(sample.part_map[sample.part_map >= 0])
        } == {region.object_id}


def test_partimagenet_ood_uses_its_own_table(synthetic_root):
    val = load_dataset("partimagenet_ood", synthetic_root, "val")
    assert isinstance(val, PartImageNetOOD) and len(val.vocabulary.parts) == 482
    unseen = set(benchmark_table("partimagenet_ood")["unseen_object_ids"])
    assert all(s.regions[0].object_id in unseen for s in val)


def test_partimagenet_finds_images_left_in_class_subfolders(fresh_root):
    root = fresh_root("partimagenet_ood")
    folder = root / "images" / "val"
    image = sorted(folder.glob("n0*.JPEG"))[0]
    wnid = image.name.split("_")[0]
    (folder / wnid).mkdir()
    image.rename(folder / wnid / image.name)
    coco = json.loads((root / "val.json").read_text())
    for entry in coco["images"]:
        if entry["file_name"] == image.name:
            entry["file_name"] = f"{wnid}/{image.name}"
    (root / "val.json").write_text(json.dumps(coco))
    assert len(list(load_dataset("partimagenet_ood", root, "val"))) == 3


# ---------------------------------------------------------------------------------------------- bad input
def test_missing_mask_is_skipped_counted_and_strict_fails(fresh_root):
    root = fresh_root("pascal_part_116")
    victim = root / "annotations_detectron2_part" / "val" / "2009_000001.png"
    victim.unlink()
    data = load_dataset("pascal_part_116", root, "val")
    assert len(data) == 2 and data.skips.errors[0].path == str(victim)
    with pytest.raises(DatasetError, match="2009_000001.png"):
        load_dataset("pascal_part_116", root, "val", strict=True)


def test_wrong_size_mask_names_the_file(fresh_root):
    root = fresh_root("pascal_part_116")
    victim = root / "annotations_detectron2_obj" / "val" / "2009_000002.png"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(victim)
    data = load_dataset("pascal_part_116", root, "val")
    assert len(list(data)) == 2
    (error,) = data.skips.errors
    assert error.path == str(victim) and "10x10" in error.reason
    with pytest.raises(DatasetError, match="2009_000002.png"):
        list(load_dataset("pascal_part_116", root, "val", strict=True))


def test_ids_outside_the_table_are_refused(fresh_root):
    root = fresh_root("ade20k_part_234")
    victim = root / "annotations_detectron2_part" / "validation" / "ADE_validation_00000002.png"
    Image.fromarray(np.full((64, 80), 300, np.uint16)).save(victim)
    data = load_dataset("ade20k_part_234", root, "val")
    list(data)
    assert "outside 0..233" in data.skips.errors[0].reason


def test_corrupt_json_names_the_file(fresh_root):
    root = fresh_root("ade20k_part_234")
    (root / "ade20k_instance_val.json").write_text('{"images": [')
    with pytest.raises(DatasetError, match=r"ade20k_instance_val\.json: not valid JSON"):
        load_dataset("ade20k_part_234", root, "val")


def test_bad_category_and_missing_image_in_json(fresh_root):
    root = fresh_root("partimagenet")
    coco = json.loads((root / "val.json").read_text())
    coco["annotations"][0]["category_id"] = 99
    (root / "val.json").write_text(json.dumps(coco))
    (root / "images" / "val" / coco["images"][1]["file_name"]).unlink()
    data = load_dataset("partimagenet", root, "val")
    samples = list(data)
    reasons = [s.reason for s in data.skips.errors]
    assert len(samples) == 1 and len(reasons) == 2
    assert any("does not exist" in r for r in reasons) and any("category_id 99" in r for r in reasons)


def test_wrong_layout_and_unknown_names(tmp_path):
    with pytest.raises(DatasetError, match="not a Pascal-Part-116 layout"):
        load_dataset("pascal_part_116", tmp_path)
    with pytest.raises(DatasetError, match="Unknown dataset"):
        load_dataset("coco", tmp_path)
    with pytest.raises(DatasetError, match="split"):
        load_dataset("pascal_part_116", tmp_path, split="test")


def test_macos_resource_forks_are_ignored(fresh_root):
    root = fresh_root("pascal_part_116")
    (root / "images" / "val" / "._2009_000000.jpg").write_bytes(b"\x00")
    data = load_dataset("pascal_part_116", root, "val")
    assert len(data) == 3 and not data.skips.errors


# ---------------------------------------------------------------------------------------------- check / info
@pytest.mark.parametrize("name", ["pascal_part_116", "ade20k_part_234", "partimagenet", "partimagenet_ood"])
def test_check_and_info(synthetic_root, name):
    result = check_dataset(name, synthetic_root, splits=("train", "val"), deep=True)
    assert result.ok, result.text()
    assert result.counts["val"]["records"] > 0
    text = info_text(name)
    assert "Download" in text and "https://" in text and "Expected layout" in text


def test_check_reports_missing_parts(tmp_path):
    (tmp_path / "PascalPart116" / "images" / "val").mkdir(parents=True)
    result = check_dataset("pascal_part_116", tmp_path)
    assert not result.ok
    assert any("annotations_detectron2_part/val" in m for m in result.missing)


def test_partimagenet_json_may_stay_where_the_archive_puts_it(fresh_root):
    root = fresh_root("partimagenet")
    (root / "annotations" / "val").mkdir(parents=True)
    (root / "val.json").rename(root / "annotations" / "val" / "val.json")
    assert len(list(load_dataset("partimagenet", root, "val"))) == 3
    (root / "annotations" / "val" / "val.json").unlink()
    with pytest.raises(DatasetError, match="val.json or annotations/val/val.json"):
        load_dataset("partimagenet", root, "val")
