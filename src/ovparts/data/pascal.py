"""Pascal-Part-116 (OV-PARTS): part and object PNGs paired with JPEGs by file stem.

Evaluation records are (image, object class): every class present in the object map gives one record whose
ground truth is the part map inside that class's pixels (all its instances merged), as OV-PARTS'
``load_binary_mask`` + mapper do. Classes without part labels in the image (boat, chair, dining table, sofa,
or an unlabelled object) are dropped and counted instead of being replaced by a random record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .base import BenchmarkReader, LayoutEntry, visible_files
from .io import image_size, read_label_png
from .records import Sample, regions_by_class

PART_DIR = "annotations_detectron2_part"
OBJECT_DIR = "annotations_detectron2_obj"


@dataclass(frozen=True)
class _Item:
    key: str
    image: Path
    part: Path
    object: Path


class PascalPart116(BenchmarkReader):
    """Reader for ``PascalPart116/{images,annotations_detectron2_part,annotations_detectron2_obj}/{train,val}``."""

    benchmark = "pascal_part_116"
    dirname = "PascalPart116"
    record_unit = "image x object class"
    layout = (
        LayoutEntry("images/train", "dir", "training JPEGs", ("train",)),
        LayoutEntry("images/val", "dir", "validation JPEGs", ("val",)),
        LayoutEntry(f"{PART_DIR}/train", "dir", "training part label PNGs", ("train",)),
        LayoutEntry(f"{PART_DIR}/val", "dir", "validation part label PNGs", ("val",)),
        LayoutEntry(f"{OBJECT_DIR}/train", "dir", "training object label PNGs", ("train",)),
        LayoutEntry(f"{OBJECT_DIR}/val", "dir", "validation object label PNGs", ("val",)),
    )

    def _scan(self) -> list[_Item]:
        items = []
        for image in visible_files(self.root / "images" / self.split, (".jpg", ".jpeg", ".png")):
            part = self.root / PART_DIR / self.split / f"{image.stem}.png"
            obj = self.root / OBJECT_DIR / self.split / f"{image.stem}.png"
            if not part.is_file():
                self.skips.error(part, "the part label map of this image does not exist.")
                continue
            if not obj.is_file():
                self.skips.error(obj, "the object label map of this image does not exist.")
                continue
            items.append(_Item(image.stem, image, part, obj))
        return items

    def _load(self, item: _Item) -> Sample:
        size = image_size(item.image)
        parts = read_label_png(item.part, self.ignore_value, self.num_parts, size)
        objects = read_label_png(item.object, self.ignore_value, self.num_objects, size)
        regions = regions_by_class(objects)
        for region in regions:
            region.name = self._object_name(region.object_id)
        return Sample(item.key, item.image, parts, objects, regions)
