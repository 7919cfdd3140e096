"""The converter contract: what a method declares so that its official checkpoints become ovparts folders.

A method's ``convert.py`` declares one :class:`Converter` (its state-dict mapping and the little the shared
steps cannot know) and registers it with its model (``register_model(..., converter=CONVERTER)``). Everything
else is shared and found through the model registry: reading the official file
(:func:`~ovparts.convert.reading.read_official_checkpoint`), the shapes the model expects, the writer
(:func:`write_checkpoint`), the whole file-to-folder step (:func:`convert_checkpoint`) and the
``ovparts convert <method>`` commands.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError
from .conversion import Conversion, ReportStyle
from .reading import read_official_checkpoint
from .tokenizer import attach_tokenizer, shapes_on_meta

if TYPE_CHECKING:  # pragma: no cover
    from ..models.base import PartSegModel
    from ..models.registry import ModelSpec


@dataclass(frozen=True)
class Converter:
    """One method's converter: its mapping plus what the shared read / check / write steps must be told.

    ``convert(official, **options) -> Conversion`` is pure (a state dict in, tensors and config out); with
    ``base_config`` set it takes ``base_config=`` (a dict) for what shapes cannot tell, and the command gets
    ``--config NAME`` naming one of the method's registered configs.
    """

    method: str  # the registry name: the model built, `ovparts convert <method>`
    title: str  # the method as messages name it, e.g. "CAT-Seg"
    convert: Callable[..., Conversion]
    default_tokenizer: str  # folder or hub id of the CLIP tokenizer the official weights were trained with
    help: str  # the command's help text (click's docstring conventions)
    # Refuses, in one sentence naming the file, a readable checkpoint of another method (read time).
    recognise: Callable[[Mapping[str, object], str], None] | None = None
    base_config: str | None = None  # the named config `--config` defaults to; None: no such option
    build_options: Mapping[str, Any] = field(default_factory=dict)  # constructor keywords, e.g. load_dino
    style: ReportStyle = "itemized"
    saved: str = "Saved to {out_dir}."  # the command's last line; {out_dir}, {path} and {method} are filled

    @property
    def spec(self) -> ModelSpec:
        from ..models.registry import model_spec  # noqa: PLC0415 - the registry imports every method

        return model_spec(self.method)

    def read(self, path: str | os.PathLike) -> dict[str, object]:
        """The official file's state dict; another method's checkpoint is refused, naming its converter."""
        state = read_official_checkpoint(path)
        if self.recognise is not None:
            self.recognise(state, os.fspath(path))
        return state

    def named_config(self, name: str) -> dict[str, Any]:
        """A registered config of the method, by name (what ``--config`` takes)."""
        configs = self.spec.configs
        if name not in configs:
            raise CheckpointError(f"Unknown {self.method} config {name!r}; choose from {', '.join(configs)}.")
        return dict(configs[name])

    def resolve_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` with a named ``base_config`` replaced by the config it names."""
        resolved = dict(options)
        if isinstance(resolved.get("base_config"), str):
            resolved["base_config"] = self.named_config(resolved["base_config"])
        return resolved

    def expected_shapes(self, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """Key -> shape of the model's state dict for ``config`` (built on the meta device: no memory)."""
        cls = self.spec.cls
        return shapes_on_meta(cls, cls.config_class, config, **self.build_options)

    def build(self, config: dict[str, Any], tokenizer_folder: str | os.PathLike) -> PartSegModel:
        """The model for a converted config, with the tokenizer saved beside its weights."""
        cls = self.spec.cls
        return cls(
            cls.config_class.from_dict(config), tokenizer_folder=tokenizer_folder, **self.build_options
        )


def converter_for(method: str | Converter) -> Converter:
    """The converter registered with model ``method`` (a converter is returned as it is)."""
    if isinstance(method, Converter):
        return method
    from ..models.registry import model_spec  # noqa: PLC0415

    converter = model_spec(method).converter
    if converter is None:
        raise CheckpointError(f"{method} has no converter for official checkpoints.")
    return converter


def available_converters() -> list[str]:
    """Names of the registered models that have a converter (the `ovparts convert` commands)."""
    from ..models.registry import available_models, model_spec  # noqa: PLC0415

    return [name for name in available_models() if model_spec(name).converter is not None]


def write_checkpoint(
    conversion: Conversion,
    out_dir: str | os.PathLike,
    tokenizer: str | os.PathLike | None = None,
    *,
    source: str | os.PathLike | None = None,
) -> Path:
    """Build the model (strict shape checks), then write safetensors + config.json + tokenizer files.

    ``tokenizer``: a folder or hub id (the converter's default when None); its ids go into config.json.
    ``source``: the official file, named in messages. Refuses, in one sentence, a conversion that would leave
    a weight uninitialised and an ``out_dir`` that is not an empty folder. The folder appears complete or not
    at all: it is written beside ``out_dir`` and renamed into place.
    """
    converter = converter_for(conversion.method)
    if conversion.missing:
        names = conversion.missing_official or conversion.missing
        if source is not None:
            raise CheckpointError(
                f"{os.fspath(source)} lacks {len(conversion.missing)} weight(s) a {converter.title} model "
                f"needs (e.g. {names[0]}); it may be truncated or from another method."
            )
        raise CheckpointError(
            f"The checkpoint lacks {len(conversion.missing)} tensors the model needs, e.g. {names[0]!r}."
        )
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError(f"{str(out)!r} already exists and is not an empty folder; choose a new one.")
    config, folder = attach_tokenizer(conversion.config, tokenizer or converter.default_tokenizer)
    conversion.config = config
    model = converter.build(config, folder)
    where = os.fspath(source) if source is not None else "the converted checkpoint"
    model.load_checked_state_dict(conversion.state_dict, source=where)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(staging)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def convert_checkpoint(
    method: str | Converter,
    official_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    tokenizer: str | os.PathLike | None = None,
    **options: Any,
) -> Conversion:
    """Read an official ``.pth``, convert it with ``method``'s converter and write an ovparts folder.

    ``options`` go to the converter (e.g. ``base_config="tiny"`` or a dict, ``vision_heads=16``). Returns
    the conversion (its ``report()`` says what was converted); every failure is one sentence.
    """
    converter = converter_for(method)
    options = converter.resolve_options(options)
    conversion = converter.convert(converter.read(official_path), **options)
    write_checkpoint(conversion, out_dir, tokenizer, source=official_path)
    return conversion
