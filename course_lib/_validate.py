"""Parameter validation and divergence detection shared by every topic module.

Every public function of ``course_lib`` checks its arguments with these helpers, so a bad value
always raises ``ValueError`` naming the parameter, its value and the valid range (the
scikit-learn convention). Iterative solvers call :func:`check_divergence` once per step (or per
recorded step) so a run that blows up stops with :class:`DivergenceError` instead of drawing NaNs.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "DivergenceError",
    "check_choice",
    "check_divergence",
    "check_int",
    "check_real",
    "check_rng",
    "check_array",
]


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    lo = "-inf" if low is None else repr(low)
    hi = "inf" if high is None else repr(high)
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    return f"{left}{lo}, {hi}{right}"


def check_real(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float in the interval [low, high] (ends open on request).

    Raises ``ValueError`` naming ``name``, the value and the valid interval otherwise.
    """
    interval = _range_text(low, high, low_open, high_open)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number in {interval}, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite real number in {interval}, got {value!r}")
    too_low = low is not None and (x <= low if low_open else x < low)
    too_high = high is not None and (x >= high if high_open else x > high)
    if too_low or too_high:
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return x


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int in the closed range [low, high]; ``ValueError`` otherwise."""
    interval = _range_text(low, high, False, False)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer in {interval}, got {value!r}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(f"{name} must be an integer in {interval}, got {value!r}")
    return v


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``; ``ValueError`` listing them otherwise."""
    options = list(choices)
    if value not in options:
        raise ValueError(f"{name} must be one of {options!r}, got {value!r}")
    return value


def check_rng(name: str, seed: Any) -> np.random.Generator:
    """Turn a seed (non-negative int) or an existing ``numpy.random.Generator`` into a Generator.

    ``None`` is refused on purpose: every random draw in the course is reproducible.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(
            f"{name} must be a non-negative integer seed or a numpy.random.Generator, got {seed!r}"
        )
    return np.random.default_rng(int(seed))


def check_array(
    name: str,
    value: Any,
    *,
    ndim: int | None = None,
    shape: tuple[int | None, ...] | None = None,
    dtype: Any = float,
) -> np.ndarray:
    """Return ``value`` as a finite numpy array with the given ``ndim``/``shape``.

    ``None`` entries of ``shape`` accept any length along that axis.
    """
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be array-like of {dtype}, got {type(value).__name__}"
        ) from exc
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if shape is not None:
        if arr.ndim != len(shape) or any(
            s is not None and s != a for s, a in zip(shape, arr.shape)
        ):
            want = tuple("any" if s is None else s for s in shape)
            raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values")
    return arr


class DivergenceError(FloatingPointError):
    """An iterative method diverged: its loss became non-finite or exploded.

    Attributes: ``step`` (the step at which it was detected), ``step_size`` (the step size or
    learning rate in use, if any), ``value`` (the offending loss) and ``method`` (a label).
    """

    def __init__(self, method: str, step: int, value: float, step_size: float | None = None):
        self.method, self.step, self.value, self.step_size = method, step, value, step_size
        hint = "" if step_size is None else f" with step size {step_size:g}; try a smaller one"
        super().__init__(f"{method} diverged at step {step} (loss = {value:.3g}){hint}")


def check_divergence(
    loss: float,
    step: int,
    *,
    method: str,
    step_size: float | None = None,
    limit: float = 1e12,
    reference: float | None = None,
) -> None:
    """Raise :class:`DivergenceError` if ``loss`` is non-finite or has exploded.

    "Exploded" means ``loss > limit`` or, when a ``reference`` (usually the initial loss) is
    given, ``loss > limit * max(reference, 1)``.
    """
    bound = limit if reference is None else limit * max(float(reference), 1.0)
    if not math.isfinite(loss) or loss > bound:
        raise DivergenceError(method, step, float(loss), step_size)
