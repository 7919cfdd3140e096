"""PartCATSeg (Choi et al., 2025) on CAT-Seg + DINOv2: config, model, losses, converter, peers."""

from ...models.registry import register_model
from .config import CONFIGS
from .convert import CONVERTER
from .model import PartCatSeg
from .peers import PEERS
from .weights import PUBLISHED

SPEC = register_model(
    PartCatSeg.name,
    PartCatSeg,
    CONFIGS,
    default_weights=None,
    description="PartCATSeg (Choi et al., 2025): object-aware part cost aggregation on CAT-Seg + DINOv2.",
    config_notes={
        "default": "random weights, CLIP ViT-B/16 + DINOv2-S, corrected behaviour",
        "official": "random weights, CLIP ViT-B/16 + DINOv2-S, the official code's behaviour",
        "tiny": "random weights, a few small layers (tests)",
        "tiny-official": "random weights, a few small layers, the official code's behaviour (tests)",
    },
    sizes={"native": "default", "tiny": "tiny"},
    peers=PEERS,
    profiled=True,
    converter=CONVERTER,
    published=PUBLISHED,
)
