"""Tests of course_lib.dln (diagonal linear networks, basis pursuit) and its demos."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import DivergenceError, dln
from course_lib.demos import dln as demos


@pytest.fixture(scope="module")
def line():
    return dln.line_instance()


def test_bp_kkt_random():
    for seed in range(5):
        A, y = dln.random_instance(4, 9, 2, seed)
        bp = dln.basis_pursuit(A, y)
        w = bp.dual
        assert np.allclose(A @ bp.x, y, atol=1e-8)
        assert np.max(np.abs(A.T @ w)) <= 1 + 1e-9  # dual feasibility
        assert abs(y @ w - np.abs(bp.x).sum()) < 1e-8  # zero duality gap
        on = np.abs(bp.x) > 1e-8
        assert np.allclose((A.T @ w)[on], np.sign(bp.x[on]), atol=1e-8)  # complementary slackness


def test_face_of_line_instance(line):
    face = dln.bp_face(*line)
    assert face.value == pytest.approx(3.0)
    assert np.allclose(face.lower, 0, atol=1e-6) and np.allclose(face.upper, [1, 2, 3], atol=1e-6)
    assert face.dimension == 1 and not face.unique
    assert dln.bp_face(*dln.random_instance(3, 5, 1, 0)).unique


@pytest.mark.parametrize("p", [2, 2.5, 3, 4, 6])
def test_selection_rule_on_line(line, p):
    xhat = dln.selected_minimizer(*line, p)
    t = dln.line_t_star(p)
    assert np.allclose(xhat, [1 - t, 2 * (1 - t), 3 * t], atol=1e-10)
    # the limit at tiny beta reaches it (mpmath is used automatically where needed)
    lim = dln.dln_limit(*line, p, (1e-12) ** (1 / p))
    assert abs(lim.x[2] / 3 - t) < 1e-6


def test_line_t_star_values():
    for p, t in [(2, 0.346035), (2.5, 0.343587), (3, 0.341923), (4, 0.339811)]:
        assert abs(dln.line_t_star(p) - t) < 1e-6
    assert abs(dln.line_t_star(50) - 1 / 3) < 0.01


@pytest.mark.parametrize("p", [2.0, 3.0])
def test_limit_vs_ode_small_random(p):
    A, y = dln.random_instance(2, 4, 1, 3)
    alpha = (1e-2) ** (1 / p)
    flow = dln.dln_flow_ode(A, y, p, alpha, n_eval=5)
    lim = dln.dln_limit(A, y, p, alpha)
    assert np.linalg.norm(flow.x[-1] - lim.x) < 1e-7
    assert np.allclose(A @ lim.x, y, atol=1e-12)


def test_limit_double_vs_mp_and_kkt(line):
    A, y = line
    for p in (2, 3):
        a = dln.dln_limit(A, y, p, 0.1, precision="double")
        b = dln.dln_limit(A, y, p, 0.1, precision=40)
        assert a.precision == "double" and b.precision == "mp40"
        assert np.allclose(a.x, b.x, atol=1e-12)
        # stationarity of the dual: x = beta h(A^T w) and A x = y
        assert np.allclose(a.x, a.beta * dln.h_p(A.T @ a.w, p), atol=1e-12)
        assert a.residual < 1e-12


def test_limit_warm_start_and_auto_precision(line):
    A, y = line
    cold = dln.dln_limit(A, y, 3, 1e-2)
    warm = dln.dln_limit(A, y, 3, 1e-2, w0=cold.w * 0.999)
    assert np.allclose(cold.x, warm.x, atol=1e-12)
    assert dln.dln_limit(A, y, 4, (1e-12) ** 0.25).precision == "mp40"


def test_potentials_consistency():
    z = np.linspace(-4, 4, 9)
    for p in (2, 2.5, 4):
        tau = dln.h_inverse(z, p)
        assert np.allclose(dln.h_p(tau, p), z, atol=1e-10)
        dq = (dln.q_p(z + 1e-6, p) - dln.q_p(z - 1e-6, p)) / 2e-6
        assert np.allclose(dq, tau, atol=1e-7)
        t = np.linspace(-0.8, 0.8, 5) if p > 2 else z
        dH = (dln.H_p(t + 1e-6, p) - dln.H_p(t - 1e-6, p)) / 2e-6
        assert np.allclose(dH, dln.h_p(t, p), rtol=1e-6)
        dh = (dln.h_p(t + 1e-6, p) - dln.h_p(t - 1e-6, p)) / 2e-6
        assert np.allclose(dh, dln.dh_p(t, p), rtol=1e-6)


def test_ode_jacobian_matches_finite_differences():
    rhs, jac = dln.flow_vector_field(*dln.plane_instance(), 2.5)
    Y = np.random.default_rng(0).uniform(0.2, 1.0, 8)
    J_fd = np.stack([(rhs(0, Y + 1e-6 * e) - rhs(0, Y - 1e-6 * e)) / 2e-6 for e in np.eye(8)], 1)
    assert np.allclose(jac(0, Y), J_fd, rtol=1e-5, atol=1e-6)


def test_rho_and_predicted_slopes(line):
    A, y = dln.plane_instance()
    xhat = dln.selected_minimizer(A, y, 2)
    assert dln.rho_lp(A, xhat) == pytest.approx(0.5, abs=1e-9)
    assert dln.predicted_slope(A, y, 2, xhat) == (pytest.approx(0.5), pytest.approx(0.5))
    assert dln.predicted_slope(*line, 2)[0] == 2.0 and dln.predicted_slope(*line, 3)[0] == 1.0


def test_measured_slopes_quick(line):
    betas = np.logspace(-9, -6, 4)
    d, _ = dln.distance_sweep(*dln.plane_instance(), 2, betas)
    assert abs(np.polyfit(np.log(betas), np.log(d), 1)[0] - 0.5) < 0.02
    d, _ = dln.distance_sweep(*line, 3, betas)
    assert abs(np.polyfit(np.log(betas), np.log(d), 1)[0] - 1.0) < 0.02


def test_gd_bias_and_divergence(line):
    A, y = line
    x_flow = dln.dln_limit(A, y, 2, 0.1).x
    d1 = np.linalg.norm(dln.dln_gd(A, y, 2, 0.1, 0.01).x - x_flow)
    d2 = np.linalg.norm(dln.dln_gd(A, y, 2, 0.1, 0.005).x - x_flow)
    assert 1.6 < d1 / d2 < 2.4  # O(step) bias
    with pytest.raises(DivergenceError, match="step size"):
        dln.dln_gd(A, y, 2, 0.5, 1.0)


def test_a_eps_family():
    x = dln.a_eps_limit(np.array([0.1, -0.1, 0.0]), 3, 1e-9)
    assert np.allclose(x[0], [1, 0], atol=1e-2) and np.allclose(x[1], [0, 1 / 1.1], atol=1e-2)
    assert np.allclose(x[2], [0.5, 0.5], atol=1e-12)
    xs = dln.a_eps_limit(0.05, 4, np.logspace(-10, 0, 11))
    assert np.allclose(xs[:, 0] + 0.95 * xs[:, 1], 1, atol=1e-12)
    # matches the generic solver
    A, y = dln.a_eps_instance(0.05)
    assert np.allclose(xs[5], dln.dln_limit(A, y, 4, (1e-5) ** 0.25).x, atol=1e-10)
    e = np.logspace(-3, -2, 4)
    slope = np.polyfit(np.log(e), np.log(dln.a_eps_threshold(e, 3, 0.1)), 1)[0]
    assert abs(slope - 3) < 0.05


def test_determinism():
    a = dln.random_instance(3, 6, 2, 7)
    b = dln.random_instance(3, 6, 2, np.random.default_rng(7))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    r1, r2 = dln.dln_limit(*a, 2.5, 0.05), dln.dln_limit(*b, 2.5, 0.05)
    assert np.array_equal(r1.x, r2.x)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda A, y: dln.dln_limit(A, y, 1.5, 0.1), "p"),
        (lambda A, y: dln.dln_limit(A, y, 2, -0.1), "alpha"),
        (lambda A, y: dln.dln_limit(A, y, 2, 0.1, precision="quad"), "precision"),
        (lambda A, y: dln.dln_limit(A, y, 2, 0.1, precision=5), "precision"),
        (lambda A, y: dln.dln_limit(A, y[:1], 2, 0.1), "y"),
        (lambda A, y: dln.dln_limit(np.zeros((2, 3)), y, 2, 0.1), "rank"),
        (lambda A, y: dln.random_instance(3, 3, 1, 0), "N"),
        (lambda A, y: dln.random_instance(3, 5, 1, -1), "seed"),
        (lambda A, y: dln.random_instance(3, 5, 6, 0), "sparsity"),
        (lambda A, y: dln.dln_gd(A, y, 2, 0.1, 0.0), "step_size"),
        (lambda A, y: dln.dln_flow_ode(A, y, 2, 0.1, method="RK45"), "method"),
        (lambda A, y: dln.h_p(1.5, 3), "tau"),
        (lambda A, y: dln.a_eps_limit(1.5, 3, 0.1), "eps"),
        (lambda A, y: dln.a_eps_threshold(0.1, 3, 0.9), "accuracy"),
        (lambda A, y: dln.distance_sweep(A, y, 2, [-1.0]), "betas"),
        (lambda A, y: dln.bp_face(A, y, tol=0.0), "tol"),
    ],
)
def test_validation(line, call, match):
    with pytest.raises(ValueError, match=match):
        call(*line)


def test_limit_demo_updates():
    demo = demos.LimitDemo(alpha=1e-2, p=2.0)
    before = np.array(demo.fig.data[4].y)
    demo.controls["alpha"].value = 1e-4
    assert demo.error is None
    assert not np.allclose(before, np.array(demo.fig.data[4].y), rtol=1e-3, atol=0)
    demo.controls["p"].value = 4.0
    assert demo.controls["alpha"].min == pytest.approx(-3.0)
    demo.controls["instance"].value = "random"
    demo.controls["m"].value = 6  # N = 5 <= m: reported in the panel, not raised
    assert demo.error is not None and "N must exceed m" in demo.error
    demo.controls["N"].value = 9
    assert demo.error is None and len(demo.fig.data[0].y) == 9


def test_hardness_demo_updates():
    demo = demos.HardnessDemo(eps=0.05, p=3.0, alpha=1e-2, n_grid=11)
    z0 = np.array(demo.fig.data[0].z)
    y0 = np.array(demo.fig.data[2].y)
    demo.controls["alpha"].value = 1e-3
    assert not np.allclose(y0, np.array(demo.fig.data[2].y))
    demo.controls["p"].value = 2.0
    assert demo.error is None and not np.allclose(z0, np.array(demo.fig.data[0].z))
    demo.controls["p"].value = 6.0  # the α range follows p (α^p ≥ 1e-12), no precision error
    assert demo.controls["alpha"].min == pytest.approx(-2.0) and demo.error is None
    with pytest.raises(ValueError, match="p"):
        demos.HardnessDemo(p=7.0)


def test_figures_build(line):
    A, y = line
    fig = demos.potentials_figure([2, 3])
    assert len(fig.data) == 8
    r = {
        "line": {
            2: {"betas": np.array([1e-2, 1e-3]), "dist": np.array([1e-4, 1e-6]), "slope_pred": 2.0}
        }
    }
    assert len(demos.distance_figure(r).data) == 2
    assert len(demos.kink_figure([3], [0.1], np.logspace(-6, 0, 5)).data) == 1
    assert demos.heatmap_figure(3, np.linspace(-8, 0, 5), np.linspace(-2, -0.1, 5)).data
