"""The :class:`Demo` base class: a panel of controls driving one plotly ``FigureWidget``.

A demo owns its sliders and its figure, recomputes on every change and redraws inside
``fig.batch_update()``. It works in JupyterLab, and without any browser: set
``demo.controls["alpha"].value = 1e-3`` in a test and the figure's data change. In batch reports
(``COURSE_LIB_STATIC=1``) a demo displays a static copy of its figure, so the HTML export shows
the plot instead of an empty widget.

Subclasses implement :meth:`Demo.redraw`; a ``DivergenceError`` or ``ValueError`` raised there is
shown in the panel and on the figure, never drawn as an empty plot.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import ipywidgets as W
import plotly.graph_objects as go
from IPython.display import display

from ._validate import DivergenceError, check_int, check_real
from .core import static_mode
from .plots import annotate_error

__all__ = ["Demo", "log_slider", "int_slider", "float_slider", "dropdown"]

_STYLE = {"description_width": "110px"}
_LAYOUT = {"width": "380px"}


def log_slider(
    description: str, low_exp: float, high_exp: float, value: float, step: float = 0.25
) -> W.FloatLogSlider:
    """A base-10 log slider from 10**low_exp to 10**high_exp (e.g. the init scale α)."""
    check_real("value", value, 10.0**low_exp, 10.0**high_exp)
    return W.FloatLogSlider(
        value=value,
        base=10,
        min=low_exp,
        max=high_exp,
        step=step,
        description=description,
        continuous_update=False,
        readout_format=".1e",
        style=_STYLE,
        layout=_LAYOUT,
    )


def int_slider(description: str, low: int, high: int, value: int, step: int = 1) -> W.IntSlider:
    """An integer slider that updates on release."""
    check_int("value", value, low, high)
    return W.IntSlider(
        value=value,
        min=low,
        max=high,
        step=step,
        description=description,
        continuous_update=False,
        style=_STYLE,
        layout=_LAYOUT,
    )


def float_slider(
    description: str, low: float, high: float, value: float, step: float, fmt: str = ".2f"
) -> W.FloatSlider:
    """A float slider that updates on release."""
    check_real("value", value, low, high)
    return W.FloatSlider(
        value=value,
        min=low,
        max=high,
        step=step,
        description=description,
        continuous_update=False,
        readout_format=fmt,
        style=_STYLE,
        layout=_LAYOUT,
    )


def dropdown(description: str, options: list[Any] | dict[str, Any], value: Any) -> W.Dropdown:
    """A dropdown (choice of kind, instance, ...)."""
    return W.Dropdown(
        options=options, value=value, description=description, style=_STYLE, layout=_LAYOUT
    )


class Demo:
    """Base class of the course's interactive demos.

    Parameters
    ----------
    controls:
        Mapping from parameter name to an ipywidgets value widget; :meth:`redraw` receives the
        current values as keyword arguments.
    figure:
        The initial figure (traces may be empty); it is wrapped in a ``go.FigureWidget``.
    title:
        Optional heading shown above the controls.
    """

    def __init__(self, controls: Mapping[str, W.ValueWidget], figure: go.Figure, title: str = ""):
        self.controls: dict[str, W.ValueWidget] = dict(controls)
        self.fig = go.FigureWidget(figure)
        self.title = title
        self.status = W.HTML(value="")
        self.error: str | None = None
        self.last_update_s = float("nan")
        self.n_updates = 0
        for widget in self.controls.values():
            widget.observe(self._on_change, names="value")
        self.update()

    # -- to implement -------------------------------------------------------------------------
    def redraw(self, **values: Any) -> None:  # pragma: no cover - abstract
        """Recompute for the current control ``values`` and update ``self.fig``."""
        raise NotImplementedError

    # -- machinery ----------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """Current value of every control."""
        return {name: w.value for name, w in self.controls.items()}

    def update(self) -> None:
        """Recompute and redraw; report a divergence or bad value instead of an empty plot."""
        t0 = time.perf_counter()
        try:
            with self.fig.batch_update():
                self.fig.layout.annotations = []
                self.redraw(**self.values())
            self.error = None
            self.status.value = ""
        except (DivergenceError, ValueError) as exc:
            self.error = str(exc)
            annotate_error(self.fig, html.escape(self.error))
            self.status.value = f"<b style='color:#b00020'>{html.escape(self.error)}</b>"
        self.last_update_s = time.perf_counter() - t0
        self.n_updates += 1

    def _on_change(self, _change: dict) -> None:
        self.update()

    @cached_property
    def panel(self) -> W.VBox:
        """The widget tree (built once): heading, controls, status line, figure."""
        items: list[W.Widget] = []
        if self.title:
            items.append(W.HTML(f"<b>{html.escape(self.title)}</b>"))
        controls = list(self.controls.values())
        rows = [W.HBox(controls[i : i + 2]) for i in range(0, len(controls), 2)]
        box = W.VBox([*items, *rows, self.status, self.fig])
        box.add_class("course-demo")
        return box

    def snapshot(self) -> go.Figure:
        """A static copy of the current figure (for reports and exports)."""
        return go.Figure(self.fig)

    def _ipython_display_(self) -> None:
        display(self.snapshot() if static_mode() else self.panel)
