"""What every method reading text through CLIP shares: building its backbone and carrying its tokenizer.

CLIPSeg, CAT-Seg and PartCATSeg (and PartCLIPSeg through CLIPSeg) each hold a :class:`ClipBackbone` under
``self.backbone``; their checkpoint folders store the tokenizer files beside the weights, and a folder
without them falls back to the config's built-in tokenizer. One copy of that here instead of one per method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ..backbones.clip import ClipBackbone, build_clip, load_tokenizer
from ..errors import CheckpointError
from ..text.tiny_tokenizer import tiny_tokenizer_folder
from .base import ModelConfig, PartSegModel

TOKENIZER_FILES = ("vocab.json", "tokenizer.json")


def clip_backbone(config: Any, tokenizer_folder: str | Path | None, label: str) -> ClipBackbone:
    """The CLIP text + vision model ``config`` describes, with its tokenizer.

    ``tokenizer_folder`` None takes the built-in tiny tokenizer when the config says ``tokenizer="tiny"``
    (the random-weight configs); any other config must come with tokenizer files (a checkpoint's)."""
    if tokenizer_folder is None:
        if config.tokenizer != "tiny":
            raise CheckpointError(f"This {label} config needs a tokenizer folder; load it from a checkpoint.")
        tokenizer_folder = tiny_tokenizer_folder()
    clip = build_clip(config.text_config, config.vision_config, config.projection_dim)
    return ClipBackbone(clip, load_tokenizer(tokenizer_folder))


def tokenizer_in(folder: Path) -> Path | None:
    """``folder`` when it holds tokenizer files, else None."""
    return folder if any((folder / name).is_file() for name in TOKENIZER_FILES) else None


class ClipTextModel(PartSegModel):
    """A model whose ``backbone`` is a :class:`ClipBackbone`: its checkpoints carry the tokenizer files.

    ``checkpoint_build_options``: keyword arguments the constructor gets when building for a checkpoint
    (PartCATSeg: no DINO download, the checkpoint holds those weights).
    """

    checkpoint_build_options: ClassVar[dict[str, Any]] = {}
    backbone: ClipBackbone

    def _save_extras(self, folder: Path) -> None:
        self.backbone.tokenizer.save_pretrained(str(folder))

    @classmethod
    def _build_for_checkpoint(cls, config: ModelConfig, folder: Path) -> PartSegModel:
        return cls(config, tokenizer_folder=tokenizer_in(folder), **cls.checkpoint_build_options)
