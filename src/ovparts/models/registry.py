"""The registry of methods, the single source of truth about them (timm-style), and `load_model`.

Each method's folder (``ovparts/methods/<name>/``) registers one :class:`ModelSpec` in its ``__init__.py``:
its class, named configs, weights, converter, benchmark sizes and peers. The CLI, the trainer, the benchmark
and the server read it and name no method themselves.

A method from another package registers the same way, from a module named in the ``ovparts.methods`` entry
point group of its distribution (``[project.entry-points."ovparts.methods"] mymethod = "mypackage.method"``).
The registry imports those modules when first asked for a method, in every process (the benchmark's workers
included), so an installed method is seen by every command without any file of ovparts changing.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from ..config_checks import read_config_file
from ..errors import ConfigError, UnknownModelError, WeightsNotFoundError
from ..methods import BUILTIN_METHODS, DEFAULT_MODEL
from ..validation import check_device
from .base import PartSegModel

__all__ = [
    "BUILTIN_METHODS",
    "DEFAULT_MODEL",
    "ENTRY_POINT_GROUP",
    "BenchmarkPeer",
    "ModelSpec",
    "available_models",
    "load_model",
    "model_spec",
    "model_specs",
    "register_model",
    "resolve_config",
    "unregister_model",
]


@dataclass(frozen=True)
class BenchmarkPeer:
    """Another way of computing a method's logits that ``ovparts benchmark`` times against ovparts'.

    ``build(context)`` returns the benchmark case (``ovparts.benchmarking.cases.Case``) for one
    ``ovparts.benchmarking.cases.PeerContext``: the ovparts model at the benchmark size (None when
    ``own_model``: the peer builds its own, e.g. transformers' CLIPSeg, so the process holds only that),
    the vocabulary, the named config, the device and the cap on measured classes. ``text_per_call``: the peer
    encodes its prompts inside every call (its latency already holds the text cost ovparts pays once).
    """

    description: str
    build: Callable[[Any], Any]
    own_model: bool = False
    text_per_call: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """One method's registry entry: everything a command needs to know about it, in one place.

    ``configs``: named configs (each a dict of config values; "default" required), ``config_notes`` says
    what each named config is. ``default_weights``: what ``load_model(name)`` loads with no weights or
    config. ``sizes``: the named configs the benchmark runs for "native" (the published architecture) and
    "tiny". ``peers``: variant name -> :class:`BenchmarkPeer`. ``profiled``: whether ``benchmark --profile``
    splits a prediction into stages (the model marks them with ``ovparts.models.stages``). ``converter``:
    the method's official-checkpoint converter (None: none). ``published``: the published weights.
    """

    cls: type[PartSegModel]
    configs: dict[str, dict[str, Any]]
    default_weights: str | None
    description: str
    config_notes: Mapping[str, str] = field(default_factory=dict)
    sizes: Mapping[str, str] = field(default_factory=dict)
    peers: Mapping[str, BenchmarkPeer] = field(default_factory=dict)
    profiled: bool = False
    converter: Any = None
    published: tuple[Any, ...] = ()


ENTRY_POINT_GROUP = "ovparts.methods"

_REGISTRY: dict[str, ModelSpec] = {}
_PLUGIN_PATH: tuple[str, ...] | None = None  # the sys.path the entry points were last read under


def register_model(
    name: str,
    cls: type[PartSegModel],
    configs: dict[str, dict[str, Any]],
    default_weights: str | None = None,
    description: str = "",
    **details: Any,
) -> ModelSpec:
    """Register a method under ``name`` (its ``cls.name``); ``details`` are the other :class:`ModelSpec`
    fields (config notes, benchmark sizes and peers, converter, published weights)."""
    if "default" not in configs:
        raise ValueError(f"Model {name!r} must register a 'default' config.")
    if "sizes" not in details:  # the usual names: "default" is the published size, "tiny" the test one
        details["sizes"] = {"native": "default", **({"tiny": "tiny"} if "tiny" in configs else {})}
    spec = ModelSpec(cls, configs, default_weights, description, **details)
    if spec.converter is not None and spec.converter.method != name:
        raise ValueError(f"Model {name!r} registers the converter of {spec.converter.method!r}.")
    if name in _REGISTRY and _REGISTRY[name].cls is not cls:
        raise ValueError(f"Model {name!r} is already registered (by {_REGISTRY[name].cls.__module__}).")
    missing = sorted(set(spec.sizes.values()) - set(configs))
    if missing:
        raise ValueError(f"Model {name!r} names the benchmark size config {missing[0]!r}, which it lacks.")
    _REGISTRY[name] = spec
    return spec


def unregister_model(name: str) -> None:
    """Forget ``name`` (a notebook re-defining a method, a test removing the method it installed)."""
    _REGISTRY.pop(name, None)


def _load_builtins() -> None:
    """Import the built-in method packages, then the installed ones (entry points, read again only when
    ``sys.path`` changed: scanning the installed distributions costs milliseconds)."""
    global _PLUGIN_PATH
    for package in BUILTIN_METHODS:
        import_module(package)
    if tuple(sys.path) == _PLUGIN_PATH:
        return
    _PLUGIN_PATH = tuple(sys.path)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as err:  # noqa: BLE001 - a broken plugin must not take every command down with it
            detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
            warnings.warn(
                f"The ovparts method {entry.name!r} ({entry.value}) did not load and is left out: {detail}",
                stacklevel=2,
            )


def available_models() -> list[str]:
    """Names accepted by `load_model` and `--model`."""
    _load_builtins()
    return sorted(_REGISTRY)


def model_specs() -> dict[str, ModelSpec]:
    """Every registered method's entry, in registration order (built-ins first, as listed)."""
    _load_builtins()
    return dict(_REGISTRY)


def model_spec(name: str) -> ModelSpec:
    _load_builtins()
    if name not in _REGISTRY:
        raise UnknownModelError(f"Unknown model {name!r}; available models: {', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[name]


def resolve_config(spec: ModelSpec, name: str, config: str | os.PathLike | dict | None) -> dict[str, Any]:
    """A named config, a JSON file, or a dict of overrides on top of the default config."""
    if config is None:
        return dict(spec.configs["default"])
    if isinstance(config, dict):
        base = config.get("base", "default")
        if not isinstance(base, str):
            raise ConfigError(f"The config's 'base' must name a config of {name}, not {type(base).__name__}.")
        overrides = {k: v for k, v in config.items() if k != "base"}
        return {**resolve_config(spec, name, base), **overrides}
    text = str(config)
    if text in spec.configs:
        return dict(spec.configs[text])
    if text.endswith(".json"):
        values = read_config_file(Path(text), "config file", ConfigError)
        if not isinstance(values, dict):
            raise ConfigError(f"The config file {text!r} must hold a JSON object of options.")
        values.pop("ovparts_model", None)
        return resolve_config(spec, name, values) if "base" in values else values
    raise ConfigError(f"Unknown config {text!r} for {name}; named configs: {', '.join(spec.configs)}.")


def load_model(
    name: str,
    weights: str | os.PathLike | None = None,
    config: str | os.PathLike | dict | None = None,
    device: str = "cpu",
    revision: str | None = None,
) -> PartSegModel:
    """Build a model by name.

    ``weights``: a checkpoint folder, the name of one of the method's published checkpoints (``ovparts
    weights list``; fetched, converted and cached on first use) or a hub id; an existing folder wins over a
    name. With no weights and no config, the method's published
    weights are used where it has some; ``config="tiny"`` (or any named config / dict) builds a randomly
    initialised model instead. With weights, a dict ``config`` overrides inference options such as
    ``class_chunk``.
    """
    spec = model_spec(name)
    check_device(device)
    if weights is None and config is None:
        if not spec.default_weights:
            names = ", ".join(e.name for e in spec.published if not e.unsupported)
            published = f"pass --weights with a published name ({names}), or " if names else ""
            raise WeightsNotFoundError(
                f"{name} has no default weights; {published}convert an official checkpoint with "
                f"`ovparts convert {name} OFFICIAL.pth OUT_DIR` and pass --weights OUT_DIR "
                "(or --config tiny for a random test model)."
            )
        weights = spec.default_weights
    if weights is not None:
        from ..weights.store import resolve_name  # noqa: PLC0415 - only when weights are given

        weights = resolve_name(name, weights)
        overrides = config if isinstance(config, dict) else None
        if config is not None and not isinstance(config, dict):
            raise ConfigError(
                "With --weights, give config overrides as a dict (the checkpoint has its own config)."
            )
        model = spec.cls.from_pretrained(weights, overrides=overrides, revision=revision)
    else:
        values = resolve_config(spec, name, config)
        model = spec.cls.checked_build(spec.cls.config_class.from_dict(values))
    return model.to(device).eval()
