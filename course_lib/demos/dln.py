"""Figures and widget demos for notebooks 04 (DLN → basis pursuit) and 05 (hardness).

Figure builders return ``go.Figure`` (never shown here). Demos: :class:`LimitDemo` (init scale α,
depth p, instance and random-instance sliders) and :class:`HardnessDemo` (ε, p, α on A_ε).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import dln
from .._validate import check_int, check_real
from ..plots import color, figure, subplots
from ..widgets import Demo, dropdown, float_slider, int_slider, log_slider

__all__ = [
    "distance_figure",
    "flow_figure",
    "potentials_figure",
    "gd_bias_figure",
    "kink_figure",
    "heatmap_data",
    "heatmap_figure",
    "LimitDemo",
    "HardnessDemo",
]


def _p_label(p: float) -> str:
    return f"p = {p:g}"


def distance_figure(results: Mapping[str, Mapping[float, dict]]) -> go.Figure:
    """Paper figure 1: ‖x∞ − x̂_p‖ against β = αᵖ, one panel per instance.

    ``results[instance][p]`` holds ``betas``, ``dist`` and ``slope_pred``; the predicted slope is
    drawn dashed through the smallest-β point.
    """
    names = list(results)
    fig = subplots(
        [f"{n}" for n in names],
        ["α^p"] * len(names),
        ["‖x∞ − x̂_p‖"] + [""] * (len(names) - 1),
        log_x=[True] * len(names),
        log_y=[True] * len(names),
        title="Distance to the selected ℓ1 minimiser (dashed: predicted slope)",
        height=420,
    )
    for j, name in enumerate(names):
        for i, (p, r) in enumerate(results[name].items()):
            b, d = np.asarray(r["betas"]), np.asarray(r["dist"])
            fig.add_scatter(
                x=b,
                y=d,
                mode="lines+markers",
                name=_p_label(p),
                legendgroup=str(p),
                showlegend=j == 0,
                line={"color": color(i)},
                row=1,
                col=j + 1,
            )
            k = int(np.argmin(b))
            pred = d[k] * (b / b[k]) ** r["slope_pred"]
            fig.add_scatter(
                x=b,
                y=pred,
                mode="lines",
                line={"color": color(i), "dash": "dash"},
                name=f"slope {r['slope_pred']:.2f}",
                legendgroup=str(p),
                showlegend=False,
                row=1,
                col=j + 1,
            )
    return fig


def flow_figure(flow: dln.FlowResult, limit: np.ndarray, title: str) -> go.Figure:
    """Trajectories x_i(t) of the stiff ODE with the closed-form limit x∞ dashed."""
    fig = figure(title, "time t", "x_i(t)", log_x=True)
    t = flow.t[1:]
    for i in range(flow.x.shape[1]):
        fig.add_scatter(
            x=t, y=flow.x[1:, i], mode="lines", name=f"x_{i + 1}(t)", line={"color": color(i)}
        )
        fig.add_scatter(
            x=[t[0], t[-1]],
            y=[limit[i], limit[i]],
            mode="lines",
            line={"color": color(i), "dash": "dash"},
            name="closed-form limits x∞",
            showlegend=i == 0,
        )
    return fig


def potentials_figure(ps: Sequence[float]) -> go.Figure:
    """Paper figure 3: h_p, q_p and the small-β tie-break along the line instance's face."""
    fig = subplots(
        ["h_p (p = 2: 2 sinh z)", "q_p", "tie-break on the line face S(t)"],
        ["τ (z for p = 2)", "z", "t  (x = (1−t, 2(1−t), 3t))"],
        ["h_p", "q_p", "tie-break (normalised)"],
        height=380,
        title="Potentials of the depth-p network and the selection rule",
    )
    tau = np.linspace(-0.95, 0.95, 201)
    z = np.linspace(-6, 6, 241)
    ts = np.linspace(0.005, 0.995, 199)
    xs = np.stack([1 - ts, 2 * (1 - ts), 3 * ts], axis=-1)
    for i, p in enumerate(ps):
        c = {"color": color(i)}
        hz = dln.h_p(np.linspace(-3, 3, 201), p) if p == 2 else dln.h_p(tau, p)
        fig.add_scatter(
            x=np.linspace(-3, 3, 201) if p == 2 else tau,
            y=np.clip(hz, -20, 20),
            mode="lines",
            line=c,
            name=_p_label(p),
            legendgroup=str(p),
            row=1,
            col=1,
        )
        fig.add_scatter(
            x=z,
            y=dln.q_p(z, p),
            mode="lines",
            line=c,
            showlegend=False,
            legendgroup=str(p),
            row=1,
            col=2,
        )
        tb = dln.tie_break(xs, p)
        tb = (tb - tb.min()) / (tb.max() - tb.min())
        ts_star = dln.line_t_star(p)
        fig.add_scatter(
            x=ts, y=tb, mode="lines", line=c, showlegend=False, legendgroup=str(p), row=1, col=3
        )
        fig.add_scatter(
            x=[ts_star],
            y=[0.0],
            mode="markers",
            marker={"color": c["color"], "size": 9, "symbol": "x"},
            showlegend=False,
            legendgroup=str(p),
            row=1,
            col=3,
        )
    return fig


def gd_bias_figure(etas: Sequence[float], dists: Sequence[float], slope: float) -> go.Figure:
    """‖x_GD(η) − x∞‖ against the step size η (log-log), with the fitted slope."""
    fig = figure(
        f"Gradient descent on (u, v): limit bias vs step size (slope {slope:.2f})",
        "step size η",
        "‖x_GD − x∞‖",
        log_x=True,
        log_y=True,
    )
    fig.add_scatter(
        x=list(etas), y=list(dists), mode="lines+markers", name="measured", line={"color": color(0)}
    )
    e = np.asarray(etas)
    fig.add_scatter(
        x=e,
        y=dists[-1] * e / e[-1],
        mode="lines",
        name="slope 1",
        line={"color": color(1), "dash": "dash"},
    )
    return fig


# ------------------------------------------------------------------------------------------
# notebook 05
# ------------------------------------------------------------------------------------------
def kink_figure(ps: Sequence[float], epss: Sequence[float], betas: np.ndarray) -> go.Figure:
    """Paper figure 2: ‖x∞ − (1, 0)‖ on A_ε against β, kink near β ≈ ε^{p/(p−2)} (dotted)."""
    fig = subplots(
        [_p_label(p) for p in ps],
        ["α^p"] * len(ps),
        ["‖x∞ − x̂‖"] + [""] * (len(ps) - 1),
        log_x=[True] * len(ps),
        log_y=[True] * len(ps),
        height=400,
        title="A_ε = [1, 1−ε], y = 1: error against α^p (dotted: β = ε^{p/(p−2)})",
    )
    for j, p in enumerate(ps):
        for i, e in enumerate(epss):
            err = np.linalg.norm(dln.a_eps_limit(e, p, betas) - [1.0, 0.0], axis=-1)
            fig.add_scatter(
                x=betas,
                y=err,
                mode="lines",
                line={"color": color(i)},
                name=f"ε = {e:g}",
                legendgroup=str(e),
                showlegend=j == 0,
                row=1,
                col=j + 1,
            )
            fig.add_vline(
                x=e ** (p / (p - 2)), line={"color": color(i), "dash": "dot"}, row=1, col=j + 1
            )
    return fig


def heatmap_data(p: float, log_betas: np.ndarray, log_eps: np.ndarray) -> np.ndarray:
    """log10 ‖x∞ − (1, 0)‖ on the grid (rows: ε, columns: β), clipped below at −16."""
    B, E = np.meshgrid(10.0**log_betas, 10.0**log_eps)
    err = np.linalg.norm(dln.a_eps_limit(E, p, B) - np.array([1.0, 0.0]), axis=-1)
    return np.log10(np.maximum(err, 1e-16))


def heatmap_figure(
    p: float, log_betas: np.ndarray, log_eps: np.ndarray, accuracy: float = 0.1
) -> go.Figure:
    """Heat map of log10 error over (log10 β, log10 ε) with the measured and predicted boundary."""
    z = heatmap_data(p, log_betas, log_eps)
    fig = figure(
        f"log10 error on A_ε, p = {p:g} (illustration of the phase boundary)",
        "log10 α^p",
        "log10 ε",
        height=440,
    )
    fig.add_heatmap(
        x=log_betas,
        y=log_eps,
        z=z,
        colorscale="Viridis",
        zmin=-12,
        zmax=0,
        colorbar={"title": {"text": "log10 err"}},
    )
    if p > 2:
        pred = np.log10(accuracy) + p / (p - 2) * log_eps
    else:
        pred = np.log10(accuracy / np.sqrt(2)) / 10.0**log_eps
    keep = pred >= log_betas[0] - 1  # boundary points inside (or just below) the window
    thr = np.log10(dln.a_eps_threshold(10.0 ** log_eps[keep], p, accuracy))
    if p > 2:  # the predicted power law, through the measured point at the smallest ε
        pred, name = thr[0] + p / (p - 2) * (log_eps[keep] - log_eps[keep][0]), "slope p/(p−2)"
    else:
        pred, name = pred[keep], "β = (η/√2)^{1/ε}"
    fig.add_scatter(
        x=thr,
        y=log_eps[keep],
        mode="lines",
        name=f"measured: error = {accuracy:g}",
        line={"color": "white", "width": 3},
    )
    fig.add_scatter(
        x=pred,
        y=log_eps[keep],
        mode="lines",
        name=f"predicted: {name}",
        line={"color": "#D55E00", "dash": "dash", "width": 2},
    )
    fig.update_layout(legend={"orientation": "h", "y": -0.22, "x": 0.0})
    fig.update_xaxes(range=[log_betas[0], log_betas[-1]])
    fig.update_yaxes(range=[log_eps[0], log_eps[-1]])
    return fig


# ------------------------------------------------------------------------------------------
# demos
# ------------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def _instance(name: str, m: int, N: int, sparsity: int, seed: int):
    if name == "line":
        A, y = dln.line_instance()
    elif name == "plane":
        A, y = dln.plane_instance()
    else:
        A, y = dln.random_instance(m, min(max(N, m + 1), 200), min(sparsity, N), seed)
    return A, y, dln.bp_face(A, y)


@lru_cache(maxsize=256)
def _selection(name: str, m: int, N: int, sparsity: int, seed: int, p: float):
    A, y, face = _instance(name, m, N, sparsity, seed)
    xh = dln.selected_minimizer(A, y, p, face)
    slope, _rho = dln.predicted_slope(A, y, p, xh)
    betas = np.logspace(0, -8, 17)
    d, _ = dln.distance_sweep(A, y, p, betas, xhat=xh, precision="double")
    return xh, slope, betas, d


def _two_panels(titles: list[str], spacing: float) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles, horizontal_spacing=spacing)
    fig.update_layout(height=420, template="plotly_white", margin={"t": 70})
    return fig


def _link_alpha_range(controls: dict) -> None:
    """Keep the α slider's range at αᵖ ≥ 1e-12 when p moves (a clamped α redraws as usual)."""

    def on_p(change: dict) -> None:
        controls["alpha"].min = -12 / float(change["new"])

    controls["p"].observe(on_p, names="value")


def _empty_trace(fig: go.Figure, col: int, name: str, mode: str, **style: Any) -> None:
    """Add an empty scatter trace to panel ``col`` (filled in by ``redraw``)."""
    fig.add_scatter(x=[], y=[], mode=mode, name=name, row=1, col=col, **style)


class LimitDemo(Demo):
    """Sliders: instance, log α (down to αᵖ = 1e-12), depth p ∈ [2, 6], random m, N, sparsity, seed.

    Left: coordinates of x∞ (closed form) and of the selected minimiser x̂_p. Right: distance to
    x̂_p against β = αᵖ (double precision, β ≥ 1e-8) with the current point (auto precision).
    """

    def __init__(
        self,
        instance: str = "line",
        alpha: float = 1e-2,
        p: float = 2.0,
        m: int = 3,
        N: int = 5,
        sparsity: int = 2,
        seed: int = 0,
    ):
        p = check_real("p", p, 2.0, 6.0)
        fig = _two_panels(["coordinates", "‖x∞ − x̂_p‖ vs α^p"], 0.12)
        _empty_trace(fig, 1, "x∞ (closed form)", "markers", marker={"size": 11, "color": color(0)})
        _empty_trace(
            fig,
            1,
            "x̂_p (face)",
            "markers",
            marker={"size": 16, "color": color(1), "symbol": "circle-open", "line": {"width": 2}},
        )
        _empty_trace(
            fig, 2, "distance (double, β ≥ 1e-8)", "lines+markers", line={"color": color(2)}
        )
        _empty_trace(fig, 2, "predicted slope", "lines", line={"color": color(2), "dash": "dash"})
        _empty_trace(
            fig,
            2,
            "current α^p",
            "markers",
            marker={"size": 13, "color": color(3), "symbol": "star"},
        )
        fig.update_xaxes(title_text="coordinate i", row=1, col=1)
        fig.update_xaxes(title_text="α^p", type="log", exponentformat="power", row=1, col=2)
        fig.update_yaxes(type="log", exponentformat="power", row=1, col=2)
        controls = {
            "instance": dropdown("instance", ["line", "plane", "random"], instance),
            "alpha": log_slider("init scale α", -12 / p, 0, alpha, step=0.05),
            "p": float_slider("depth p", 2.0, 6.0, p, 0.1, ".1f"),
            "m": int_slider("random m", 1, 8, m),
            "N": int_slider("random N", 2, 16, N),
            "sparsity": int_slider("random sparsity", 1, 16, sparsity),
            "seed": int_slider("random seed", 0, 99, seed),
        }
        self.last_result: dln.LimitResult | None = None
        super().__init__(controls, fig, title="Diagonal linear network: limit of the gradient flow")
        _link_alpha_range(controls)

    def redraw(
        self,
        instance: str,
        alpha: float,
        p: float,
        m: int,
        N: int,
        sparsity: int,
        seed: int,
        **_: Any,
    ) -> None:
        if instance == "random" and N <= m:
            raise ValueError(f"N must exceed m for a random instance, got m = {m}, N = {N}")
        p = round(float(p), 6)
        key = (instance, m, N, sparsity, seed) if instance == "random" else (instance, 0, 0, 0, 0)
        A, y, _face = _instance(*key)
        xh, slope, betas, d = _selection(*key, p)
        r = dln.dln_limit(A, y, p, alpha)
        self.last_result = r
        dist = float(np.linalg.norm(r.x - xh))
        i = np.arange(1, A.shape[1] + 1)
        f = self.fig
        f.data[0].x, f.data[0].y = i, r.x
        f.data[1].x, f.data[1].y = i, xh
        ok = d > 1e-13 * max(1.0, float(np.abs(xh).max()))  # above the double-precision floor
        ok[0] = True  # β = 1 always
        b, d = betas[ok], d[ok]
        f.data[2].x, f.data[2].y = b, d
        f.data[3].x, f.data[3].y = b, d[-1] * (b / b[-1]) ** slope
        f.data[4].x, f.data[4].y = [r.beta], [max(dist, 1e-300)]
        f.layout.title = {
            "text": f"p = {p:g}, α^p = {r.beta:.1e}: ‖x∞ − x̂_p‖ = {dist:.2e} "
            f"(predicted slope {slope:.2f}, {r.precision})",
            "x": 0.02,
        }


class HardnessDemo(Demo):
    """Sliders ε, p, α on A_ε = [1, 1 − ε], y = 1.

    Left: heat map of log10 error over (log10 β, log10 ε) for the chosen p with the current point.
    Right: x∞ against ε ∈ [−0.5, 0.5] at the chosen α (the network's version of the jump).
    """

    def __init__(self, eps: float = 0.05, p: float = 3.0, alpha: float = 1e-2, n_grid: int = 41):
        p = check_real("p", p, 2.0, 6.0)
        n_grid = check_int("n_grid", n_grid, 3, 400)
        self.log_betas = np.linspace(-12, 0, n_grid)
        self.log_eps = np.linspace(-3, 0 - 1e-9, n_grid)
        self.eps_line = np.linspace(-0.5, 0.5, 201)
        self._heat_p: float | None = None
        fig = _two_panels(["log10 error (ε > 0)", "x∞ against ε"], 0.14)
        fig.add_heatmap(
            x=self.log_betas,
            y=self.log_eps,
            z=[[0]],
            colorscale="Viridis",
            zmin=-12,
            zmax=0,
            colorbar={"x": 0.43, "len": 0.9},
            row=1,
            col=1,
        )
        _empty_trace(
            fig,
            1,
            "current (α^p, ε)",
            "markers",
            marker={"size": 14, "color": "red", "symbol": "x"},
        )
        _empty_trace(fig, 2, "x∞_1", "lines", line={"color": color(0)})
        _empty_trace(fig, 2, "x∞_2", "lines", line={"color": color(1)})
        _empty_trace(fig, 2, "current ε", "markers", marker={"size": 11, "color": "red"})
        fig.update_xaxes(title_text="log10 α^p", row=1, col=1)
        fig.update_yaxes(title_text="log10 ε", row=1, col=1)
        fig.update_xaxes(title_text="ε", row=1, col=2)
        controls = {
            "eps": float_slider("ε", -0.5, 0.5, eps, 0.005, ".3f"),
            "p": float_slider("depth p", 2.0, 6.0, p, 0.1, ".1f"),
            "alpha": log_slider("init scale α", -12 / p, 0, alpha, step=0.05),
        }
        super().__init__(controls, fig, title="A_ε = [1, 1−ε]: the solution map jumps at ε = 0")
        _link_alpha_range(controls)

    def redraw(self, eps: float, p: float, alpha: float, **_: Any) -> None:
        p = round(float(p), 6)
        beta = max(alpha**p, 1e-300)
        f = self.fig
        if self._heat_p != p:
            f.data[0].z = heatmap_data(p, self.log_betas, self.log_eps)
            self._heat_p = p
        xs = dln.a_eps_limit(self.eps_line, p, beta)
        x = dln.a_eps_limit(eps, p, beta)
        target = np.array([1.0, 0.0]) if eps > 0 else np.array([0.0, 1 / (1 - eps)])
        err = float(np.linalg.norm(x - target)) if eps != 0 else float("nan")
        f.data[1].x, f.data[1].y = [np.log10(beta)], [np.log10(max(abs(eps), 1e-3))]
        f.data[2].x, f.data[2].y = self.eps_line, xs[:, 0]
        f.data[3].x, f.data[3].y = self.eps_line, xs[:, 1]
        f.data[4].x, f.data[4].y = [eps, eps], list(x)
        f.layout.title = {
            "text": f"p = {p:g}, α^p = {beta:.1e}, ε = {eps:g}: x∞ = "
            f"({x[0]:.3f}, {x[1]:.3f}), error {err:.2e}",
            "x": 0.02,
        }
