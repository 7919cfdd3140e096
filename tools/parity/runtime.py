"""Run the official repositories' own code, unchanged, on this machine (CPU, no compiled detectron2).

The parity harness never vendors official code: it extracts the files at run time from local git mirrors
(the `fetch` snapshots under ``$OVPARTS_MIRRORS``, default ``/work/.mirror``) into a scratch folder, puts
them on ``sys.path``, and supplies the few modules they import that cannot be installed here:

* ``torchvision`` (its PyPI wheel does not load beside the CPU torch build): only the names the official
  files import at module level exist; the harness never calls them (our own chains feed tensors directly).
* ``detectron2._C`` (detectron2's C++ ops): the official models never call them on the test-time path.
"""

from __future__ import annotations

import importlib.machinery
import io
import os
import subprocess
import sys
import tarfile
import types
from pathlib import Path

MIRRORS = Path(os.environ.get("OVPARTS_MIRRORS", "/work/.mirror"))
REPOSITORIES = {
    "detectron2": "facebookresearch+detectron2",
    "catseg": "cvlab-kaist+CAT-Seg",
    "partcatseg": "kaist-cvml+part-catseg",
    "partclipseg": "kaist-cvml+part-clipseg",
    "ov_parts": "OpenRobotLab+OV_PARTS",
    "clipseg": "timojl+clipseg",
    "dinov2": "facebookresearch+dinov2",
}


def mirror(name: str) -> Path:
    path = MIRRORS / REPOSITORIES[name] / "repo"
    if not path.is_dir():
        raise SystemExit(
            f"No mirror of {REPOSITORIES[name].replace('+', '/')} at {path}; fetch it first "
            "(the session's fetch tool, or `git clone --mirror` into that folder)."
        )
    return path


def extract(name: str, dest: Path, commit: str = "HEAD") -> Path:
    """The repository's tree at ``commit``, written under ``dest/name@commit``; returns that folder."""
    target = dest / f"{name}@{commit}"
    if target.is_dir():
        return target
    archive = subprocess.run(
        ["git", "-C", str(mirror(name)), "archive", "--format=tar", commit],
        check=True,
        capture_output=True,
    ).stdout
    target.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def _module(name: str, **attrs: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def _unavailable(label: str):
    def call(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{label} is a stand-in of the parity harness and must not be called.")

    return call


class _Placeholder(type):
    """A stand-in class whose attributes are stand-ins too (``InterpolationMode.NEAREST`` and the like)."""

    def __getattr__(cls, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(
            f"{cls.__name__}.{name}", (), {"__init__": _unavailable(f"{cls.__name__}.{name}")}
        )


class _StandInFinder:
    """Resolves each of ``names`` and all their submodules to stand-in modules."""

    def __init__(self, names: tuple[str, ...] = ("torchvision",)) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        if fullname.split(".")[0] in self.names:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__version__ = "0.0-parity-stand-in"

        def attribute(name: str) -> object:
            if name.startswith("__"):
                raise AttributeError(name)
            return _Placeholder(name, (), {"__init__": _unavailable(f"{spec.name}.{name}")})

        module.__getattr__ = attribute
        return module

    def exec_module(self, module) -> None:
        return None


def install_torchvision_stand_in() -> None:
    """Import-time names of torchvision (and so of timm's layers) used by the official files.

    Every name resolves to a placeholder class whose construction fails loudly, so a harness run that
    reached torchvision code would stop rather than compute something else.
    """
    install_stand_ins(("torchvision",))


def install_stand_ins(names: tuple[str, ...]) -> None:
    """Packages an official code base imports at module level but never calls on the path the harness runs
    (e.g. OV_PARTS imports ``mmseg`` for its ZSseg+ baseline): every name in them is a placeholder that
    fails loudly when used."""
    present = {n for f in sys.meta_path if isinstance(f, _StandInFinder) for n in f.names}
    missing = tuple(n for n in names if n not in present)
    if missing:
        sys.meta_path.insert(0, _StandInFinder(missing))


def install_detectron2(scratch: Path, commit: str = "HEAD") -> Path:
    """detectron2's Python sources on sys.path, with ``detectron2._C`` stood in for."""
    root = extract("detectron2", scratch, commit)
    install_torchvision_stand_in()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    _module("detectron2._C")
    return root


def add_to_path(folder: Path) -> None:
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def cpu_only():
    """A torch function mode that runs CUDA-only official code on the CPU.

    Every ``device="cuda"`` (keyword or positional, string or ``torch.device``) given to a torch function or
    tensor method becomes ``"cpu"`` and ``Tensor.cuda()`` returns the tensor unchanged. Nothing else changes:
    the official code computes exactly what it computes on a GPU, in fp32.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    def on_cpu(value: object) -> object:
        if isinstance(value, str) and value.startswith("cuda"):
            return "cpu"
        if isinstance(value, torch.device) and value.type == "cuda":
            return torch.device("cpu")
        return value

    class CpuOnly(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is torch.Tensor.cuda:
                return args[0]
            kwargs = dict(kwargs or {})
            if "device" in kwargs:
                kwargs["device"] = on_cpu(kwargs["device"])
            return func(*(on_cpu(a) for a in args), **kwargs)

    return CpuOnly()


def numpy_aliases() -> None:
    """``np.float``/``np.int``/``np.bool``, which official mappers and evaluators written for numpy < 1.24 use.

    They were plain aliases of the Python builtins, so restoring them changes no result.
    """
    import numpy as np

    for name, value in (("float", float), ("int", int), ("bool", bool), ("object", object)):
        if name not in np.__dict__:
            setattr(np, name, value)


def redirect_from_pretrained(cls: type, folders: dict[str, Path]) -> None:
    """``cls.from_pretrained(hub_id)`` reads ``folders[hub_id]`` instead of downloading; other ids fail."""
    original = cls.from_pretrained.__func__

    def from_pretrained(klass, name, *args, **kwargs):
        if str(name) not in folders:
            raise RuntimeError(f"The parity harness has no local stand-in for {name!r}.")
        return original(klass, str(folders[str(name)]), *args, **kwargs)

    cls.from_pretrained = classmethod(from_pretrained)


def restore_pillow_aliases() -> None:
    """Pillow 10 removed ``Image.LINEAR`` / ``CUBIC`` / ``ANTIALIAS``, which older official files name as
    default arguments; they were aliases of ``BILINEAR`` / ``BICUBIC`` / ``LANCZOS`` and are restored as such."""
    from PIL import Image  # noqa: PLC0415

    for old, new in (("LINEAR", "BILINEAR"), ("CUBIC", "BICUBIC"), ("ANTIALIAS", "LANCZOS")):
        if not hasattr(Image, old):
            setattr(Image, old, getattr(Image, new))
