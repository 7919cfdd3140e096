"""Colour overlays with a legend, so a person can check a part map at a glance."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .vocabulary import Vocabulary

LEGEND_ROW = 18
LEGEND_PAD = 6


def palette(count: int) -> np.ndarray:
    """(count, 3) uint8 colours, well separated in hue and stable for a given id."""
    golden = 0.618033988749895
    colours = []
    for index in range(count):
        hue = (index * golden) % 1.0
        saturation = 0.65 + 0.35 * ((index // 7) % 2)
        value = 0.95 - 0.25 * ((index // 3) % 2)
        colours.append([round(255 * c) for c in colorsys.hsv_to_rgb(hue, saturation, value)])
    return np.array(colours, dtype=np.uint8).reshape(count, 3)


def colorize(part_map: np.ndarray, count: int) -> np.ndarray:
    """(H, W, 3) colours for a label map; -1 (no part) is black."""
    colours = np.concatenate([np.zeros((1, 3), np.uint8), palette(count)])
    return colours[part_map + 1]


def overlay(image: Image.Image, part_map: np.ndarray, vocab: Vocabulary, alpha: float = 0.55) -> Image.Image:
    """The photo with parts tinted, and a legend panel naming every part present with its colour."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    colours = colorize(part_map, len(vocab)).astype(np.float32)
    mask = (part_map >= 0)[..., None]
    blended = np.where(mask, (1 - alpha) * rgb + alpha * colours, rgb).astype(np.uint8)
    picture = Image.fromarray(blended)
    present = [int(i) for i in np.unique(part_map) if i >= 0]
    if not present:
        return picture
    font = ImageFont.load_default()
    names = [vocab.parts[i].name for i in present]
    probe = ImageDraw.Draw(picture)
    text_width = max(probe.textlength(name, font=font) for name in names)
    width = int(text_width) + LEGEND_ROW + 3 * LEGEND_PAD
    height = max(picture.height, LEGEND_PAD * 2 + LEGEND_ROW * len(present))
    canvas = Image.new("RGB", (picture.width + width, height), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    table = palette(len(vocab))
    for row, (pid, name) in enumerate(zip(present, names, strict=True)):
        top = LEGEND_PAD + row * LEGEND_ROW
        left = picture.width + LEGEND_PAD
        draw.rectangle(
            [left, top + 2, left + LEGEND_ROW - 6, top + LEGEND_ROW - 4], fill=tuple(table[pid].tolist())
        )
        draw.text((left + LEGEND_ROW, top + 3), name, fill=(0, 0, 0), font=font)
    return canvas


def no_part_value(num_parts: int) -> int:
    """The label-map value meaning "no part": 255 while every id fits below it (up to 254 parts), else 65535.

    It follows the vocabulary's size, not the ids that happen to occur, so every image segmented with one
    vocabulary gets the same bit depth and the same no-part value.
    """
    return 255 if num_parts < 255 else 65535


def label_png(part_map: np.ndarray, num_parts: int | None = None) -> Image.Image:
    """Part ids as a PNG: 8-bit with 255 = no part for vocabularies of up to 254 parts, else 16-bit with
    65535 = no part (see :func:`no_part_value`). Without ``num_parts`` the largest id present decides."""
    if num_parts is None:
        num_parts = 0 if part_map.max(initial=-1) < 255 else 65535
    no_part = no_part_value(num_parts)
    dtype = np.uint8 if no_part == 255 else np.uint16
    return Image.fromarray(np.where(part_map >= 0, part_map, no_part).astype(dtype))
