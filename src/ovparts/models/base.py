"""What every ovparts model shares: a dataclass config, safetensors checkpoints, and one inference contract.

A model turns pre-processed pixels and a `Vocabulary` into `PartLogits`; the `Segmenter` turns those into
label maps with a protocol (Oracle-Obj / Pred-All). Keeping that seam narrow is what lets a new method plug in
without touching the CLI, the evaluator or the server.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import save_file
from torch import nn

from .. import limits
from ..checkpoint_files import TensorSpec
from ..config_checks import check_config_tree, check_dataclass_values, read_config_file
from ..errors import CheckpointError, ConfigError, OvpartsError
from ..hub import checkpoint_specs, load_state_dict, resolve_weights
from ..output_files import atomic_write
from ..vocabulary import Vocabulary

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Preprocess:
    """How the Segmenter must prepare pixels for this model and bring its output back (the test-time chain).

    Two chains exist (``ovparts.preprocessing`` implements their steps):

    - ``shortest_edge=None`` (transformers' CLIPSeg processor): PIL bilinear resize of the uint8 photo straight
      to ``size``, aspect ignored, then normalisation.
    - ``shortest_edge`` set (detectron2's test mapper, CAT-Seg / PartCATSeg): PIL bilinear resize so the
      short edge is ``shortest_edge`` and the long edge at most ``max_size``, then normalisation. That image
      is the network input: the model zero-pads it to a multiple of ``size_divisibility`` and interpolates it
      (torch bilinear) to each encoder's size. The sliding window cuts its canvas and global view from it.

    ``activation_before_resize``: the sigmoid is applied at the network's output resolution and the
    probabilities are resized to the photo (CAT-Seg, PartCATSeg); otherwise the logits are resized first.
    """

    size: tuple[int, int]  # (height, width) of the network (or of one sliding window)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    shortest_edge: int | None = None
    max_size: int | None = None
    size_divisibility: int = 0
    activation_before_resize: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for export metadata and the server's model description)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SegmenterDefaults:
    """The Segmenter options a model chooses for its users (each one a Segmenter argument can override).

    ``background_threshold``: without a background channel, a pixel is background where no part's
    probability reaches it. ``sliding_window``: whether the Segmenter runs the sliding-window evaluation by
    default: the image interpolated to ``sliding_canvas`` squared, covered by windows of
    ``sliding_window_size`` (None: the model's input size) overlapping by ``sliding_overlap``, plus a global
    view (CAT-Seg's official evaluation). The serving budget reads the same fields to bound the work per image.
    """

    background_threshold: float = 0.5
    sliding_window: bool = False
    sliding_canvas: int = 640
    sliding_overlap: float = 0.333
    sliding_window_size: int | None = None


@dataclass
class PartLogits:
    """Per-class logits at network resolution.

    ``parts`` follows ``vocab.parts``; ``background`` is the "no part" channel when the model has one
    (otherwise the Segmenter thresholds part scores); ``objects`` follows ``vocab.objects`` when the model
    predicts objects itself (PartCLIPSeg, PartCATSeg), and ``object_background`` is that object head's
    "no object" channel. With ``objects``, Pred-All takes each pixel's object from the object head and its
    part from that object's parts only.
    """

    parts: torch.Tensor
    background: torch.Tensor | None = None
    objects: torch.Tensor | None = None
    activation: str = "sigmoid"
    extras: dict[str, Any] = field(default_factory=dict)
    object_background: torch.Tensor | None = None


@dataclass
class ModelConfig:
    """Base of the per-method configs; subclasses add fields. Serialised verbatim into config.json."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """A config from a plain tree, every value checked (type, size, depth) before anything uses it."""
        if not isinstance(values, dict):
            raise ConfigError(f"A {cls.__name__} must be a mapping of options, not {type(values).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"Unknown {cls.__name__} option {unknown[0]!r}; known options: {', '.join(sorted(known))}."
            )
        check_dataclass_values(cls, values, cls.__name__, ConfigError)
        for key, value in values.items():
            if isinstance(value, dict) and not value:
                raise ConfigError(f"The section {cls.__name__}.{key} is empty.")
        check_config_tree(values, cls.__name__, ConfigError)
        return cls(**values)

    def replace(self, **changes: Any) -> ModelConfig:
        return self.from_dict({**self.to_dict(), **changes})


class PartSegModel(nn.Module):
    """Base class of every method: what the Segmenter, the trainer, the benchmark and the server call.

    Subclasses set ``name`` and ``config_class`` and implement ``preprocess``, ``predict``,
    ``encode_image``, ``encode_vocabulary`` and ``training_loss``; ``segmenter_defaults`` and
    ``compile_targets`` have defaults. Nothing outside the method's folder reaches past this contract.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    # True when each class's logits depend only on the image and that class (no attention across classes):
    # Oracle-Obj then runs only the parts of the objects present (ovparts.evaluation.restriction).
    independent_classes: bool = False

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config

    # ------------------------------------------------------------------ inference contract
    @property
    def preprocess(self) -> Preprocess:
        raise NotImplementedError

    def predict(self, pixel_values: torch.Tensor, vocab: Vocabulary) -> PartLogits:
        """Logits of ``vocab`` for a batch of pre-processed images (``preprocess`` says how to prepare them)."""
        raise NotImplementedError

    def encode_image(self, pixel_values: torch.Tensor) -> Any:
        """The per-image encoder work ``predict`` starts with (what benchmarks time as the image cost)."""
        raise NotImplementedError

    def encode_vocabulary(self, vocab: Vocabulary) -> Any:
        """The text side of ``predict`` for ``vocab``, cached per vocabulary (what the text-cost figures count).

        The module that runs the text encoder keeps its embeddings in a
        :class:`~ovparts.text.cache.TextEmbeddingCache` (the server bounds its bytes) and in
        ``ovparts.text.disk_cache`` (for the next process), offers ``clear_text_cache()`` and counts its actual
        runs in ``text_encoder_calls`` (the contract test checks that a cached vocabulary runs nothing)."""
        raise NotImplementedError

    def clear_vocabulary_cache(self) -> None:
        """Forget every vocabulary encoding held in memory, as a new process would start.

        The next ``encode_vocabulary`` reads the on-disk text cache where it holds the entry
        (``ovparts.text.disk_cache``), and pays the full encoder cost inside ``disk_cache.disabled()``.

        Clears each submodule that offers ``clear_text_cache()`` (the CLIP backbone's embedding cache)."""
        for module in self.modules():
            clear = getattr(module, "clear_text_cache", None)
            if module is not self and callable(clear):
                clear()

    def training_loss(
        self, batch: dict[str, torch.Tensor], vocab: Vocabulary, ignore_index: int, **options: Any
    ) -> dict[str, torch.Tensor]:
        """The method's training loss for one batch: named scalar terms, the optimised sum under ``"total"``.

        ``batch`` holds ``pixel_values`` (B, 3, H, W) normalised as ``preprocess`` says, ``part_labels`` and
        ``object_labels`` (B, H, W) ids into ``vocab.parts`` / ``vocab.objects`` with ``ignore_index`` where
        unlabelled. ``options`` are the recipe's ``model.loss_options``.
        """
        raise NotImplementedError(f"{type(self).__name__} has no training loss.")

    @property
    def segmenter_defaults(self) -> SegmenterDefaults:
        """The Segmenter options this model asks for by default (threshold, sliding window)."""
        return SegmenterDefaults()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def compile_targets(self) -> list[nn.Module]:
        """The submodules worth ``torch.compile``: the per-image encoders and the per-class head.

        Each one's ``forward`` must be the hot path it stands for (text encoding stays out: it is cached per
        vocabulary). :func:`ovparts.runtime.compiling.compile_model` compiles them in place. The base class offers
        none, so a model that names no targets runs eagerly.
        """
        return []

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """safetensors weights + config.json (+ tokenizer files), the huggingface_hub folder convention."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        atomic_write(folder / "model.safetensors", lambda tmp: save_file(state, str(tmp)))
        config = {"ovparts_model": self.name, **self.config.to_dict()}
        atomic_write(folder / "config.json", lambda tmp: tmp.write_text(json.dumps(config, indent=2)))
        self._save_extras(folder)
        return folder

    def _save_extras(self, folder: Path) -> None:
        """Hook for tokenizers and other files a checkpoint folder must carry."""

    @classmethod
    def from_pretrained(
        cls, weights: str | os.PathLike, overrides: dict[str, Any] | None = None, revision: str | None = None
    ) -> PartSegModel:
        folder = resolve_weights(weights, revision=revision)
        stored = read_config_file(folder / "config.json", "checkpoint config", CheckpointError)
        if not isinstance(stored, dict):
            raise CheckpointError(f"The config.json in {str(folder)!r} is not a JSON object.")
        kind = stored.pop("ovparts_model", None)
        if kind is None:
            return cls._from_foreign(folder, stored, overrides or {})
        if kind != cls.name:
            raise CheckpointError(
                f"The checkpoint in {str(folder)!r} holds a {kind!r} model, not {cls.name!r}; "
                f"load it with --model {kind}."
            )
        config = cls.config_class.from_dict({**stored, **(overrides or {})})
        model = cls.checked_build(config, folder, checkpoint_specs(folder))
        model.load_checked_state_dict(load_state_dict(folder), source=str(folder))
        return model.eval()

    @classmethod
    def _build_for_checkpoint(cls, config: ModelConfig, folder: Path) -> PartSegModel:
        return cls(config)

    @classmethod
    def _build_on_meta(cls, config: ModelConfig, folder: Path | None) -> PartSegModel:
        """Hook: build without side effects (no weight downloads) for the meta-device probe."""
        return cls._build_for_checkpoint(config, folder) if folder is not None else cls(config)

    @classmethod
    def checked_build(
        cls,
        config: ModelConfig,
        folder: Path | None = None,
        specs: dict[str, TensorSpec] | None = None,
        allow_missing: tuple[str, ...] = (),
        rename: Callable[[dict], dict] | None = None,
    ) -> PartSegModel:
        """Build the model only once its size is known to be bounded and, with a checkpoint, to fit it.

        The model is first built on the ``meta`` device (shapes, no memory): its parameter bytes are
        checked against ``limits.MAX_MODEL_BYTES`` and its tensors against ``specs``, the tensors the
        checkpoint declares (``rename`` maps the checkpoint's names to ours). Only then is it built for real.
        """
        source = str(folder) if folder is not None else "the given config"
        try:
            with torch.device("meta"):
                probe = cls._build_on_meta(config, folder)
        except OvpartsError:
            raise
        except Exception as err:  # noqa: BLE001 - any constructor failure is the config's fault
            detail = (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(".")
            raise ConfigError(
                f"The {cls.name} config of {source} does not describe a buildable model "
                f"({type(err).__name__}: {detail[:200]})."
            ) from None
        own = {k: TensorSpec(tuple(v.shape), v.is_floating_point()) for k, v in probe.state_dict().items()}
        limits.check_model_bytes(probe, f"The {cls.name} config of {source}")
        del probe
        if specs is not None:
            check_tensor_specs(own, rename(specs) if rename else specs, source, cls.name, allow_missing)
        return cls._build_for_checkpoint(config, folder) if folder is not None else cls(config)

    @classmethod
    def _from_foreign(cls, folder: Path, stored: dict[str, Any], overrides: dict[str, Any]) -> PartSegModel:
        raise CheckpointError(
            f"The checkpoint in {str(folder)!r} is not an ovparts {cls.name} checkpoint (config.json has no "
            "'ovparts_model'); convert official checkpoints with `ovparts convert`."
        )

    def load_checked_state_dict(
        self, state: dict[str, torch.Tensor], source: str, allow_missing: tuple[str, ...] = ()
    ) -> None:
        """Load with shape checks; missing or unexpected keys are refused with one sentence."""
        own = self.state_dict()
        check_tensor_specs(
            {k: TensorSpec(tuple(v.shape), v.is_floating_point()) for k, v in own.items()},
            {k: TensorSpec(tuple(v.shape), v.is_floating_point()) for k, v in state.items()},
            source,
            self.name,
            allow_missing,
        )
        self.load_state_dict(state, strict=not allow_missing)


def check_tensor_specs(
    own: dict[str, TensorSpec],
    given: dict[str, TensorSpec],
    source: str,
    model: str,
    allow_missing: tuple[str, ...] = (),
) -> None:
    """The checkpoint's tensors (``given``) against the model's (``own``): names, shapes, kinds."""
    missing = [k for k in own if k not in given and not k.startswith(allow_missing)]
    unexpected = [k for k in given if k not in own]
    if missing or unexpected:
        detail = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise CheckpointError(
            f"The weights in {source!r} do not fit the {model} config "
            f"({len(missing)} missing, {len(unexpected)} unexpected keys, e.g. {detail})."
        )
    for key, spec in given.items():
        if spec.shape != own[key].shape:
            raise CheckpointError(
                f"The tensor {key!r} in {source!r} has shape {spec.shape}, but the config needs {own[key].shape}."
            )
        if spec.floating != own[key].floating:
            kind = "floating point" if own[key].floating else "integer"
            raise CheckpointError(f"The tensor {key!r} in {source!r} is not {kind}, as the model needs.")
