"""Tests of course_lib.flows (the perturbed gradient flow) and its demo."""

from __future__ import annotations

import math

import numpy as np
import pytest

from course_lib import flows as F
from course_lib import sensing as S
from course_lib._validate import DivergenceError
from course_lib.demos import flows as DF

N, R, K, ALPHA = 12, 2, 4, 1e-3


@pytest.fixture(scope="module")
def problem():
    return S.make_problem(N, N, R, kappa=2.0, seed=0)


@pytest.fixture(scope="module")
def init():
    return S.init_factors(N, N, K, ALPHA, seed=1)


def _horizon(p):
    return float(S.horizon(p, ALPHA, 1.0, factor=2.0))


# -- the closed-form case and the stacked form ----------------------------------------------
@pytest.mark.parametrize("method", ["rk4", "solve_ivp"])
def test_single_aligned_mode_follows_the_logistic_curve(method):
    rng = np.random.default_rng(3)
    u = rng.standard_normal(5)
    v = rng.standard_normal(4)
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    sigma, a0 = 1.5, 1e-3
    X_star = sigma * np.outer(u, v)
    sol = F.integrate_flow(
        X_star, a0 * u[:, None], a0 * v[:, None], 12.0, method=method, dt=0.01, max_records=100
    )
    s = sol.singular_values[:, 0]
    expected = F.logistic_mode(sol.t, sigma, a0**2)
    assert np.max(np.abs(s - expected) / expected) < 1e-7
    # it crosses σ/2 at the logistic half-time t½ = ln(σ/s0 − 1)/(2σ)
    t_half = float(S.emergence_times(sigma, a0**2)[0])
    assert np.interp(sigma / 2, s, sol.t) == pytest.approx(t_half, rel=1e-3)


def test_logistic_mode_solves_its_ode():
    t = np.linspace(0, 5, 2001)
    s = F.logistic_mode(t, 2.0, 1e-3)
    ds = np.gradient(s, t)
    assert np.allclose(ds, 2 * s * (2.0 - s), atol=2e-4)
    assert s[0] == pytest.approx(1e-3)


def test_stacked_form_equals_block_form(problem, init):
    U, V = init
    rng = np.random.default_rng(0)
    U, V = U + 0.3 * rng.standard_normal(U.shape), V + 0.3 * rng.standard_normal(V.shape)
    E = 0.1 * rng.standard_normal((N, N))
    Rm = problem.X_star - U @ V.T + E
    Z = F.stack(U, V)
    assert np.allclose(F.pgf_rhs(Z, problem.X_star, E), np.vstack([Rm @ V, Rm.T @ U]))
    assert np.allclose(F.pgf_rhs(Z, problem.X_star), F.pgf_rhs(Z, problem.X_star, 0 * E))
    Uz, Vz = F.split(Z, N)
    assert np.array_equal(Uz, U) and np.array_equal(Vz, V)
    Xb = F.dilation(problem.X_star)
    assert np.allclose(Xb, Xb.T)
    ev = np.sort(np.linalg.eigvalsh(Xb))
    assert np.allclose(ev[-R:], np.sort(problem.sigma)) and np.allclose(ev[:R], -problem.sigma)


def test_sensing_perturbation_is_the_sensing_gradient_flow(init):
    p = S.make_problem(N, N, R, m=150, seed=0)
    U, V = init
    U, V = U + 0.2, V - 0.1
    pert = F.make_perturbation("sensing", p.X_star, A=p.A)
    E = pert(0.0, U, V)
    D = p.X_star - U @ V.T
    AtA = p.A.T @ p.A
    assert np.allclose(E.ravel(), (AtA - np.eye(N * N)) @ D.ravel())
    gU, gV = S.factor_gradients(p, U, V)
    Rm = D + E
    assert np.allclose(Rm @ V, -gU) and np.allclose(Rm.T @ U, -gV)


def test_linearized_flow_is_the_early_solution(problem, init):
    U0, V0 = init
    sol = F.integrate_flow(problem.X_star, U0, V0, 2.0, dt=0.01, record_every=20)
    Ul, Vl = F.linearized_flow(problem.X_star, U0, V0, sol.t)
    Xl = Ul @ np.swapaxes(Vl, 1, 2)
    rel = np.linalg.norm(Xl - sol.X, axis=(1, 2)) / np.linalg.norm(sol.X, axis=(1, 2))
    assert rel.max() < 1e-3  # ‖Z‖² ≪ σ_r: the quadratic term is negligible
    U1, V1 = F.linearized_flow(problem.X_star, U0, V0, 0.0)
    assert np.allclose(U1, U0) and np.allclose(V1, V0)
    assert F.alignment(sol.U[-1], problem.U_star) > F.alignment(U0, problem.U_star) + 0.3


# -- invariants and accuracy -----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["none", "fixed", "random", "aligned", "sensing"])
def test_imbalance_is_conserved(problem, init, kind):
    U0, V0 = init
    A = S.make_problem(N, N, R, m=200, seed=0).A if kind == "sensing" else None
    X_star = S.make_problem(N, N, R, m=200, seed=0).X_star if kind == "sensing" else problem.X_star
    sol = F.integrate_flow(
        X_star, U0, V0, _horizon(problem), perturbation=kind, xi=0.1, A=A, seed=4
    )
    # UᵀU grows from α² to ‖X*‖ while H stays put, up to RK4's truncation error (the flow
    # conserves H exactly; RK4 conserves quadratic invariants only to O(h⁴))
    assert sol.imbalance_drift.max() < 1e-6 * np.linalg.norm(X_star)
    assert np.linalg.norm(sol.U[-1].T @ sol.U[-1]) > 0.5 * np.linalg.norm(problem.sigma)
    assert sol.final_error < 0.2


def test_rk4_is_fourth_order_and_its_error_estimate_is_honest(problem, init):
    U0, V0 = init
    T = 10.0
    ref = F.integrate_flow(
        problem.X_star, U0, V0, T, method="solve_ivp", rtol=1e-12, record_every=1, dt=0.1
    )
    errs = []
    for dt in (0.1, 0.05):
        sol = F.integrate_flow(
            problem.X_star, U0, V0, T, dt=dt, record_every=round(0.1 / dt), check_error=True
        )
        true = np.max(np.linalg.norm(sol.X - ref.X, axis=(1, 2))) / np.linalg.norm(problem.X_star)
        errs.append(true)
        assert 0.5 * true < sol.error_estimate < 2.0 * true
    assert 10 < errs[0] / errs[1] < 24  # 2⁴ = 16


def test_random_perturbation_is_piecewise_constant_and_solvers_agree(problem, init):
    U0, V0 = init
    kw = dict(perturbation="random", xi=0.05, slot=0.5, seed=7)
    a = F.integrate_flow(problem.X_star, U0, V0, 6.0, dt=0.02, **kw)
    b = F.integrate_flow(problem.X_star, U0, V0, 6.0, dt=0.02, method="solve_ivp", rtol=1e-11, **kw)
    assert np.max(np.abs(a.X - b.X)) < 1e-6
    pert = F.make_perturbation("random", problem.X_star, xi=0.05, slot=0.5, seed=7)
    E0, E1, E2 = pert(0.1, U0, V0), pert(0.4, U0, V0), pert(0.6, U0, V0)
    assert np.array_equal(E0, E1) and not np.allclose(E0, E2)
    assert np.linalg.norm(E2, 2) == pytest.approx(0.05)


def test_perturbation_kinds(problem, init):
    U0, V0 = init
    for kind in ("fixed", "aligned"):
        E = F.make_perturbation(kind, problem.X_star, xi=0.3, seed=1)(0.0, U0, V0)
        assert np.linalg.norm(E, 2) == pytest.approx(0.3)
    E = F.make_perturbation("aligned", problem.X_star, xi=0.3, seed=1)(0.0, U0, V0)
    assert np.allclose(problem.U_star.T @ E, 0) and np.allclose(E @ problem.V_star, 0)
    assert F.make_perturbation("none", problem.X_star)(0.0, U0, V0) is None
    custom = F.integrate_flow(problem.X_star, U0, V0, 3.0, perturbation=lambda t, U, V: 0 * U @ V.T)
    plain = F.integrate_flow(problem.X_star, U0, V0, 3.0)
    assert np.allclose(custom.X, plain.X)


def test_fixed_aligned_perturbation_is_fitted_late(problem, init):
    U0, V0 = init
    T = _horizon(problem)
    u, v = F.spurious_directions(problem.X_star, 2)
    xi_c = F.spurious_threshold(T, F.mode_size(U0, V0, u, v))
    assert float(S.emergence_times(xi_c, F.mode_size(U0, V0, u, v))[0]) == pytest.approx(T)
    nx = np.linalg.norm(problem.X_star)
    low = F.integrate_flow(problem.X_star, U0, V0, T, perturbation="aligned", xi=xi_c / 3, seed=2)
    high = F.integrate_flow(problem.X_star, U0, V0, T, perturbation="aligned", xi=3 * xi_c, seed=2)
    assert low.final_error * nx < 0.05 * xi_c / 3  # not fitted yet: recovered
    assert high.final_error * nx > 0.8 * 3 * xi_c  # fitted: error ≈ ξ


def test_gd_is_a_first_order_perturbation_of_the_flow(problem, init):
    U0, V0 = init
    T = 12.0
    gaps = [F.gd_flow_gap(problem, U0, V0, eta, T)[2] for eta in (0.025, 0.05)]
    assert 1.6 < gaps[1] / gaps[0] < 2.4
    tr, fl, _ = F.gd_flow_gap(problem, U0, V0, 0.05, T)
    assert np.allclose(F.gd_times(int(tr.steps[-1]), 0.05), fl.t)


# -- validation, determinism, divergence ----------------------------------------------------
def test_validation(problem, init):
    U0, V0 = init
    X = problem.X_star
    with pytest.raises(ValueError, match="xi"):
        F.integrate_flow(X, U0, V0, 1.0, perturbation="fixed", xi=-1.0)
    with pytest.raises(ValueError, match="kind"):
        F.make_perturbation("wobbly", X)
    with pytest.raises(ValueError, match="perturbation"):
        F.integrate_flow(X, U0, V0, 1.0, perturbation=3)
    with pytest.raises(ValueError, match="t_end"):
        F.integrate_flow(X, U0, V0, 0.0)
    with pytest.raises(ValueError, match="U0"):
        F.integrate_flow(X, U0[:-1], V0, 1.0)
    with pytest.raises(ValueError, match="V0"):
        F.integrate_flow(X, U0, V0[:, :-1], 1.0)
    with pytest.raises(ValueError, match="dt"):
        F.integrate_flow(X, U0, V0, 1.0, dt=0.0)
    with pytest.raises(ValueError, match="method"):
        F.integrate_flow(X, U0, V0, 1.0, method="euler")
    with pytest.raises(ValueError, match="A must be given"):
        F.make_perturbation("sensing", X)
    with pytest.raises(ValueError, match="A must have"):
        F.make_perturbation("sensing", X, A=np.ones((5, 7)))
    with pytest.raises(ValueError, match="slot"):
        F.make_perturbation("random", X, xi=0.1, slot=0.0)
    with pytest.raises(ValueError, match="seed"):
        F.make_perturbation("fixed", X, xi=0.1, seed=-1)
    with pytest.raises(ValueError, match="X_star must have rank"):
        F.spurious_directions(np.eye(3))
    with pytest.raises(ValueError, match="s0"):
        F.logistic_mode(1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="eta"):
        F.gd_times(3, 0.0)
    with pytest.raises(ValueError, match="t_stop"):
        F.spurious_threshold(-1.0, 1e-6)
    with pytest.raises(ValueError, match="problem"):
        F.gd_flow_gap(S.make_problem(N, N, R, m=50), U0, V0, 0.1, 1.0)
    with pytest.raises(ValueError, match="steps"):
        F.integrate_flow(X, U0, V0, 1e6, dt=1e-5)


@pytest.mark.parametrize("kind", ["fixed", "random", "aligned"])
def test_determinism(problem, init, kind):
    U0, V0 = init
    a = F.integrate_flow(problem.X_star, U0, V0, 5.0, perturbation=kind, xi=0.1, seed=3)
    b = F.integrate_flow(problem.X_star, U0, V0, 5.0, perturbation=kind, xi=0.1, seed=3)
    c = F.integrate_flow(problem.X_star, U0, V0, 5.0, perturbation=kind, xi=0.1, seed=4)
    assert np.array_equal(a.X, b.X)
    assert not np.allclose(a.X, c.X)


def test_divergence_is_detected(problem, init):
    U0, V0 = init
    with pytest.raises(DivergenceError, match="perturbed gradient flow"):
        F.integrate_flow(
            problem.X_star, U0, V0, 50.0, dt=0.5, perturbation=lambda t, U, V: 1e3 * np.ones((N, N))
        )


# -- the demo and figures --------------------------------------------------------------------
def test_demo_updates_its_figure():
    demo = DF.FlowDemo(n=12, alpha=1e-2)
    assert demo.error is None
    before = np.array(demo.fig.data[0].y, dtype=float)
    for name, value in [
        ("alpha", 1e-4),
        ("xi", 0.3),
        ("kind", "aligned"),
        ("kind", "sensing"),
        ("kind", "random"),
        ("r", 2),
        ("kind", "none"),
    ]:
        demo.controls[name].value = value
        assert demo.error is None, (name, value, demo.error)
        after = np.array(demo.fig.data[0].y, dtype=float)
        assert after.shape != before.shape or not np.allclose(after, before, equal_nan=True)
        before = after
    assert math.isfinite(demo.last_update_s) and demo.n_updates >= 8


def test_figures_build(problem, init):
    U0, V0 = init
    sol = F.integrate_flow(problem.X_star, U0, V0, _horizon(problem), max_records=60)
    s0 = S.mode_init_sizes(problem, U0, V0)
    fig = DF.phases_figure(
        sol,
        problem.sigma,
        S.emergence_times(problem.sigma, s0),
        problem.U_star,
        linear_gap=np.full(sol.t.size, 1e-3),
    )
    assert len(fig.data) >= K + 3
    fig = DF.flow_curves_figure(
        {"a": sol, "b": sol}, ["rel_error_fro", "perturbation_norm"], t_stop=5.0
    )
    assert len(fig.data) == 4
    fig = DF.xi_figure([1e-3, 1e-2, 1e-1], {"x": [1e-3, 1e-2, 1e-1]}, threshold=0.05)
    assert len(fig.data) == 2
    with pytest.raises(ValueError, match="quantities"):
        DF.flow_curves_figure({"a": sol}, ["nope"])
