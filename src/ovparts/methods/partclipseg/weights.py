"""PartCLIPSeg's published checkpoints (Google Drive, linked from the authors' README), one per benchmark.

The converter keeps the official class order and object-embedding index (``faithful=True``), which these
weights depend on.
"""

from __future__ import annotations

from ...weights.catalog import PublishedWeights, Source


def _entry(benchmark: str, drive_id: str, filename: str, title: str) -> PublishedWeights:
    return PublishedWeights(
        "partclipseg",
        benchmark,
        Source("gdrive", drive_id, filename),
        f"PartCLIPSeg, zero-shot (Oracle-Obj training), {title}.",
        trained_on=benchmark,
        class_order=f"{title}, official sorted order (faithful)",
        licence="MIT",
        tokenizer="CIDAS/clipseg-rd64-refined",
        size="829 MB",
        convert={"base_config": "default"},
    )


PUBLISHED: tuple[PublishedWeights, ...] = (
    _entry(
        "pascal_part_116",
        "1ytZpfutk__67GLwB-4jMClehJlnAzYFS",
        "partclipseg_voc_oracle.pth",
        "Pascal-Part-116",
    ),
    _entry(
        "ade20k_part_234",
        "10UTxrlamYq2rq3Uuv1GdOxpLy8f-QXoz",
        "partclipseg_ade_oracle.pth",
        "ADE20K-Part-234",
    ),
)
