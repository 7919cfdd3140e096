"""CAT-Seg's published checkpoints: the CVPR 2024 release (a Hugging Face space) and the old release (hub).

The old ViT-B/16 file (``model_final_base.pth``) is also the initialisation of PartCATSeg and of the OV-PARTS
CATSeg baseline. The OV-PARTS CATSeg baselines trained on the part benchmarks are listed too. The old L, H and
G files use a Swin-B guidance backbone that ovparts does not implement: listed, not convertible.
"""

from __future__ import annotations

from ...weights.catalog import PublishedWeights, Source

TOKENIZER = "openai/clip-vit-base-patch16"  # OpenAI's CLIP BPE, the same for every CLIP size
SWIN = "its Swin-B guidance backbone is not implemented in ovparts"


def _entry(name: str, source: Source, description: str, **fields) -> PublishedWeights:
    values = {
        "trained_on": "COCO-Stuff-171",
        "class_order": "COCO-Stuff-171 (object-level; any vocabulary at test time)",
        "licence": "MIT",
        "tokenizer": TOKENIZER,
        **fields,
    }
    return PublishedWeights("catseg", name, source, description, **values)


PUBLISHED: tuple[PublishedWeights, ...] = (
    _entry(
        "vit-b",
        Source("hub", "hamacojr/CAT-Seg-weights", "model_base.pth", repo_type="space"),
        "CAT-Seg (B), CVPR 2024 release: CLIP ViT-B/16.",
    ),
    _entry(
        "vit-l",
        Source("hub", "hamacojr/CAT-Seg-weights", "model_large.pth", repo_type="space"),
        "CAT-Seg (L), CVPR 2024 release: CLIP ViT-L/14 at 336.",
    ),
    _entry(
        "vit-b-old",
        Source("hub", "hamacojr/CAT-Seg", "model_final_base.pth"),
        "CAT-Seg (B), old release: CLIP ViT-B/16 + ResNet-101 guidance; PartCATSeg's initialisation.",
    ),
    _entry(
        "vit-l-old",
        Source("hub", "hamacojr/CAT-Seg", "model_final_large.pth"),
        "CAT-Seg (L), old release: CLIP ViT-L/14 + Swin-B guidance.",
        unsupported=SWIN,
    ),
    _entry(
        "vit-h-old",
        Source("hub", "hamacojr/CAT-Seg", "model_final_huge.pth"),
        "CAT-Seg (H), old release: OpenCLIP ViT-H/14 + Swin-B guidance.",
        unsupported=SWIN,
    ),
    _entry(
        "vit-g-old",
        Source("hub", "hamacojr/CAT-Seg", "model_final_giant.pth"),
        "CAT-Seg (G), old release: OpenCLIP ViT-G/14 + Swin-B guidance.",
        unsupported=SWIN,
    ),
    _entry(
        "ov-parts-pascal_part_116",
        Source("gdrive", "11OOO5NmJkkeJl5oTbxbTZUgFyFXSKVRZ", "catseg_ovparts_voc.pth"),
        "OV-PARTS CATSeg baseline, zero-shot, trained on Pascal-Part-116 from the old CAT-Seg (B).",
        trained_on="pascal_part_116",
        class_order="Pascal-Part-116 (OV-PARTS table order)",
        licence="none stated (OV-PARTS repository)",
    ),
    _entry(
        "ov-parts-ade20k_part_234",
        Source("gdrive", "1jvGQtftwRuzbFnphQXftosdL_YDwMWAx", "catseg_ovparts_ade.pth"),
        "OV-PARTS CATSeg baseline, zero-shot, trained on ADE20K-Part-234 from the old CAT-Seg (B).",
        trained_on="ade20k_part_234",
        class_order="ADE20K-Part-234 (OV-PARTS table order)",
        licence="none stated (OV-PARTS repository)",
    ),
)
