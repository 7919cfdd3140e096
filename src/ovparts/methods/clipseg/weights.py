"""CLIPSeg's published checkpoints: rd64-refined on the hub (native format) and the OV-PARTS baselines.

The OV-PARTS files add a visual adapter and a learned non-object vector (the ``ov-parts`` config).
"""

from __future__ import annotations

from ...weights.catalog import PublishedWeights, Source

TOKENIZER = "CIDAS/clipseg-rd64-refined"
OV_PARTS = {
    "trained_on": "",
    "class_order": "",
    "licence": "none stated (OV-PARTS repository)",
    "tokenizer": TOKENIZER,
    "convert": {"base_config": "ov-parts"},
}


def _ov_parts(name: str, drive_id: str, filename: str, setting: str, benchmark: str, size=None):
    fields = {**OV_PARTS, "trained_on": benchmark, "class_order": f"{benchmark} (OV-PARTS table order)"}
    return PublishedWeights(
        "clipseg",
        name,
        Source("gdrive", drive_id, filename),
        f"OV-PARTS CLIPSeg baseline, {setting}, on {benchmark}.",
        size=size,
        **fields,
    )


PUBLISHED: tuple[PublishedWeights, ...] = (
    PublishedWeights(
        "clipseg",
        "rd64-refined",
        Source("hub", "CIDAS/clipseg-rd64-refined", "model.safetensors"),
        "CLIPSeg rd64-refined (Lüddecke & Ecker), the transformers checkpoint; loaded as it is.",
        trained_on="PhraseCut",
        class_order="none (free text)",
        licence="Apache-2.0",
        tokenizer=TOKENIZER,
        native=True,
    ),
    _ov_parts(
        "ov-parts-pascal_part_116",
        "1WkCu3-KA2Oho5xzBXDR_HUmBvvKKYSQM",
        "clipseg_ft_VA_L_F_voc.pth",
        "zero-shot",
        "pascal_part_116",
        size="810 MB",
    ),
    _ov_parts(
        "ov-parts-ade20k_part_234",
        "1Ydh1wn1H8TPVrO24TaAIUMMLhqAPXH-W",
        "clipseg_ft_VA_L_F_ade.pth",
        "zero-shot",
        "ade20k_part_234",
    ),
    _ov_parts(
        "ov-parts-fewshot-pascal_part_116",
        "1WPDoc4igtDQ9H46Wwp4aaHXgu4gMNICO",
        "clipseg_fewshot_voc.pth",
        "few-shot",
        "pascal_part_116",
    ),
    _ov_parts(
        "ov-parts-fewshot-ade20k_part_234",
        "1LCCBCgRqqerf2ZYLfClm4a_hP8dWZGzv",
        "clipseg_fewshot_ade.pth",
        "few-shot",
        "ade20k_part_234",
    ),
    _ov_parts(
        "ov-parts-cross-ade20k_part_234",
        "1G5SMWhZ0UwAiW2CvEDXpxPhfksN33hKp",
        "clipseg_cross_dataset_ade.pth",
        "cross-dataset",
        "ade20k_part_234",
    ),
)
