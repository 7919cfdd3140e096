"""Training recipes: YAML files with a ``base:`` include, ``key=value`` overrides, and typed sections.

The published recipes ship inside the package (``ovparts/recipes/``, package data), so ``ovparts train NAME``
finds them in a wheel install as in a checkout. A recipe is plain data so that a run can be reproduced from
the resolved YAML that ``ovparts train`` prints and saves next to its checkpoints. Every section is a
dataclass: an unknown key is refused with one sentence instead of being silently ignored, which is how a typo
in a 20k-iteration run would otherwise go unnoticed.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..config_checks import check_dataclass_values
from ..errors import ConfigError
from ..methods import DEFAULT_MODEL

# The shipped recipes: one YAML per published run, their shared values in ``base/``. A regular install (wheel,
# editable, checkout on PYTHONPATH) unpacks the package on disk, so this is a real folder that ``base:``
# includes can be resolved in.
RECIPE_DIR = Path(str(resources.files("ovparts") / "recipes"))


@dataclass
class ModelSection:
    """Which model to train and which of its parameters move."""

    name: str = DEFAULT_MODEL
    weights: str | None = None  # checkpoint folder or hub id to start from; None = random init
    config: Any = None  # named config ("tiny") or a dict of options (overrides when weights are given)
    scope: Any = "model"  # trainable scope: a preset name or a list of name substrings (see scopes.py)
    loss_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the method's loss


@dataclass
class DataSection:
    """Where the images come from and how they are augmented."""

    dataset: str = "pascal_part_116"
    root: str = "datasets"
    train_split: str = "train"
    val_split: str = "val"
    classes: str = "seen"  # "seen" (zero-shot: unseen parts and objects become ignore) or "all"
    objects: list[str] | None = None  # train only these objects' parts (fine-tuning on a subset); None = all
    batch_size: int = 8  # global batch over all devices, as detectron2's IMS_PER_BATCH
    num_workers: int = 2
    augment: list[dict[str, Any]] = field(default_factory=list)
    synthetic: dict[str, Any] | None = None  # write a synthetic dataset into root first (tests, smoke runs)


@dataclass
class OptimSection:
    """AdamW with detectron2-style parameter groups."""

    lr: float = 1e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    lr_multipliers: dict[str, float] = field(default_factory=dict)  # name substring -> lr factor
    no_decay: list[str] = field(default_factory=lambda: ["norm", "embedding"])  # module kinds without decay


@dataclass
class ScheduleSection:
    """Learning-rate schedule per optimiser step."""

    name: str = "poly"  # poly | cosine | constant
    warmup_steps: int = 0
    warmup_factor: float = 0.001
    power: float = 0.9
    min_lr_ratio: float = 0.0


@dataclass
class TrainerSection:
    """Steps, precision, devices and fault tolerance."""

    max_steps: int = 20000
    grad_clip: float | None = 0.01  # full-model L2 norm, as the official CLIP_TYPE full_model
    precision: str = "32-true"  # 32-true | bf16-mixed | 16-mixed | auto
    accumulate_grad_batches: int = 1
    seed: int = 12345678
    deterministic: bool = False
    log_every_n_steps: int = 20
    checkpoint_every: int = 1000
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | fsdp | ddp_spawn ...
    find_unused_parameters: bool = False
    loggers: list[str] = field(default_factory=lambda: ["csv", "tensorboard"])
    progress_bar: bool = True


@dataclass
class EvalSection:
    """Evaluation during training, with ovparts' evaluator."""

    protocol: str = "oracle_obj"
    average: str = "ovparts"
    every: int = 1000  # optimiser steps between evaluations; 0 = never
    limit: int | None = None  # images per evaluation (None = the whole split)


@dataclass
class Recipe:
    """A whole training run."""

    name: str = "run"
    out_dir: str = "runs/${name}"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    trainer: TrainerSection = field(default_factory=TrainerSection)
    eval: EvalSection = field(default_factory=EvalSection)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["optim"]["betas"] = list(values["optim"]["betas"])
        return values

    @property
    def output_dir(self) -> Path:
        return Path(self.out_dir.replace("${name}", self.name))

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)


SECTIONS = {
    "model": ModelSection,
    "data": DataSection,
    "optim": OptimSection,
    "schedule": ScheduleSection,
    "trainer": TrainerSection,
    "eval": EvalSection,
}


def _yaml():
    try:
        import yaml
    except ImportError as err:  # pragma: no cover - the train extra installs it
        raise ConfigError("Training recipes need PyYAML: pip install 'ovparts[train]'.") from err
    return yaml


_LOADER = None


def _loader():
    """A SafeLoader that reads ``2e-4`` as a float: YAML 1.1 wants ``2.0e-4`` and would give a string."""
    global _LOADER
    if _LOADER is None:
        import re

        yaml = _yaml()

        class RecipeLoader(yaml.SafeLoader):
            pass

        RecipeLoader.add_implicit_resolver(
            "tag:yaml.org,2002:float",
            re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
            list("-+0123456789"),
        )
        _LOADER = RecipeLoader
    return _LOADER


def _load_yaml(text: str) -> Any:
    return _yaml().load(text, Loader=_loader())


def recipe_names() -> list[str]:
    """Names of the shipped recipes, as ``ovparts train NAME`` takes them (``base/`` files excluded)."""
    return sorted(p.name.removesuffix(".yaml") for p in RECIPE_DIR.glob("*.yaml"))


def find_recipe(name: str | Path) -> Path:
    """A path as given, or the name of a recipe shipped in ``ovparts/recipes/`` (``.yaml`` optional)."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (RECIPE_DIR / f"{name}.yaml", RECIPE_DIR / str(name)):
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"The recipe {str(name)!r} is neither a file nor a recipe shipped with ovparts "
        f"({', '.join(recipe_names())})."
    )


def read_yaml_tree(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The recipe file merged over its ``base:`` (resolved relative to the file), recursively."""
    path = path.resolve()
    if path in chain:
        raise ConfigError(f"The recipe {path} includes itself through 'base:'.")
    try:
        values = _load_yaml(path.read_text(encoding="utf-8")) or {}
    except (OSError, _yaml().YAMLError) as err:
        raise ConfigError(f"The recipe {str(path)!r} could not be read as YAML ({err}).") from err
    except RecursionError:
        raise ConfigError(f"The recipe {str(path)!r} is nested too deeply to be a recipe.") from None
    if not isinstance(values, dict):
        raise ConfigError(f"The recipe {str(path)!r} must hold a mapping of sections.")
    base = values.pop("base", None)
    if base is None:
        return values
    return deep_merge(read_yaml_tree(path.parent / base, (*chain, path)), values)


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts merge key by key; any other value (lists included) replaces the base value."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=2e-4"`` -> (["optim", "lr"], 0.0002); the value is read as YAML (numbers, lists, null)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"The override {text!r} is not of the form section.key=value.")
    value = _load_yaml(raw) if raw.strip() else None
    return key.strip().split("."), value


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Dotted ``key=value`` overrides on top of the recipe tree."""
    values = copy.deepcopy(values)
    for text in overrides:
        path, value = parse_override(text)
        node = values
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"The override {text!r} goes inside {part!r}, which is not a section.")
            node = child
        node[path[-1]] = value
    return values


def _section(cls: type, values: Any, where: str) -> Any:
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise ConfigError(f"The recipe section {where!r} must be a mapping.")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"Unknown recipe key {where}.{unknown[0]}; known keys of {where}: {', '.join(sorted(known))}."
        )
    # every value against its field's type, so a wrong one is named here and not deep inside a run
    check_dataclass_values(cls, values, where, ConfigError)
    return cls(**values)


def recipe_from_dict(values: dict[str, Any]) -> Recipe:
    """Typed recipe from a plain tree; unknown sections or keys are refused."""
    known = {"name", "out_dir", *SECTIONS}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"Unknown recipe section {unknown[0]!r}; known sections: {', '.join(sorted(known))}."
        )
    for key in ("name", "out_dir"):
        if key in values and not isinstance(values[key], str | int):
            raise ConfigError(f"The recipe's {key!r} must be a string.")
    sections = {key: _section(cls, values.get(key), key) for key, cls in SECTIONS.items()}
    recipe = Recipe(
        name=str(values.get("name", "run")), out_dir=str(values.get("out_dir", "runs/${name}")), **sections
    )
    recipe.optim.betas = tuple(recipe.optim.betas)
    validate(recipe)
    return recipe


def validate(recipe: Recipe) -> None:
    """Refuse values that would only fail deep inside a run."""
    if recipe.trainer.max_steps < 1:
        raise ConfigError("trainer.max_steps must be at least 1.")
    if recipe.data.batch_size < 1:
        raise ConfigError("data.batch_size must be at least 1.")
    if recipe.data.classes not in ("seen", "all"):
        raise ConfigError(f"data.classes must be 'seen' or 'all', not {recipe.data.classes!r}.")
    if recipe.schedule.name not in ("poly", "cosine", "constant"):
        raise ConfigError(f"schedule.name must be poly, cosine or constant, not {recipe.schedule.name!r}.")
    if recipe.trainer.checkpoint_every < 0 or recipe.eval.every < 0:
        raise ConfigError("trainer.checkpoint_every and eval.every must be >= 0 (0 = never).")


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe file (or a shipped recipe's name), apply ``key=value`` overrides, validate."""
    tree = read_yaml_tree(find_recipe(path))
    return recipe_from_dict(apply_overrides(tree, list(overrides)))
