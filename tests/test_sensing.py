"""Tests of course_lib.sensing (matrix sensing by factorized GD) and its demos."""

from __future__ import annotations

import numpy as np
import pytest

import course_lib as cl
from course_lib import sensing as S
from course_lib.demos import sensing as D


@pytest.fixture(scope="module")
def sensing_problem() -> S.SensingProblem:
    return S.make_problem(8, 6, 2, m=90, seed=3, noise=0.01)


def test_problem_structure(sensing_problem):
    p = sensing_problem
    assert p.X_star.shape == (8, 6) and p.A.shape == (90, 48) and p.y.shape == (90,)
    assert np.allclose(p.U_star.T @ p.U_star, np.eye(2)) and np.allclose(
        p.V_star.T @ p.V_star, np.eye(2)
    )
    assert np.allclose(np.linalg.svd(p.X_star, compute_uv=False)[:2], p.sigma)
    assert np.linalg.matrix_rank(p.X_star) == 2
    assert p.sigma[0] / p.sigma[-1] == pytest.approx(2.0)
    assert S.degrees_of_freedom(8, 6, 2) == 2 * (8 + 6 - 2)


def test_operator_adjoint_and_paths():
    rng = np.random.default_rng(0)
    p_gram = S.make_problem(5, 4, 1, m=60, seed=1, path="gram")
    p_mv = S.make_problem(5, 4, 1, m=60, seed=1, path="matvec")
    assert p_gram.path == "gram" and p_mv.path == "matvec" and p_mv.gram is None
    X = rng.standard_normal((5, 4))
    z = rng.standard_normal(60)
    # <A(X), z> = <X, A*(z)>
    assert p_gram.forward(X) @ z == pytest.approx(np.sum(X * p_gram.adjoint(z)))
    G1, G2 = p_gram.gradient_matrix(X), p_mv.gradient_matrix(X)
    assert np.allclose(G1, G2, rtol=1e-10, atol=1e-12)
    assert np.allclose(G1, p_gram.adjoint(p_gram.forward(X) - p_gram.y))
    assert S.make_problem(5, 4, 1, m=5, seed=1).path == "matvec"  # 20 >= 2·5: two mat-vecs
    ident = S.make_problem(5, 4, 2, seed=1)
    assert ident.identity and ident.m == 20
    assert np.allclose(ident.gradient_matrix(X), X - ident.X_star)


def test_measurement_operator_is_isotropic_on_average():
    # E[A*A] = I: averaged over many draws, A*A(X) ≈ X
    X = np.arange(12.0).reshape(3, 4)
    acc = np.zeros_like(X)
    for s in range(200):
        p = S.make_problem(3, 4, 1, m=30, seed=s)
        acc += p.adjoint(p.forward(X))
    assert np.abs(acc / 200 - X).max() < 0.1 * np.abs(X).max()


def test_gradients_against_finite_differences(sensing_problem):
    p = sensing_problem
    rng = np.random.default_rng(1)
    U, V = rng.standard_normal((8, 3)), rng.standard_normal((6, 3))
    gU, gV = S.factor_gradients(p, U, V)
    h = 1e-6
    for M, gM in ((U, gU), (V, gV)):
        for _ in range(5):
            i, j = rng.integers(M.shape[0]), rng.integers(M.shape[1])
            M[i, j] += h
            fp = p.loss(U @ V.T)
            M[i, j] -= 2 * h
            fm = p.loss(U @ V.T)
            M[i, j] += h
            assert (fp - fm) / (2 * h) == pytest.approx(gM[i, j], rel=1e-5, abs=1e-6)


def test_gd_matches_explicit_update_and_is_deterministic(sensing_problem):
    p = sensing_problem
    U0, V0 = S.init_factors(8, 6, 3, 0.1, seed=5)
    U, V = U0.copy(), V0.copy()
    for _ in range(7):
        gU, gV = S.factor_gradients(p, U, V)
        U, V = U - 0.05 * gU, V - 0.05 * gV
    tr = S.run_gd(p, 3, 0.1, 0.05, 7, seed=5)
    assert np.allclose(tr.U, U, rtol=1e-12, atol=1e-14) and np.allclose(tr.V, V)
    tr2 = S.run_gd(p, 3, 0.1, 0.05, 7, seed=5)
    assert np.array_equal(tr.U, tr2.U) and np.array_equal(tr.loss, tr2.loss)
    tr3 = S.run_gd(p, 3, 0.1, 0.05, 7, seed=6)
    assert not np.array_equal(tr.U, tr3.U)
    assert np.array_equal(S.make_problem(8, 6, 2, m=90, seed=3, noise=0.01).A, p.A)


def test_trajectory_records_and_metrics():
    p = S.make_problem(10, 10, 2, seed=0)
    tr = S.run_gd(p, 4, 1e-3, 0.1, 1000, max_records=50)
    assert tr.steps[0] == 0 and tr.steps[-1] == 1000 and tr.steps.size <= 50
    assert np.all(np.diff(tr.steps) > 0)
    assert tr.singular_values.shape == (tr.steps.size, 4)
    assert tr.loss[-1] < 1e-9 * tr.loss[0]  # k > r: spurious part O(α²) stays
    assert tr.rel_error_fro[-1] < 1e-5
    # ‖D‖_2 ≤ ‖D‖_F, each error is relative to its own norm of X*
    nf = np.linalg.norm(p.X_star)
    assert np.all(tr.rel_error_op * p.sigma[0] <= tr.rel_error_fro * nf * (1 + 1e-12))
    assert np.allclose(tr.singular_values[-1, :2], p.sigma, rtol=1e-5)
    assert tr.imbalance[-1] < 1e-4  # small init stays nearly balanced
    X = tr.X
    assert tr.loss[-1] == pytest.approx(p.loss(X), rel=1e-6, abs=1e-30)
    assert tr.final_error == pytest.approx(S.relative_error(X, p.X_star))
    every = S.run_gd(p, 4, 1e-3, 0.1, 10, record_every=3)
    assert every.steps.tolist() == [0, 3, 6, 9, 10]


@pytest.mark.parametrize("kind", ["identity", "gram", "matvec"])
def test_divergence_is_reported_with_step_and_step_size(kind):
    p = (
        S.make_problem(6, 6, 2, seed=0)
        if kind == "identity"
        else S.make_problem(6, 6, 2, m=80, seed=0, path=kind)
    )
    with pytest.raises(cl.DivergenceError, match="diverged at step") as info:
        S.run_gd(p, 6, 1.0, 3.0, 500)
    assert info.value.step_size == 3.0 and 0 < info.value.step < 500
    assert "step size 3" in str(info.value)


def test_noise_enters_the_measurements():
    clean = S.make_problem(6, 5, 2, m=40, seed=4)
    noisy = S.make_problem(6, 5, 2, m=40, seed=4, noise=0.1)
    assert np.array_equal(clean.X_star, noisy.X_star) and np.array_equal(clean.A, noisy.A)
    d = noisy.y - noisy.forward(noisy.X_star)
    assert np.allclose(clean.y, clean.forward(clean.X_star))
    assert 0.05 < d.std() < 0.2
    ident = S.make_problem(6, 5, 2, seed=4, noise=0.1)
    assert np.allclose(ident.gradient_matrix(ident.X_star), -(ident.y.reshape(6, 5) - ident.X_star))


def test_balancing_identity_exact(sensing_problem):
    rng = np.random.default_rng(2)
    U, V = rng.standard_normal((8, 4)), rng.standard_normal((6, 4))
    lhs, rhs = S.balancing_identity(sensing_problem, U, V, 0.03)
    assert np.abs(rhs).max() > 1e-6  # the second-order term is not trivially zero
    assert np.allclose(lhs, rhs, rtol=1e-9, atol=1e-12)


def test_emergence_times_formula_and_simulation():
    s = np.array([3.0, 1.0])
    t = S.emergence_times(s, 1e-4)
    assert np.allclose(t, np.log(s / 1e-4 - 1) / (2 * s))
    assert np.allclose(S.emergence_times(s, 1e-4, eta=0.1), t / 0.1)
    assert np.all(S.emergence_times(s, 1e-4, eta=0.1, discrete=True) > t / 0.1)
    # logistic solution s(t) = σ e^{2σt} / (e^{2σt} + σ/s0 − 1) is σ/2 at t½
    sig, s0 = 2.0, 1e-3
    th = S.emergence_times(sig, s0)[0]
    e = np.exp(2 * sig * th)
    assert sig * e / (e + sig / s0 - 1) == pytest.approx(sig / 2)
    # simulation: A = I, predicted and observed emergence agree within 2 %
    p = S.make_problem(12, 12, 3, singular_values=[3.0, 2.0, 1.0], seed=0)
    U0, V0 = S.init_factors(12, 12, 8, 1e-4, seed=1)
    eta = 0.01
    pred = S.emergence_times(p.sigma, S.mode_init_sizes(p, U0, V0), eta, discrete=True)
    tr = S.run_gd(p, 8, 1e-4, eta, int(1.3 * pred.max()), U0=U0, V0=V0, record_every=1)
    obs = S.observed_emergence(tr, p.sigma)
    assert np.all(np.diff(obs) > 0)  # largest first
    assert np.max(np.abs(obs - pred) / obs) < 0.02
    with pytest.raises(ValueError, match="never reached"):
        S.observed_emergence(S.run_gd(p, 8, 1e-4, eta, 5), p.sigma)


def test_mode_init_sizes_average():
    p = S.make_problem(30, 30, 2, seed=0)
    vals = [
        S.mode_init_sizes(p, *S.init_factors(30, 30, 50, 0.1, seed=s), sequential=False)
        for s in range(100)
    ]
    assert np.mean(vals) == pytest.approx(0.1**2 / 2, rel=0.1)


def test_min_norm_interpolant_fits_but_does_not_recover():
    p = S.make_problem(10, 10, 2, m=60, seed=0)
    X = S.min_norm_interpolant(p)
    assert p.loss(X) < 1e-20
    err = S.relative_error(X, p.X_star)
    assert err == pytest.approx(np.sqrt(1 - 60 / 100), rel=0.25)
    assert isinstance(S.nuclear_norm_available(), bool)


def test_horizon_and_steps_to_error():
    p = S.make_problem(10, 10, 2, seed=0)
    assert S.horizon(p, 1e-6, 0.1) > S.horizon(p, 1e-3, 0.1)
    tr = S.run_gd(p, 4, 1e-3, 0.1, S.horizon(p, 1e-3, 0.1), record_every=1)
    k10 = S.steps_to_error(tr, 0.1)
    assert 0 < k10 < tr.steps[-1]
    i = int(np.ceil(k10))
    assert tr.rel_error_fro[i] <= 0.1 < tr.rel_error_fro[int(np.floor(k10)) - 1]


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: S.make_problem(0, 5, 1), "n1"),
        (lambda: S.make_problem(5, 5, 6), "r"),
        (lambda: S.make_problem(5, 5, 2, m=0), "m"),
        (lambda: S.make_problem(5, 5, 2, kappa=0.5), "kappa"),
        (lambda: S.make_problem(5, 5, 2, noise=-1.0), "noise"),
        (lambda: S.make_problem(5, 5, 2, singular_values=[1.0, 2.0]), "singular_values"),
        (lambda: S.make_problem(5, 5, 2, seed=-1), "seed"),
        (lambda: S.make_problem(5, 5, 2, path="fast"), "path"),
        (lambda: S.init_factors(5, 5, 2, 0.0), "alpha"),
        (lambda: S.init_factors(5, 5, 0, 0.1), "k"),
        (lambda: S.run_gd(S.make_problem(5, 5, 1), 2, 0.1, -0.1, 10), "eta"),
        (lambda: S.run_gd(S.make_problem(5, 5, 1), 2, 0.1, 0.1, -1), "steps"),
        (
            lambda: S.run_gd(
                S.make_problem(5, 5, 1), 2, 0.1, 0.1, 5, U0=np.zeros((4, 2)), V0=np.zeros((5, 2))
            ),
            "U0",
        ),
        (lambda: S.run_gd("problem", 2, 0.1, 0.1, 5), "problem"),
        (lambda: S.emergence_times([1.0], 0.9), "s0"),
        (lambda: S.emergence_times([-1.0], 0.1), "sigma"),
        (lambda: S.relative_error(np.eye(2), np.eye(2), ord="nuc"), "ord"),
        (lambda: S.steps_to_error(S.run_gd(S.make_problem(5, 5, 1), 2, 0.1, 0.1, 5), -1), "level"),
    ],
)
def test_validation_errors(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_sensing_demo_updates_without_browser():
    demo = D.SensingDemo(n=10, r=2, k=6, steps=150)
    assert demo.error is None
    before = np.array(demo.fig.data[1].y, dtype=float)
    demo.controls["alpha"].value = 1e-5
    after = np.array(demo.fig.data[1].y, dtype=float)
    assert demo.error is None and not np.allclose(before, after, equal_nan=True)
    for name, value in (("r", 3), ("k", 3), ("m_mult", 4.0), ("kappa", 4.0)):
        old = np.array(demo.fig.data[0].y, dtype=float)
        demo.controls[name].value = value
        assert demo.error is None, demo.error
        assert not np.allclose(old, np.array(demo.fig.data[0].y, dtype=float), equal_nan=True)
    assert demo.n_updates == 6 and demo.last_update_s > 0


def test_sensing_demo_reports_divergence():
    demo = D.SensingDemo(n=10, r=2, k=6, steps=100, eta_scale=1.0)
    demo.controls["alpha"].value = 1.0
    demo.controls["kappa"].value = 10.0
    assert demo.error is None or "diverged" in demo.error


def test_incremental_demo_updates():
    demo = D.IncrementalDemo(n=10, k=6, steps=600)
    assert demo.error is None and demo.predicted is not None
    first = demo.predicted.copy()
    demo.controls["alpha"].value = 1e-5
    assert demo.error is None and np.all(demo.predicted > first)  # later for smaller init
    demo.controls["r"].value = 4
    assert demo.error is None and demo.predicted.size == 4
    assert len([t for t in demo.fig.data[:4] if len(t.x)]) == 4


def test_static_figures_build():
    p = S.make_problem(8, 8, 2, seed=0)
    tr = S.run_gd(p, 4, 1e-3, 0.1, 200)
    assert len(D.runs_figure({"a": tr, "b": tr}).data) == 4
    fig = D.singular_values_figure(tr, p.sigma, predicted=[50.0, 100.0])
    assert len(fig.data) >= 4
    assert (
        len(D.line_fit_figure([1, 2, 3], [2, 4, 6.5], 2.0, title="t", xlabel="x", ylabel="y").data)
        == 3
    )
    assert len(D.error_vs_alpha_figure([1e-1, 1e-2], {"I": [1e-2, 1e-4]}, {"α²": 2}).data) == 2
