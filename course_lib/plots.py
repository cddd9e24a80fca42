"""Shared figure styling. Figure builders return ``go.Figure`` objects and never call ``show()``.

Topic figure builders (``course_lib.demos.*``) use :func:`figure` for a consistent look and
:data:`COLORS` for a colour per mode / depth / series.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = [
    "COLORS",
    "color",
    "figure",
    "subplots",
    "annotate_error",
    "positive",
    "hlines",
    "add_series",
]

#: A colour-blind friendly cycle (Okabe–Ito), used for modes, depths and series.
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")


def color(i: int) -> str:
    """The i-th colour of :data:`COLORS`, cycling."""
    return COLORS[i % len(COLORS)]


def _axis(title: str, log: bool) -> dict:
    ax: dict = {"title": {"text": title}, "showgrid": True, "zeroline": False}
    if log:
        ax.update(type="log", exponentformat="power")
    return ax


def figure(
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    *,
    log_x: bool = False,
    log_y: bool = False,
    height: int = 380,
    width: int | None = None,
) -> go.Figure:
    """An empty figure with the course's layout: title, axis labels, optional log axes."""
    fig = go.Figure()
    fig.update_layout(
        title={"text": title, "x": 0.02},
        xaxis=_axis(xlabel, log_x),
        yaxis=_axis(ylabel, log_y),
        height=height,
        width=width,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend={"font": {"size": 11}},
        template="plotly_white",
    )
    return fig


def subplots(
    titles: Sequence[str],
    xlabels: Sequence[str],
    ylabels: Sequence[str],
    *,
    log_x: Sequence[bool] | None = None,
    log_y: Sequence[bool] | None = None,
    title: str = "",
    height: int = 380,
) -> go.Figure:
    """A one-row grid of panels with per-panel axis labels and log axes."""
    n = len(titles)
    if not (len(xlabels) == len(ylabels) == n):
        raise ValueError(
            f"titles, xlabels and ylabels must have equal lengths, got {n}, "
            f"{len(xlabels)}, {len(ylabels)}"
        )
    log_x = list(log_x or [False] * n)
    log_y = list(log_y or [False] * n)
    fig = make_subplots(rows=1, cols=n, subplot_titles=list(titles), horizontal_spacing=0.08)
    for i in range(n):
        fig.update_xaxes(_axis(xlabels[i], log_x[i]), row=1, col=i + 1)
        fig.update_yaxes(_axis(ylabels[i], log_y[i]), row=1, col=i + 1)
    fig.update_layout(
        title={"text": title, "x": 0.02},
        height=height,
        margin={"l": 60, "r": 20, "t": 70, "b": 50},
        template="plotly_white",
    )
    return fig


def annotate_error(fig: go.Figure, message: str) -> None:
    """Put a visible error message on a figure (used when a computation diverges)."""
    fig.layout.annotations = [
        go.layout.Annotation(
            text=message,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            showarrow=False,
            font={"color": "#b00020", "size": 14},
            bgcolor="rgba(255,255,255,0.85)",
        )
    ]


def positive(v: np.ndarray) -> np.ndarray:
    """Values for a log axis: non-positive entries become NaN gaps (never fake numbers)."""
    v = np.asarray(v, dtype=float)
    return np.where(v > 0, v, np.nan)


def hlines(levels: Sequence[float], x0: float, x1: float) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal segments from x0 to x1 at each level, as one trace with NaN gaps."""
    lv = np.asarray(levels, dtype=float)
    xs = np.tile([x0, x1, np.nan], lv.size)
    ys = np.repeat(lv, 3)
    ys[2::3] = np.nan
    return xs, ys


def add_series(
    fig: go.Figure,
    x: np.ndarray,
    series: Mapping[str, Sequence[float]],
    mode: str = "lines+markers",
) -> None:
    """One trace per ``label -> y`` against the shared ``x``, coloured in order; for log axes,
    non-positive values become gaps. ``ValueError`` if a series' length differs from ``x``."""
    for i, (label, values) in enumerate(series.items()):
        y = np.asarray(values, dtype=float)
        if y.shape != np.shape(x):
            raise ValueError(f"series {label!r} must have shape {np.shape(x)}, got {y.shape}")
        fig.add_scatter(x=x, y=positive(y), mode=mode, name=label, line={"color": color(i)})
