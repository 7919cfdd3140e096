"""CLIPSeg (Lüddecke & Ecker, CVPR 2022), the OV-PARTS baseline: config, model, losses, converter, peers."""

from ...models.registry import register_model
from .config import CONFIGS
from .convert import CONVERTER
from .model import ClipSeg
from .peers import PEERS
from .weights import PUBLISHED

SPEC = register_model(
    ClipSeg.name,
    ClipSeg,
    CONFIGS,
    default_weights="CIDAS/clipseg-rd64-refined",
    description="CLIPSeg rd64-refined (Lüddecke & Ecker, CVPR 2022), the OV-PARTS baseline.",
    config_notes={
        "default": "random weights, rd64-refined's architecture (ViT-B/16, 352 px)",
        "ov-parts": "random weights, rd64-refined + the OV-PARTS visual adapter and non-object vector",
        "tiny": "random weights, a few small layers (tests)",
    },
    sizes={"native": "default", "tiny": "tiny"},
    peers=PEERS,
    converter=CONVERTER,
    published=PUBLISHED,
)
