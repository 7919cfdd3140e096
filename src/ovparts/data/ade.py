"""ADE20K-Part-234 (OV-PARTS): uint16 part PNGs plus COCO instance JSONs for the objects.

Evaluation records are object *instances*. Like OV-PARTS' ``load_train_val_json`` the ``val`` split holds
every instance of ``ade20k_instance_val.json`` **and** every unseen-class instance of the training images
("test on both exclusive train and val set"); pass ``include_train_unseen=False`` for the validation images
only. The ground truth of a record is the part PNG inside the instance mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .base import BenchmarkReader, LayoutEntry
from .coco import CocoImage, annotation_mask, checked_image_size, load_coco
from .io import read_label_png
from .records import IGNORE, Region, Sample

PART_DIR = "annotations_detectron2_part"
FOLDERS = {"train": "training", "val": "validation"}
JSONS = {"train": "ade20k_instance_train.json", "val": "ade20k_instance_val.json"}


@dataclass(frozen=True)
class _Item:
    key: str
    image: Path
    part: Path
    json: Path
    coco: CocoImage
    annotations: tuple[dict, ...]


class ADE20KPart234(BenchmarkReader):
    """Reader for ``ADE20KPart234/{images,annotations_detectron2_part}/{training,validation}`` + instance JSONs."""

    benchmark = "ade20k_part_234"
    dirname = "ADE20KPart234"
    record_unit = "object instance"
    layout = (
        LayoutEntry("images/training", "dir", "training JPEGs", ("train", "val")),
        LayoutEntry("images/validation", "dir", "validation JPEGs", ("val",)),
        LayoutEntry(f"{PART_DIR}/training", "dir", "training part label PNGs (uint16)", ("train", "val")),
        LayoutEntry(f"{PART_DIR}/validation", "dir", "validation part label PNGs (uint16)", ("val",)),
        LayoutEntry(JSONS["train"], "file", "COCO instances of the training images", ("train", "val")),
        LayoutEntry(JSONS["val"], "file", "COCO instances of the validation images", ("val",)),
    )

    def __init__(
        self, root: str | Path, split: str = "val", strict: bool = False, include_train_unseen: bool = True
    ) -> None:
        self.include_train_unseen = include_train_unseen
        super().__init__(root, split, strict)

    def _scan(self) -> list[_Item]:
        unseen = set(self.table["unseen_object_ids"])
        items = self._scan_split(self.split, keep=None)
        if self.split == "val" and self.include_train_unseen:
            items += self._scan_split("train", keep=unseen)
        return items

    def _scan_split(self, split: str, keep: set[int] | None) -> list[_Item]:
        json_path = self.root / JSONS[split]
        folder = FOLDERS[split]
        items = []
        for coco in load_coco(json_path):
            annotations = []
            for annotation in coco.annotations:
                category = annotation["category_id"]
                if not isinstance(category, int) or not 0 <= category < self.num_objects:
                    raise DatasetError(
                        f"{json_path}: annotation {annotation.get('id', '?')} has category_id {category!r}, "
                        f"outside the {self.num_objects} objects of the table."
                    )
                if keep is None or category in keep:
                    annotations.append(annotation)
            if not annotations:
                continue
            image = self.root / "images" / folder / coco.file_name
            part = (self.root / PART_DIR / folder / coco.file_name).with_suffix(".png")
            if not image.is_file():
                self.skips.error(image, "the image listed in the instance JSON does not exist.")
                continue
            if not part.is_file():
                self.skips.error(part, "the part label map of this image does not exist.")
                continue
            items.append(
                _Item(
                    f"{folder}/{Path(coco.file_name).stem}", image, part, json_path, coco, tuple(annotations)
                )
            )
        return items

    def _load(self, item: _Item) -> Sample:
        size = checked_image_size(item.image, item.coco, item.json)
        parts = read_label_png(item.part, self.ignore_value, self.num_parts, size)
        objects = np.full(size, IGNORE, dtype=np.int64)
        regions = []
        for annotation in item.annotations:
            mask = annotation_mask(annotation, size, item.coco, item.json)
            category = int(annotation["category_id"])
            objects[mask] = category
            name = f"{self._object_name(category)}#{annotation.get('id', len(regions))}"
            regions.append(Region(category, mask, name))
        return Sample(item.key, item.image, parts, objects, regions)
