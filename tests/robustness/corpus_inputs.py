"""Hostile inputs of round two: geometry, bombs, checkpoint configs and headers, object masks.

Same format as ``corpus.py``: each case names what it is, how to build it, and what ovparts must do with it
(``OK``: a correct result; ``ERROR``: one sentence, exit code 2, or skip-and-count inside a dataset). Nothing
here is large on disk or in memory: bombs are crafted headers, big files are sparse.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .corpus import ERROR, OK, decompression_bomb

__all__ = ["ERROR", "OK"]


# ------------------------------------------------------------------ COCO geometry (crashes, CPU)
@dataclass(frozen=True)
class GeometryCase:
    name: str
    expect: str
    build: Callable[[int, int], object]  # (height, width) -> a COCO ``segmentation`` field


def _zigzag(height: int, width: int) -> list[list[float]]:
    """A polygon crossing the image 4,000 times: a perimeter of 4,000 widths, cheap to write, costly to draw."""
    points: list[float] = []
    for i in range(4_000):
        points += [0.0 if i % 2 == 0 else float(width), float(i % height)]
    return [points]


def _compressed_run(text: str) -> Callable[[int, int], dict]:
    return lambda h, w: {"size": [h, w], "counts": text}


GEOMETRY_CASES = [
    GeometryCase("vertex-at-3e8", OK, lambda h, w: [[3e8, 3e8, 10, 10, 20, 5]]),
    GeometryCase("vertex-at-minus-3e8", OK, lambda h, w: [[-3e8, 3e8, 10, 10, 20, 5, 3e8, -3e8]]),
    GeometryCase("vertex-at-1e300", OK, lambda h, w: [[1e300, 1e300, 0, 0, w, 0]]),
    GeometryCase("all-vertices-far-away", OK, lambda h, w: [[1e9, 1e9, 2e9, 1e9, 2e9, 2e9]]),
    GeometryCase("nan-vertex", ERROR, lambda h, w: [[float("nan"), 1, 10, 10, 20, 5]]),
    GeometryCase("inf-vertex", ERROR, lambda h, w: [[float("inf"), 1, 10, 10, 20, 5]]),
    GeometryCase("string-that-parses-to-inf", ERROR, lambda h, w: [["1e400", 1, 10, 10, 20, 5]]),
    GeometryCase("list-inside-a-polygon", ERROR, lambda h, w: [[[1, 2], 1, 10, 10, 20, 5]]),
    GeometryCase("two-million-vertices", ERROR, lambda h, w: [[1.0] * 2_000_002]),
    GeometryCase("zigzag-perimeter", ERROR, _zigzag),
    GeometryCase("rle-runs-past-the-image", ERROR, lambda h, w: {"size": [h, w], "counts": [1, 10**9]}),
    GeometryCase("rle-negative-run", ERROR, lambda h, w: {"size": [h, w], "counts": [-5, h * w + 5]}),
    GeometryCase("rle-counts-a-number", ERROR, lambda h, w: {"size": [h, w], "counts": 5}),
    GeometryCase("compressed-rle-outside-alphabet", ERROR, _compressed_run("\x00\x01~~~")),
    GeometryCase("compressed-rle-unterminated", ERROR, _compressed_run("P")),  # continuation bit, no end
    GeometryCase("compressed-rle-200-bit-run", ERROR, _compressed_run("o" * 40 + "1")),
]


# ------------------------------------------------------------------ datasets (skip and count, never crash)
@dataclass(frozen=True)
class DatasetCase:
    name: str
    benchmark: str
    expect: str  # OK: the check passes; ERROR: the file named by ``names`` is reported, the rest is read
    names: str  # a part of the path that the report must name
    damage: Callable[[Path], None]  # changes the synthetic dataset folder in place


def _edit_json(relative: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = next(root.rglob(relative))
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    return damage


def _set_segmentation(index: int, segmentation: object) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data["annotations"][index]["segmentation"] = segmentation

    return change


def _replace(relative_glob: str, payload: Callable[[], bytes]) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = sorted(root.glob(relative_glob))[0]
        path.write_bytes(payload())

    return damage


def _nested_json(depth: int) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = next(root.rglob("ade20k_instance_val.json"))
        path.write_text("[" * depth + "]" * depth)

    return damage


def bomb_with_size(width: int, height: int) -> bytes:
    return decompression_bomb(width, height)


DATASET_CASES = [
    DatasetCase(
        "ade-polygon-vertex-at-3e8",
        "ade20k_part_234",
        OK,
        "",
        _edit_json("ade20k_instance_val.json", _set_segmentation(1, [[3e8, 3e8, 10, 10, 20, 5]])),
    ),
    DatasetCase(
        "partimagenet-polygon-at-3e8",
        "partimagenet",
        OK,
        "",
        _edit_json("val.json", _set_segmentation(0, [[3e8, 3e8, 10, 10, 20, 5]])),
    ),
    DatasetCase(
        "partimagenet-nan-polygon",
        "partimagenet",
        ERROR,
        "val.json",
        _edit_json("val.json", _set_segmentation(0, [[float("nan"), 3, 10, 10, 20, 5]])),
    ),
    DatasetCase(
        "ade-rle-runs-past-the-image",
        "ade20k_part_234",
        ERROR,
        "ade20k_instance_val.json",
        _edit_json(
            "ade20k_instance_val.json", _set_segmentation(0, {"size": [64, 80], "counts": [1, 10**9]})
        ),
    ),
    DatasetCase(
        "pascal-part-map-bomb",
        "pascal_part_116",
        ERROR,
        "annotations_detectron2_part",
        _replace("annotations_detectron2_part/val/*.png", decompression_bomb),
    ),
    DatasetCase(
        "pascal-object-map-bomb-under-pillows-error-threshold",
        "pascal_part_116",
        ERROR,
        "annotations_detectron2_obj",
        _replace("annotations_detectron2_obj/val/*.png", lambda: bomb_with_size(12_000, 12_000)),
    ),
    DatasetCase(
        "pascal-image-bomb",
        "pascal_part_116",
        ERROR,
        "images/val",
        _replace("images/val/*.jpg", decompression_bomb),
    ),
    DatasetCase(
        "ade-part-map-bomb",
        "ade20k_part_234",
        ERROR,
        "annotations_detectron2_part",
        _replace("annotations_detectron2_part/validation/*.png", decompression_bomb),
    ),
    DatasetCase(
        "ade-json-nested-100000-deep",
        "ade20k_part_234",
        ERROR,
        "ade20k_instance_val.json",
        _nested_json(100_000),
    ),
]


# ------------------------------------------------------------------ images streamed from disk
def sparse_file(path: Path, size: int, head: bytes) -> Path:
    """``head`` followed by a hole: ``size`` bytes long, almost nothing on disk."""
    with open(path, "wb") as handle:
        handle.write(head)
        handle.truncate(size)
    return path


def small_png_in_sparse_file(path: Path) -> Path:
    """A valid 8x8 PNG followed by 3 GB of hole: a streaming reader never touches the hole."""
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(buffer, format="PNG")
    return sparse_file(path, 3 << 30, buffer.getvalue())


def bomb_in_sparse_file(path: Path, width: int = 40_000, height: int = 40_000) -> Path:
    """A ``width`` x ``height`` PNG (one row of data) followed by 3 GB of hole."""
    return sparse_file(path, 3 << 30, decompression_bomb(width, height))


# ------------------------------------------------------------------ object masks
@dataclass(frozen=True)
class MaskCase:
    name: str
    expect: str
    objects: int  # how many objects the vocabulary names
    write: Callable[[Path, int, int], Path]  # (folder, height, width) -> the mask file
    ids: Callable[[int, int], np.ndarray] | None = None  # the ids ovparts must read (-1: no object)


def _mask_file(
    name: str, build: Callable[[int, int], Image.Image], **save
) -> Callable[[Path, int, int], Path]:
    def write(folder: Path, height: int, width: int) -> Path:
        path = folder / name
        build(height, width).save(path, **save)
        return path

    return write


def _filled(value: int, dtype) -> Callable[[int, int], Image.Image]:
    return lambda h, w: Image.fromarray(np.full((h, w), value, dtype))


def _halves(h: int, w: int) -> np.ndarray:
    ids = np.zeros((h, w), np.int64)
    ids[:, w // 2 :] = 1
    return ids


def _ids(value: int) -> Callable[[int, int], np.ndarray]:
    return lambda h, w: np.full((h, w), value, np.int64)


def vocabulary_text(objects: int) -> str:
    return "; ".join(f"thing{i}: head, tail" for i in range(objects))


MASK_CASES = [
    MaskCase("8-bit-255-is-none", OK, 1, _mask_file("m8.png", _filled(255, np.uint8)), _ids(-1)),
    MaskCase("16-bit-65535-is-none", OK, 1, _mask_file("m16.png", _filled(65535, np.uint16)), _ids(-1)),
    MaskCase("16-bit-255-is-object-255", OK, 300, _mask_file("o255.png", _filled(255, np.uint16)), _ids(255)),
    MaskCase(
        "16-bit-255-beyond-a-small-vocabulary", ERROR, 2, _mask_file("x255.png", _filled(255, np.uint16))
    ),
    MaskCase(
        "1-bit-png-objects-0-and-1",
        OK,
        2,
        _mask_file("bits.png", lambda h, w: Image.fromarray(_halves(h, w).astype(bool))),
        _halves,
    ),
    MaskCase(
        "palette-png-255-is-none",
        OK,
        1,
        _mask_file("p.png", lambda h, w: _filled(255, np.uint8)(h, w).convert("P")),
    ),
    MaskCase("jpeg-is-lossy", ERROR, 1, _mask_file("m.jpg", _filled(0, np.uint8), quality=100)),
    MaskCase("webp-is-refused", ERROR, 1, _mask_file("m.webp", _filled(0, np.uint8), lossless=True)),
    MaskCase("int32-tiff-negative-id", ERROR, 1, _mask_file("neg.tiff", _filled(-3, np.int32))),
    MaskCase("int32-tiff-minus-one-is-none", OK, 1, _mask_file("none.tiff", _filled(-1, np.int32)), _ids(-1)),
    MaskCase("rgb-png", ERROR, 1, _mask_file("rgb.png", lambda h, w: Image.new("RGB", (w, h)))),
    MaskCase("gray-alpha-png", ERROR, 1, _mask_file("la.png", lambda h, w: Image.new("LA", (w, h)))),
    MaskCase(
        "wrong-size-from-header", ERROR, 1, _mask_file("big.png", lambda h, w: Image.new("L", (w + 1, h)))
    ),
    MaskCase(
        "decompression-bomb-mask",
        ERROR,
        1,
        lambda folder, h, w: _write_bytes(folder / "bomb.png", decompression_bomb()),
    ),
    MaskCase(
        "truncated-png-mask",
        ERROR,
        1,
        lambda folder, h, w: _write_bytes(folder / "t.png", _png_bytes(Image.new("L", (w, h)))[:40]),
    ),
]


def _write_bytes(path: Path, payload: bytes) -> Path:
    path.write_bytes(payload)
    return path


def _png_bytes(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# Arrays given to the Python API directly (the server decodes its uploads with the same reader first).
MASK_ARRAY_CASES = [
    ("int64-minus-one-is-none", OK, 1, lambda h, w: np.full((h, w), -1, np.int64), _ids(-1)),
    ("int64-minus-two", ERROR, 1, lambda h, w: np.full((h, w), -2, np.int64), None),
    ("int8-minus-128", ERROR, 1, lambda h, w: np.full((h, w), -128, np.int8), None),
    ("uint16-255-is-object-255", OK, 256, lambda h, w: np.full((h, w), 255, np.uint16), _ids(255)),
    ("uint8-255-is-none", OK, 1, lambda h, w: np.full((h, w), 255, np.uint8), _ids(-1)),
    ("bool-is-objects-0-and-1", OK, 2, lambda h, w: _halves(h, w).astype(bool), _halves),
    ("float-ids", ERROR, 1, lambda h, w: np.zeros((h, w), np.float32), None),
    ("uint32-huge-id", ERROR, 1, lambda h, w: np.full((h, w), 2**32 - 1, np.uint32), None),
]


# ------------------------------------------------------------------ checkpoints (bounded before building)
@dataclass(frozen=True)
class CheckpointCase:
    name: str
    expect: str
    damage: Callable[[Path], None]  # changes a copy of a tiny CLIPSeg checkpoint folder in place
    says: str = ""  # a word the sentence must contain


def _config(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        change(config)
        (folder / "config.json").write_text(json.dumps(config))

    return damage


def _set(*path_and_value) -> Callable[[dict], None]:
    *path, value = path_and_value

    def change(config: dict) -> None:
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _nest(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"x": value}
    return value


def _utf16(folder: Path) -> None:
    text = (folder / "config.json").read_text()
    (folder / "config.json").write_bytes(text.encode("utf-16"))


def _huge_config(folder: Path) -> None:
    sparse_file(folder / "config.json", 3 << 30, b"{")


def _safetensors_header(folder: Path, header: dict | bytes, declared_length: int | None = None) -> None:
    body = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = len(body) if declared_length is None else declared_length
    (folder / "model.safetensors").write_bytes(length.to_bytes(8, "little") + body + b"\x00" * 64)


def _giant_tensor(folder: Path) -> None:
    shape = [100_000, 100_000]
    _safetensors_header(
        folder,
        {"backbone.clip.logit_scale": {"dtype": "F32", "shape": shape, "data_offsets": [0, 4 * 10**10]}},
    )


def _zip_bomb_bin(folder: Path) -> None:
    """pytorch_model.bin as a zip whose one entry deflates 256 MiB of zeros into about 256 KB."""
    import zipfile

    (folder / "model.safetensors").unlink()
    with zipfile.ZipFile(folder / "pytorch_model.bin", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("archive/data/0", "w", force_zip64=True) as entry:
            block = b"\x00" * (1 << 20)
            for _ in range(256):
                entry.write(block)
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")


def _legacy_bin(folder: Path) -> None:
    """pytorch_model.bin re-saved in the legacy (pre-1.6, non-zip) format: its sizes live inside the pickle."""
    from safetensors.torch import load_file
    from torch import save

    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    save(state, folder / "pytorch_model.bin", _use_new_zipfile_serialization=False)


CHECKPOINT_CASES = [
    CheckpointCase("hidden-size-1e9", ERROR, _config(_set("vision_config", "hidden_size", 10**9)), "limit"),
    CheckpointCase(
        "20000-layers", ERROR, _config(_set("text_config", "num_hidden_layers", 20_000)), "layers"
    ),
    CheckpointCase("zero-hidden-size", ERROR, _config(_set("vision_config", "hidden_size", 0)), "at least 1"),
    CheckpointCase(
        "negative-heads", ERROR, _config(_set("text_config", "num_attention_heads", -4)), "at least 1"
    ),
    CheckpointCase("hidden-size-as-string", ERROR, _config(_set("vision_config", "hidden_size", "768"))),
    CheckpointCase("text-config-a-list", ERROR, _config(_set("text_config", [])), "mapping"),
    CheckpointCase("text-config-empty", ERROR, _config(_set("text_config", {})), "empty"),
    CheckpointCase(
        "unknown-activation", ERROR, _config(_set("vision_config", "hidden_act", "bogus")), "activation"
    ),
    CheckpointCase("float-reduce-dim", ERROR, _config(_set("reduce_dim", 16.5)), "integer"),
    CheckpointCase("boolean-projection-dim", ERROR, _config(_set("projection_dim", True)), "integer"),
    CheckpointCase(
        "heads-not-dividing-width", ERROR, _config(_set("decoder_num_attention_heads", 3)), "does not divide"
    ),
    CheckpointCase(
        "extract-layer-past-the-encoder", ERROR, _config(_set("extract_layers", [1, 2, 4])), "0 to 3"
    ),
    CheckpointCase("nested-200-deep", ERROR, _config(_set("vision_config", "extra", _nest(200))), "nest"),
    CheckpointCase("config-is-a-list", ERROR, lambda f: (f / "config.json").write_text("[1, 2]"), "object"),
    CheckpointCase("config-utf16", ERROR, _utf16, "UTF-8"),
    CheckpointCase("config-3-gb-sparse", ERROR, _huge_config, "limit"),
    CheckpointCase(
        "config-nested-100000-deep", ERROR, lambda f: (f / "config.json").write_text("[" * 100_000), "nest"
    ),
    CheckpointCase(
        "width-that-the-weights-do-not-have",
        ERROR,
        _config(_set("vision_config", "intermediate_size", 4096)),
        "shape",
    ),
    CheckpointCase("safetensors-declares-100000x100000", ERROR, _giant_tensor, "do not hold"),
    CheckpointCase(
        "safetensors-header-length-2-to-60", ERROR, lambda f: _safetensors_header(f, {}, 1 << 60), "header"
    ),
    CheckpointCase("safetensors-header-not-json", ERROR, lambda f: _safetensors_header(f, b"{{{{"), "header"),
    CheckpointCase("pytorch-bin-zip-bomb", ERROR, _zip_bomb_bin, "inflates"),
    CheckpointCase("pytorch-bin-legacy-format", ERROR, _legacy_bin, "legacy pre-1.6"),
    CheckpointCase("unchanged", OK, lambda f: None),
]


# ------------------------------------------------------------------ model configs refused when read, not at build
@dataclass(frozen=True)
class ModelConfigCase:
    name: str
    model: str  # changes apply to this model's "tiny" config
    change: Callable[[dict], dict]  # the tiny config -> the options a --config file overrides
    says: str


def _section(name: str, **changes) -> Callable[[dict], dict]:
    return lambda config: {name: {**config[name], **changes}}


MODEL_CONFIG_CASES = [
    ModelConfigCase(
        "extract-layer-past-the-encoder", "clipseg", lambda c: {"extract_layers": [1, 2, 4]}, "0 to 3"
    ),
    ModelConfigCase(
        "extract-layer-equal-to-depth", "partclipseg", lambda c: {"extract_layers": [4]}, "0 to 3"
    ),
    ModelConfigCase("extract-layer-minus-2", "clipseg", lambda c: {"extract_layers": [-2, 2, 3]}, "0 to 3"),
    ModelConfigCase("extract-layer-far-negative", "clipseg", lambda c: {"extract_layers": [-9, 2]}, "0 to 3"),
    ModelConfigCase("extract-layers-empty", "partclipseg", lambda c: {"extract_layers": []}, "at least one"),
    ModelConfigCase(
        "conditional-layer-past-the-decoder", "clipseg", lambda c: {"conditional_layer": 3}, "0 to 2"
    ),
    ModelConfigCase(
        "clipseg-decoder-heads", "clipseg", lambda c: {"decoder_num_attention_heads": 3}, "divide"
    ),
    ModelConfigCase(
        "clipseg-vision-heads", "clipseg", _section("vision_config", num_attention_heads=5), "divide"
    ),
    ModelConfigCase("catseg-head-heads", "catseg", _section("head", heads=5), "divide"),
    ModelConfigCase("catseg-head-width", "catseg", _section("head", hidden_dim=30), "divide"),
    ModelConfigCase("catseg-text-heads", "catseg", _section("text_config", num_attention_heads=3), "divide"),
    ModelConfigCase("partcatseg-head-heads", "partcatseg", _section("head", heads=3), "divide"),
    ModelConfigCase(
        "partcatseg-dino-heads", "partcatseg", _section("dino_config", num_attention_heads=5), "divide"
    ),
]


# Accepted: the official CLIPSeg's numbering (-1 reads the embeddings) and a layer read twice.
ACCEPTED_EXTRACT_LAYERS = [[-1, 0, 0], [3, 3], [0]]


# ------------------------------------------------------------------ DINO weights (a folder or a hub id)
@dataclass(frozen=True)
class DinoCase:
    name: str
    config: Callable[[dict], object]  # a valid tiny DINOv2 config.json -> the hostile one written instead
    says: str  # a word the sentence must contain


def _dino(**changes) -> Callable[[dict], dict]:
    return lambda config: {**config, **changes}


# Each is refused whether the folder is given directly or found in the Hugging Face cache from its hub id.
DINO_CASES = [
    DinoCase("20000-layers", _dino(num_hidden_layers=20_000), "20000"),
    DinoCase("hidden-size-1e9", _dino(hidden_size=10**9), "limit"),
    DinoCase("heads-not-dividing-width", _dino(num_attention_heads=5), "does not divide"),
    DinoCase("model-of-100-gb", _dino(hidden_size=1 << 16, num_attention_heads=1), "OVPARTS_MAX_MODEL_BYTES"),
    DinoCase("unknown-activation", _dino(hidden_act="bogus"), "activation"),
    DinoCase("config-a-list", lambda config: [config], "JSON object"),
    DinoCase("nested-200-deep", _dino(extra=_nest(200)), "nest"),
]


# ------------------------------------------------------------------ --config files of the wrong shape
@dataclass(frozen=True)
class ConfigFileCase:
    name: str
    suffix: str  # ".json": a model config for segment/evaluate; ".yaml": a training recipe
    text: str


CONFIG_FILE_CASES = [
    ConfigFileCase("model-config-a-list", ".json", "[1, 2, 3]"),
    ConfigFileCase("model-config-a-string", ".json", '"tiny"'),
    ConfigFileCase("model-config-wrong-type", ".json", '{"base": "tiny", "image_size": "big"}'),
    ConfigFileCase("model-config-base-a-dict", ".json", '{"base": {"base": "tiny"}}'),
    ConfigFileCase("model-config-nan", ".json", '{"base": "tiny", "background_threshold": NaN}'),
    ConfigFileCase("model-config-deep", ".json", "[" * 50_000 + "]" * 50_000),
    ConfigFileCase("recipe-max-steps-a-word", ".yaml", "trainer:\n  max_steps: many\n"),
    ConfigFileCase("recipe-batch-size-a-list", ".yaml", "data:\n  batch_size: [1, 2]\n"),
    ConfigFileCase("recipe-betas-three", ".yaml", "optim:\n  betas: [0.9, 0.99, 0.999]\n"),
    ConfigFileCase("recipe-section-a-number", ".yaml", "schedule: 5\n"),
    ConfigFileCase("recipe-nested-deep", ".yaml", "trainer: " + "[" * 20_000 + "]" * 20_000 + "\n"),
]
