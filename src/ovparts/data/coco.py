"""Minimal COCO JSON indexing with validation, shared by the ADE20K and PartImageNet readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from .io import image_size, read_json
from .masks import segmentation_to_mask


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


def checked_image_size(image: Path, coco: CocoImage, json_path: Path) -> tuple[int, int]:
    """(H, W) of the image file, refused when it disagrees with the size its COCO entry records."""
    size = image_size(image)
    if size != (coco.height, coco.width):
        raise DatasetError(
            f"{image}: the image is {size[1]}x{size[0]} but {json_path.name} says {coco.width}x{coco.height}."
        )
    return size


def annotation_mask(annotation: dict, size: tuple[int, int], coco: CocoImage, json_path: Path) -> np.ndarray:
    """The boolean mask of one annotation, with the file and annotation named when it cannot be drawn."""
    try:
        return segmentation_to_mask(annotation.get("segmentation", []), *size)
    except (ValueError, TypeError) as exc:
        raise DatasetError(
            f"{json_path}: annotation {annotation.get('id', '?')} of {coco.file_name} has an "
            f"unreadable segmentation ({exc})."
        ) from exc
