"""Notebook 06 figures and demos: WKV as attention with a per-channel distance decay, the init
recipe's decay ramps, the equivalence checks, and the init-scale experiment.

* :func:`attention_figure` — the implied attention weights A[t, i] of a few channels (heatmaps).
* :func:`half_life_figure` — memory half-life ln2 / exp(time_decay) of every channel, per layer.
* :func:`equivalence_figure` — max |Δ| of each equivalence check on a log axis.
* :class:`DecayDemo` — sliders for one channel's decay and bonus: attention pattern + half-life.
* :class:`InitScaleDemo` — slider for the embedding init scale: first training steps of RWKV's
  tiny init against PyTorch's default init (curves precomputed on the slider's grid).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from .._validate import check_int, check_real
from ..plots import color, figure, subplots
from ..rwkv.model import RWKV, RWKVConfig, attention_weights, half_life, init_scale_run
from ..widgets import Demo, float_slider, log_slider

__all__ = [
    "attention_figure",
    "half_life_figure",
    "equivalence_figure",
    "init_curves_figure",
    "DecayDemo",
    "InitScaleDemo",
]


def _heatmap(A: np.ndarray, showscale: bool = False) -> go.Heatmap:
    return go.Heatmap(
        z=A,
        colorscale="Blues",
        zmin=0.0,
        zmax=1.0,
        showscale=showscale,
        hovertemplate="t=%{y}, i=%{x}: %{z:.3f}<extra></extra>",
    )


def attention_figure(
    channels: Sequence[tuple[float, float]], T: int = 24, labels: Sequence[str] | None = None
) -> go.Figure:
    """Heatmaps of A[t, i] (keys = 0) for channels given as (time_decay, time_first) pairs."""
    T = check_int("T", T, 2, 512)
    if not channels:
        raise ValueError("channels must contain at least one (time_decay, time_first) pair")
    labels = (
        list(labels)
        if labels is not None
        else [f"decay {math.exp(-math.exp(td)):.3f}/step, u = {tf:.2f}" for td, tf in channels]
    )
    n = len(channels)
    fig = subplots(
        labels,
        ["source token i"] * n,
        ["output token t"] * n,
        title="WKV as attention: weight on token i when producing token t",
    )
    for j, (td, tf) in enumerate(channels):
        A = attention_weights(td, tf, T).numpy()
        fig.add_trace(_heatmap(A, showscale=j == n - 1), row=1, col=j + 1)
        fig.update_yaxes(autorange="reversed", row=1, col=j + 1)
    return fig


def half_life_figure(model: RWKV) -> go.Figure:
    """Half-life (tokens) of every channel of every layer, from the model's time_decay."""
    if not isinstance(model, RWKV):
        raise ValueError(f"model must be an RWKV, got {type(model).__name__}")
    fig = figure(
        "Memory half-life per channel (init recipe)", "channel h", "half-life (tokens)", log_y=True
    )
    for i, block in enumerate(model.blocks):
        hl = half_life(block.att.time_decay.detach()).numpy()
        fig.add_scatter(y=hl, mode="lines", name=f"layer {i}", line={"color": color(i)})
    return fig


def equivalence_figure(deltas: Mapping[str, float], tolerances: Mapping[str, float]) -> go.Figure:
    """Bars of max |Δ| per check, with each check's tolerance as a marker (log axis)."""
    names = list(deltas)
    if not names or set(names) != set(tolerances):
        raise ValueError("deltas and tolerances must be non-empty with the same keys")
    fig = figure(
        "Equivalence checks: max |Δ| (bars) vs tolerance (×)", "", "max |Δ|", log_y=True, height=420
    )
    fig.add_bar(
        x=names, y=[max(deltas[k], 1e-18) for k in names], name="max |Δ|", marker_color=color(0)
    )
    fig.add_scatter(
        x=names,
        y=[tolerances[k] for k in names],
        mode="markers",
        name="tolerance",
        marker={"symbol": "x", "size": 11, "color": color(1)},
    )
    return fig


def init_curves_figure(curves: Mapping[str, np.ndarray], floor: float | None = None) -> go.Figure:
    """Loss against step for several inits (dict label -> losses); optional entropy floor."""
    fig = figure("First training steps: loss vs step", "Adam step", "training loss (nats/token)")
    for i, (name, y) in enumerate(curves.items()):
        fig.add_scatter(y=np.asarray(y), mode="lines", name=name, line={"color": color(i)})
    if floor is not None:
        fig.add_hline(
            y=floor,
            line={"dash": "dot", "color": "gray"},
            annotation_text="entropy rate (best possible)",
        )
    return fig


class DecayDemo(Demo):
    """One WKV channel: sliders for time_decay (w = −exp(time_decay)) and time_first (bonus u).

    Left: the attention matrix A[t, i]; right: the weight of the last token's output on tokens d
    steps back, with the memory half-life ln 2 / exp(time_decay) marked.
    """

    def __init__(self, time_decay: float = -1.0, time_first: float = math.log(0.3), T: int = 32):
        self.T = check_int("T", T, 2, 512)
        check_real("time_decay", time_decay, -6.0, 3.0)
        check_real("time_first", time_first, -4.0, 4.0)
        fig = subplots(
            ["attention weights A[t, i]", "weight of the last output on token t − d"],
            ["source token i", "distance d (tokens back)"],
            ["output token t", "weight"],
            log_y=[False, True],
        )
        fig.add_trace(_heatmap(np.zeros((self.T, self.T))), row=1, col=1)
        fig.update_yaxes(autorange="reversed", row=1, col=1)
        fig.add_trace(
            go.Scatter(mode="lines+markers", name="weight", line={"color": color(0)}), row=1, col=2
        )
        fig.add_trace(
            go.Scatter(mode="lines", name="half-life", line={"color": color(1), "dash": "dash"}),
            row=1,
            col=2,
        )
        fig.update_layout(height=420)
        controls = {
            "time_decay": float_slider("time_decay", -6.0, 3.0, time_decay, 0.1),
            "time_first": float_slider("time_first (u)", -4.0, 4.0, time_first, 0.1),
        }
        self.half_life = float("nan")
        super().__init__(controls, fig, title="One channel of WKV: decay and bonus")

    def redraw(self, time_decay: float, time_first: float, **_: Any) -> None:
        A = attention_weights(time_decay, time_first, self.T).numpy()
        last = A[-1, ::-1]  # weight on token T−1−d, d = 0..T−1
        self.half_life = float(half_life(time_decay))
        d = np.arange(self.T)
        self.fig.data[0].z = A
        self.fig.data[1].x, self.fig.data[1].y = d, np.maximum(last, 1e-300)
        lo, hi = max(float(last[last > 0].min()), 1e-30), 1.0
        self.fig.data[2].x = [1 + self.half_life] * 2
        self.fig.data[2].y = [lo, hi]
        decay = math.exp(-math.exp(time_decay))
        self.fig.layout.title.text = (
            f"decay e^w = {decay:.4f} per token, half-life {self.half_life:.3g} tokens, "
            f"bonus e^u = {math.exp(time_first):.3g}"
        )


class InitScaleDemo(Demo):
    """Slider for the embedding init scale of RWKV's recipe (uniform ±scale, then ln0): the
    first Adam steps on a toy Markov source, against PyTorch's default init.

    All curves are computed once on the slider's grid (10^low_exp … 10^high_exp, one per
    decade) at construction, so a slider move only redraws (well under 100 ms).
    """

    def __init__(
        self,
        tokens: np.ndarray,
        config: RWKVConfig,
        *,
        steps: int = 40,
        batch_size: int = 8,
        lr: float = 1e-3,
        seed: int = 0,
        low_exp: int = -6,
        high_exp: int = 0,
        value: float = 1e-4,
        floor: float | None = None,
    ):
        self.low_exp = check_int("low_exp", low_exp, -12, 2)
        self.high_exp = check_int("high_exp", high_exp, self.low_exp + 1, 3)
        kw = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed}
        #: exponent e -> losses of the RWKV init with embedding scale 10^e
        self.curves: dict[int, np.ndarray] = {}
        #: exponent e -> relative change ‖E_end − E_0‖/‖E_0‖ of the embedding over the run
        self.emb_change: dict[int, float] = {}
        for e in range(self.low_exp, self.high_exp + 1):
            self.curves[e], self.emb_change[e] = init_scale_run(
                tokens, config, init="rwkv", emb_scale=10.0**e, **kw
            )
        self.default_curve, self.default_emb_change = init_scale_run(
            tokens, config, init="default", **kw
        )
        self.tail = max(1, steps // 4)
        fig = init_curves_figure(
            {"RWKV init, chosen scale": [], "PyTorch default init": []}, floor=floor
        )
        controls = {
            "emb_scale": log_slider("emb init scale", self.low_exp, self.high_exp, value, step=1.0)
        }
        super().__init__(controls, fig, title="Embedding init scale: the first training steps")

    def exponent(self, emb_scale: float) -> int:
        """The grid decade nearest to ``emb_scale``."""
        s = check_real("emb_scale", emb_scale, 0.0, low_open=True)
        return int(np.clip(round(math.log10(s)), self.low_exp, self.high_exp))

    def final_loss(self, curve: np.ndarray) -> float:
        """Mean training loss over the last quarter of the steps."""
        return float(np.mean(curve[-self.tail :]))

    def scan(self) -> tuple[np.ndarray, np.ndarray]:
        """(scales, final losses) over the grid."""
        es = sorted(self.curves)
        return 10.0 ** np.array(es, dtype=float), np.array(
            [self.final_loss(self.curves[e]) for e in es]
        )

    def redraw(self, emb_scale: float, **_: Any) -> None:
        e = self.exponent(emb_scale)
        y = self.curves[e]
        self.fig.data[0].y = y
        self.fig.data[0].name = f"RWKV init, emb scale 1e{e}"
        self.fig.data[1].y = self.default_curve
        self.fig.layout.title.text = (
            f"after {len(y)} steps: RWKV init (scale 1e{e}) {self.final_loss(y):.3f}, "
            f"PyTorch default {self.final_loss(self.default_curve):.3f} nats/token"
        )
