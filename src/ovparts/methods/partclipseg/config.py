"""PartCLIPSeg's config: CLIPSeg's plus the official loss weights and the faithful switch; named configs."""

from __future__ import annotations

from dataclasses import dataclass

from ..clipseg.config import RD64_REFINED, TINY_CLIPSEG, ClipSegConfig, architecture_config


@dataclass
class PartClipSegConfig(ClipSegConfig):
    # PartCLIPSeg always carries the OV-PARTS patches.
    visual_adapter: bool = True
    non_object_embedding: bool = True
    # True: what the published weights depend on (sorted class order, the object-embedding index quirk,
    # BGR training input, the official attention/BCE loss quirks). False: the corrected behaviour.
    faithful: bool = False
    # Loss weights and attention-control settings of the official configs.
    object_weight: float = 1.0
    part_weight: float = 1.0
    separation_weight: float = 0.1
    enhancement_weight: float = 0.01
    attention_threshold: float = 0.3
    smoothing_sigma: float = 0.5
    separation_temperature: float = 0.05
    background_weight: float = 0.05
    use_attention_losses: bool = True


# Named configs: all build RANDOMLY initialised models (rd64-refined's architecture, or a tiny one for tests)
# with the built-in tiny tokenizer; published weights come through `ovparts convert partclipseg`.
CONFIGS = {
    "default": architecture_config(RD64_REFINED, tokenizer="tiny"),
    "faithful": architecture_config(RD64_REFINED, tokenizer="tiny", faithful=True),
    "tiny": architecture_config(TINY_CLIPSEG, image_size=64, tokenizer="tiny", class_chunk=8),
}
