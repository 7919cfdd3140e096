"""Model names -> classes and named configs (timm-style), and the one factory users call: `load_model`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from ..config_checks import read_config_file
from ..errors import ConfigError, UnknownModelError, WeightsNotFoundError
from ..validation import check_device
from .base import PartSegModel

# Modules that register built-in models when imported; a new method adds its module here.
BUILTIN_MODULES = (
    "ovparts.methods.clipseg.model",
    "ovparts.methods.catseg.model",
    "ovparts.methods.partclipseg.model",
    "ovparts.methods.partcatseg.model",
)


@dataclass(frozen=True)
class ModelSpec:
    cls: type[PartSegModel]
    configs: dict[str, dict[str, Any]]
    default_weights: str | None
    description: str
    published: tuple = ()  # ovparts.weights.catalog.PublishedWeights of the method (its weights.py)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    cls: type[PartSegModel],
    configs: dict[str, dict[str, Any]],
    default_weights: str | None = None,
    description: str = "",
    published: tuple = (),
) -> None:
    if "default" not in configs:
        raise ValueError(f"Model {name!r} must register a 'default' config.")
    _REGISTRY[name] = ModelSpec(cls, configs, default_weights, description, tuple(published))


def _load_builtins() -> None:
    for module in BUILTIN_MODULES:
        import_module(module)


def available_models() -> list[str]:
    """Names accepted by `load_model` and `--model`."""
    _load_builtins()
    return sorted(_REGISTRY)


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
