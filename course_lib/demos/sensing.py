"""Figures and widget demos for notebooks 01–02 (matrix sensing, incremental learning).

Figure builders return ``go.Figure`` and never call ``show()``. The two demos own their sliders
and a ``FigureWidget``:

* :class:`SensingDemo` (notebook 01): init scale α, rank r, width k, measurements m (as a
  multiple of the degrees of freedom r(n1 + n2 − r)) and condition number κ, driving live plots
  of the train loss, the recovery error and the singular values of UVᵀ.
* :class:`IncrementalDemo` (notebook 02): α and r for pure factorization (A = I), singular values
  of UVᵀ over the run with the predicted emergence times of the logistic model overlaid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import plotly.graph_objects as go

from .. import sensing as S
from .._validate import check_array, check_int, check_real
from ..plots import add_series, color, figure, hlines, positive, subplots
from ..widgets import Demo, float_slider, int_slider, log_slider

__all__ = [
    "cached_problem",
    "runs_figure",
    "singular_values_figure",
    "line_fit_figure",
    "error_vs_alpha_figure",
    "add_singular_value_traces",
    "draw_singular_values",
    "SensingDemo",
    "IncrementalDemo",
]

_GRAY = "rgba(120,120,120,0.6)"
#: Most signal modes a demo draws one trace each for (the rank sliders stop here).
MAX_RANK = 6


@lru_cache(maxsize=16)
def cached_problem(
    n: int, r: int, m: int | None, kappa: float, seed: int
) -> tuple[S.SensingProblem, float]:
    """An n×n :func:`~course_lib.sensing.make_problem` instance and its min-norm baseline error.

    Cached: moving only the α or k slider reuses the measurement operator (and AᵀA).
    """
    p = S.make_problem(n, n, r, m=m, kappa=kappa, seed=seed)
    return p, S.relative_error(S.min_norm_interpolant(p), p.X_star)


def _steps_x(traj: S.Trajectory) -> np.ndarray:
    return traj.steps.astype(float)


def _sv_segments(x: np.ndarray, sv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The columns of ``sv`` (n_rec, c) against ``x`` as one trace, curves separated by NaN."""
    gaps = np.full((sv.shape[1], 1), np.nan)
    xs = np.hstack([np.tile(np.asarray(x, dtype=float), (sv.shape[1], 1)), gaps]).ravel()
    return xs, np.hstack([positive(sv.T), gaps]).ravel()


def add_singular_value_traces(
    fig: go.Figure, max_rank: int = MAX_RANK, *, row: int | None = None, col: int | None = None
) -> int:
    """Append empty traces for a live singular-value panel; returns the index of the first.

    Layout: ``max_rank`` signal traces σ_1…σ_max_rank (one colour each), one grey trace for all
    other directions, one dotted trace for the targets σ_i. Fill them with
    :func:`draw_singular_values`.
    """
    first = len(fig.data)
    where = {} if row is None else {"row": row, "col": col}
    for i in range(max_rank):
        fig.add_scatter(x=[], y=[], name=f"σ_{i + 1}(UVᵀ)", line={"color": color(i)}, **where)
    fig.add_scatter(x=[], y=[], name="other directions", line={"color": _GRAY, "width": 1}, **where)
    fig.add_scatter(
        x=[], y=[], name="targets σ_i", line={"color": "black", "dash": "dot", "width": 1}, **where
    )
    return first


def draw_singular_values(
    fig: go.Figure, first: int, max_rank: int, x: np.ndarray, sv: np.ndarray, sigma: np.ndarray
) -> None:
    """Fill the traces of :func:`add_singular_value_traces` (call inside ``batch_update``).

    ``x``: the time axis (n_rec,); ``sv``: singular values of UVᵀ (n_rec, k); ``sigma``: targets.
    The first min(len(sigma), k, max_rank) columns get their own trace, the rest the grey one.
    """
    d = fig.data
    nsig = min(len(sigma), sv.shape[1], max_rank)
    for i in range(max_rank):
        d[first + i].x, d[first + i].y = (x, positive(sv[:, i])) if i < nsig else ([], [])
    d[first + max_rank].x, d[first + max_rank].y = _sv_segments(x, sv[:, nsig:])
    d[first + max_rank + 1].x, d[first + max_rank + 1].y = hlines(sigma, x[0], x[-1])


def runs_figure(runs: Mapping[str, S.Trajectory], title: str = "") -> go.Figure:
    """Two panels for several runs: train loss and relative recovery error (Frobenius) vs step."""
    fig = subplots(
        ["train loss ½‖A(UVᵀ) − y‖²", "recovery error ‖UVᵀ − X*‖_F / ‖X*‖_F"],
        ["GD step", "GD step"],
        ["loss", "relative error"],
        log_y=[True, True],
        title=title,
    )
    for i, (label, tr) in enumerate(runs.items()):
        c = color(i)
        x = _steps_x(tr)
        fig.add_scatter(
            x=x, y=positive(tr.loss), name=label, line={"color": c}, legendgroup=label, row=1, col=1
        )
        fig.add_scatter(
            x=x,
            y=positive(tr.rel_error_fro),
            name=label,
            line={"color": c},
            legendgroup=label,
            showlegend=False,
            row=1,
            col=2,
        )
    return fig


def singular_values_figure(
    traj: S.Trajectory,
    sigma: Sequence[float],
    predicted: Sequence[float] | None = None,
    title: str = "Singular values of UVᵀ: learned one at a time, largest first",
) -> go.Figure:
    """Singular values of UVᵀ vs step (log axis), targets σ_i dotted, predicted emergence dashed."""
    sig = check_array("sigma", sigma, ndim=1)
    fig = figure(title, "GD step", "singular value of UVᵀ", log_y=True, height=420)
    x = _steps_x(traj)
    r = min(sig.size, traj.singular_values.shape[1])
    for i in range(r):
        fig.add_scatter(
            x=x,
            y=positive(traj.singular_values[:, i]),
            name=f"σ_{i + 1}(UVᵀ)",
            line={"color": color(i)},
        )
    if traj.singular_values.shape[1] > r:
        sx, sy = _sv_segments(x, traj.singular_values[:, r:])
        fig.add_scatter(x=sx, y=sy, name="other directions", line={"color": _GRAY, "width": 1})
    hx, hy = hlines(sig, float(x[0]), float(x[-1]))
    fig.add_scatter(
        x=hx, y=hy, name="targets σ_i", line={"color": "black", "dash": "dot", "width": 1}
    )
    if predicted is not None:
        pred = check_array("predicted", predicted, shape=(sig.size,))
        for i, t in enumerate(pred):
            fig.add_vline(x=float(t), line={"color": color(i), "dash": "dash", "width": 1})
        fig.add_scatter(
            x=pred,
            y=sig / 2,
            mode="markers",
            name="predicted t½ (σ_i / 2)",
            marker={"symbol": "x", "size": 10, "color": "black"},
        )
    return fig


def line_fit_figure(
    x: Sequence[float],
    y: Sequence[float],
    predicted_slope: float,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
) -> go.Figure:
    """Measured points, their least-squares line, and a line of the predicted slope."""
    xa = check_array("x", x, ndim=1)
    ya = check_array("y", y, shape=xa.shape)
    slope, icpt = np.polyfit(xa, ya, 1)
    fig = figure(title, xlabel, ylabel)
    fig.add_scatter(
        x=xa, y=ya, mode="markers", name="measured", marker={"size": 9, "color": color(0)}
    )
    fig.add_scatter(
        x=xa,
        y=slope * xa + icpt,
        mode="lines",
        name=f"fit: slope {slope:.1f}",
        line={"color": color(0)},
    )
    c = float(np.mean(ya - predicted_slope * xa))
    fig.add_scatter(
        x=xa,
        y=predicted_slope * xa + c,
        mode="lines",
        name=f"predicted slope {predicted_slope:.1f}",
        line={"color": color(1), "dash": "dash"},
    )
    return fig


def error_vs_alpha_figure(
    alphas: Sequence[float],
    errors: Mapping[str, Sequence[float]],
    references: Mapping[str, float] | None = None,
    title: str = "Final error against init scale (horizon ∝ log(1/α))",
) -> go.Figure:
    """Final relative error vs α on log-log axes, one series per label, with reference slopes."""
    a = check_array("alphas", alphas, ndim=1)
    fig = figure(
        title,
        "init scale α",
        "relative error ‖UVᵀ − X*‖_F / ‖X*‖_F",
        log_x=True,
        log_y=True,
        height=420,
    )
    add_series(fig, a, errors)
    for j, (label, p) in enumerate((references or {}).items()):
        anchor = float(np.max([np.max(e) for e in errors.values()]))
        ref = anchor * (a / a.max()) ** p
        fig.add_scatter(
            x=a,
            y=ref,
            mode="lines",
            name=label,
            line={"color": "black", "dash": ["dot", "dash", "dashdot"][j % 3], "width": 1},
        )
    return fig


def _set_run_settings(demo: Demo, n: int, steps: int, eta_scale: float, seed: int) -> None:
    """Validate and store the settings both demos share (size, run length, step size, seed)."""
    demo.n = check_int("n", n, 4, 60)
    demo.steps = check_int("steps", steps, 1, 20_000)
    demo.eta_scale = check_real("eta_scale", eta_scale, 0.0, 1.0, low_open=True)
    demo.seed = check_int("seed", seed, 0)
    demo.trajectory = None


class SensingDemo(Demo):
    """Notebook 01's panel: factorized GD on an n×n sensing problem, five sliders.

    Sliders: init scale ``alpha`` (1e0 … 1e-6, log), rank ``r``, width ``k``, measurements
    ``m_mult`` (m = m_mult · r(2n − r)) and condition number ``kappa``. The step size is
    η = ``eta_scale``/σ_1 and the run has ``steps`` iterations. Three panels: train loss, recovery
    error (Frobenius and operator norm, with the min-norm interpolant's error for reference) and
    the singular values of UVᵀ on a log axis (the r signal ones coloured, the rest grey).
    """

    def __init__(
        self,
        n: int = 20,
        *,
        alpha: float = 1e-3,
        r: int = 3,
        k: int = 20,
        m_mult: float = 2.0,
        kappa: float = 2.0,
        steps: int = 400,
        eta_scale: float = 0.25,
        seed: int = 0,
    ):
        _set_run_settings(self, n, steps, eta_scale, seed)
        controls = {
            "alpha": log_slider("init scale α", -6, 0, alpha),
            "r": int_slider("rank r", 1, min(MAX_RANK, self.n // 2), r),
            "k": int_slider("width k", 1, self.n, k),
            "m_mult": float_slider("m / dof", 0.5, 6.0, m_mult, 0.25),
            "kappa": float_slider("condition κ", 1.0, 10.0, kappa, 0.5, ".1f"),
        }
        fig = subplots(
            ["train loss", "recovery error", "singular values of UVᵀ"],
            ["GD step"] * 3,
            ["½‖A(UVᵀ) − y‖²", "‖UVᵀ − X*‖ / ‖X*‖", "σ_i(UVᵀ)"],
            log_y=[True, True, True],
            height=400,
        )
        fig.add_scatter(x=[], y=[], name="train loss", line={"color": color(7)}, row=1, col=1)
        fig.add_scatter(
            x=[], y=[], name="error (Frobenius)", line={"color": color(0)}, row=1, col=2
        )
        fig.add_scatter(x=[], y=[], name="error (operator)", line={"color": color(1)}, row=1, col=2)
        fig.add_scatter(
            x=[],
            y=[],
            name="min-norm interpolant",
            line={"color": _GRAY, "dash": "dash"},
            row=1,
            col=2,
        )
        self._sv0 = add_singular_value_traces(fig, row=1, col=3)
        super().__init__(controls, fig, title="Factorized GD for matrix sensing: move α first")

    def compute(
        self, alpha: float, r: int, k: int, m_mult: float, kappa: float
    ) -> tuple[S.SensingProblem, S.Trajectory, float]:
        """The problem, the GD trajectory and the min-norm baseline error for these values."""
        m = max(1, int(round(m_mult * S.degrees_of_freedom(self.n, self.n, r))))
        prob, base = cached_problem(self.n, int(r), m, float(kappa), self.seed)
        eta = self.eta_scale / float(prob.sigma[0])
        traj = S.run_gd(prob, int(k), alpha, eta, self.steps, seed=self.seed + 1, max_records=100)
        return prob, traj, base

    def redraw(self, alpha: float, r: int, k: int, m_mult: float, kappa: float, **_: Any) -> None:
        prob, tr, base = self.compute(alpha, r, k, m_mult, kappa)
        self.trajectory = tr
        d = self.fig.data
        x = _steps_x(tr)
        d[0].x, d[0].y = x, positive(tr.loss)
        d[1].x, d[1].y = x, positive(tr.rel_error_fro)
        d[2].x, d[2].y = x, positive(tr.rel_error_op)
        d[3].x, d[3].y = [x[0], x[-1]], [base, base]
        draw_singular_values(self.fig, self._sv0, MAX_RANK, x, tr.singular_values, prob.sigma)
        self.fig.layout.title.text = (
            f"m = {prob.m} measurements for n1·n2 = {prob.n1 * prob.n2} entries; final error "
            f"{tr.final_error:.2g}, train loss {tr.loss[-1]:.2g}"
        )


class IncrementalDemo(Demo):
    """Notebook 02's panel: pure factorization (A = I), sliders for α and the rank r.

    The target has singular values r, r − 1, …, 1; GD runs with width ``k`` and step size
    η = ``eta_scale``/σ_1 until 1.5× the last predicted emergence time (at most ``steps``). The
    figure shows the singular values of UVᵀ (log axis) with the targets and the predicted
    emergence times t½ (dashed) of the logistic model, computed from the init's mode sizes.
    """

    def __init__(
        self,
        n: int = 20,
        *,
        alpha: float = 1e-3,
        r: int = 3,
        k: int = 20,
        steps: int = 1500,
        eta_scale: float = 0.1,
        seed: int = 0,
    ):
        _set_run_settings(self, n, steps, eta_scale, seed)
        self.k = check_int("k", k, 1, self.n)
        self.predicted: np.ndarray | None = None
        controls = {
            "alpha": log_slider("init scale α", -6, -1, alpha),
            "r": int_slider("rank r", 1, min(MAX_RANK, self.k), r),
        }
        fig = figure("Incremental learning (A = I)", "GD step", "σ_i(UVᵀ)", log_y=True, height=420)
        add_singular_value_traces(fig)
        fig.add_scatter(
            x=[],
            y=[],
            mode="markers",
            name="predicted t½",
            marker={"symbol": "x", "size": 11, "color": "black"},
        )
        fig.add_scatter(
            x=[],
            y=[],
            mode="lines",
            name="predicted t½ (lines)",
            showlegend=False,
            line={"color": "black", "dash": "dash", "width": 1},
        )
        super().__init__(controls, fig, title="Singular values appear one at a time")

    def redraw(self, alpha: float, r: int, **_: Any) -> None:
        r = int(r)
        sv = np.arange(r, 0, -1, dtype=float)
        prob = S.make_problem(self.n, self.n, r, singular_values=sv, seed=self.seed)
        eta = self.eta_scale / float(sv[0])
        U0, V0 = S.init_factors(self.n, self.n, self.k, alpha, self.seed + 1)
        s0 = S.mode_init_sizes(prob, U0, V0)
        self.predicted = S.emergence_times(sv, s0, eta, discrete=True)
        # run 1.5× past the last predicted emergence (capped by ``steps``)
        n_steps = int(min(self.steps, max(50, np.ceil(1.5 * self.predicted.max()))))
        tr = S.run_gd(prob, self.k, alpha, eta, n_steps, U0=U0, V0=V0, max_records=300)
        self.trajectory = tr
        d = self.fig.data
        x = _steps_x(tr)
        draw_singular_values(self.fig, 0, MAX_RANK, x, tr.singular_values, sv)
        d[MAX_RANK + 2].x, d[MAX_RANK + 2].y = self.predicted, sv / 2
        lo = float(np.nanmin(positive(tr.singular_values[:, :r])))
        vx = np.repeat(self.predicted, 3)
        vx[2::3] = np.nan
        vy = np.tile([lo, 1.5 * float(sv[0]), np.nan], r)
        d[MAX_RANK + 3].x, d[MAX_RANK + 3].y = vx, vy
        late = self.predicted > n_steps
        self.fig.layout.title.text = (
            f"A = I, σ = {r}, …, 1, α = {alpha:.0e}: predicted emergence at steps "
            + ", ".join(f"{t:.0f}" for t in self.predicted)
            + (" (some beyond this run)" if late.any() else "")
        )
