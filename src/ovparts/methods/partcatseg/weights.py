"""PartCATSeg's published checkpoints (Google Drive, linked from the authors' README), one per benchmark.

Converted with ``faithful=True`` (OpenAI fp16 text, the official class order), what the weights were trained
with.
"""

from __future__ import annotations

from ...weights.catalog import PublishedWeights, Source


def _entry(benchmark: str, drive_id: str, filename: str, title: str, size: str | None) -> PublishedWeights:
    return PublishedWeights(
        "partcatseg",
        benchmark,
        Source("gdrive", drive_id, filename),
        f"PartCATSeg, zero-shot, {title}.",
        trained_on=benchmark,
        class_order=f"{title}, official order (faithful)",
        licence="MIT",
        tokenizer="openai/clip-vit-base-patch16",
        size=size,
    )


PUBLISHED: tuple[PublishedWeights, ...] = (
    _entry(
        "pascal_part_116",
        "1JUJjJQLMKE96H5SLNs4EMm4jiU6fPgRb",
        "partcatseg_voc.pth",
        "Pascal-Part-116",
        "885 MB",
    ),
    _entry(
        "ade20k_part_234",
        "1MKQEk71o9Xvs4aBY_GLyGa1lWTaW10fv",
        "partcatseg_ade.pth",
        "ADE20K-Part-234",
        "885 MB",
    ),
    _entry(
        "partimagenet",
        "1zvV6achGzDS_tAwulaSkFYblMTghMHO6",
        "partcatseg_partimagenet_seg.pth",
        "PartImageNet (Seg)",
        None,
    ),
)
