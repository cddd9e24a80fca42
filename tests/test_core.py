"""Shared layers: validation, divergence, setup, metrics, the Demo base, notebook 00's demo."""

from __future__ import annotations

import json

import numpy as np
import plotly.io as pio
import pytest

import course_lib as cl
from course_lib._validate import (
    DivergenceError,
    check_array,
    check_choice,
    check_divergence,
    check_int,
    check_real,
    check_rng,
)
from course_lib.demos import start


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: check_real("alpha", -1.0, 0.0, low_open=True), r"alpha must be in \(0.0, inf\)"),
        (lambda: check_real("alpha", float("nan")), "alpha must be a finite"),
        (lambda: check_real("alpha", "x"), "alpha must be a real number"),
        (lambda: check_real("eta", 2.0, 0.0, 1.0), r"eta must be in \[0.0, 1.0\], got 2.0"),
        (lambda: check_int("rank", 2.5, 1, 10), r"rank must be an integer in \[1, 10\]"),
        (lambda: check_int("rank", 0, 1, 10), "got 0"),
        (lambda: check_int("rank", True, 0, 10), "rank must be an integer"),
        (lambda: check_choice("kind", "z", ["a", "b"]), r"kind must be one of \['a', 'b'\]"),
        (lambda: check_rng("seed", -3), "seed must be a non-negative integer"),
        (lambda: check_rng("seed", None), "seed must be"),
        (lambda: check_array("A", [[1, 2]], ndim=1), "A must have 1 dimension"),
        (lambda: check_array("A", [1.0, np.nan]), "A must contain only finite"),
        (lambda: check_array("A", np.ones((2, 3)), shape=(2, 2)), "A must have shape"),
    ],
)
def test_validation_errors_name_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_validation_accepts_good_values():
    assert check_real("a", 3, 0, 5) == 3.0
    assert check_int("n", np.int64(4), 1, 5) == 4
    g = np.random.default_rng(1)
    assert check_rng("seed", g) is g
    assert check_rng("seed", 7).integers(1000) == np.random.default_rng(7).integers(1000)


def test_divergence_is_reported_with_step_and_step_size():
    check_divergence(1.0, 3, method="GD", step_size=0.1, reference=1.0)
    with pytest.raises(DivergenceError, match=r"GD diverged at step 7 .*step size 0.5"):
        check_divergence(float("nan"), 7, method="GD", step_size=0.5)
    with pytest.raises(DivergenceError) as info:
        check_divergence(1e20, 2, method="GD", reference=10.0)
    assert info.value.step == 2 and isinstance(info.value, FloatingPointError)


def test_setup_sets_renderer_and_torch(monkeypatch):
    import torch

    info = cl.setup(3, torch_threads=1)
    assert pio.renderers.default == "plotly_mimetype+notebook"
    assert info["torch_threads"] == 1 and torch.get_num_threads() == 1
    a = np.random.rand(3)  # noqa: NPY002 - checking the legacy global seed
    cl.setup(3, torch_threads=1)
    assert np.array_equal(a, np.random.rand(3))  # noqa: NPY002
    with pytest.raises(ValueError, match="seed"):
        cl.setup(-1)
    with pytest.raises(ValueError, match="torch_threads"):
        cl.setup(0, torch_threads=0)


def test_record_metric_contract(tmp_path, monkeypatch):
    path = tmp_path / "run" / "metrics.json"
    monkeypatch.setenv("COURSE_LIB_METRICS", str(path))
    assert cl.record_metric("slope", 1.02, "", "fitted log-log slope") == 1.02
    cl.record_metric("steps", np.int64(12), "steps", "iterations")
    cl.record_metric("slope", 0.98, "", "fitted log-log slope")  # replaces
    data = json.loads(path.read_text())
    assert data == {
        "slope": {"value": 0.98, "unit": "", "meaning": "fitted log-log slope"},
        "steps": {"value": 12, "unit": "steps", "meaning": "iterations"},
    }
    assert cl.read_metrics(path) == data
    with pytest.raises(ValueError, match="name"):
        cl.record_metric("bad name", 1.0)
    with pytest.raises(ValueError, match="finite"):
        cl.record_metric("x", float("inf"))
    with pytest.raises(ValueError, match="real number"):
        cl.record_metric("x", "1.0")


def test_loglog_slope():
    x = np.logspace(-6, -1, 8)
    assert cl.loglog_slope(x, 3 * x**2) == pytest.approx(2.0, abs=1e-12)
    with pytest.raises(ValueError, match="positive"):
        cl.loglog_slope([1, 2], [1, -1])
    with pytest.raises(ValueError, match="same length"):
        cl.loglog_slope([1, 2, 3], [1, 2])


def test_gd_quadratic_rate_and_divergence():
    xs = start.gd_quadratic(2.0, 0.2, steps=30)
    assert start.contraction_factor(xs) == pytest.approx(0.6, rel=1e-12)
    with pytest.raises(DivergenceError, match="step size 1.5"):
        start.gd_quadratic(2.0, 1.5, steps=200)
    with pytest.raises(ValueError, match="step_size"):
        start.gd_quadratic(1.0, 0.0)


def test_demo_updates_without_browser(monkeypatch):
    monkeypatch.delenv("COURSE_LIB_STATIC", raising=False)
    demo = start.StepSizeDemo(curvature=1.0, step_size=0.5)
    before = np.array(demo.fig.data[0].y)
    demo.controls["step_size"].value = 0.2
    assert demo.error is None and not np.allclose(before, demo.fig.data[0].y)
    assert demo.n_updates == 2 and demo.last_update_s < 1.0
    # a diverging setting is reported, not drawn as an empty plot
    demo.steps = 400
    demo.controls["step_size"].value = 2.45
    assert demo.error is not None and "diverged at step" in demo.error
    assert "diverged" in demo.status.value and demo.fig.layout.annotations
    demo.controls["step_size"].value = 0.5
    assert demo.error is None and not demo.fig.layout.annotations
    panel = demo.panel
    assert "course-demo" in panel._dom_classes and demo.fig in panel.children


def test_demo_is_static_in_reports(monkeypatch):
    monkeypatch.setenv("COURSE_LIB_STATIC", "1")
    demo = start.StepSizeDemo()
    shown = []
    monkeypatch.setattr("course_lib.widgets.display", shown.append)
    demo._ipython_display_()
    assert len(shown) == 1 and type(shown[0]).__name__ == "Figure"
