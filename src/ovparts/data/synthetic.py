"""Tiny datasets in each official on-disk layout, for tests and smoke runs (no download needed).

Every image shows one to three objects drawn as boxes cut into horizontal bands, one band per part, each part
painted in its own colour over a noisy background. The label files are written exactly as the official
archives store them (255 / 65535 ignore values, uint16 PNGs for ADE20K, COCO JSON with instance RLE/polygons,
PartImageNet part polygons with the original 40 part categories and ``<wnid>_<n>.JPEG`` file names), so the
readers are exercised on the same code paths as real data. Content is deterministic for a given seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..vocabulary import benchmark_table
from . import coco_rle

PASCAL_NO_PART_OBJECT = "boat"


@dataclass
class _Drawn:
    """One drawn object: its id, box (y0, x0, y1, x1) and the (part id, band box) pairs."""

    object_id: int
    box: tuple[int, int, int, int]
    bands: list[tuple[int, tuple[int, int, int, int]]]


def _colour(part_id: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + part_id)
    return rng.integers(40, 255, size=3)


def _choose_objects(table: dict, count: int, rng: np.random.Generator, seen_only: bool = False) -> list[int]:
    """Alternate seen and unseen part-bearing objects so both halves of the split get pixels."""
    with_parts = [o for o in table["object_classes"] if o["has_parts"]]
    seen = [o["id"] for o in with_parts if o["seen"]]
    unseen = [o["id"] for o in with_parts if not o["seen"]]
    picks = []
    for index in range(count):
        pool = seen if (seen_only or index % 2 == 0 or not unseen) else unseen
        picks.append(int(rng.choice(pool)))
    return picks


def _layout_objects(
    table: dict, object_ids: list[int], height: int, width: int, rng: np.random.Generator
) -> list[_Drawn]:
    """Side-by-side boxes, each cut into 2-3 bands taken from the object's parts."""
    drawn = []
    slot = width // max(1, len(object_ids))
    for index, object_id in enumerate(object_ids):
        part_ids = table["object_classes"][object_id]["part_ids"]
        chosen = sorted(rng.choice(part_ids, size=min(len(part_ids), int(rng.integers(2, 4))), replace=False))
        x0, x1 = index * slot + 3, (index + 1) * slot - 3
        y0, y1 = 6 + int(rng.integers(0, 4)), height - 8 - int(rng.integers(0, 4))
        step = (y1 - y0) // len(chosen)
        bands = [(int(p), (y0 + k * step, x0, y0 + (k + 1) * step, x1)) for k, p in enumerate(chosen)]
        drawn.append(_Drawn(object_id, (y0, x0, bands[-1][1][2], x1), bands))
    return drawn


def _paint(
    drawn: list[_Drawn], height: int, width: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB image, part map and object map (-1 = none). The last row of each object has no part label."""
    rgb = rng.integers(90, 140, size=(height, width, 3)).astype(np.uint8)
    parts = np.full((height, width), -1, dtype=np.int64)
    objects = np.full((height, width), -1, dtype=np.int64)
    for item in drawn:
        y0, x0, y1, x1 = item.box
        objects[y0 : y1 + 1, x0:x1] = item.object_id
        rgb[y0 : y1 + 1, x0:x1] = 30
        for part_id, (by0, bx0, by1, bx1) in item.bands:
            parts[by0:by1, bx0:bx1] = part_id
            noise = rng.integers(-12, 12, size=(by1 - by0, bx1 - bx0, 3))
            rgb[by0:by1, bx0:bx1] = np.clip(_colour(part_id) + noise, 0, 255).astype(np.uint8)
    return rgb, parts, objects


def _save_png(labels: np.ndarray, ignore: int, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = np.uint8 if ignore <= 255 else np.uint16
    Image.fromarray(np.where(labels < 0, ignore, labels).astype(dtype)).save(path)


def _save_jpeg(rgb: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, format="JPEG", quality=95)


def _write_pascal(out: Path, table: dict, splits, count, size, rng) -> None:
    boat = next(o["id"] for o in table["object_classes"] if o["name"] == PASCAL_NO_PART_OBJECT)
    for split in splits:
        for index in range(count):
            key = f"2008_{index:06d}" if split == "train" else f"2009_{index:06d}"
            drawn = _layout_objects(table, _choose_objects(table, 1 + index % 2, rng), *size, rng)
            rgb, parts, objects = _paint(drawn, *size, rng)
            if index % 2 == 0:  # an object class without parts: an object label but no part label
                objects[size[0] - 5 : size[0] - 1, 2:14] = boat
            _save_jpeg(rgb, out / "images" / split / f"{key}.jpg")
            _save_png(parts, 255, out / "annotations_detectron2_part" / split / f"{key}.png")
            _save_png(objects, 255, out / "annotations_detectron2_obj" / split / f"{key}.png")


def _write_ade(out: Path, table: dict, splits, count, size, rng) -> None:
    folders = {"train": "training", "val": "validation"}
    for split in splits:
        images, annotations = [], []
        for index in range(count):
            file_name = f"ADE_{folders[split]}_{index + 1:08d}.jpg"
            objects_here = _choose_objects(table, 2, rng)
            if index == 0:  # two instances of one class: records are instances, not classes
                objects_here = [objects_here[0], objects_here[0]]
            drawn = _layout_objects(table, objects_here, *size, rng)
            rgb, parts, _ = _paint(drawn, *size, rng)
            _save_jpeg(rgb, out / "images" / folders[split] / file_name)
            _save_png(
                parts,
                65535,
                out / "annotations_detectron2_part" / folders[split] / file_name.replace(".jpg", ".png"),
            )
            images.append({"id": index + 1, "file_name": file_name, "height": size[0], "width": size[1]})
            for k, item in enumerate(drawn):
                y0, x0, y1, x1 = item.box
                if k % 2 == 0:
                    mask = np.zeros(size, dtype=bool)
                    mask[y0 : y1 + 1, x0:x1] = True
                    segmentation = coco_rle.encode(mask, compressed=False)
                else:
                    segmentation = [[x0, y0, x1, y0, x1, y1 + 1, x0, y1 + 1]]
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": index + 1,
                        "category_id": item.object_id,
                        "segmentation": segmentation,
                        "area": int((y1 + 1 - y0) * (x1 - x0)),
                        "bbox": [x0, y0, x1 - x0, y1 + 1 - y0],
                        "iscrowd": 0,
                    }
                )
        coco = {"images": images, "annotations": annotations, "categories": _object_categories(table)}
        (out / f"ade20k_instance_{split}.json").write_text(json.dumps(coco))


def _object_categories(table: dict) -> list[dict]:
    return [{"id": o["id"], "name": o["name"]} for o in table["object_classes"]]


def _source_category(table: dict, object_id: int) -> dict[str, int]:
    """part name -> original PartImageNet part category id, through a super-category holding all its parts."""
    parts = [table["part_classes"][p]["part"] for p in table["object_classes"][object_id]["part_ids"]]
    by_super: dict[str, dict[str, int]] = {}
    for category in table["source_part_categories"]:
        head, _, tail = category["name"].partition(" ")
        by_super.setdefault(head, {})[tail.lower()] = category["id"]
    wanted = table["object_classes"][object_id].get("supercategory")
    for name, mapping in by_super.items():
        if (wanted is None or name == wanted) and all(p in mapping for p in parts):
            return mapping
    raise ValueError(f"no PartImageNet super-category holds the parts {parts}")


def _write_partimagenet(out: Path, table: dict, splits, count, size, rng) -> None:
    for split in splits:
        images, annotations = [], []
        ood = "OOD" in table["name"]
        seen = [o["id"] for o in table["object_classes"] if o["seen"]]
        unseen = list(table["unseen_object_ids"])
        for index in range(count):
            # OOD: training objects are all seen, validation objects all unseen. 40-object subset: odd images
            # show an unseen object (dropped from the training split in memory), even ones a seen object.
            wants_unseen = split == "val" if ood else index % 2 == 1
            pool = unseen if wants_unseen else seen
            object_id = int(rng.choice(pool))
            wnid = table["object_classes"][object_id]["wnid"]
            file_name = f"{wnid}_{index + 1}.JPEG"
            drawn = _layout_objects(table, [object_id], *size, rng)
            rgb, _, _ = _paint(drawn, *size, rng)
            _save_jpeg(rgb, out / "images" / split / file_name)
            images.append({"id": index + 1, "file_name": file_name, "height": size[0], "width": size[1]})
            mapping = _source_category(table, object_id)
            for part_id, (y0, x0, y1, x1) in drawn[0].bands:
                part = table["part_classes"][part_id]["part"]
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": index + 1,
                        "category_id": mapping[part],
                        "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                        "area": int((y1 - y0) * (x1 - x0)),
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "iscrowd": 0,
                    }
                )
        # an image of an object outside the benchmark's classes: filtered in memory, never an error
        images.append(
            {"id": count + 1, "file_name": f"n99999999_{count + 1}.JPEG", "height": size[0], "width": size[1]}
        )
        _save_jpeg(np.zeros((*size, 3), np.uint8), out / "images" / split / f"n99999999_{count + 1}.JPEG")
        coco = {"images": images, "annotations": annotations, "categories": table["source_part_categories"]}
        (out / f"{split}.json").write_text(json.dumps(coco))


_WRITERS = {
    "pascal_part_116": ("PascalPart116", _write_pascal),
    "ade20k_part_234": ("ADE20KPart234", _write_ade),
    "partimagenet": ("PartImageNet", _write_partimagenet),
    "partimagenet_ood": ("PartImageNet_OOD", _write_partimagenet),
}


def write_synthetic(
    name: str,
    root: str | Path,
    *,
    images_per_split: int = 3,
    size: tuple[int, int] = (64, 80),
    seed: int = 0,
    splits: tuple[str, ...] = ("train", "val"),
) -> Path:
    """Write a small ``name`` dataset under ``root`` in the official layout; returns the dataset folder.

    ``size`` is (height, width). Keep it small: the data exists to exercise code paths, not to train.
    """
    from .registry import canonical_name

    key = canonical_name(name)
    dirname, writer = _WRITERS[key]
    if size[0] < 32 or size[1] < 32:
        raise ValueError("synthetic images must be at least 32x32 so every part gets pixels")
    out = Path(root) / dirname
    out.mkdir(parents=True, exist_ok=True)
    writer(out, benchmark_table(key), splits, images_per_split, tuple(size), np.random.default_rng(seed))
    return out
