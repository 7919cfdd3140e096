"""Saved predictions: one uint16 PNG of part ids per image (65535 = no part), written atomically.

Records of one image that share a part map (Oracle-Obj with non-overlapping objects, Pred-All, Pred-Obj) share
one file, ``<key>.png`` (``/`` in the key becomes ``__``). When records need their own map (overlapping objects
in Oracle-Obj), each record after the first gets ``<key>__<record name>.png``; those are written before
``<key>.png``, so an image whose ``<key>.png`` exists is complete, whenever the run was killed.

Each PNG carries two text chunks: ``ovparts-run``, a digest of everything that decides the prediction (dataset,
split, protocol, vocabulary, segmenter and model settings), and ``ovparts-config``, the run's report config.
``--resume`` reuses only files of the same digest (a folder may hold leftovers of another run), and
``--from-predictions`` rebuilds the report from them with no model. An image the segmenter refused (an
``ImageError``) leaves ``<key>.skip.json`` with the reason, so a resumed or re-scored run counts it the same.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from ..data.records import IGNORE, Sample
from ..errors import ConfigError
from ..output_files import atomic_write
from .evaluator import Predictions
from .protocols import oracle_object_mask

NO_PART = 65535
RUN_KEY = "ovparts-run"
CONFIG_KEY = "ovparts-config"
SKIP_SUFFIX = ".skip.json"


def file_stem(key: str) -> str:
    """A sample key as a flat file name."""
    return key.replace("/", "__").replace("\\", "__")


def run_digest(settings: dict[str, Any]) -> str:
    """A short digest of the settings that decide a prediction (canonical JSON, SHA-256)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


@dataclass(frozen=True)
class Refused:
    """An image the segmenter refused in the saved run, with its one-sentence reason."""

    reason: str


class PredictionStore:
    """The prediction folder of one run (``digest`` from ``run_digest``): writes each image's maps and reads
    back those of the same run."""

    def __init__(self, folder: str | Path, digest: str, config: dict[str, Any] | None = None) -> None:
        self.folder = Path(folder)
        self.digest = digest
        self.config = dict(config or {})

    # ------------------------------------------------------------------ names
    @staticmethod
    def own_maps(sample: Sample, protocol: str) -> bool:
        """Whether each record has its own map: Oracle-Obj with overlapping objects (``protocols.predict``)."""
        return protocol == "oracle_obj" and oracle_object_mask(sample.regions, sample.size) is None

    def _paths(self, sample: Sample, own_maps: bool) -> list[Path]:
        """The primary ``<key>.png``, then with ``own_maps`` one further file per record after the first."""
        stem = file_stem(sample.key)
        paths = [self.folder / f"{stem}.png"]
        if own_maps:
            paths += [self.folder / f"{file_stem(stem + '__' + r.name)}.png" for r in sample.regions[1:]]
        return paths

    def _skip_path(self, sample: Sample) -> Path:
        return self.folder / f"{file_stem(sample.key)}{SKIP_SUFFIX}"

    # ------------------------------------------------------------------ writing
    def write(self, sample: Sample, predictions: Predictions, protocol: str) -> None:
        """The sample's maps, the primary file last (its presence marks the image complete)."""
        own_maps = self.own_maps(sample, protocol)
        maps = [part_map for _, part_map in predictions] if own_maps else [predictions[0][1]]
        info = PngImagePlugin.PngInfo()
        info.add_text(RUN_KEY, self.digest)
        info.add_text(CONFIG_KEY, json.dumps(self.config, sort_keys=True, default=str))
        for path, part_map in reversed(list(zip(self._paths(sample, own_maps), maps, strict=True))):
            image = Image.fromarray(np.where(part_map < 0, NO_PART, part_map).astype(np.uint16))
            atomic_write(path, lambda tmp, image=image: image.save(tmp, format="PNG", pnginfo=info))

    def write_refusal(self, sample: Sample, reason: str) -> None:
        text = json.dumps({RUN_KEY: self.digest, "reason": reason})
        atomic_write(self._skip_path(sample), lambda tmp: tmp.write_text(text, encoding="utf-8"))

    # ------------------------------------------------------------------ reading
    def load(self, sample: Sample, protocol: str) -> Predictions | Refused | None:
        """This run's saved predictions of ``sample`` (``Refused`` for a refused image), None when absent.

        Which records share a map follows from the protocol and the ground-truth regions, as in
        ``protocols.predict``: only Oracle-Obj with overlapping objects gives each record its own map.
        """
        own_maps = self.own_maps(sample, protocol)
        maps = [self._read(path, sample.size) for path in self._paths(sample, own_maps)]
        if any(m is None for m in maps):
            return self._refusal(sample) if maps[0] is None else None
        if own_maps:
            return list(zip(sample.regions, maps, strict=True))
        return [(region, maps[0]) for region in sample.regions]

    def _read(self, path: Path, size: tuple[int, int]) -> np.ndarray | None:
        try:
            with Image.open(path) as image:
                if image.text.get(RUN_KEY) != self.digest:
                    return None
                values = np.asarray(image).astype(np.int64)
        except (OSError, ValueError, SyntaxError):
            return None  # absent, or a leftover the run never finished: predicted again
        if values.shape != size:
            return None
        values[values == NO_PART] = IGNORE
        return values

    def _refusal(self, sample: Sample) -> Refused | None:
        try:
            data = json.loads(self._skip_path(sample).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get(RUN_KEY) != self.digest:
            return None
        return Refused(str(data.get("reason", "")))


def saved_run(folder: str | Path) -> tuple[dict[str, Any], str]:
    """(report config, digest) of the run whose predictions fill ``folder``, for ``--from-predictions``.

    The folder must hold the predictions of one run: files of several runs (a folder reused without
    ``--resume``) are refused in one sentence, since nothing says which of them to score.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"The predictions folder {folder} does not exist.")
    runs: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.png")):
        try:
            with Image.open(path) as image:
                digest, config = image.text.get(RUN_KEY), image.text.get(CONFIG_KEY)
        except (OSError, ValueError, SyntaxError):
            continue
        if digest and config and digest not in runs:
            runs[digest] = json.loads(config)
    if not runs:
        raise ConfigError(
            f"{folder} holds no predictions saved by 'ovparts evaluate --save-predictions' of this version."
        )
    if len(runs) > 1:
        raise ConfigError(
            f"{folder} holds predictions of {len(runs)} different runs; score a folder written by one run."
        )
    digest, config = next(iter(runs.items()))
    return config, digest
