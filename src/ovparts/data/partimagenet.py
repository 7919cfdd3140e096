"""PartImageNet for OVPS: the 40-object subset (PartCLIPSeg/PartCATSeg) and PartImageNet_OOD (PartCATSeg).

Label maps are not read from PNGs: like the official mapper we draw each image's part polygons from the COCO
JSON in annotation order (later parts overwrite earlier ones). The object class comes from the ImageNet id in
the file name (``n01440764_123.JPEG`` -> tench); each annotation's ``category_id`` is one of the 40 original
PartImageNet part categories ("Fish Head"), turned into ``"tench's head"``. The official preprocessing script
deletes the images of objects outside the split; we filter them in memory and leave the files alone.
One record per image (the whole object).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .base import BenchmarkReader, LayoutEntry
from .coco import CocoImage, annotation_mask, checked_image_size, load_coco
from .records import IGNORE, Region, Sample


@dataclass(frozen=True)
class _Item:
    key: str
    image: Path
    json: Path
    coco: CocoImage
    object_id: int


class PartImageNet(BenchmarkReader):
    """Reader for ``PartImageNet/{train,val}.json`` + ``images/{train,val}/<wnid>_<n>.JPEG`` (40 objects)."""

    benchmark = "partimagenet"
    dirname = "PartImageNet"
    record_unit = "image"
    layout = (
        LayoutEntry("images/train", "dir", "training JPEGs, flat", ("train",)),
        LayoutEntry("images/val", "dir", "validation JPEGs, flat", ("val",)),
        LayoutEntry(
            "train.json",
            "file",
            "COCO part polygons of the training images",
            ("train",),
            ("annotations/train/train.json",),
        ),
        LayoutEntry(
            "val.json",
            "file",
            "COCO part polygons of the validation images",
            ("val",),
            ("annotations/val/val.json",),
        ),
    )
    #: In the 40-object subset the training split keeps only the seen objects (partimagenet_preprocess.py).
    train_seen_only = True

    def _scan(self) -> list[_Item]:
        by_wnid = {o["wnid"]: o["id"] for o in self.table["object_classes"]}
        seen = set(np.flatnonzero(self.vocabulary.object_seen).tolist())
        self.filtered = 0
        # at the root (where partimagenet_preprocess.py moves it) or where the archive unpacks it
        entry = next(e for e in self.layout if e.path == f"{self.split}.json")
        json_path = entry.find(self.root)
        items = []
        for coco in load_coco(json_path):
            wnid = Path(coco.file_name).name.split("_")[0]
            object_id = by_wnid.get(wnid)
            if object_id is None or (
                self.split == "train" and self.train_seen_only and object_id not in seen
            ):
                self.filtered += 1
                continue
            image = self._image_path(coco.file_name)
            if image is None:
                self.skips.error(
                    self.root / "images" / self.split / coco.file_name,
                    "the image listed in the JSON does not exist.",
                )
                continue
            items.append(_Item(Path(coco.file_name).stem, image, json_path, coco, object_id))
        return items

    def _image_path(self, file_name: str) -> Path | None:
        """The file as listed, or flattened into ``images/<split>/`` as the READMEs instruct."""
        folder = self.root / "images" / self.split
        for candidate in (folder / file_name, folder / Path(file_name).name):
            if candidate.is_file():
                return candidate
        return None

    def _part_id(self, object_id: int, category_id: object, item: _Item, annotation: dict) -> int:
        categories = self.table["source_part_categories"]
        if not isinstance(category_id, int) or not 0 <= category_id < len(categories):
            raise DatasetError(
                f"{item.json}: annotation {annotation.get('id', '?')} of {item.coco.file_name} has "
                f"category_id {category_id!r}, outside the {len(categories)} PartImageNet part categories."
            )
        part = categories[category_id]["name"].split(" ", 1)[1].lower()
        name = f"{self._object_name(object_id)}'s {part}"
        try:
            return self.vocabulary.names.index(name)
        except ValueError:
            raise DatasetError(
                f"{item.json}: annotation {annotation.get('id', '?')} of {item.coco.file_name} is a "
                f"{categories[category_id]['name']!r}, which is not a part of "
                f"{self._object_name(object_id)!r} in the table."
            ) from None

    def _load(self, item: _Item) -> Sample:
        size = checked_image_size(item.image, item.coco, item.json)
        parts = np.full(size, IGNORE, dtype=np.int64)
        for annotation in item.coco.annotations:
            part_id = self._part_id(item.object_id, annotation["category_id"], item, annotation)
            mask = annotation_mask(annotation, size, item.coco, item.json)
            parts[mask] = part_id
        objects = np.where(parts >= 0, item.object_id, IGNORE)
        region = Region(item.object_id, objects >= 0, self._object_name(item.object_id))
        return Sample(item.key, item.image, parts, objects, [region])


class PartImageNetOOD(PartImageNet):
    """PartImageNet_OOD (PartCATSeg): 109 seen training objects, 19 unseen validation objects, 482 parts."""

    benchmark = "partimagenet_ood"
    dirname = "PartImageNet_OOD"
    train_seen_only = False
