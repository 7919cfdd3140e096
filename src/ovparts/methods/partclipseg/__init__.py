"""PartCLIPSeg (Choi et al., NeurIPS 2024) on CLIPSeg: config, model, losses, converter, peers."""

from ...models.registry import register_model
from .config import CONFIGS
from .convert import CONVERTER
from .model import PartClipSeg
from .peers import PEERS
from .weights import PUBLISHED

SPEC = register_model(
    PartClipSeg.name,
    PartClipSeg,
    CONFIGS,
    default_weights=None,
    description="PartCLIPSeg (Choi et al., NeurIPS 2024) on CLIPSeg rd64-refined; convert official weights.",
    config_notes={
        "default": "random weights, rd64-refined's architecture, corrected behaviour",
        "faithful": "random weights, rd64-refined's architecture, the official code's behaviour",
        "tiny": "random weights, a few small layers (tests)",
    },
    sizes={"native": "default", "tiny": "tiny"},
    peers=PEERS,
    converter=CONVERTER,
    published=PUBLISHED,
)
