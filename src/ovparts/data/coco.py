"""Minimal COCO JSON indexing with validation, shared by the ADE20K and PartImageNet readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DatasetError
from .io import read_json


@dataclass
class CocoImage:
    id: Any
    file_name: str
    height: int
    width: int
    annotations: list[dict] = field(default_factory=list)


def load_coco(path: Path) -> list[CocoImage]:
    """Images of a COCO file, each with its annotations in file order (drawing order matters)."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(f"{path}: not a COCO file (no 'images' list).")
    annotations = data.get("annotations", [])
    if not isinstance(annotations, list):
        raise DatasetError(f"{path}: 'annotations' must be a list.")
    images: dict[Any, CocoImage] = {}
    for index, entry in enumerate(data["images"]):
        try:
            image = CocoImage(entry["id"], str(entry["file_name"]), int(entry["height"]), int(entry["width"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"{path}: image entry {index} lacks id, file_name, height or width ({exc})."
            ) from exc
        images[image.id] = image
    for index, annotation in enumerate(annotations):
        if (
            not isinstance(annotation, dict)
            or "image_id" not in annotation
            or "category_id" not in annotation
        ):
            raise DatasetError(f"{path}: annotation {index} lacks image_id or category_id.")
        if annotation["image_id"] not in images:
            raise DatasetError(
                f"{path}: annotation {annotation.get('id', index)} refers to unknown image "
                f"{annotation['image_id']!r}."
            )
        images[annotation["image_id"]].annotations.append(annotation)
    return list(images.values())
