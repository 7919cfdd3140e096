"""Part vocabularies: which objects and object-specific parts a model is asked to find.

A vocabulary is the contract between text and label maps: part ``i`` of ``vocab.parts`` is label ``i`` in a
part map, object ``j`` of ``vocab.objects`` is label ``j`` in an object map. Methods that reason about
*generalized* parts ("head" shared by dog and cat) read the derived index maps instead of re-parsing names.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources

import numpy as np

from .errors import VocabularyError
from .text.templates import TEMPLATE_SETS

BENCHMARKS = ("pascal_part_116", "ade20k_part_234", "partimagenet", "partimagenet_ood")
"""The benchmarks, the one list every command, reader registry and error message reads (a class table
``data/tables/<name>.json`` and a reader in ``ovparts.data`` exist for each)."""
RESERVED_CHARACTERS = ":;,\n"
POSSESSIVE = "'s "


@dataclass(frozen=True)
class Part:
    """One object-specific part; ``id`` is its label in part maps."""

    id: int
    object: str
    part: str
    seen: bool = True

    @property
    def name(self) -> str:
        return f"{self.object}{POSSESSIVE}{self.part}"


def _clean_name(raw: str, what: str) -> str:
    """Normalise whitespace and refuse names that cannot round-trip through the text format."""
    if not isinstance(raw, str):
        raise VocabularyError(f"Each {what} must be text, got {type(raw).__name__}.")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r" for ch in raw):
        raise VocabularyError(f"The {what} {raw!r} contains control characters; use printable text only.")
    name = " ".join(raw.split())
    if not name:
        raise VocabularyError(f"An empty {what} name was given; every {what} needs at least one letter.")
    bad = [ch for ch in RESERVED_CHARACTERS if ch in name]
    if bad:
        raise VocabularyError(
            f"The {what} {name!r} contains {bad[0]!r}, which separates entries; remove it from the name."
        )
    return name


def _unique_in_order(items: Iterable[str], official: bool) -> tuple[str, ...]:
    """Official checkpoints index classes by Python's sorted() order; we default to first appearance."""
    seen = dict.fromkeys(items)
    return tuple(sorted(seen)) if official else tuple(seen)


def _positions(names: Iterable[str], among: Sequence[str], missing: int | None = None) -> np.ndarray:
    """The int64 index of each name in ``among``: the index maps below are all this lookup; a name not in
    ``among`` is ``missing`` when given, else a ``KeyError`` (a vocabulary's own tables always contain it)."""
    index = {name: i for i, name in enumerate(among)}
    if missing is None:
        return np.array([index[name] for name in names], dtype=np.int64)
    return np.array([index.get(name, missing) for name in names], dtype=np.int64)


class Vocabulary:
    """Objects and object-specific parts, with the index maps every method needs.

    Parameters
    ----------
    parts:
        Object-specific parts; ``parts[i].id`` must equal ``i``.
    objects:
        All objects in label order, including objects without annotated parts. Defaults to the objects of
        ``parts`` in order of first appearance.
    unseen_objects:
        Objects held out of training (zero-shot split). Only used for ``object_seen``.
    official_order:
        Order generalized parts and part-bearing objects with Python's ``sorted()`` as the official
        PartCLIPSeg/PartCATSeg code does; published checkpoints depend on it. Default: first appearance.
    """

    def __init__(
        self,
        parts: Sequence[Part],
        objects: Sequence[str] | None = None,
        unseen_objects: Iterable[str] = (),
        official_order: bool = False,
        name: str | None = None,
        ignore_label: int | None = None,
    ) -> None:
        parts = tuple(parts)
        if not parts:
            raise VocabularyError("The vocabulary has no parts; give at least one, e.g. 'dog: head, tail'.")
        for index, part in enumerate(parts):
            if part.id != index:
                raise VocabularyError(f"Part {part.name!r} has id {part.id} but sits at position {index}.")
        seen_names: set[str] = set()
        for part in parts:
            if part.name in seen_names:
                raise VocabularyError(f"The part {part.name!r} is listed twice; each part must be unique.")
            seen_names.add(part.name)
        if objects is None:
            objects = _unique_in_order((p.object for p in parts), official=False)
        objects = tuple(objects)
        if len(set(objects)) != len(objects):
            raise VocabularyError("An object is listed twice in the vocabulary's object list.")
        missing = sorted({p.object for p in parts} - set(objects))
        if missing:
            raise VocabularyError(f"The part object {missing[0]!r} is not in the vocabulary's object list.")
        self.parts: tuple[Part, ...] = parts
        self.objects: tuple[str, ...] = objects
        self.unseen_objects: frozenset[str] = frozenset(unseen_objects)
        self.official_order = official_order
        self.name = name
        self.ignore_label = ignore_label

    # ------------------------------------------------------------------ construction
    @classmethod
    def parse(cls, text: str, unseen_objects: Iterable[str] = (), official_order: bool = False) -> Vocabulary:
        """Read ``"dog: head, torso, leg; cat: ear"``.

        Entries are separated by ``;`` or new lines. An entry is ``object: part, part``, a bare ``object``
        (an object without parts), or comma-separated ``"object's part"`` names. Repeated entries for an
        object extend it; repeated parts are kept once.
        """
        if not isinstance(text, str):
            raise VocabularyError(f"A vocabulary must be text, got {type(text).__name__}.")
        pairs: list[tuple[str, str]] = []
        objects: dict[str, None] = {}  # an ordered set
        for entry in re.split(r"[;\n]", text):
            if not entry.strip():
                continue
            if ":" in entry:
                head, _, tail = entry.partition(":")
                obj = _clean_name(head, "object")
                objects.setdefault(obj)
                items = [item for item in tail.split(",") if item.strip()]
                if not items and ":" in tail:
                    raise VocabularyError(f"The entry {entry.strip()!r} has more than one ':'.")
                pairs.extend((obj, _clean_name(item, "part")) for item in items)
                continue
            for item in entry.split(","):
                if not item.strip():
                    continue
                if POSSESSIVE in item:
                    obj_raw, _, part_raw = item.partition(POSSESSIVE)
                    obj = _clean_name(obj_raw, "object")
                    pairs.append((obj, _clean_name(part_raw, "part")))
                else:
                    obj = _clean_name(item, "object")
                objects.setdefault(obj)
        unique_pairs = list(dict.fromkeys(pairs))
        if not unique_pairs:
            raise VocabularyError(
                f"No parts found in {text[:60]!r}; write it like 'dog: head, torso, leg; cat: ear'."
            )
        unseen = set(unseen_objects)
        parts = [Part(i, obj, part, obj not in unseen) for i, (obj, part) in enumerate(unique_pairs)]
        return cls(parts, list(objects), unseen_objects=unseen, official_order=official_order)

    @classmethod
    def from_names(
        cls, names: Sequence[str], unseen_objects: Iterable[str] = (), official_order: bool = False
    ) -> Vocabulary:
        """Build from ``["dog's head", "dog's tail", ...]``; ids follow list order (dataset label order)."""
        if isinstance(names, str):
            raise VocabularyError(
                'from_names expects a list of "object\'s part" names; use parse() for text.'
            )
        unseen = set(unseen_objects)
        parts = []
        for i, raw in enumerate(names):
            if not isinstance(raw, str) or POSSESSIVE not in raw:
                raise VocabularyError(
                    f'The name {raw!r} is not of the form "object\'s part", e.g. "dog\'s head".'
                )
            obj_raw, _, part_raw = raw.partition(POSSESSIVE)
            obj = _clean_name(obj_raw, "object")
            parts.append(Part(i, obj, _clean_name(part_raw, "part"), obj not in unseen))
        return cls(parts, unseen_objects=unseen, official_order=official_order)

    @classmethod
    def from_benchmark(cls, name: str, official_order: bool = False) -> Vocabulary:
        """The class table of a benchmark, with its label ids and zero-shot split."""
        table = benchmark_table(name)
        parts = [
            Part(p["id"], p["object"], p["part"], bool(p["seen"]))
            for p in sorted(table["part_classes"], key=lambda p: p["id"])
        ]
        objects = [o["name"] for o in sorted(table["object_classes"], key=lambda o: o["id"])]
        return cls(
            parts,
            objects,
            unseen_objects=table["unseen_object_classes"],
            official_order=official_order,
            name=name,
            ignore_label=table["ignore_label"],
        )

    def with_official_order(self, official_order: bool = True) -> Vocabulary:
        """The same classes and ids, with generalized parts and part objects ordered as asked."""
        return Vocabulary(
            self.parts, self.objects, self.unseen_objects, official_order, self.name, self.ignore_label
        )

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self.parts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return (self.parts, self.objects, self.official_order) == (
            other.parts,
            other.objects,
            other.official_order,
        )

    def __hash__(self) -> int:
        return hash((self.parts, self.objects, self.official_order))

    def __repr__(self) -> str:
        label = f"{self.name}, " if self.name else ""
        return f"Vocabulary({label}{len(self.objects)} objects, {len(self.parts)} parts)"

    @property
    def names(self) -> list[str]:
        """``"object's part"`` for every part, in id order."""
        return [p.name for p in self.parts]

    @cached_property
    def object_seen(self) -> tuple[bool, ...]:
        return tuple(o not in self.unseen_objects for o in self.objects)

    @cached_property
    def seen_part_ids(self) -> list[int]:
        return [p.id for p in self.parts if p.seen]

    @cached_property
    def unseen_part_ids(self) -> list[int]:
        return [p.id for p in self.parts if not p.seen]

    @cached_property
    def generalized_parts(self) -> tuple[str, ...]:
        """Part names shared across objects ("head" for dog and cat), the text PartCLIPSeg encodes."""
        return _unique_in_order((p.part for p in self.parts), self.official_order)

    @cached_property
    def part_objects(self) -> tuple[str, ...]:
        """Objects that have at least one part, the object texts PartCLIPSeg/PartCATSeg encode."""
        return _unique_in_order((p.object for p in self.parts), self.official_order)

    @cached_property
    def part_to_object(self) -> np.ndarray:
        """(P,) index into ``objects`` for every part."""
        return _positions((p.object for p in self.parts), self.objects)

    @cached_property
    def part_to_generalized(self) -> np.ndarray:
        """(P,) index into ``generalized_parts`` for every part."""
        return _positions((p.part for p in self.parts), self.generalized_parts)

    @cached_property
    def part_to_part_object(self) -> np.ndarray:
        """(P,) index into ``part_objects`` for every part."""
        return _positions((p.object for p in self.parts), self.part_objects)

    @cached_property
    def object_to_part_object(self) -> np.ndarray:
        """(O,) index into ``part_objects`` for every object, -1 for objects without parts."""
        return _positions(self.objects, self.part_objects, missing=-1)

    def parts_of(self, obj: str | int) -> list[int]:
        """Ids of the parts of an object, given by name or object id."""
        name = self.objects[obj] if isinstance(obj, int) else obj
        if name not in self.objects:
            raise VocabularyError(
                f"The object {name!r} is not in this vocabulary ({', '.join(self.objects)})."
            )
        return [p.id for p in self.parts if p.object == name]

    # ------------------------------------------------------------------ text for the encoders
    def part_texts(self, style: str = "possessive") -> list[str]:
        """Object-specific part strings: ``"dog's head"`` (possessive) or ``"dog head"`` (plain, OV-PARTS CLIPSeg)."""
        if style == "possessive":
            return self.names
        if style == "plain":
            return [name.replace("'s", "") for name in self.names]
        raise VocabularyError(f"Unknown text style {style!r}; use 'possessive' or 'plain'.")

    def format(self) -> str:
        """The text form ``parse`` reads back to an equal vocabulary (ids and object order kept)."""
        entries: list[str] = []
        object_index = {o: i for i, o in enumerate(self.objects)}
        # Objects are introduced in label order, so those already written always form a prefix.
        written = 0

        def introduce_objects_until(limit: int) -> None:
            nonlocal written
            while written < limit:
                entries.append(self.objects[written])
                written += 1

        run_object, run_parts = None, []
        for part in [*self.parts, None]:
            if part is not None and part.object == run_object:
                run_parts.append(part.part)
                continue
            if run_object is not None:
                entries.append(f"{run_object}: {', '.join(run_parts)}")
            if part is None:
                break
            index = object_index[part.object]
            introduce_objects_until(index)
            written = max(written, index + 1)
            run_object, run_parts = part.object, [part.part]
        introduce_objects_until(len(self.objects))
        return "; ".join(entries)


def prompts(texts: Sequence[str], templates: str | Sequence[str] = "none") -> list[list[str]]:
    """Each text inserted into each template: a (len(texts), len(templates)) nested list."""
    if isinstance(templates, str):
        if templates not in TEMPLATE_SETS:
            raise VocabularyError(
                f"Unknown template set {templates!r}; choose from {', '.join(TEMPLATE_SETS)}."
            )
        templates = TEMPLATE_SETS[templates]
    return [[template.format(text) for template in templates] for text in texts]


def benchmark_table(name: str) -> dict:
    """The class table JSON of a benchmark, shipped as package data."""
    key = name.lower().replace("-", "_")
    if key not in BENCHMARKS:
        raise VocabularyError(f"Unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}.")
    with (
        resources.files("ovparts.data")
        .joinpath("tables")
        .joinpath(f"{key}.json")
        .open("r", encoding="utf-8") as handle
    ):
        return json.load(handle)
