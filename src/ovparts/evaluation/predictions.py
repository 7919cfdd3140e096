"""Saved predictions: one uint16 PNG of part ids per image (65535 = no part), written atomically.

Records of one image that share a part map (Oracle-Obj with non-overlapping objects, Pred-All, Pred-Obj) share
one file, ``<key>.png`` (``/`` in the key becomes ``__``). When records need their own map (overlapping objects
in Oracle-Obj), the first record's map is ``<key>.png`` and each further one ``<key>__<record name>.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..data.records import Sample
from ..imageio import atomic_write
from .evaluator import Predictions

NO_PART = 65535


def file_stem(key: str) -> str:
    """A sample key as a flat file name."""
    return key.replace("/", "__").replace("\\", "__")


def encode(part_map: np.ndarray) -> Image.Image:
    """Part ids as a 16-bit PNG image, -1 (no part) as 65535."""
    return Image.fromarray(np.where(part_map < 0, NO_PART, part_map).astype(np.uint16))


class PredictionWriter:
    """Writes each sample's distinct part maps into ``folder`` as the module docstring says."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def files(self, sample: Sample, predictions: Predictions) -> list[tuple[Path, np.ndarray]]:
        """(path, part map) of each distinct map of a sample, the shared ``<key>.png`` first."""
        stem = file_stem(sample.key)
        out: list[tuple[Path, np.ndarray]] = []
        seen: set[int] = set()
        for region, part_map in predictions:
            if id(part_map) in seen:
                continue
            suffix = "" if not seen else f"__{region.name}"
            out.append((self.folder / f"{file_stem(stem + suffix)}.png", part_map))
            seen.add(id(part_map))
        return out

    def write(self, sample: Sample, predictions: Predictions) -> None:
        for path, part_map in self.files(sample, predictions):
            image = encode(part_map)
            atomic_write(path, lambda tmp, image=image: image.save(tmp, format="PNG"))
