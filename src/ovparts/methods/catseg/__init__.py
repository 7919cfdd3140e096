"""CAT-Seg (Cho et al., CVPR 2024), CVPR and old releases: config, model, losses, converter, peers."""

from ...models.registry import register_model
from .config import CONFIGS
from .convert import CONVERTER
from .model import CatSeg
from .peers import PEERS
from .weights import PUBLISHED

SPEC = register_model(
    CatSeg.name,
    CatSeg,
    CONFIGS,
    default_weights=None,
    description="CAT-Seg (Cho et al., CVPR 2024): cost aggregation over CLIP; CVPR and old releases.",
    config_notes={
        "default": "random weights, the CVPR ViT-B/16 architecture (same as vit-b)",
        "vit-b": "random weights, the CVPR ViT-B/16 architecture",
        "vit-l": "random weights, the CVPR ViT-L/14 (336 px) architecture",
        "vit-b-old": "random weights, the old release's ViT-B/16 + ResNet-101 architecture",
        "tiny": "random weights, a few small layers (tests)",
        "tiny-old": "random weights, a few small layers of the old release (tests)",
    },
    sizes={"native": "vit-b", "tiny": "tiny"},
    peers=PEERS,
    profiled=True,
    converter=CONVERTER,
    published=PUBLISHED,
)
