"""Diagonal linear networks x = uᵖ − vᵖ and the basis-pursuit (minimum-ℓ1) solutions they find.

Seed paper: Wind, Antun, Hansen, *Implicit regularization in AI meets generalized hardness of
approximation in optimization* (arXiv 2307.07410). Data A ∈ R^{m×N} (m < N), y = A x₀.

* Basis pursuit (BP) ``min ‖x‖₁ s.t. Ax = y`` as a linear program (:func:`basis_pursuit`), and
  its solution face S explored by 2N more LPs (:func:`bp_face`).
* The gradient flow of ½‖A(uᵖ − vᵖ) − y‖² from u = v = α·1 has the limit
  x∞ = β h_p(Aᵀw), β = αᵖ, where w minimises the convex dual φ(w) = β Σ H_p((Aᵀw)_i) − yᵀw
  (:func:`dln_limit`, a damped Newton method; mpmath when double precision is not enough).
  p = 2: h(z) = 2 sinh z, H = 2 cosh z; p > 2: h_p(τ) = (1−τ)^{−k} − (1+τ)^{−k}, k = p/(p−2).
* The honest route, the stiff ODE for (u, v) with its analytic Jacobian (:func:`dln_flow_ode`),
  and plain gradient descent (:func:`dln_gd`), whose limit is biased by O(step size).
* The depth-selected ℓ1 minimiser x̂_p (:func:`selected_minimizer`): argmin Σ|x_i| log|x_i| on S
  for p = 2, argmax Σ|x_i|^{2/p} on S for p > 2 — computed on the face, independently of the flow.
* The null-space constant ρ (:func:`rho_lp`) and the predicted rate ‖x∞ − x̂_p‖ = Θ(β^slope)
  (:func:`predicted_slope`): slope 1 for p > 2; 1 − ρ for p = 2 (β² without off-face directions).
* The A_ε = [1, 1 − ε], y = 1 family of the hardness notebook, solved in batch
  (:func:`a_eps_limit`, :func:`a_eps_threshold`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np
from scipy.integrate import solve_ivp
from scipy.linalg import null_space
from scipy.optimize import linprog

from ._validate import (
    DivergenceError,
    check_array,
    check_choice,
    check_divergence,
    check_int,
    check_real,
    check_rng,
)

__all__ = [
    "BPSolution",
    "Face",
    "LimitResult",
    "FlowResult",
    "GDResult",
    "line_instance",
    "plane_instance",
    "random_instance",
    "a_eps_instance",
    "line_t_star",
    "basis_pursuit",
    "bp_face",
    "h_p",
    "dh_p",
    "H_p",
    "h_inverse",
    "q_p",
    "tie_break",
    "dln_limit",
    "flow_vector_field",
    "dln_flow_ode",
    "dln_gd",
    "selected_minimizer",
    "rho_lp",
    "predicted_slope",
    "a_eps_limit",
    "a_eps_threshold",
    "distance_sweep",
]

_EPS = np.finfo(float).eps


# ------------------------------------------------------------------------------------------
# validation helpers and instances
# ------------------------------------------------------------------------------------------
def _check_problem(A: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    A = check_array("A", A, ndim=2)
    m, N = A.shape
    if m < 1 or N < 1:
        raise ValueError(f"A must be a non-empty m×N matrix, got shape {A.shape}")
    y = check_array("y", y, shape=(m,))
    if np.linalg.matrix_rank(A) < m:
        raise ValueError(f"A must have full row rank m = {m}, got rank {np.linalg.matrix_rank(A)}")
    return A, y


def _check_p(p: Any) -> float:
    return check_real("p", p, 2.0, 50.0)


def _beta(p: float, alpha: Any) -> float:
    alpha = check_real("alpha", alpha, 0.0, 10.0, low_open=True)
    beta = alpha**p
    if beta < 1e-300:
        raise ValueError(f"alpha must satisfy alpha**p >= 1e-300, got alpha = {alpha!r}, p = {p}")
    return beta


def line_instance() -> tuple[np.ndarray, np.ndarray]:
    """The paper's "line" example A = [[1,1,1],[3,0,1]], y = (3,3).

    min ‖x‖₁ = 3 and S = {(1−t, 2(1−t), 3t) : t ∈ [0, 1]}.
    """
    return np.array([[1.0, 1.0, 1.0], [3.0, 0.0, 1.0]]), np.array([3.0, 3.0])


def plane_instance() -> tuple[np.ndarray, np.ndarray]:
    """The paper's "plane" example A = [[2,−1,0,1],[0,3,2,0]], y = (0,6).

    Its BP face is the line instance's segment (in x₁..x₃) with x₄ = 0; x₄ is an off-face direction.
    """
    return np.array([[2.0, -1.0, 0.0, 1.0], [0.0, 3.0, 2.0, 0.0]]), np.array([0.0, 6.0])


def random_instance(
    m: int = 3, N: int = 5, sparsity: int = 2, seed: Any = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian A (entries N(0, 1/m)) and y = A x₀ with x₀ ``sparsity``-sparse Gaussian."""
    m = check_int("m", m, 1, 50)
    N = check_int("N", N, m + 1, 200)
    sparsity = check_int("sparsity", sparsity, 1, N)
    rng = check_rng("seed", seed)
    A = rng.standard_normal((m, N)) / math.sqrt(m)
    x0 = np.zeros(N)
    idx = rng.choice(N, size=sparsity, replace=False)
    x0[idx] = rng.standard_normal(sparsity)
    return A, A @ x0


def a_eps_instance(eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The hardness family A_ε = [1, 1 − ε], y = 1 (BP solution jumps at ε = 0)."""
    eps = check_real("eps", eps, -1.0, 1.0, high_open=True)
    return np.array([[1.0, 1.0 - eps]]), np.array([1.0])


def line_t_star(p: float) -> float:
    """Closed-form position t* of x̂_p = (1−t*, 2(1−t*), 3t*) on the line instance's face.

    p = 2: t* = 2^{2/3}/(2^{2/3} + 3); p > 2: t* = 1/(1 + (3^{2/p}/(2^{2/p} + 1))^{−p/(p−2)}).
    """
    p = _check_p(p)
    if p == 2.0:
        return 2 ** (2 / 3) / (2 ** (2 / 3) + 3)
    return 1.0 / (1.0 + (3 ** (2 / p) / (2 ** (2 / p) + 1)) ** (-p / (p - 2)))


# ------------------------------------------------------------------------------------------
# basis pursuit
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BPSolution:
    """A BP solution ``x``, its value ‖x‖₁ and a dual certificate w (|Aᵀw| ≤ 1, yᵀw = value)."""

    x: np.ndarray
    value: float
    dual: np.ndarray


def basis_pursuit(A: Any, y: Any) -> BPSolution:
    """Solve min ‖x‖₁ s.t. Ax = y as the LP min 1ᵀ(x⁺ + x⁻), A(x⁺ − x⁻) = y, x± ≥ 0 (HiGHS)."""
    A, y = _check_problem(A, y)
    N = A.shape[1]
    res = linprog(np.ones(2 * N), A_eq=np.hstack([A, -A]), b_eq=y, bounds=(0, None), method="highs")
    if res.status != 0:  # pragma: no cover - full row rank makes it feasible and bounded
        raise ValueError(f"basis pursuit failed: {res.message}")
    return BPSolution(res.x[:N] - res.x[N:], float(res.fun), np.asarray(res.eqlin.marginals))


@dataclass(frozen=True)
class Face:
    """The BP solution set S = {x : Ax = y, ‖x‖₁ = value}, explored coordinate by coordinate.

    ``lower``/``upper``: min/max of each x_i over S; ``support``: coordinates non-zero somewhere
    on S; ``signs``: their (constant) signs; ``vertices``: the LP solutions found (rows);
    ``dimension``: dim S = |support| − rank(A_support); ``unique``: dimension == 0.
    """

    value: float
    lower: np.ndarray
    upper: np.ndarray
    support: np.ndarray
    signs: np.ndarray
    vertices: np.ndarray
    dimension: int

    @property
    def unique(self) -> bool:
        return self.dimension == 0


def bp_face(A: Any, y: Any, tol: float = 1e-9) -> Face:
    """Explore the BP solution face: fix 1ᵀ(x⁺ + x⁻) ≤ value·(1 + tol) and min/max each x_i."""
    A, y = _check_problem(A, y)
    tol = check_real("tol", tol, 0.0, 1e-3, low_open=True)
    m, N = A.shape
    bp = basis_pursuit(A, y)
    A_eq = np.hstack([A, -A])
    A_ub = np.ones((1, 2 * N))
    b_ub = [bp.value * (1 + tol) + tol]
    lower, upper, verts = np.empty(N), np.empty(N), [bp.x]
    for i in range(N):
        for sign, out in ((1.0, lower), (-1.0, upper)):
            c = np.zeros(2 * N)
            c[i], c[N + i] = sign, -sign
            res = linprog(
                c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=y, bounds=(0, None), method="highs"
            )
            if res.status != 0:  # pragma: no cover
                raise ValueError(f"face exploration failed: {res.message}")
            xi = res.x[:N] - res.x[N:]
            out[i] = xi[i]
            verts.append(xi)
    scale = max(1.0, float(np.max(np.abs(bp.x))))
    thresh = 1e3 * tol * scale
    support = np.maximum(np.abs(lower), np.abs(upper)) > thresh
    signs = np.where(support, np.sign(lower + upper), 0.0)
    rank = np.linalg.matrix_rank(A[:, support]) if support.any() else 0
    return Face(bp.value, lower, upper, support, signs, np.array(verts), int(support.sum() - rank))


# ------------------------------------------------------------------------------------------
# the potentials h_p, H_p, q_p
# ------------------------------------------------------------------------------------------
def _k(p: float) -> float:
    return p / (p - 2.0)


def _h(t: np.ndarray, p: float) -> np.ndarray:
    if p == 2.0:
        return 2.0 * np.sinh(t)
    k = p / (p - 2.0)
    return (1 - t) ** (-k) - (1 + t) ** (-k)


def _dh(t: np.ndarray, p: float) -> np.ndarray:
    if p == 2.0:
        return 2.0 * np.cosh(t)
    k = p / (p - 2.0)
    return k * ((1 - t) ** (-k - 1) + (1 + t) ** (-k - 1))


def _H(t: np.ndarray, p: float) -> np.ndarray:
    if p == 2.0:
        return 2.0 * np.cosh(t)
    k = p / (p - 2.0)
    return ((1 - t) ** (1 - k) + (1 + t) ** (1 - k)) / (k - 1)


def h_p(tau: Any, p: float) -> np.ndarray:
    """x = β h_p(τ): h_2(z) = 2 sinh z; h_p(τ) = (1−τ)^{−k} − (1+τ)^{−k}, k = p/(p−2), |τ| < 1."""
    p = _check_p(p)
    t = np.asarray(tau, dtype=float)
    if p > 2 and np.any(np.abs(t) >= 1):
        raise ValueError(f"tau must lie in (-1, 1) for p > 2, got max |tau| = {np.max(np.abs(t))}")
    return _h(t, p)


def dh_p(tau: Any, p: float) -> np.ndarray:
    """Derivative h_p'(τ) > 0: 2 cosh z for p = 2, k((1−τ)^{−k−1} + (1+τ)^{−k−1}) for p > 2."""
    return _dh(np.asarray(tau, dtype=float), _check_p(p))


def H_p(tau: Any, p: float) -> np.ndarray:
    """Dual potential with H_p' = h_p: 2 cosh z (p = 2), ((1−τ)^{1−k} + (1+τ)^{1−k})/(k − 1)."""
    return _H(np.asarray(tau, dtype=float), _check_p(p))


def h_inverse(z: Any, p: float) -> np.ndarray:
    """τ = h_p^{−1}(z): arcsinh(z/2) for p = 2, vectorised safeguarded Newton for p > 2."""
    p = _check_p(p)
    z = np.asarray(z, dtype=float)
    if p == 2.0:
        return np.arcsinh(z / 2)
    k = _k(p)
    # bracket in |τ| ∈ [0, 1): solve for |z| and restore the sign (h_p is odd)
    a = np.abs(z)
    lo, hi = np.zeros_like(a), np.ones_like(a)
    t = np.clip(1 - (1 + a) ** (-1 / k), 0, 1 - 1e-16)  # τ with (1−τ)^{−k} = 1 + |z|
    for _ in range(100):
        f = (1 - t) ** (-k) - (1 + t) ** (-k) - a
        lo, hi = np.where(f < 0, t, lo), np.where(f >= 0, t, hi)
        step = f / (k * ((1 - t) ** (-k - 1) + (1 + t) ** (-k - 1)))
        tn = t - step
        bad = (tn <= lo) | (tn >= hi)
        tn = np.where(bad, 0.5 * (lo + hi), tn)
        if np.all(np.abs(tn - t) <= 1e-15 * np.maximum(1, np.abs(t))):
            t = tn
            break
        t = tn
    return np.sign(z) * t


def q_p(z: Any, p: float) -> np.ndarray:
    """Primal potential: x∞ = argmin_{Ax=y} Σ β q_p(x_i/β), q_p' = h_p^{−1}, q_p(0) = 0.

    By the Legendre transform q_p(z) = z τ − H_p(τ) + H_p(0), τ = h_p^{−1}(z); for p = 2 this is the
    hyperbolic entropy q(z) = 2 − √(z² + 4) + z arcsinh(z/2).
    """
    p = _check_p(p)
    z = np.asarray(z, dtype=float)
    if p == 2.0:
        return 2 - np.sqrt(z**2 + 4) + z * np.arcsinh(z / 2)
    t = h_inverse(z, p)
    return z * t - H_p(t, p) + H_p(0.0, p)


def tie_break(x: Any, p: float) -> np.ndarray:
    """The small-β tie-break on the face, to be minimised: Σ|x_i| log|x_i| (p = 2),
    −Σ|x_i|^{2/p} (p > 2). Applied along the last axis."""
    p = _check_p(p)
    a = np.abs(np.asarray(x, dtype=float))
    if p == 2.0:
        return np.sum(np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0), axis=-1)
    return -np.sum(a ** (2 / p), axis=-1)


# ------------------------------------------------------------------------------------------
# the gradient-flow limit via the dual Newton method
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LimitResult:
    """x∞ = β h_p(Aᵀw); ``precision`` is "double" or the mpmath digits used."""

    x: np.ndarray
    w: np.ndarray
    beta: float
    iterations: int
    precision: str
    residual: float


def _newton_double(A, y, p, beta, w, max_iter=200):
    """Damped Newton on φ(w) = β Σ H_p(Aᵀw) − yᵀw; keeps |Aᵀw| < 1 for p > 2."""
    ynorm = max(float(np.linalg.norm(y)), 1e-300)

    def phi(wv):
        t = A.T @ wv
        if p > 2 and np.max(np.abs(t)) >= 1:
            return math.inf
        return beta * float(np.sum(_H(t, p))) - float(y @ wv)

    def grad(wv):
        return beta * (A @ _h(A.T @ wv, p)) - y

    f, g = phi(w), grad(w)
    for it in range(1, max_iter + 1):
        gn0 = float(np.linalg.norm(g))
        if gn0 <= 1e-15 * ynorm:
            return w, it, gn0
        Hm = (A * (beta * _dh(A.T @ w, p))) @ A.T
        try:
            step = -np.linalg.solve(Hm, g)
        except np.linalg.LinAlgError:
            step = -np.linalg.lstsq(Hm, g, rcond=None)[0]
        dec2 = float(-g @ step)
        s = 1.0
        if dec2 < 1e-8:
            # quadratic phase: φ differences drown in rounding, so accept on the residual and
            # stop at the rounding floor, when a full Newton step no longer reduces it
            while not math.isfinite(phi(w + s * step)):
                s *= 0.5
            wn = w + s * step
            gn = grad(wn)
            if np.linalg.norm(gn) >= gn0:
                return w, it, gn0
            w, f, g = wn, phi(wn), gn
            continue
        while True:
            wn = w + s * step
            fn = phi(wn)
            if fn <= f - 0.25 * s * dec2:
                break
            s *= 0.5
            if s < 1e-14:  # pragma: no cover - cannot happen outside the quadratic phase
                return w, it, gn0
        w, f, g = wn, fn, grad(wn)
    return w, max_iter, float(np.linalg.norm(g))


def _newton_mp(A, y, p, beta, w0, dps, max_iter=60):
    """The same Newton method in mpmath with ``dps`` digits (from a double warm start)."""
    with mpmath.workdps(dps):
        m, N = A.shape
        Am = [[mpmath.mpf(float(a)) for a in row] for row in A]
        ym = [mpmath.mpf(float(v)) for v in y]
        P, B = mpmath.mpf(p), mpmath.mpf(beta)
        one = mpmath.mpf(1)
        if p == 2:
            hf = lambda t: 2 * mpmath.sinh(t)  # noqa: E731
            dhf = lambda t: 2 * mpmath.cosh(t)  # noqa: E731
            Hf = dhf
        else:
            k = P / (P - 2)
            hf = lambda t: (one - t) ** (-k) - (one + t) ** (-k)  # noqa: E731
            dhf = lambda t: k * ((one - t) ** (-k - 1) + (one + t) ** (-k - 1))  # noqa: E731
            Hf = lambda t: ((one - t) ** (1 - k) + (one + t) ** (1 - k)) / (k - 1)  # noqa: E731

        def taus(w):
            return [mpmath.fsum(Am[i][j] * w[i] for i in range(m)) for j in range(N)]

        def phi(w):
            t = taus(w)
            if p > 2 and max(abs(v) for v in t) >= 1:
                return mpmath.inf
            return B * mpmath.fsum(Hf(v) for v in t) - mpmath.fsum(a * b for a, b in zip(ym, w))

        w = [mpmath.mpf(float(v)) for v in w0]
        f = phi(w)
        tol = mpmath.mpf(10) ** (-(dps - 6))
        ynorm = max(mpmath.sqrt(mpmath.fsum(v * v for v in ym)), mpmath.mpf(10) ** -300)
        it = 0
        for it in range(1, max_iter + 1):  # noqa: B007
            t = taus(w)
            xs = [B * hf(v) for v in t]
            d = [B * dhf(v) for v in t]
            g = [mpmath.fsum(Am[i][j] * xs[j] for j in range(N)) - ym[i] for i in range(m)]
            Hm = mpmath.matrix(m, m)
            for a in range(m):
                for b in range(a, m):
                    Hm[a, b] = Hm[b, a] = mpmath.fsum(Am[a][j] * Am[b][j] * d[j] for j in range(N))
            step = mpmath.lu_solve(Hm, mpmath.matrix([-v for v in g]))
            step = [step[i] for i in range(m)]
            dec2 = -mpmath.fsum(a * b for a, b in zip(g, step))
            gnorm = mpmath.sqrt(mpmath.fsum(v * v for v in g))
            if gnorm <= tol * ynorm:
                break
            s = one
            if dec2 < mpmath.mpf(10) ** -8:  # quadratic phase: full steps, stop at the floor
                while phi([a + s * b for a, b in zip(w, step)]) == mpmath.inf:
                    s /= 2
                wn = [a + s * b for a, b in zip(w, step)]
                tn = taus(wn)
                gn = [
                    mpmath.fsum(Am[i][j] * B * hf(tn[j]) for j in range(N)) - ym[i]
                    for i in range(m)
                ]
                if mpmath.sqrt(mpmath.fsum(v * v for v in gn)) >= gnorm:
                    break
                w, f = wn, phi(wn)
                continue
            while True:
                wn = [a + s * b for a, b in zip(w, step)]
                fn = phi(wn)
                if fn <= f - s * dec2 / 4:
                    break
                s /= 2
                if s < mpmath.mpf(10) ** -30:
                    break
            w, f = wn, fn
        t = taus(w)
        x = np.array([float(B * hf(v)) for v in t])
        res = float(
            mpmath.sqrt(
                mpmath.fsum(
                    (mpmath.fsum(Am[i][j] * B * hf(t[j]) for j in range(N)) - ym[i]) ** 2
                    for i in range(m)
                )
            )
        )
        return x, np.array([float(v) for v in w]), it, res


def _rounding_error(A, w, p, beta):
    """Estimated absolute error of x = β h_p(Aᵀw) caused by rounding Aᵀw in double precision."""
    t = A.T @ w
    x = np.abs(beta * h_p(t, p))
    scale = np.abs(A).T @ np.abs(w) * _EPS * 4
    if p == 2:
        return float(np.max(x * scale))
    return float(np.max(x * _k(p) * scale / (1 - np.abs(t))))


def dln_limit(
    A: Any,
    y: Any,
    p: float,
    alpha: float,
    *,
    precision: str | int = "auto",
    w0: Any = None,
) -> LimitResult:
    """The gradient-flow limit x∞ = β h_p(Aᵀw) of the depth-p DLN from u = v = α·1, β = αᵖ.

    w minimises the convex dual φ(w) = β Σ_i H_p((Aᵀw)_i) − yᵀw (so A x∞ = y): a damped Newton
    method with backtracking that keeps |Aᵀw| < 1 for p > 2, started from ``w0`` or by
    continuation in β (β = 1, 1e-2, ..., β). ``precision``: "double"; an int number of mpmath
    digits (≥ 20) to polish the double solution; or "auto" = double, polished with 40 digits when
    the estimated rounding error of x exceeds 1e-3·β (p > 2) or 1e-3·β² (p = 2), the smallest
    distances to x̂_p that the rates predict.
    """
    A, y = _check_problem(A, y)
    p = _check_p(p)
    beta = _beta(p, alpha)
    if isinstance(precision, str):
        check_choice("precision", precision, ["auto", "double"])
    else:
        precision = check_int("precision", precision, 20, 1000)
    m = A.shape[0]
    if w0 is not None:
        w = check_array("w0", w0, shape=(m,)).copy()
        if p > 2 and np.max(np.abs(A.T @ w)) >= 1:
            raise ValueError("w0 must satisfy |A^T w0| < 1 for p > 2")
        w, iters, res = _newton_double(A, y, p, beta, w)
    else:
        w, iters = np.zeros(m), 0
        stages = [10.0 ** (-2 * j) for j in range(0, 200) if 10.0 ** (-2 * j) > beta] + [beta]
        for b in stages:
            w, it, res = _newton_double(A, y, p, b, w)
            iters += it
    if precision == "auto":
        target = 1e-3 * (beta**2 if p == 2 else beta)
        precision = 40 if _rounding_error(A, w, p, beta) > target else "double"
    if precision == "double":
        x = beta * h_p(A.T @ w, p)
        res = float(np.linalg.norm(A @ x - y))
        check_divergence(
            res, iters, method="dual Newton (DLN limit)", limit=1e-6 * (1 + np.linalg.norm(y))
        )
        return LimitResult(x, w, beta, iters, "double", res)
    x, w, it, res = _newton_mp(A, y, p, beta, w, int(precision))
    check_divergence(
        res,
        iters + it,
        method="dual Newton (DLN limit, mpmath)",
        limit=1e-6 * (1 + np.linalg.norm(y)),
    )
    return LimitResult(x, w, beta, iters + it, f"mp{precision}", res)


# ------------------------------------------------------------------------------------------
# the honest routes: stiff ODE and plain gradient descent on (u, v)
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlowResult:
    """Gradient-flow trajectory: times ``t``, iterates ``x`` (len(t) × N), solver counts."""

    t: np.ndarray
    x: np.ndarray
    loss: np.ndarray
    nfev: int
    njev: int


def _time_to_fit(A, y, p, alpha):
    """Rough time scale at which the flow fits the data (log(1/α) for p = 2, α^{2−p} for p > 2)."""
    g = max(float(np.max(np.abs(A.T @ y))), 1e-12)
    if p == 2:
        return (1 + math.log(1 / alpha) / 2) / g
    return (1 + alpha ** (2 - p) / (p * (p - 2))) / g


def flow_vector_field(A: Any, y: Any, p: float) -> tuple[Any, Any]:
    """The gradient-flow vector field f(t, Y) for Y = [u; v] and its analytic Jacobian J(t, Y).

    f = [p u^{p−1} ⊙ r; −p v^{p−1} ⊙ r], r = Aᵀ(y − A(uᵖ − vᵖ)) and
    J = diag(E' ⊙ [r; r]) − diag(E) [[G, G], [G, G]] diag(E), E = [p u^{p−1}; −p v^{p−1}],
    E' = [p(p−1)u^{p−2}; −p(p−1)v^{p−2}], G = AᵀA.
    """
    A, y = _check_problem(A, y)
    p = _check_p(p)
    N = A.shape[1]
    G = A.T @ A
    GG = np.block([[G, G], [G, G]])
    Aty = A.T @ y

    def rhs(_t: float, Y: np.ndarray) -> np.ndarray:
        u, v = Y[:N], Y[N:]
        r = Aty - G @ (u**p - v**p)
        return np.concatenate([p * u ** (p - 1) * r, -p * v ** (p - 1) * r])

    def jac(_t: float, Y: np.ndarray) -> np.ndarray:
        u, v = Y[:N], Y[N:]
        r = Aty - G @ (u**p - v**p)
        E = np.concatenate([p * u ** (p - 1), -p * v ** (p - 1)])
        dE = np.concatenate([p * (p - 1) * u ** (p - 2), -p * (p - 1) * v ** (p - 2)])
        return np.diag(dE * np.concatenate([r, r])) - E[:, None] * GG * E[None, :]

    return rhs, jac


def dln_flow_ode(
    A: Any,
    y: Any,
    p: float,
    alpha: float,
    *,
    t_final: float | None = None,
    n_eval: int = 200,
    rtol: float = 1e-10,
    atol: float | None = None,
    method: str = "Radau",
) -> FlowResult:
    """Integrate u' = p u^{p−1} ⊙ r, v' = −p v^{p−1} ⊙ r, r = Aᵀ(y − A(uᵖ − vᵖ)), u = v = α·1.

    Implicit stiff solver (Radau, BDF or LSODA) with the analytic Jacobian of
    :func:`flow_vector_field`. Output at ``n_eval`` log-spaced times up to
    ``t_final`` (default: 10⁴ × the time to fit, which grows like α^{2−p} for p > 2).
    """
    A, y = _check_problem(A, y)
    p = _check_p(p)
    alpha = check_real("alpha", alpha, 1e-8, 10.0)
    n_eval = check_int("n_eval", n_eval, 2, 100_000)
    rtol = check_real("rtol", rtol, 1e-14, 1e-2)
    method = check_choice("method", method, ["Radau", "BDF", "LSODA"])
    T = 1e4 * _time_to_fit(A, y, p, alpha) if t_final is None else t_final
    T = check_real("t_final", T, 0.0, 1e300, low_open=True)
    N = A.shape[1]
    atol = check_real(
        "atol", 1e-3 * rtol * alpha if atol is None else atol, 0.0, 1.0, low_open=True
    )
    rhs, jac = flow_vector_field(A, y, p)
    t_eval = np.concatenate([[0.0], np.geomspace(T, T * 1e-8, n_eval - 1)[::-1]])
    sol = solve_ivp(
        rhs,
        (0.0, T),
        np.full(2 * N, alpha),
        method=method,
        jac=jac,
        t_eval=t_eval,
        rtol=rtol,
        atol=atol,
    )
    if sol.status != 0:
        raise DivergenceError(f"stiff ODE ({method}): {sol.message}", len(sol.t), math.nan)
    u, v = sol.y[:N].T, sol.y[N:].T
    x = u**p - v**p
    loss = 0.5 * np.sum((x @ A.T - y) ** 2, axis=1)
    check_divergence(
        float(loss[-1]), len(sol.t), method=f"stiff ODE ({method})", reference=float(loss[0])
    )
    return FlowResult(sol.t, x, loss, int(sol.nfev), int(sol.njev))


@dataclass(frozen=True)
class GDResult:
    """Plain gradient descent on (u, v): final ``x``, number of ``steps``, loss history."""

    x: np.ndarray
    steps: int
    loss: np.ndarray


def dln_gd(
    A: Any,
    y: Any,
    p: float,
    alpha: float,
    step_size: float,
    *,
    max_steps: int = 200_000,
    tol: float = 1e-24,
) -> GDResult:
    """Gradient descent u ← u − η p u^{p−1} ⊙ Aᵀ(Ax − y), v ← v + η p v^{p−1} ⊙ Aᵀ(Ax − y).

    Runs until the loss ½‖Ax − y‖² < ``tol`` (or ``max_steps``); the limit differs from the
    flow's by O(η). Raises ``DivergenceError`` when the loss blows up (step size too large).
    """
    A, y = _check_problem(A, y)
    p = _check_p(p)
    alpha = check_real("alpha", alpha, 1e-8, 10.0, low_open=True)
    eta = check_real("step_size", step_size, 0.0, 10.0, low_open=True)
    max_steps = check_int("max_steps", max_steps, 1, 10**8)
    tol = check_real("tol", tol, 0.0, 1.0, low_open=True)
    N = A.shape[1]
    u, v = np.full(N, alpha), np.full(N, alpha)
    loss0 = 0.5 * float(y @ y)
    hist = []
    k = 0
    for k in range(1, max_steps + 1):  # noqa: B007
        x = u**p - v**p
        res = A @ x - y
        loss = 0.5 * float(res @ res)
        if k % 100 == 1:
            hist.append(loss)
            check_divergence(
                loss, k, method="gradient descent on (u, v)", step_size=eta, reference=loss0
            )
        if loss < tol:
            break
        g = A.T @ res
        u, v = u - eta * p * u ** (p - 1) * g, v + eta * p * v ** (p - 1) * g
        if np.any(u < 0) or np.any(v < 0):
            raise DivergenceError("gradient descent on (u, v) (weights changed sign)", k, loss, eta)
    return GDResult(u**p - v**p, k, np.array(hist))


# ------------------------------------------------------------------------------------------
# which ℓ1 minimiser: selection on the face, ρ and the rates
# ------------------------------------------------------------------------------------------
def selected_minimizer(A: Any, y: Any, p: float, face: Face | None = None) -> np.ndarray:
    """The depth-selected BP solution x̂_p, computed on the face S (independent of the flow).

    p = 2: argmin_{x∈S} Σ|x_i| log|x_i|; p > 2: argmax_{x∈S} Σ|x_i|^{2/p}. On the support with
    signs s, S = {x : A_s x_s = y, s ⊙ x_s ≥ 0}: a strictly convex problem in the null-space
    coordinates of A_s, solved by damped Newton from the centroid of the face's LP vertices.
    For a unique solution it returns the exact solve of A_s x_s = y.
    """
    A, y = _check_problem(A, y)
    p = _check_p(p)
    face = bp_face(A, y) if face is None else face
    supp, s = face.support, face.signs[face.support]
    As = A[:, supp]
    x = np.zeros(A.shape[1])
    x0 = np.linalg.lstsq(As, y, rcond=None)[0]
    Z = null_space(As)
    if Z.shape[1] == 0:
        x[supp] = x0
        return x
    c = Z.T @ (face.vertices.mean(axis=0)[supp] - x0)
    if np.any(s * (x0 + Z @ c) <= 0):  # pragma: no cover - centroid is interior by construction
        raise ValueError("could not find an interior point of the face")

    def parts(cv):
        a = s * (x0 + Z @ cv)
        if p == 2:
            return float(np.sum(a * np.log(a))), np.log(a) + 1, 1 / a
        e = 2 / p
        return -float(np.sum(a**e)), -e * a ** (e - 1), -e * (e - 1) * a ** (e - 2)

    f, d1, d2 = parts(c)
    for _ in range(200):
        g = Z.T @ (s * d1)
        Hm = (Z.T * d2) @ Z
        step = -np.linalg.solve(Hm, g)
        dec2 = float(-g @ step)
        if dec2 <= 1e-30:
            break
        t = 1.0
        while True:
            cn = c + t * step
            if np.all(s * (x0 + Z @ cn) > 0):
                fn, *_ = parts(cn)
                if fn <= f - 0.25 * t * dec2:
                    break
            t *= 0.5
            if t < 1e-14:
                break
        if t < 1e-14:
            break
        c = cn
        f, d1, d2 = parts(c)
    x[supp] = x0 + Z @ c
    return x


def rho_lp(A: Any, x_star: Any, tol: float = 1e-8) -> float | None:
    """ρ = min{‖A_{Zᶜ}ᵀ... ‖}: min ‖A_Zᵀw‖_∞ s.t. A_{S₊}ᵀ w = sign(x*_{S₊}), Z = S₊ᶜ (an LP).

    S₊ = support of x* (pass x̂_p for a non-unique face). ρ < 1 iff x* is the unique BP solution
    (for a unique x*). Returns ``None`` when Z is empty (no off-face directions).
    """
    A = check_array("A", A, ndim=2)
    m, N = A.shape
    xs = check_array("x_star", x_star, shape=(N,))
    supp = np.abs(xs) > tol * max(1.0, float(np.max(np.abs(xs))))
    if supp.all():
        return None
    Az, Ap = A[:, ~supp], A[:, supp]
    nz = Az.shape[1]
    # variables (w, t): minimise t s.t. ±A_zᵀ w − t ≤ 0, A_pᵀ w = sign
    c = np.zeros(m + 1)
    c[-1] = 1.0
    A_ub = np.vstack([np.hstack([Az.T, -np.ones((nz, 1))]), np.hstack([-Az.T, -np.ones((nz, 1))])])
    res = linprog(
        c,
        A_ub=A_ub,
        b_ub=np.zeros(2 * nz),
        A_eq=np.hstack([Ap.T, np.zeros((Ap.shape[1], 1))]),
        b_eq=np.sign(xs[supp]),
        bounds=[(None, None)] * m + [(0, None)],
        method="highs",
    )
    if res.status != 0:
        raise ValueError(f"x_star admits no dual certificate (is it a BP solution?): {res.message}")
    return float(res.fun)


def predicted_slope(A: Any, y: Any, p: float, xhat: Any = None) -> tuple[float, float | None]:
    """Predicted log-log slope of ‖x∞ − x̂_p‖ against β = αᵖ, and ρ (``None`` if no off-face
    coordinate): 1 for p > 2; 1 − ρ for p = 2, or 2 when every coordinate lies on the face."""
    A, y = _check_problem(A, y)
    p = _check_p(p)
    xhat = selected_minimizer(A, y, p) if xhat is None else xhat
    rho = rho_lp(A, xhat)
    if p > 2:
        return 1.0, rho
    return (2.0 if rho is None else 1.0 - rho), rho


# ------------------------------------------------------------------------------------------
# the hardness family A_ε = [1, 1 − ε], y = 1, in batch
# ------------------------------------------------------------------------------------------
def a_eps_limit(eps: Any, p: float, beta: Any) -> np.ndarray:
    """x∞ for A_ε = [1, 1 − ε], y = 1, broadcast over arrays ``eps`` and ``beta`` (shape (..., 2)).

    The dual is scalar: w solves β(h(w) + (1 − ε) h((1 − ε)w)) = 1, found by a vectorised
    safeguarded Newton method in double precision (bisection keeps |(1 − ε)w|, |w| < 1 for p > 2).
    """
    p = _check_p(p)
    e = np.asarray(eps, dtype=float)
    b = np.asarray(beta, dtype=float)
    if np.any(~np.isfinite(e)) or np.any(np.abs(e) >= 1):
        raise ValueError("eps must lie in (-1, 1)")
    if np.any(~np.isfinite(b)) or np.any(b <= 0) or np.any(b > 1e6):
        raise ValueError("beta must lie in (0, 1e6]")
    e, b = np.broadcast_arrays(e, b)
    a2 = 1 - e
    amax = np.maximum(1.0, np.abs(a2))
    lo = np.zeros_like(b)
    hi = np.full_like(b, 800.0) if p == 2 else 1.0 / amax  # w ∈ (0, hi): g(0) < 0 < g(hi)
    dom = np.inf if p == 2 else hi.copy()
    w = 0.5 * hi if p > 2 else np.log1p(1 / b)

    def g_dg(wv):
        if p == 2:
            return (
                b * (h_p(wv, p) + a2 * h_p(a2 * wv, p)) - 1,
                b * (dh_p(wv, p) + a2**2 * dh_p(a2 * wv, p)),
            )
        t2 = a2 * wv
        return (b * (h_p(wv, p) + a2 * h_p(t2, p)) - 1, b * (dh_p(wv, p) + a2**2 * dh_p(t2, p)))

    for _ in range(200):
        with np.errstate(over="ignore", invalid="ignore"):
            g, dg = g_dg(w)
        lo, hi = np.where(g < 0, w, lo), np.where(g >= 0, w, hi)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            wn = w - g / dg
        bad = ~np.isfinite(wn) | (wn < lo) | (wn > hi) | (wn >= dom)
        wn = np.where(bad, 0.5 * (lo + hi), wn)
        done = np.all(
            (np.abs(wn - w) <= 4 * _EPS * np.maximum(np.abs(w), 1e-300)) | (np.abs(g) <= 4 * _EPS)
        )
        w = wn
        if done:
            break
    x = np.stack([b * h_p(w, p), b * h_p(a2 * w, p)], axis=-1)
    res = np.abs(x[..., 0] + a2 * x[..., 1] - 1)
    if not np.all(np.isfinite(res)) or np.max(res, initial=0.0) > 1e-6:
        # for p > 2 and tiny β, 1 − |τ| ~ β^{(p−2)/p} falls below double precision
        worst = float(np.nanmax(np.where(np.isfinite(res), res, np.inf)))
        raise DivergenceError(
            "A_eps dual Newton (double precision exhausted: beta too small)", 200, worst
        )
    # the coordinate with |τ| closest to 1 carries the rounding error of 1 − |τ|: recompute it
    # from the constraint x_1 + (1 − ε) x_2 = 1 (the other one is well conditioned)
    big1 = np.abs(a2) <= 1
    x1 = np.where(big1, 1 - a2 * x[..., 1], x[..., 0])
    x2 = np.where(big1, x[..., 1], (1 - x[..., 0]) / a2)
    return np.stack([x1, x2], axis=-1)


def a_eps_threshold(eps: Any, p: float, accuracy: float = 0.1) -> np.ndarray:
    """The largest β with ‖x∞ − (1, 0)‖ ≤ ``accuracy`` on A_ε (ε > 0), by bisection in log β.

    Predicted: ∝ ε^{p/(p−2)} for p > 2, ≈ accuracy^{1/ε} (exponential in 1/ε) for p = 2.
    """
    p = _check_p(p)
    accuracy = check_real("accuracy", accuracy, 0.0, 0.5, low_open=True)
    e = np.asarray(eps, dtype=float)
    if np.any(e <= 0) or np.any(e >= 1):
        raise ValueError("eps must lie in (0, 1) for the threshold")
    # log10 β bracket: error(lo) small, error(hi) big; lo keeps 1 − |τ| ≳ 1e-12 for p > 2
    lo0 = -300.0 if p == 2 else max(-300.0, -12.0 * _k(p))
    lo, hi = np.full(e.shape, lo0), np.zeros(e.shape)
    target = np.array([1.0, 0.0])
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        err = np.linalg.norm(a_eps_limit(e, p, 10.0**mid) - target, axis=-1)
        lo, hi = np.where(err <= accuracy, mid, lo), np.where(err > accuracy, mid, hi)
    if np.any(lo <= lo0):
        raise ValueError(f"eps too small for a threshold in double precision (p = {p})")
    return 10.0**lo


def distance_sweep(
    A: Any,
    y: Any,
    p: float,
    betas: Any,
    *,
    xhat: Any = None,
    precision: str | int = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """‖x∞(β) − x̂_p‖₂ for each β in ``betas`` (α = β^{1/p}); returns (distances, x̂_p).

    Solves from the largest β down, warm-starting each dual Newton solve from the previous one.
    """
    A, y = _check_problem(A, y)
    p = _check_p(p)
    b = check_array("betas", betas, ndim=1)
    if b.size < 1 or np.any(b <= 0) or np.any(b > 1e3):
        raise ValueError("betas must be a non-empty array of values in (0, 1e3]")
    xh = (
        selected_minimizer(A, y, p)
        if xhat is None
        else check_array("xhat", xhat, shape=(A.shape[1],))
    )
    order = np.argsort(-b)
    d = np.empty(b.size)
    w = None
    for i in order:
        r = dln_limit(A, y, p, float(b[i]) ** (1 / p), precision=precision, w0=w)
        w = r.w if (p == 2 or np.max(np.abs(A.T @ r.w)) < 1) else None
        d[i] = float(np.linalg.norm(r.x - xh))
    return d, xh
