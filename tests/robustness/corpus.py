"""A corpus of hostile and odd inputs, generated on the fly (no binary blobs in the repository).

Each case names what it is, how to build it, and what ovparts must do with it: give a correct result
("ok") or refuse with one sentence ("error").
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

OK, ERROR = "ok", "error"


@dataclass(frozen=True)
class ImageCase:
    name: str
    expect: str
    write: Callable[[Path], Path]  # writes the file into a folder, returns its path


@dataclass(frozen=True)
class ArrayCase:
    name: str
    expect: str
    build: Callable[[], np.ndarray]


@dataclass(frozen=True)
class VocabCase:
    name: str
    expect: str
    text: Callable[[], str]


def _photo() -> Image.Image:
    return Image.fromarray(data.chelsea()).resize((96, 64))


def _save(name: str, image: Callable[[], Image.Image], **kwargs) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        image().save(path, **kwargs)
        return path

    return write


def _bytes(name: str, payload: Callable[[], bytes]) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(payload())
        return path

    return write


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    _photo().save(buffer, format=fmt)
    return buffer.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


def decompression_bomb(width: int = 40_000, height: int = 40_000) -> bytes:
    """A valid PNG header announcing 1.6 gigapixels, with almost no data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row_data = zlib.compress(b"\x00" * (width + 1))  # one row; a decoder would need height of them
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", row_data)
        + _png_chunk(b"IEND", b"")
    )


def _exif_rotated() -> Image.Image:
    return _photo()


_EXIF = Image.Exif()
_EXIF[0x0112] = 8  # rotate 90 degrees counter-clockwise on display


def _sixteen_bit() -> Image.Image:
    gray = np.asarray(_photo().convert("L"), dtype=np.uint16) * 257
    return Image.fromarray(gray)


def _float_with_nan() -> Image.Image:
    values = np.asarray(_photo().convert("L"), dtype=np.float32)
    values[0, 0] = np.nan
    return Image.fromarray(values, mode="F")


IMAGE_CASES = [
    ImageCase(
        "truncated-jpeg", ERROR, _bytes("t.jpg", lambda: _encoded("JPEG")[: len(_encoded("JPEG")) // 3])
    ),
    ImageCase("truncated-png", ERROR, _bytes("t.png", lambda: _encoded("PNG")[: len(_encoded("PNG")) // 2])),
    ImageCase("zero-byte", ERROR, _bytes("empty.jpg", lambda: b"")),
    ImageCase(
        "html-as-jpg", ERROR, _bytes("page.jpg", lambda: b"<!doctype html><html><body>hi</body></html>")
    ),
    ImageCase("text-as-png", ERROR, _bytes("notes.png", lambda: b"just some text\n" * 20)),
    ImageCase("random-bytes", ERROR, _bytes("noise.jpg", lambda: np.random.default_rng(0).bytes(4096))),
    ImageCase("png-header-only", ERROR, _bytes("header.png", lambda: _encoded("PNG")[:33])),
    ImageCase("decompression-bomb", ERROR, _bytes("bomb.png", decompression_bomb)),
    ImageCase("16-bit-png", OK, _save("g16.png", _sixteen_bit)),
    ImageCase("cmyk-jpeg", OK, _save("cmyk.jpg", lambda: _photo().convert("CMYK"))),
    ImageCase("palette-png", OK, _save("p.png", lambda: _photo().convert("P"))),
    ImageCase("palette-transparent-png", OK, _save("pt.png", lambda: _photo().convert("P"), transparency=0)),
    ImageCase("la-png", OK, _save("la.png", lambda: _photo().convert("LA"))),
    ImageCase("rgba-png", OK, _save("rgba.png", lambda: _photo().convert("RGBA"))),
    ImageCase("grayscale-jpeg", OK, _save("l.jpg", lambda: _photo().convert("L"))),
    ImageCase("bilevel-png", OK, _save("1.png", lambda: _photo().convert("1"))),
    ImageCase("1x1-png", OK, _save("one.png", lambda: Image.new("RGB", (1, 1), (200, 10, 10)))),
    ImageCase("1x10000-png", OK, _save("strip.png", lambda: Image.new("RGB", (1, 10_000), (0, 90, 0)))),
    ImageCase("10000x1-png", OK, _save("row.png", lambda: Image.new("RGB", (10_000, 1), (0, 90, 0)))),
    ImageCase("exif-rotated-jpeg", OK, _save("rot.jpg", _exif_rotated, exif=_EXIF)),
    ImageCase("float-tiff-with-nan", ERROR, _save("nan.tiff", _float_with_nan)),
    ImageCase("webp", OK, _save("photo.webp", _photo)),
    ImageCase("gif", OK, _save("photo.gif", _photo)),
    ImageCase("bmp", OK, _save("photo.bmp", _photo)),
]

ARRAY_CASES = [
    ArrayCase("uint8-rgb", OK, lambda: data.astronaut()[::8, ::8]),
    ArrayCase("float-0-1", OK, lambda: data.astronaut()[::8, ::8] / 255.0),
    ArrayCase("uint16-rgb", OK, lambda: data.astronaut()[::8, ::8].astype(np.uint16) * 257),
    ArrayCase("gray-2d", OK, lambda: data.camera()[::8, ::8]),
    ArrayCase("bool-mask", OK, lambda: data.camera()[::8, ::8] > 100),
    ArrayCase("nan-array", ERROR, lambda: np.full((32, 32, 3), np.nan)),
    ArrayCase("inf-array", ERROR, lambda: np.full((32, 32, 3), np.inf)),
    ArrayCase("two-channels", ERROR, lambda: np.zeros((32, 32, 2), np.uint8)),
    ArrayCase("five-channels", ERROR, lambda: np.zeros((32, 32, 5), np.uint8)),
    ArrayCase("four-d", ERROR, lambda: np.zeros((1, 32, 32, 3), np.uint8)),
    ArrayCase("empty", ERROR, lambda: np.zeros((0, 32, 3), np.uint8)),
    ArrayCase("strings", ERROR, lambda: np.full((8, 8, 3), "x")),
    ArrayCase("complex", ERROR, lambda: np.zeros((8, 8, 3), np.complex64)),
]

VOCAB_CASES = [
    VocabCase("empty", ERROR, lambda: ""),
    VocabCase("only-separators", ERROR, lambda: " ;; ,, ; \n ;"),
    VocabCase("object-without-parts-only", ERROR, lambda: "boat; sofa"),
    VocabCase("colon-without-object", ERROR, lambda: ": head, tail"),
    VocabCase("control-characters", ERROR, lambda: "dog: he\x00ad, tail"),
    VocabCase("bell-character", ERROR, lambda: "dog\x07: head"),
    VocabCase("duplicate-names", OK, lambda: "dog: head, head, tail; dog: tail"),
    VocabCase("ten-thousand-names", OK, lambda: "; ".join(f"thing{i}: part{i % 13}" for i in range(10_000))),
    VocabCase("500-character-name", OK, lambda: "dog: " + "very long part name " * 25),
    VocabCase("right-to-left", OK, lambda: "כלב: ראש, זנב; قطة: أذن"),
    VocabCase("emoji", OK, lambda: "🐶: 👃, 👂; cat: tail 🐈"),
    VocabCase("possessive-list", OK, lambda: "dog's head, cat's ear"),
    VocabCase("mixed-case-and-spaces", OK, lambda: "  Golden   Retriever :  Head ,  Tail  "),
]
