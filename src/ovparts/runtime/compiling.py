"""Optional ``torch.compile`` for a loaded model: its per-image encoders and per-class head, in place.

Each model names what is worth compiling (:meth:`PartSegModel.compile_targets`): CLIP's image path, the
DINO or ResNet guidance encoder where the model has one, and the decoder / aggregator. Text encoding stays
eager, it runs once per vocabulary and is cached. ``nn.Module.compile`` swaps each target's call for a
compiled one without wrapping the module, so parameter names (and so checkpoints) do not change.

Compilation is lazy: the first image pays for it (seconds to minutes, see ``docs/performance.md``), later
images reuse the graphs. The per-class heads loop over class chunks outside the graphs
(:func:`ovparts.models.chunking.map_slices`), so a vocabulary of another size reuses the graphs once they
have been recompiled with a dynamic number of classes, which ``dynamic=None`` does on the second size seen.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..models.base import PartSegModel

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_model(
    model: PartSegModel,
    mode: str | None = None,
    backend: str = "inductor",
    dynamic: bool | None = None,
) -> PartSegModel:
    """Compile ``model``'s hot submodules in place with ``torch.compile`` and return the model.

    ``mode`` and ``dynamic`` are ``torch.compile``'s (``dynamic=None``: static shapes first, dynamic ones
    where a second call differs). ``backend`` "inductor" generates kernels (a C++ compiler on CPU, Triton
    on CUDA); "aot_eager" traces the same graphs without code generation, for checks on any machine.
    Raises :class:`ConfigError` when ``torch.compile`` cannot run here.
    """
    if mode is not None and mode not in MODES:
        raise ConfigError(f"Unknown torch.compile mode {mode!r}; choose one of {', '.join(MODES)}.")
    targets = model.compile_targets()
    if not targets:
        raise ConfigError(f"The {type(model).__name__} model names no submodules to compile.")
    check_compile_available(backend, model.device)
    for module in targets:
        module.compile(mode=mode, backend=backend, dynamic=dynamic)
    return model


def is_compiled(module: nn.Module) -> bool:
    """Whether ``module`` (or one of its submodules) was compiled in place with ``nn.Module.compile``."""
    return any(getattr(m, "_compiled_call_impl", None) is not None for m in module.modules())


def check_compile_available(backend: str, device: torch.device | str) -> None:
    """One clear sentence (:class:`ConfigError`) when ``backend`` cannot compile for ``device`` here.

    Without this check the missing piece only shows at the first image, deep inside a compiler traceback.
    """
    import torch._dynamo  # noqa: PLC0415  (heavy; only when compiling)

    device = torch.device(device)
    if not hasattr(nn.Module, "compile") or not torch._dynamo.is_dynamo_supported():
        raise ConfigError(
            f"torch.compile is not supported by this PyTorch {torch.__version__} build or Python version; "
            "run without --compile."
        )
    if backend not in torch._dynamo.list_backends(exclude_tags=()):
        listed = ", ".join(sorted(torch._dynamo.list_backends()))
        raise ConfigError(f"Unknown torch.compile backend {backend!r}; available backends: {listed}.")
    if backend != "inductor":
        return
    if device.type == "cpu" and not _has_cpp_compiler():
        raise ConfigError(
            "torch.compile's inductor backend needs a C++ compiler on CPU and found none (install g++, or "
            "set CXX); run without --compile or with backend='aot_eager'."
        )
    if device.type == "cuda" and not _has_triton():
        raise ConfigError(
            "torch.compile's inductor backend needs Triton on CUDA and it is not installed "
            "(pip install triton); run without --compile."
        )


def _has_cpp_compiler() -> bool:
    """Inductor's own compiler search (``CXX`` / ``torch._inductor.config.cpp.cxx``), run once per process."""
    try:
        from torch._inductor import cpp_builder, exc  # noqa: PLC0415
    except ImportError:  # another layout of a future torch: let inductor report at the first call
        return True
    try:
        cpp_builder.get_cpp_compiler()
    except exc.InvalidCxxCompiler:
        return False
    return True


def _has_triton() -> bool:
    try:
        from torch.utils._triton import has_triton  # noqa: PLC0415
    except ImportError:
        return True
    return bool(has_triton())
