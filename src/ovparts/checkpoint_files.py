"""What a checkpoint file declares, read before its tensors: the safetensors header, the zip directory.

Both formats state every tensor's size up front. Reading that first lets ovparts compare the declaration
with the file's real size (a header announcing a 100000 x 100000 tensor in a 1 KB file is a lie) and with
the model the config describes, before any tensor is read or any model is built. Zip-based ``.pth`` files
(``torch.save``) are checked for how much their entries inflate to: a small deflated file must not expand to
gigabytes inside ``torch.load``. The legacy (pre-1.6, non-zip) format declares its sizes only inside the pickle
itself, where nothing can be checked before ``torch.load`` allocates them, so it is refused with the one line
that converts it.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import limits
from .errors import CheckpointError

# safetensors dtype names -> (bytes per element, floating point)
DTYPES = {
    "BOOL": (1, False),
    "U8": (1, False),
    "I8": (1, False),
    "F8_E5M2": (1, True),
    "F8_E4M3": (1, True),
    "I16": (2, False),
    "U16": (2, False),
    "F16": (2, True),
    "BF16": (2, True),
    "I32": (4, False),
    "U32": (4, False),
    "F32": (4, True),
    "I64": (8, False),
    "U64": (8, False),
    "F64": (8, True),
}


@dataclass(frozen=True)
class TensorSpec:
    """A tensor as declared: its shape and whether it holds floating point values."""

    shape: tuple[int, ...]
    floating: bool


def safetensors_specs(path: Path) -> dict[str, TensorSpec]:
    """Every tensor a safetensors file declares, checked against the file's size; no tensor data is read."""
    label = repr(os.fspath(path))
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise CheckpointError(
                    f"The weights file {label} is not a valid safetensors file (too short)."
                )
            (length,) = struct.unpack("<Q", prefix)
            most = limits.MAX_HEADER_BYTES.value()
            if length > min(most, size - 8):
                raise CheckpointError(
                    f"The weights file {label} is not a valid safetensors file (its header claims {length} "
                    f"bytes; the file has {size - 8} after the length, and the limit is {most})."
                )
            header = json.loads(handle.read(length).decode("utf-8"))
    except CheckpointError:
        raise
    except OSError as err:
        raise CheckpointError(f"The weights file {label} cannot be read ({err.strerror}).") from err
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CheckpointError(
            f"The weights file {label} is not a valid safetensors file (bad header)."
        ) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"The weights file {label} is not a valid safetensors file (bad header).")
    data_bytes = size - 8 - length
    specs: dict[str, TensorSpec] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        specs[name] = _entry_spec(name, entry, data_bytes, label)
    return specs


def _entry_spec(name: str, entry: object, data_bytes: int, label: str) -> TensorSpec:
    bad = f"The weights file {label} is not a valid safetensors file (tensor {name!r} is malformed)."
    if not isinstance(entry, dict) or entry.get("dtype") not in DTYPES:
        raise CheckpointError(bad)
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in shape):
        raise CheckpointError(bad)
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(n, int) for n in offsets):
        raise CheckpointError(bad)
    if any(n < 0 for n in shape) or len(shape) > 8:
        raise CheckpointError(bad)
    itemsize, floating = DTYPES[entry["dtype"]]
    needed = math.prod(shape) * itemsize
    begin, end = offsets
    if not 0 <= begin <= end or end - begin != needed or end > data_bytes:
        raise CheckpointError(
            f"The weights file {label} declares tensor {name!r} of shape {tuple(shape)} ({needed} bytes), "
            f"which the file's {data_bytes} bytes of data do not hold."
        )
    return TensorSpec(tuple(shape), floating)


def check_zip_checkpoint(path: str | os.PathLike) -> None:
    """Refuse a ``.pth`` that is not zip-based, or whose entries would inflate beyond ``ovparts.limits``.

    The legacy format (``_use_new_zipfile_serialization=False``, the default before torch 1.6) stores each
    storage's size inside the pickle, read only while ``torch.load`` allocates it: a few bytes can ask for
    gigabytes. Every official checkpoint ovparts converts is zip-based, so legacy files are refused.
    """
    label = repr(os.fspath(path))
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as err:
        raise CheckpointError(f"The checkpoint {label} cannot be read ({err.strerror}).") from None
    if not is_zip:
        raise CheckpointError(
            f"The checkpoint {label} is not a zip-based PyTorch file (the legacy pre-1.6 format, whose "
            "sizes cannot be checked before loading, or not a checkpoint at all); re-save it on a machine "
            "you trust with `torch.save(torch.load(OLD, weights_only=True), NEW)` and pass NEW."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (OSError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(f"The checkpoint {label} is not a readable zip archive ({err}).") from None
    inflated = sum(e.file_size for e in entries)
    stored = sum(e.compress_size for e in entries)
    most, ratio = limits.MAX_CHECKPOINT_BYTES.value(), limits.MAX_INFLATION_RATIO.value()
    if inflated > most:
        raise CheckpointError(
            f"The checkpoint {label} inflates to {inflated} bytes, more than the limit of {most} "
            "(OVPARTS_MAX_CHECKPOINT_BYTES)."
        )
    if inflated > ratio * stored + (1 << 20):
        raise CheckpointError(
            f"The checkpoint {label} inflates from {stored} to {inflated} bytes, more than {ratio} times; "
            "torch.save does not compress, so this is not a plain checkpoint."
        )
