"""Figures and the widget demo for notebook 03 (the perturbed gradient flow).

Figure builders return ``go.Figure`` and never call ``show()``:

* :func:`phases_figure`: singular values of UVᵀ with the predicted logistic emergence times,
  the alignment of U with U* (the power-method phase) and the conserved imbalance.
* :func:`gd_flow_figure`: GD iterates drawn on the flow's time axis t = kη, and the gap against η.
* :func:`flow_curves_figure`: one diagnostic (error, perturbation size, ...) for several runs.
* :func:`xi_figure`: final error against the perturbation size ξ on log-log axes.

:class:`FlowDemo` drives a live FigureWidget with the init scale α (log slider), the perturbation
size ξ, the perturbation kind and the rank r.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from .. import flows as F
from .. import sensing as S
from .._validate import check_array, check_choice, check_int, check_real
from ..plots import add_series, color, figure, hlines, positive, subplots
from ..widgets import Demo, dropdown, float_slider, int_slider, log_slider
from .sensing import cached_problem

__all__ = ["phases_figure", "gd_flow_figure", "flow_curves_figure", "xi_figure", "FlowDemo"]

_GRAY = "rgba(120,120,120,0.6)"
#: Largest rank r the demo offers; its width is k = r + ``extra_width``.
MAX_RANK = 5

_CURVES = {
    "rel_error_fro": "‖UVᵀ − X*‖_F / ‖X*‖_F",
    "rel_error_op": "‖UVᵀ − X*‖₂ / ‖X*‖₂",
    "perturbation_norm": "‖E(t)‖₂",
    "imbalance_drift": "‖H(t) − H(0)‖_F",
}


def phases_figure(
    sol: F.FlowSolution,
    sigma: Sequence[float],
    predicted: Sequence[float],
    U_star: np.ndarray,
    linear_gap: np.ndarray | None = None,
) -> go.Figure:
    """Three panels of one unperturbed run: singular values of UVᵀ (log) with the targets σ_i and
    the predicted emergence times t½; alignment ‖U*ᵀU‖²_F/‖U‖²_F of U with U*; the invariant's
    drift ‖H(t) − H(0)‖_F and (optional) the gap to the linearized flow exp(tX̄*)Z0."""
    sig = check_array("sigma", sigma, ndim=1)
    pred = check_array("predicted", predicted, shape=sig.shape)
    fig = subplots(
        ["singular values of UVᵀ", "alignment with U* (power method)", "what the flow keeps"],
        ["time t"] * 3,
        ["σ_i(UVᵀ)", "‖U*ᵀU‖²_F / ‖U‖²_F", "relative size"],
        log_y=[True, False, True],
        height=400,
    )
    t = sol.t
    q = sol.singular_values.shape[1]
    for i in range(q):
        signal = i < sig.size
        fig.add_scatter(
            x=t,
            y=positive(sol.singular_values[:, i]),
            name=f"σ_{i + 1}(UVᵀ)",
            line={"color": color(i) if signal else _GRAY, "width": 2 if signal else 1},
            showlegend=signal,
            row=1,
            col=1,
        )
    hx, hy = hlines(sig, float(t[0]), float(t[-1]))
    fig.add_scatter(
        x=hx,
        y=hy,
        name="targets σ_i",
        line={"color": "black", "dash": "dot", "width": 1},
        row=1,
        col=1,
    )
    fig.add_scatter(
        x=pred,
        y=sig / 2,
        mode="markers",
        name="predicted t½ (logistic)",
        marker={"symbol": "x", "size": 11, "color": "black"},
        row=1,
        col=1,
    )
    fig.add_scatter(
        x=t,
        y=F.alignment(sol.U, U_star),
        name="alignment of U",
        line={"color": color(4)},
        row=1,
        col=2,
    )
    fig.add_scatter(
        x=t,
        y=positive(sol.imbalance_drift),
        name="‖H(t) − H(0)‖_F (invariant)",
        line={"color": color(5)},
        row=1,
        col=3,
    )
    if linear_gap is not None:
        g = np.asarray(linear_gap, dtype=float)  # NaN marks records outside the linear phase
        if g.shape != t.shape:
            raise ValueError(f"linear_gap must have shape {t.shape}, got {g.shape}")
        fig.add_scatter(
            x=t,
            y=positive(g),
            name="‖X − X_lin‖/‖X‖ (power method)",
            line={"color": color(6)},
            row=1,
            col=3,
        )
    return fig


def gd_flow_figure(
    flow: F.FlowSolution,
    trajs: Mapping[float, S.Trajectory],
    etas: Sequence[float],
    gaps: Sequence[float],
    n_signal: int,
) -> go.Figure:
    """Left: the flow's signal singular values (lines) and GD iterates on the time axis t = kη
    (markers, one series per η). Right: the gap max |σ_i(GD) − σ_i(flow)|/σ_1 against η on
    log-log axes with a slope-1 reference line."""
    e = check_array("etas", etas, ndim=1)
    g = check_array("gaps", gaps, shape=e.shape)
    n_signal = check_int("n_signal", n_signal, 1, flow.singular_values.shape[1])
    fig = subplots(
        ["GD iterates on the flow's time axis t = kη", "GD drifts off the flow ∝ η"],
        ["time t = kη", "step size η"],
        ["σ_i(UVᵀ)", "max |σ_i(GD) − σ_i(flow)| / σ_1"],
        log_x=[False, True],
        log_y=[True, True],
        height=400,
    )
    for i in range(n_signal):
        fig.add_scatter(
            x=flow.t,
            y=positive(flow.singular_values[:, i]),
            name="flow" if i == 0 else None,
            showlegend=i == 0,
            line={"color": "black", "width": 1.5},
            row=1,
            col=1,
        )
    for j, (eta, tr) in enumerate(trajs.items()):
        t = F.gd_times(int(tr.steps[-1]), float(eta))[tr.steps]
        every = max(1, t.size // 60)
        for i in range(n_signal):
            fig.add_scatter(
                x=t[::every],
                y=positive(tr.singular_values[::every, i]),
                mode="markers",
                name=f"GD, η = {eta:g}",
                showlegend=i == 0,
                legendgroup=str(eta),
                marker={"color": color(j), "size": 5},
                row=1,
                col=1,
            )
    fig.add_scatter(
        x=e, y=g, mode="lines+markers", name="measured gap", line={"color": color(0)}, row=1, col=2
    )
    fig.add_scatter(
        x=e,
        y=g[0] * e / e[0],
        mode="lines",
        name="slope 1",
        line={"color": "black", "dash": "dash", "width": 1},
        row=1,
        col=2,
    )
    return fig


def flow_curves_figure(
    sols: Mapping[str, F.FlowSolution],
    quantities: Sequence[str] = ("rel_error_fro",),
    *,
    title: str = "",
    t_stop: float | None = None,
) -> go.Figure:
    """One panel per quantity (keys of the solution: ``rel_error_fro``, ``rel_error_op``,
    ``perturbation_norm``, ``imbalance_drift``) against time, one line per labelled run, on log
    y axes; an optional vertical line marks the stopping time ``t_stop``."""
    qs = [check_choice("quantities", q, list(_CURVES)) for q in quantities]
    fig = subplots(
        [_CURVES[q] for q in qs],
        ["time t"] * len(qs),
        [_CURVES[q] for q in qs],
        log_y=[True] * len(qs),
        title=title,
        height=400,
    )
    for i, (label, sol) in enumerate(sols.items()):
        for j, q in enumerate(qs):
            fig.add_scatter(
                x=sol.t,
                y=positive(getattr(sol, q)),
                name=label,
                legendgroup=label,
                showlegend=j == 0,
                line={"color": color(i)},
                row=1,
                col=j + 1,
            )
    if t_stop is not None:
        fig.add_vline(
            x=check_real("t_stop", t_stop, 0.0),
            line={"color": "black", "dash": "dash", "width": 1},
            annotation_text="stop at T",
            annotation_position="top left",
        )
    return fig


def xi_figure(
    xis: Sequence[float],
    errors: Mapping[str, Sequence[float]],
    *,
    threshold: float | None = None,
    fit_range: tuple[float, float] | None = None,
) -> go.Figure:
    """Final error against ξ on log-log axes, one series per perturbation kind, with a slope-1
    reference through the first series' points in ``fit_range`` and the predicted threshold."""
    x = check_array("xis", xis, ndim=1)
    fig = figure(
        "Final error against the perturbation size ξ (stopped at T)",
        "perturbation size ξ = ‖E‖₂",
        "‖UVᵀ − X*‖_F / ‖X*‖_F",
        log_x=True,
        log_y=True,
        height=420,
    )
    add_series(fig, x, errors)
    first = check_array("errors", next(iter(errors.values())), shape=x.shape)
    lo, hi = fit_range if fit_range is not None else (x.min(), x.max())
    sel = (x >= lo) & (x <= hi)
    c = float(np.exp(np.mean(np.log(first[sel]) - np.log(x[sel]))))
    fig.add_scatter(
        x=x,
        y=c * x,
        mode="lines",
        name="slope 1",
        line={"color": "black", "dash": "dash", "width": 1},
    )
    if threshold is not None:
        fig.add_vline(
            x=check_real("threshold", threshold, 0.0, low_open=True),
            line={"color": color(2), "dash": "dot"},
            annotation_text="predicted ξ_c",
            annotation_position="top left",
        )
    return fig


class FlowDemo(Demo):
    """Notebook 03's panel: the PGF on an n×n target, four controls.

    ``alpha``: init scale (log slider); ``xi``: perturbation size ‖E‖₂; ``kind``: one of
    :data:`course_lib.flows.KINDS` (``sensing`` uses m = ``m_mult``·r(2n − r) Gaussian
    measurements and ignores ξ); ``r``: target rank (width k = r + ``extra_width``). The flow runs
    to the horizon T = ``factor``·ln(σ_r/α²)/σ_r with RK4 steps ``dt_scale``/σ_1 (default 0.2/σ_1:
    relative global error ≈ 1e-4, enough for a plot; the notebook checks the accuracy).
    Left panel: relative error and ‖E(t)‖₂/‖X*‖₂ over time; right: singular values of UVᵀ.
    """

    def __init__(
        self,
        n: int = 20,
        *,
        alpha: float = 1e-3,
        xi: float = 0.05,
        kind: str = "fixed",
        r: int = 3,
        extra_width: int = 3,
        m_mult: float = 3.0,
        kappa: float = 2.0,
        factor: float = 2.0,
        dt_scale: float = 0.2,
        seed: int = 0,
    ):
        self.n = check_int("n", n, 2 * MAX_RANK, 60)
        self.extra_width = check_int("extra_width", extra_width, 0, 10)
        self.m_mult = check_real("m_mult", m_mult, 0.5, 20.0)
        self.kappa = check_real("kappa", kappa, 1.0, 10.0)
        self.factor = check_real("factor", factor, 0.5, 20.0)
        self.dt_scale = check_real("dt_scale", dt_scale, 0.0, 0.5, low_open=True)
        self.seed = check_int("seed", seed, 0)
        self.solution: F.FlowSolution | None = None
        self._drawn_r = 0
        controls = {
            "alpha": log_slider("init scale α", -6, -1, alpha),
            "xi": float_slider("size ξ", 0.0, 1.0, xi, 0.01),
            "kind": dropdown("perturbation", list(F.KINDS), check_choice("kind", kind, F.KINDS)),
            "r": int_slider("rank r", 1, MAX_RANK, r),
        }
        fig = subplots(
            ["error and perturbation", "singular values of UVᵀ"],
            ["time t", "time t"],
            ["relative size", "σ_i(UVᵀ)"],
            log_y=[True, True],
            height=420,
        )
        fig.add_scatter(
            x=[], y=[], name="‖UVᵀ − X*‖_F/‖X*‖_F", line={"color": color(0)}, row=1, col=1
        )
        fig.add_scatter(
            x=[], y=[], name="‖E(t)‖₂/‖X*‖₂", line={"color": color(1), "dash": "dash"}, row=1, col=1
        )
        for i in range(MAX_RANK):
            fig.add_scatter(
                x=[],
                y=[],
                name=f"σ_{i + 1}",
                showlegend=False,
                line={"color": color(i + 2)},
                row=1,
                col=2,
            )
        fig.add_scatter(
            x=[], y=[], name="other directions", line={"color": _GRAY, "width": 1}, row=1, col=2
        )
        fig.add_scatter(
            x=[],
            y=[],
            name="targets σ_i",
            line={"color": "black", "dash": "dot", "width": 1},
            row=1,
            col=2,
        )
        fig.add_scatter(
            x=[], y=[], name="ξ", line={"color": color(1), "dash": "dot", "width": 1}, row=1, col=2
        )
        super().__init__(controls, fig, title="The perturbed gradient flow: pick a perturbation")

    def compute(
        self, alpha: float, xi: float, kind: str, r: int
    ) -> tuple[S.SensingProblem, F.FlowSolution]:
        """The problem and the flow's solution for these control values."""
        r = check_int("r", r, 1, MAX_RANK)
        m = int(round(self.m_mult * S.degrees_of_freedom(self.n, self.n, r)))
        prob, _ = cached_problem(self.n, r, m if kind == "sensing" else None, self.kappa, self.seed)
        U0, V0 = S.init_factors(self.n, self.n, r + self.extra_width, alpha, self.seed + 1)
        t_end = self.factor * np.log(max(prob.sigma[-1] / alpha**2, np.e)) / prob.sigma[-1]
        sol = F.integrate_flow(
            prob.X_star,
            U0,
            V0,
            t_end,
            perturbation=kind,
            xi=xi,
            A=prob.A,
            seed=self.seed + 2,
            dt=self.dt_scale / prob.sigma[0],
            max_records=100,
        )
        return prob, sol

    def redraw(self, alpha: float, xi: float, kind: str, r: int, **_: Any) -> None:
        prob, sol = self.compute(alpha, xi, kind, r)
        self.solution = sol
        d = self.fig.data
        t = sol.t
        d[0].x, d[0].y = t, positive(sol.rel_error_fro)
        d[1].x, d[1].y = t, positive(sol.perturbation_norm / prob.sigma[0])
        # signal modes one trace each, the other k − r directions as one grey trace with gaps;
        # traces that do not change are not re-sent (each plotly update costs ~1 ms)
        for i in range(r):
            d[2 + i].x, d[2 + i].y = t, positive(sol.singular_values[:, i])
        for i in range(r, self._drawn_r):
            d[2 + i].x, d[2 + i].y = [], []
        rest = positive(sol.singular_values[:, r:].T)
        gaps = np.full((rest.shape[0], 1), np.nan)
        d[2 + MAX_RANK].x = np.hstack([np.tile(t, (rest.shape[0], 1)), gaps]).ravel()
        d[2 + MAX_RANK].y = np.hstack([rest, gaps]).ravel()
        if r != self._drawn_r or d[3 + MAX_RANK].x is None or len(d[3 + MAX_RANK].x) == 0:
            d[3 + MAX_RANK].x, d[3 + MAX_RANK].y = hlines(prob.sigma, 0.0, 1e3)
        self._drawn_r = r
        bounded = kind in ("fixed", "random", "aligned") and xi > 0
        d[4 + MAX_RANK].x, d[4 + MAX_RANK].y = ([0.0, 1e3], [xi, xi]) if bounded else ([], [])
        self.fig.layout.xaxis.range = self.fig.layout.xaxis2.range = [0.0, float(t[-1])]
        self.fig.layout.title.text = (
            f"{kind} perturbation, ξ = {xi:g}: final error {sol.final_error:.2g} at "
            f"T = {t[-1]:.1f}; imbalance drift {sol.imbalance_drift.max():.1g}"
        )
