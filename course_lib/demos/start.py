"""Notebook 00: gradient descent on a one-dimensional quadratic, the smallest gradient method.

For f(x) = L x² / 2 the iteration x_{k+1} = x_k − η f'(x_k) = (1 − ηL) x_k contracts by the
factor |1 − ηL| per step: it converges iff 0 < η < 2/L and diverges beyond. The demo shows the
iterates for a chosen step size; past 2/L the divergence is detected and reported.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from .._validate import check_divergence, check_int, check_real
from ..plots import color, figure
from ..widgets import Demo, float_slider

__all__ = ["gd_quadratic", "contraction_factor", "gd_figure", "StepSizeDemo"]


def gd_quadratic(
    curvature: float, step_size: float, x0: float = 1.0, steps: int = 40
) -> np.ndarray:
    """Iterates x_0..x_steps of GD on f(x) = curvature·x²/2: x_{k+1} = (1 − η·L)·x_k.

    Raises ``DivergenceError`` (naming the step and the step size) once |x_k| exceeds 1e6·|x_0|.
    """
    L = check_real("curvature", curvature, 0.0, low_open=True)
    eta = check_real("step_size", step_size, 0.0, low_open=True)
    x0 = check_real("x0", x0)
    steps = check_int("steps", steps, 1, 100_000)
    xs = x0 * (1.0 - eta * L) ** np.arange(steps + 1)
    loss = 0.5 * L * xs**2
    bad = np.flatnonzero(~np.isfinite(loss) | (loss > 1e12 * max(loss[0], 1.0)))
    if bad.size:
        k = int(bad[0])
        check_divergence(
            float(loss[k]), k, method="gradient descent", step_size=eta, reference=float(loss[0])
        )
    return xs


def contraction_factor(xs: np.ndarray) -> float:
    """Measured per-step contraction |x_{k+1}/x_k| (geometric mean over the run)."""
    xs = np.asarray(xs, dtype=float)
    nz = np.abs(xs) > 0
    if nz.sum() < 2:
        raise ValueError("xs must contain at least two non-zero iterates")
    a = np.abs(xs[nz])
    return float(np.exp(np.mean(np.diff(np.log(a)))))


def gd_figure(curvature: float, step_sizes: list[float], steps: int = 40) -> go.Figure:
    """|x_k| against k on a log axis for several step sizes (static figure)."""
    fig = figure("Gradient descent on L·x²/2", "step k", "|x_k|", log_y=True)
    for i, eta in enumerate(step_sizes):
        xs = gd_quadratic(curvature, eta, steps=steps)
        fig.add_scatter(
            y=np.abs(xs) + 1e-300,
            mode="lines+markers",
            name=f"η = {eta:g}",
            line={"color": color(i)},
        )
    return fig


class StepSizeDemo(Demo):
    """One slider (step size η) driving the iterates of GD on L·x²/2."""

    def __init__(self, curvature: float = 1.0, step_size: float = 0.5, steps: int = 40):
        self.curvature = check_real("curvature", curvature, 0.0, low_open=True)
        self.steps = check_int("steps", steps, 1, 10_000)
        fig = figure("GD on L·x²/2: |x_k| for the chosen step size", "step k", "|x_k|", log_y=True)
        fig.add_scatter(y=[], mode="lines+markers", name="|x_k|", line={"color": color(0)})
        fig.add_scatter(
            y=[],
            mode="lines",
            name="predicted |1 − ηL|^k",
            line={"color": color(1), "dash": "dash"},
        )
        hi = 2.5 / self.curvature
        controls = {
            "step_size": float_slider(
                "step size η", 0.05 / self.curvature, hi, step_size, 0.05 / self.curvature
            )
        }
        super().__init__(controls, fig, title="Move the slider: convergence iff η < 2/L")

    def redraw(self, step_size: float, **_: Any) -> None:
        xs = gd_quadratic(self.curvature, step_size, steps=self.steps)
        k = np.arange(self.steps + 1)
        q = abs(1 - step_size * self.curvature)
        self.fig.data[0].x, self.fig.data[0].y = k, np.abs(xs) + 1e-300
        self.fig.data[1].x, self.fig.data[1].y = k, q**k + 1e-300
