"""Option checks shared by every surface (Python API, CLI, HTTP server), so all of them accept and refuse
the same values with the same sentence."""

from __future__ import annotations

import math
import numbers

from .errors import ConfigError


def check_background_threshold(value: float | None) -> float | None:
    """``value`` when it is a probability in [0, 1] (or None for the model's default), else one sentence.

    NaN is refused explicitly: every comparison with it is false, so it would silently mark every pixel
    as background (or none), depending on how the comparison happens to be written.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"The background threshold must be a number in [0, 1], got {value!r}.")
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"The background threshold must be a number in [0, 1], got {value}.")
    return float(value)


def check_device(device: object) -> str:
    """``device`` as torch spells it, when torch can put a tensor there; else one sentence.

    Checked before a model is built, so ``--device bogus`` or a CUDA device on a machine without one
    fails at once with a sentence instead of a traceback after the weights are loaded.
    """
    import torch  # noqa: PLC0415  (the CLI imports this module before torch is needed)

    text = str(device)
    try:
        parsed = torch.device(text)
    except (RuntimeError, ValueError, TypeError) as err:
        raise ConfigError(f"Unknown device {text!r}; use cpu, cuda, cuda:N or mps.") from err
    if parsed.type != "cpu":
        try:
            torch.empty(1, device=parsed)
        except (RuntimeError, AssertionError, ValueError) as err:
            raise ConfigError(
                f"The device {text!r} is not available on this machine; use cpu or another device."
            ) from err
    return text
