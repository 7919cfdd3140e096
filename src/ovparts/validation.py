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
