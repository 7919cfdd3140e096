"""Checking configuration values read from files before anything is built from them.

Model configs (a checkpoint's config.json, ``--config file.json``) and training recipes (YAML) are plain trees
typed by dataclasses. A wrong type, an empty section, a zero or absurd size, an unknown activation or a tree
nested a thousand deep used to surface as a traceback from deep inside a constructor, or as gigabytes
allocated before the first check. Here every value is checked against its field's annotation, and every
number against ``ovparts.limits``, so each such file gets one sentence naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any

from . import limits

# Integer keys (in any section) that count layers or blocks: bounded by limits.MAX_LAYERS.
_LAYER_WORDS = ("layers", "blocks", "depth")
# Integer keys that are sizes and must be at least 1 (0 would build an empty or dividing-by-zero model).
_SIZE_SUFFIXES = (
    "size",
    "_dim",
    "dims",
    "heads",
    "width",
    "window",
    "ratio",
    "num_hidden_layers",
    "num_layers",
    "max_position_embeddings",
)


def check_dataclass_values(
    cls: type, values: Any, where: str, error: type[Exception], allow_unknown: bool = False
) -> None:
    """Raise ``error`` (one sentence naming ``where.key``) unless ``values`` fits the fields of ``cls``."""
    if not isinstance(values, dict):
        raise error(f"{where} must be a mapping of options, not {_kind(values)}.")
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in values:
            check_value(values[field.name], hints[field.name], f"{where}.{field.name}", error)
    if not allow_unknown:
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise error(f"Unknown option {where}.{unknown[0]}.")


def check_value(value: Any, annotation: Any, where: str, error: type[Exception]) -> None:
    """``value`` against a type annotation (int, float, bool, str, None, list, tuple, dict, unions, Any)."""
    if not _matches(value, annotation):
        raise error(f"{where} must be {_describe(annotation)}, not {_kind(value)} {_short(value)}.")


def _matches(value: Any, annotation: Any) -> bool:
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if annotation is type(None) or annotation is None:
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple) or annotation in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
        item = args[0] if args else Any
        return all(_matches(v, item) for v in value)
    if origin is dict or annotation is dict:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    return isinstance(value, annotation) if isinstance(annotation, type) else True


def _describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if annotation in names:
        return names[annotation]
    if origin in (list, tuple) or annotation in (list, tuple):
        args = typing.get_args(annotation)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} values"
        return "a list"
    if origin is dict or annotation is dict:
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))


def _kind(value: Any) -> str:
    kinds = {bool: "a boolean", int: "the integer", float: "the number", str: "the string"}
    for kind, name in kinds.items():
        if type(value) is kind:
            return name
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _short(value: Any) -> str:
    if isinstance(value, dict | list | tuple) or value is None:
        return ""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_numbers(tree: Any, where: str, error: type[Exception]) -> None:
    """Every number in a config tree finite and bounded, sizes positive, layer counts bounded, depth bounded.

    Keys are matched by name, so sections we never listed (a DINOv2 config, a ResNet) follow the same rules.
    """
    depth_limit = limits.MAX_CONFIG_DEPTH.value()
    if limits.nesting_depth(tree, depth_limit) > depth_limit:
        raise error(f"{where} nests more than {depth_limit} levels deep.")
    most, layers = limits.MAX_CONFIG_INT.value(), limits.MAX_LAYERS.value()
    stack: list[tuple[str, Any]] = [(where, tree)]
    while stack:
        path, value = stack.pop()
        key = path.rsplit(".", 1)[-1].split("[", 1)[0].lower()
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}", v) for k, v in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            raise error(f"{path} must be a finite number, not {value}.")
        elif isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > most:
                raise error(f"{path} is {value}, beyond the limit of {most} for any size in a config.")
            if any(word in key for word in _LAYER_WORDS) and value > layers:
                raise error(f"{path} is {value}, more than the limit of {layers} layers.")
            if key.endswith(_SIZE_SUFFIXES) and value < 1:
                raise error(f"{path} must be at least 1, not {value}.")


# (width, heads) key pairs found together in one section: the heads split the width into equal parts.
# transformers' CLIP, DINOv2 and ViT sections; CLIPSeg's decoder; the CAT-Seg / PartCATSeg head.
_WIDTH_HEADS = (
    ("hidden_size", "num_attention_heads"),
    ("reduce_dim", "decoder_num_attention_heads"),
    ("hidden_dim", "heads"),
)


def check_attention_widths(tree: Any, where: str, error: type[Exception]) -> None:
    """In every section, attention heads must divide the width they split (else a reshape fails at build)."""
    stack: list[tuple[str, Any]] = [(where, tree)]
    while stack:
        path, value = stack.pop()
        if not isinstance(value, dict):
            continue
        for width_key, heads_key in _WIDTH_HEADS:
            width, heads = value.get(width_key), value.get(heads_key)
            if _is_int(width) and _is_int(heads) and heads >= 1 and width % heads:
                raise error(
                    f"{path}.{heads_key} {heads} does not divide {path}.{width_key} {width}; "
                    "attention heads split the width into equal parts."
                )
        stack.extend((f"{path}.{k}", v) for k, v in value.items())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_config_tree(tree: Any, where: str, error: type[Exception]) -> None:
    """All value checks of a parsed config tree: numbers and sizes, activations, attention widths."""
    check_numbers(tree, where, error)
    check_activations(tree, where, error)
    check_attention_widths(tree, where, error)


def check_activations(tree: Any, where: str, error: type[Exception]) -> None:
    """``hidden_act`` values (transformers configs) must name an activation transformers knows."""
    from transformers.activations import ACT2FN

    stack: list[tuple[str, Any]] = [(where, tree)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, child in value.items():
                if key == "hidden_act" and (not isinstance(child, str) or child not in ACT2FN):
                    known = ", ".join(sorted(ACT2FN)[:8])
                    raise error(
                        f"{path}.hidden_act {child!r} is not an activation ovparts knows ({known}, ...)."
                    )
                stack.append((f"{path}.{key}", child))


def read_config_file(path: Path, what: str, error: type[Exception]) -> Any:
    """A small JSON file: bounded size, UTF-8 only, bounded nesting; one sentence for each failure."""
    most = limits.MAX_CONFIG_BYTES.value()
    try:
        size = path.stat().st_size
        if size > most:
            raise error(f"The {what} {str(path)!r} is {size} bytes, more than the limit of {most}.")
        data = path.read_bytes()
    except OSError as err:
        raise error(f"The {what} {str(path)!r} cannot be read ({err.strerror}).") from err
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:4]:
        raise error(f"The {what} {str(path)!r} is UTF-16 or UTF-32 encoded; save it as UTF-8.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise error(f"The {what} {str(path)!r} is not UTF-8 text (byte {err.start}).") from None
    try:
        values = json.loads(text)
    except json.JSONDecodeError as err:
        raise error(
            f"The {what} {str(path)!r} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})."
        ) from None
    except RecursionError:
        raise error(f"The {what} {str(path)!r} is nested too deeply to be a config.") from None
    depth = limits.MAX_CONFIG_DEPTH.value()
    if limits.nesting_depth(values, depth) > depth:
        raise error(f"The {what} {str(path)!r} nests more than {depth} levels deep.")
    return values


def as_json(value: Any) -> Any:
    """``value`` with every tuple turned into a list, recursively: the form a config has after a JSON round
    trip, so a saved and reloaded config compares equal to the one it was saved from."""
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    return value
