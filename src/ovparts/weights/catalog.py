"""What a published checkpoint is: one entry per file the authors released, listed beside its method.

Each method's ``methods/<name>/weights.py`` declares its entries; the registry record of the method holds them
(``ModelSpec.published``), so ``ovparts weights list``, ``load_model(name, weights=ENTRY)`` and every command
that takes ``--weights`` read one list. An entry says where the raw file lives (a Hugging Face hub repository
and file, a Google Drive file id or a plain URL), what the model was trained on and in which class order, the
converter options it needs, its licence and size, and its SHA-256 where the authors published one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import WeightsNotFoundError

SOURCE_KINDS = ("hub", "gdrive", "url")
SEPARATOR = ":"  # "partcatseg:pascal_part_116"; a colon can be neither a hub id nor a plain folder name


@dataclass(frozen=True)
class Source:
    """Where a raw published file is fetched from.

    ``kind="hub"``: ``location`` is the repository id (``repo_type`` "model" or "space"), ``filename`` the file
    in it. ``kind="gdrive"``: ``location`` is the Google Drive file id, fetched with gdown. ``kind="url"``:
    ``location`` is an HTTP(S) URL. ``filename`` is also the raw file's name in the download cache.
    """

    kind: str
    location: str
    filename: str
    repo_type: str = "model"
    revision: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"Unknown source kind {self.kind!r}; one of {', '.join(SOURCE_KINDS)}.")

    @property
    def url(self) -> str:
        """A URL a person can open in a browser to fetch the file by hand."""
        if self.kind == "hub":
            prefix = "spaces/" if self.repo_type == "space" else ""
            return f"https://huggingface.co/{prefix}{self.location}/resolve/{self.revision or 'main'}/{self.filename}"
        if self.kind == "gdrive":
            return f"https://drive.google.com/uc?id={self.location}"
        return self.location

    def describe(self) -> str:
        """Short form for listings: ``hf:repo/file``, ``gdrive:ID (file)`` or the URL."""
        if self.kind == "hub":
            space = " (space)" if self.repo_type == "space" else ""
            return f"hf:{self.location}/{self.filename}{space}"
        if self.kind == "gdrive":
            return f"gdrive:{self.location} ({self.filename})"
        return self.location


@dataclass(frozen=True)
class PublishedWeights:
    """One published checkpoint of one method.

    ``native``: the file is already in ovparts' / transformers' folder format on the hub (``location`` is then
    the repository, loaded as a hub id, no conversion). ``convert``: keyword options of the method's converter
    (e.g. the named base config for what shapes cannot tell). ``unsupported``: why ovparts cannot convert
    it yet (listed so users know it exists; ``pull`` refuses with that sentence).
    """

    method: str
    name: str
    source: Source
    description: str
    trained_on: str
    class_order: str
    licence: str
    tokenizer: str
    size: str | None = None
    sha256: str | None = None
    native: bool = False
    convert: dict[str, Any] = field(default_factory=dict)
    unsupported: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.method}{SEPARATOR}{self.name}"


def split_name(text: str) -> tuple[str | None, str]:
    """``"method:name"`` -> (method, name); a bare name -> (None, name)."""
    if SEPARATOR in text:
        method, name = text.split(SEPARATOR, 1)
        return method, name
    return None, text


def all_published() -> list[PublishedWeights]:
    """Every published checkpoint of every registered method, method by method."""
    from ..models.registry import available_models, model_spec

    return [entry for method in available_models() for entry in model_spec(method).published]


def lookup(text: str, method: str | None = None) -> PublishedWeights | None:
    """The entry ``text`` names (``NAME`` within ``method``, or ``METHOD:NAME``), or None when it names none.

    A bare name that several methods publish is ambiguous without ``method``: one sentence lists the choices.
    """
    wanted_method, name = split_name(text)
    if wanted_method is not None and method is not None and wanted_method != method:
        return None
    scope = wanted_method or method
    candidates = [e for e in all_published() if e.name == name and (scope is None or e.method == scope)]
    if len(candidates) > 1:
        choices = ", ".join(e.qualified for e in candidates)
        raise WeightsNotFoundError(f"{text!r} names several published checkpoints; choose one of {choices}.")
    return candidates[0] if candidates else None


def require(text: str, method: str | None = None) -> PublishedWeights:
    """Like :func:`lookup`, but an unknown name is one sentence listing the known ones."""
    entry = lookup(text, method)
    if entry is None:
        known = [e.qualified for e in all_published() if method is None or e.method == method]
        raise WeightsNotFoundError(
            f"No published checkpoint is called {text!r}; known: {', '.join(known) or 'none'} "
            "(see `ovparts weights list`)."
        )
    return entry
