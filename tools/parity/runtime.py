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
    """Resolves ``torchvision`` and every ``torchvision.*`` submodule to a stand-in module."""

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
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
    if not any(isinstance(f, _StandInFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _StandInFinder())


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


def restore_pillow_aliases() -> None:
    """Pillow 10 removed ``Image.LINEAR`` / ``CUBIC`` / ``ANTIALIAS``, which older official files name as
    default arguments; they were aliases of ``BILINEAR`` / ``BICUBIC`` / ``LANCZOS`` and are restored as such."""
    from PIL import Image  # noqa: PLC0415

    for old, new in (("LINEAR", "BILINEAR"), ("CUBIC", "BICUBIC"), ("ANTIALIAS", "LANCZOS")):
        if not hasattr(Image, old):
            setattr(Image, old, getattr(Image, new))
