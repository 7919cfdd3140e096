"""No wasted classes in Oracle-Obj: run the head only on the parts of the objects present.

With an object mask, a pixel may only take a part of its own object, so the scores of every other object's
parts are computed and then masked away. Where a model declares ``independent_classes`` (each class's logits
depend on the image and that class alone: CLIPSeg's decoder runs per prompt), the vocabulary restricted to
the objects in the mask gives those parts the same scores, hence the same label map, for a fraction of the
head's work. Models whose classes interact (CAT-Seg's class attention, PartCATSeg) keep the full vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..vocabulary import Part, Vocabulary


def independent_classes(segmenter: Any) -> bool:
    """Whether the segmenter's model declares per-class outputs that ignore the other classes."""
    return bool(getattr(getattr(segmenter, "model", None), "independent_classes", False))


@dataclass(frozen=True)
class Restriction:
    """A vocabulary cut down to some objects, with the id maps back to the full one."""

    vocabulary: Vocabulary | None  # None when none of the objects has a part
    part_ids: np.ndarray  # restricted part id -> full part id
    object_ids: np.ndarray  # full object id -> restricted object id, -1 for the objects left out


@lru_cache(maxsize=256)
def restrict(vocabulary: Vocabulary, objects: tuple[int, ...]) -> Restriction:
    """``vocabulary`` restricted to ``objects`` (full object ids): their parts in the original order (so ties
    between parts resolve the same way) and the objects in id order."""
    kept = [part for part in vocabulary.parts if vocabulary.objects.index(part.object) in objects]
    lookup = np.full(len(vocabulary.objects), -1, dtype=np.int64)
    lookup[list(objects)] = np.arange(len(objects))
    part_ids = np.array([part.id for part in kept], dtype=np.int64)
    if not kept:
        return Restriction(None, part_ids, lookup)
    sub = Vocabulary(
        [Part(i, part.object, part.part, part.seen) for i, part in enumerate(kept)],
        [vocabulary.objects[o] for o in objects],
        unseen_objects=vocabulary.unseen_objects,
        official_order=vocabulary.official_order,
        name=vocabulary.name,
        ignore_label=vocabulary.ignore_label,
    )
    return Restriction(sub, part_ids, lookup)


def masked_part_map(
    segmenter: Any, image: np.ndarray, vocabulary: Vocabulary, object_mask: np.ndarray
) -> Any:
    """The segmenter's answer for ``image`` under ``object_mask`` (object ids, -1 = none): its result as is,
    or, for models with independent classes, the part map (full ids) of a call on the present objects only."""
    if not independent_classes(segmenter):
        return segmenter(image, vocabulary, object_mask=object_mask)
    present = tuple(int(o) for o in np.unique(object_mask) if o >= 0)
    restriction = restrict(vocabulary, present)
    if restriction.vocabulary is None:
        return np.full(object_mask.shape, -1, dtype=np.int64)
    mask = np.where(object_mask >= 0, restriction.object_ids[np.clip(object_mask, 0, None)], -1)
    result = segmenter(image, restriction.vocabulary, object_mask=mask)
    part_map = np.asarray(getattr(result, "part_map", result))
    return np.where(part_map >= 0, restriction.part_ids[np.clip(part_map, 0, None)], -1)
