"""What every ovparts model shares: a dataclass config, safetensors checkpoints, and one inference contract.

A model turns pre-processed pixels and a `Vocabulary` into `PartLogits`; the `Segmenter` turns those into
label maps with a protocol (Oracle-Obj / Pred-All). Keeping that seam narrow is what lets a new method plug in
without touching the CLI, the evaluator or the server.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import save_file
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..hub import load_state_dict, resolve_weights
from ..imageio import atomic_write
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
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"Unknown {cls.__name__} option {unknown[0]!r}; known options: {', '.join(sorted(known))}."
            )
        return cls(**values)

    def replace(self, **changes: Any) -> ModelConfig:
        return self.from_dict({**self.to_dict(), **changes})


class PartSegModel(nn.Module):
    """Base class: subclasses set ``name``, ``config_class`` and implement ``predict`` and ``preprocess``."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[ModelConfig]] = ModelConfig

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config

    # ------------------------------------------------------------------ inference contract
    @property
    def preprocess(self) -> Preprocess:
        raise NotImplementedError

    def predict(self, pixel_values: torch.Tensor, vocab: Vocabulary) -> PartLogits:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def compile_targets(self) -> list[nn.Module]:
        """The submodules worth ``torch.compile``: the per-image encoders and the per-class head.

        Each one's ``forward`` must be the hot path it stands for (text encoding stays out: it is cached per
        vocabulary). :func:`ovparts.compiling.compile_model` compiles them in place. The base class offers
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
        try:
            stored = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise CheckpointError(f"The config.json in {str(folder)!r} is not valid JSON.") from err
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
        model = cls._build_for_checkpoint(config, folder)
        model.load_checked_state_dict(load_state_dict(folder), source=str(folder))
        return model.eval()

    @classmethod
    def _build_for_checkpoint(cls, config: ModelConfig, folder: Path) -> PartSegModel:
        return cls(config)

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
        missing = [k for k in own if k not in state and not k.startswith(allow_missing)]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            detail = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
            raise CheckpointError(
                f"The weights in {source!r} do not fit the {self.name} config "
                f"({len(missing)} missing, {len(unexpected)} unexpected keys, e.g. {detail})."
            )
        for key, tensor in state.items():
            if tuple(tensor.shape) != tuple(own[key].shape):
                raise CheckpointError(
                    f"The tensor {key!r} in {source!r} has shape {tuple(tensor.shape)}, "
                    f"but the config needs {tuple(own[key].shape)}."
                )
            if tensor.is_floating_point() != own[key].is_floating_point():
                raise CheckpointError(
                    f"The tensor {key!r} in {source!r} has dtype {tensor.dtype}, expected {own[key].dtype}."
                )
        self.load_state_dict(state, strict=not allow_missing)
