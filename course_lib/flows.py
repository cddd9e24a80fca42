"""The perturbed gradient flow (PGF) of asymmetric matrix factorization (maths only, no plots).

The course's formulation (the seed paper's exact equation could not be checked; this is the form
the course states and uses consistently). With the stacked factors ``Z = [U; V]``, the dilation
``X̄* = [[0, X*], [X*ᵀ, 0]]`` and ``off(M)`` the off-diagonal blocks of M,

    dZ/dt = (X̄* − off(Z Zᵀ) + Ē(t)) Z,        ‖Ē(t)‖ ≤ ξ(t),

with Ē(t) = [[0, E(t)], [E(t)ᵀ, 0]] symmetric. In blocks: ``dU/dt = (X* − UVᵀ + E) V`` and
``dV/dt = (X* − UVᵀ + E)ᵀ U``. Every perturbation of this off-diagonal form conserves the
imbalance ``H = UᵀU − VᵀV`` exactly (dH/dt = Vᵀ Rᵀ U + Uᵀ R V − (Uᵀ R V + Vᵀ Rᵀ U) = 0).

Perturbations (:func:`make_perturbation`), each an ``E(t, U, V) ∈ R^{n1×n2}``:

* ``"none"``: the plain gradient flow of ½‖UVᵀ − X*‖²_F;
* ``"fixed"``: a fixed Gaussian direction scaled to ‖E‖₂ = ξ;
* ``"random"``: a fresh Gaussian direction with ‖E‖₂ = ξ on each time slot of length ``slot``
  (piecewise constant and seeded; the RK4 grid contains the slot boundaries, so within each
  step the field is smooth and RK4 keeps its O(h⁴) accuracy);
* ``"aligned"``: ``E = ξ u⊥ v⊥ᵀ`` along a *spurious* direction (u⊥ ⊥ col X*, v⊥ ⊥ row X*): the
  flow slowly fits it (a logistic mode with rate ξ), so the stopping time matters;
* ``"sensing"``: the measurement-induced ``E = A*(y − A(UVᵀ)) − (X* − UVᵀ)``, which equals
  ``(A*A − I)(X* − UVᵀ)`` for noiseless ``y = A(X*)``: the PGF with this E *is* the gradient flow
  of the sensing loss ½‖A(UVᵀ) − y‖².

The solver (:func:`integrate_flow`) is a fixed-step classical RK4 on the factors (error
O(h⁴); ``check_error=True`` repeats the run with h/2 and reports the Richardson estimate
‖X_h − X_{h/2}‖_F·16/15 / ‖X*‖_F of the global error), or scipy's ``solve_ivp`` (DOP853) on the
flattened Z. GD is the explicit Euler method of the same flow: iterate k sits at time ``t = kη``
(:func:`gd_times`). While Z is small the flow is linear, ``Z(t) ≈ exp(t X̄*) Z0``: the power
method (:func:`linearized_flow`); one aligned mode then follows the logistic curve
(:func:`logistic_mode`).

The integrator works on plain arrays (X*, an optional measurement matrix A, Z0) and does not
depend on :mod:`course_lib.sensing`; only the experiments at the end (:func:`gd_flow_gap`,
:func:`spurious_threshold`) use its public API (``run_gd``, ``emergence_times``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import sensing as S
from ._validate import (
    check_array,
    check_choice,
    check_divergence,
    check_int,
    check_real,
    check_rng,
)

__all__ = [
    "KINDS",
    "Perturbation",
    "FlowSolution",
    "dilation",
    "off_diagonal",
    "stack",
    "split",
    "pgf_rhs",
    "make_perturbation",
    "integrate_flow",
    "linearized_flow",
    "logistic_mode",
    "gd_times",
    "alignment",
    "spurious_directions",
    "gd_flow_gap",
    "mode_size",
    "spurious_threshold",
]

#: The built-in perturbation kinds.
KINDS = ("none", "fixed", "random", "aligned", "sensing")
#: Most integration steps one call may take (keeps a slider from freezing the kernel).
MAX_STEPS = 2_000_000

Field = Callable[[float, np.ndarray, np.ndarray], "np.ndarray | None"]


# -- the stacked form ------------------------------------------------------------------------
def dilation(X: Any) -> np.ndarray:
    """The symmetric dilation ``X̄ = [[0, X], [Xᵀ, 0]]`` (eigenvalues ±σ_i(X), eigenvectors
    ``[u_i; ±v_i]/√2``)."""
    X = check_array("X", X, ndim=2)
    n1, n2 = X.shape
    out = np.zeros((n1 + n2, n1 + n2))
    out[:n1, n1:] = X
    out[n1:, :n1] = X.T
    return out


def off_diagonal(M: Any, n1: int) -> np.ndarray:
    """``off(M)``: M with its two diagonal blocks (sizes n1 and n − n1) set to zero."""
    M = check_array("M", M, ndim=2)
    n1 = check_int("n1", n1, 0, M.shape[0])
    out = M.copy()
    out[:n1, :n1] = 0.0
    out[n1:, n1:] = 0.0
    return out


def stack(U: Any, V: Any) -> np.ndarray:
    """``Z = [U; V]`` from factors with the same width k."""
    U = check_array("U", U, ndim=2)
    V = check_array("V", V, ndim=2)
    if U.shape[1] != V.shape[1]:
        raise ValueError(f"U and V must have the same width k, got {U.shape} and {V.shape}")
    return np.vstack([U, V])


def split(Z: Any, n1: int) -> tuple[np.ndarray, np.ndarray]:
    """``(U, V)`` from ``Z = [U; V]`` (U has n1 rows)."""
    Z = check_array("Z", Z, ndim=2)
    n1 = check_int("n1", n1, 1, Z.shape[0] - 1)
    return Z[:n1], Z[n1:]


def pgf_rhs(Z: Any, X_star: Any, E: Any = None) -> np.ndarray:
    """Right-hand side of the PGF in the stacked form: ``(X̄* − off(Z Zᵀ) + Ē) Z``.

    The reference implementation (O(n³)); the integrator uses the equivalent block form
    ``[(X* − UVᵀ + E) V; (X* − UVᵀ + E)ᵀ U]`` (O(n1·n2·k)). ``E`` is the n1×n2 block of Ē.
    """
    X_star = check_array("X_star", X_star, ndim=2)
    n1, n2 = X_star.shape
    Z = check_array("Z", Z, ndim=2)
    if Z.shape[0] != n1 + n2:
        raise ValueError(f"Z must have n1 + n2 = {n1 + n2} rows, got shape {Z.shape}")
    Xb = dilation(X_star)
    if E is not None:
        Xb = Xb + dilation(check_array("E", E, shape=(n1, n2)))
    return (Xb - off_diagonal(Z @ Z.T, n1)) @ Z


# -- perturbations ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Perturbation:
    """A perturbation field ``E(t, U, V)`` (the n1×n2 block of Ē), see :func:`make_perturbation`.

    ``bound`` is ‖E(t)‖₂ for the built-in bounded kinds (they have exactly this norm), ``nan``
    when it is state-dependent (``"sensing"``, custom fields); ``slot`` is the length of the
    constant pieces of ``"random"`` (else None); ``scale`` is the operator-norm scale of the
    drift the step size must resolve; ``constant`` is E itself when it does not change.
    """

    kind: str
    field: Field | None
    bound: float
    slot: float | None
    scale: float
    constant: np.ndarray | None = None

    def __call__(self, t: float, U: np.ndarray, V: np.ndarray) -> np.ndarray | None:
        return None if self.field is None else self.field(t, U, V)


def _unit_op(G: np.ndarray) -> np.ndarray:
    return G / np.linalg.norm(G, 2)


def spurious_directions(
    X_star: Any, seed: int | np.random.Generator = 0, tol: float = 1e-10
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random unit vectors ``u⊥ ⊥ col(X*)``, ``v⊥ ⊥ row(X*)`` (the spurious directions).

    The rank of X* counts singular values above ``tol·σ_1``; X* must be rank-deficient on both
    sides (rank < min(n1, n2)).
    """
    X_star = check_array("X_star", X_star, ndim=2)
    rng = check_rng("seed", seed)
    Us, s, Vt = np.linalg.svd(X_star)
    r = int(np.sum(s > tol * max(s[0], 1e-300)))
    n1, n2 = X_star.shape
    if r >= min(n1, n2):
        raise ValueError(
            f"X_star must have rank < min(n1, n2) = {min(n1, n2)} to have spurious directions, "
            f"got rank {r}"
        )
    u = Us[:, r:] @ rng.standard_normal(n1 - r)
    v = Vt[r:].T @ rng.standard_normal(n2 - r)
    return u / np.linalg.norm(u), v / np.linalg.norm(v)


def make_perturbation(
    kind: str,
    X_star: Any,
    *,
    xi: float = 0.0,
    A: Any = None,
    y: Any = None,
    slot: float = 0.5,
    seed: int | np.random.Generator = 0,
) -> Perturbation:
    """Build one of the perturbations :data:`KINDS` for target ``X_star`` (see module doc).

    ``xi`` ∈ [0, 1e3] is ‖E‖₂ for ``fixed``/``random``/``aligned``; ``slot`` > 0 the length of
    the constant pieces of ``random``; ``A`` the ``(m, n1·n2)`` measurement matrix (row-major
    vec) and ``y`` the measurements (default ``A vec(X*)``) for ``sensing``. Seeded.
    """
    kind = check_choice("kind", kind, KINDS)
    X_star = check_array("X_star", X_star, ndim=2)
    n1, n2 = X_star.shape
    xi = check_real("xi", xi, 0.0, 1e3)
    slot = check_real("slot", slot, 0.0, 1e6, low_open=True)
    rng = check_rng("seed", seed)
    s1 = float(np.linalg.norm(X_star, 2))
    if kind == "none":
        return Perturbation("none", None, 0.0, None, s1)
    if kind == "fixed":
        E = xi * _unit_op(rng.standard_normal((n1, n2)))
        return Perturbation("fixed", lambda t, U, V: E, xi, None, s1 + xi, E)
    if kind == "aligned":
        u, v = spurious_directions(X_star, rng)
        E = xi * np.outer(u, v)
        return Perturbation("aligned", lambda t, U, V: E, xi, None, s1 + xi, E)
    if kind == "random":
        base = int(rng.integers(2**62))
        cache: dict[int, np.ndarray] = {}

        def fresh(t: float, U: np.ndarray, V: np.ndarray) -> np.ndarray:
            j = math.floor(t / slot)
            if j not in cache:
                if len(cache) > 4096:
                    cache.clear()
                g = np.random.default_rng([base, j]).standard_normal((n1, n2))
                cache[j] = xi * _unit_op(g)
            return cache[j]

        return Perturbation("random", fresh, xi, slot, s1 + xi)
    # sensing
    if A is None:
        raise ValueError("A must be given for kind='sensing' (an (m, n1*n2) measurement matrix)")
    A = check_array("A", A, ndim=2)
    if A.shape[1] != n1 * n2:
        raise ValueError(f"A must have n1*n2 = {n1 * n2} columns, got shape {A.shape}")
    xs = X_star.ravel()
    yv = A @ xs if y is None else check_array("y", y, shape=(A.shape[0],))
    Aty = A.T @ yv
    # A*A as a Gram matrix when it is the cheaper operator (n1·n2 < 2m), else two mat-vecs
    gram = A.T @ A if n1 * n2 < 2 * A.shape[0] else None

    def measured(t: float, U: np.ndarray, V: np.ndarray) -> np.ndarray:
        x = (U @ V.T).ravel()
        AtAx = gram @ x if gram is not None else A.T @ (A @ x)
        return (Aty - AtAx - xs + x).reshape(n1, n2)

    # the step size GD needs (η ≈ 0.1/σ_1) resolves this drift too; check_error verifies it
    return Perturbation("sensing", measured, math.nan, None, s1)


# -- the integrator --------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class FlowSolution:
    """A recorded PGF solution.

    ``t`` (n_rec,) record times; ``U``, ``V`` (n_rec, n, k) factors; ``rel_error_fro`` /
    ``rel_error_op``: ‖UVᵀ − X*‖/‖X*‖ (Frobenius / operator); ``singular_values`` (n_rec, q):
    the q = min(k, n1, n2) largest singular values of UVᵀ; ``imbalance_drift``:
    ‖H(t) − H(0)‖_F with H = UᵀU − VᵀV; ``perturbation_norm``: ‖E(t)‖₂ at the records;
    ``dt``/``n_steps``: the solver grid (dt = nan for solve_ivp); ``n_evals``: right-hand side
    evaluations (4 per RK4 step; scipy's count for solve_ivp); ``error_estimate``: the
    Richardson estimate of the relative global error (nan unless ``check_error=True``).
    """

    t: np.ndarray
    U: np.ndarray
    V: np.ndarray
    rel_error_fro: np.ndarray
    rel_error_op: np.ndarray
    singular_values: np.ndarray
    imbalance_drift: np.ndarray
    perturbation_norm: np.ndarray
    kind: str
    dt: float
    n_steps: int
    method: str
    error_estimate: float
    n_evals: int

    @property
    def X(self) -> np.ndarray:
        """The recorded products UVᵀ, shape (n_rec, n1, n2)."""
        return self.U @ np.swapaxes(self.V, 1, 2)

    @property
    def final_error(self) -> float:
        """Relative Frobenius error at the last record."""
        return float(self.rel_error_fro[-1])


def _block_rhs(
    X_star: np.ndarray, pert: Perturbation, t: float, U: np.ndarray, V: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    R = X_star - U @ V.T
    E = pert(t, U, V)
    if E is not None:
        R += E
    return R @ V, R.T @ U


def _rk4(X_star, pert, U, V, dt, n_steps, rec_every, on_record):
    """Classical RK4 on Z = [U; V] with preallocated stage buffers.

    Calls ``on_record(j, t, U, V)`` every ``rec_every`` steps (stops early if it returns False).
    A constant E is folded into the target once. Stage times are nudged 1e-9·h inside the step
    so that a perturbation that is piecewise constant on the step grid is seen as constant within
    each step.
    """
    n1 = U.shape[0]
    Z = np.vstack([U, V])
    K = np.empty((4, *Z.shape))
    K2 = K.reshape(4, -1)  # a view: the RK4 combination is one (4,)·(4, n·k) product
    Zt = np.empty_like(Z)
    weights = np.array([1.0, 2.0, 2.0, 1.0]) * (dt / 6.0)
    target = X_star if pert.constant is None else X_star + pert.constant
    field = None if pert.constant is not None else pert.field

    def f(t: float, Zc: np.ndarray, out: np.ndarray) -> None:
        Uc, Vc = Zc[:n1], Zc[n1:]
        R = target - Uc @ Vc.T
        if field is not None:
            R += field(t, Uc, Vc)
        np.matmul(R, Vc, out=out[:n1])
        np.matmul(R.T, Uc, out=out[n1:])

    eps = 1e-9 * dt
    j = 0
    for i in range(n_steps + 1):
        t = i * dt
        if i % rec_every == 0:
            if not on_record(j, t, Z[:n1], Z[n1:]):
                break  # non-finite: the caller reports the divergence
            j += 1
        if i == n_steps:
            break
        f(t + eps, Z, K[0])
        np.multiply(K[0], 0.5 * dt, out=Zt)
        Zt += Z
        f(t + 0.5 * dt, Zt, K[1])
        np.multiply(K[1], 0.5 * dt, out=Zt)
        Zt += Z
        f(t + 0.5 * dt, Zt, K[2])
        np.multiply(K[2], dt, out=Zt)
        Zt += Z
        f(t + dt - eps, Zt, K[3])
        Z = Z + (weights @ K2).reshape(Z.shape)
    return Z[:n1], Z[n1:]


def _ivp(X_star, pert, U, V, times, rtol, on_record):
    """scipy ``solve_ivp`` (DOP853) on the flattened Z, piece by piece over ``random``'s slots."""
    from scipy.integrate import solve_ivp

    n1, k = U.shape

    def f(t, z):
        Zm = z.reshape(-1, k)
        du, dv = _block_rhs(X_star, pert, t, Zm[:n1], Zm[n1:])
        return np.concatenate([du.ravel(), dv.ravel()])

    z = np.concatenate([U.ravel(), V.ravel()])
    edges = [times[0], times[-1]]
    if pert.slot is not None:
        edges = np.unique(np.concatenate([np.arange(times[0], times[-1], pert.slot), edges]))
    on_record(0, times[0], U, V)
    j = 1
    nfev = 0
    for a, b in zip(edges[:-1], edges[1:]):
        inside = times[(times > a) & (times <= b)]
        t_eval = np.append(inside[inside < b], b)  # always end the piece at b

        def g(t, zz, _a=a, _b=b):  # stay inside the piece: a piecewise-constant E is smooth here
            return f(min(max(t, _a + 1e-12 * (_b - _a)), _b - 1e-12 * (_b - _a)), zz)

        sol = solve_ivp(
            g,
            (a, b),
            z,
            method="DOP853",
            rtol=rtol,
            atol=rtol * 1e-6,
            t_eval=t_eval,
        )
        if not sol.success:
            raise ValueError(f"solve_ivp failed on [{a:g}, {b:g}]: {sol.message}")
        nfev += sol.nfev
        for c, tt in enumerate(t_eval):
            if tt in inside:
                zc = sol.y[:, c].reshape(-1, k)
                on_record(j, tt, zc[:n1], zc[n1:])
                j += 1
        z = sol.y[:, -1]
    return nfev


def integrate_flow(
    X_star: Any,
    U0: Any,
    V0: Any,
    t_end: float,
    *,
    perturbation: str | Perturbation | Field = "none",
    xi: float = 0.0,
    A: Any = None,
    slot: float = 0.5,
    seed: int | np.random.Generator = 0,
    dt: float | None = None,
    record_every: int | None = None,
    max_records: int = 200,
    method: str = "rk4",
    rtol: float = 1e-9,
    check_error: bool = False,
) -> FlowSolution:
    """Integrate the PGF ``dZ/dt = (X̄* − off(ZZᵀ) + Ē(t)) Z`` from ``Z0 = [U0; V0]`` to ``t_end``.

    ``perturbation`` is a kind of :data:`KINDS` (built by :func:`make_perturbation` with ``xi``,
    ``A``, ``slot``, ``seed``), a :class:`Perturbation`, or any callable ``E(t, U, V)`` returning
    the n1×n2 block of Ē. ``method="rk4"``: fixed-step RK4 with step ``dt`` (default
    ``0.1/scale`` with ``scale`` ≈ the drift's operator norm, shrunk so that the slots of
    ``random`` are whole numbers of steps); the last time is ``n_steps·dt`` ≥ ``t_end``.
    ``method="solve_ivp"``: scipy DOP853 at tolerance ``rtol`` (records on the RK4 grid).
    Records every ``record_every`` steps (default: about ``max_records`` records).
    ``check_error=True`` (RK4) reruns with dt/2 and stores the Richardson estimate of the
    relative global error. A non-finite or exploding loss ½‖UVᵀ − X*‖²_F raises
    ``DivergenceError``.
    """
    X_star = check_array("X_star", X_star, ndim=2)
    n1, n2 = X_star.shape
    U0 = check_array("U0", U0, ndim=2)
    k = U0.shape[1]
    if U0.shape[0] != n1:
        raise ValueError(f"U0 must have n1 = {n1} rows, got shape {U0.shape}")
    V0 = check_array("V0", V0, shape=(n2, k))
    t_end = check_real("t_end", t_end, 0.0, 1e6, low_open=True)
    method = check_choice("method", method, ["rk4", "solve_ivp"])
    rtol = check_real("rtol", rtol, 1e-14, 1e-2)
    max_records = check_int("max_records", max_records, 2, 100_000)
    if isinstance(perturbation, Perturbation):
        pert = perturbation
    elif isinstance(perturbation, str):
        pert = make_perturbation(perturbation, X_star, xi=xi, A=A, slot=slot, seed=seed)
    elif callable(perturbation):
        pert = Perturbation(
            "custom", perturbation, math.nan, None, float(np.linalg.norm(X_star, 2))
        )
    else:
        raise ValueError(
            f"perturbation must be one of {list(KINDS)}, a Perturbation or a callable, "
            f"got {perturbation!r}"
        )
    h = (
        0.1 / max(pert.scale, 1e-12)
        if dt is None
        else check_real("dt", dt, 0.0, 1e3, low_open=True)
    )
    h = min(h, t_end)
    if pert.slot is not None:
        h = pert.slot / math.ceil(pert.slot / h - 1e-9)
        n_steps = math.ceil(t_end / h - 1e-9)
    else:
        n_steps = math.ceil(t_end / h - 1e-9)
        h = t_end / n_steps
    if n_steps > MAX_STEPS:
        raise ValueError(f"t_end/dt = {n_steps} steps exceeds the limit {MAX_STEPS}; raise dt")
    if record_every is None:
        record_every = max(1, math.ceil(n_steps / (max_records - 1)))
    record_every = check_int("record_every", record_every, 1, n_steps)
    n_rec = n_steps // record_every + 1
    times = np.arange(n_rec) * record_every * h
    Us = np.full((n_rec, n1, k), np.nan)
    Vs = np.full((n_rec, n2, k), np.nan)
    state_dependent = math.isnan(pert.bound)
    Es = np.zeros((n_rec if state_dependent else 1, n1, n2))

    def on_record(j: int, t: float, U: np.ndarray, V: np.ndarray) -> bool:
        Us[j], Vs[j] = U, V
        if state_dependent:
            Es[j] = pert(t, U, V)
        return bool(np.isfinite(Us[j, 0, 0] + Vs[j, 0, 0] + Us[j].sum()))

    with np.errstate(all="ignore"):
        if method == "rk4":
            _rk4(X_star, pert, U0, V0, h, n_steps, record_every, on_record)
            n_evals = 4 * n_steps
        else:
            n_evals = _ivp(X_star, pert, U0, V0, times, rtol, on_record)
    _check_records(X_star, Us, Vs, record_every, h, method)
    est = math.nan
    if check_error and method == "rk4":
        fine = integrate_flow(
            X_star,
            U0,
            V0,
            n_steps * h,
            perturbation=pert,
            dt=h / 2,
            record_every=2 * record_every,
            method="rk4",
        )
        Xf = fine.X
        Xc = Us @ np.swapaxes(Vs, 1, 2)
        diff = np.linalg.norm((Xc - Xf).reshape(n_rec, -1), axis=1)
        est = float(diff.max() * 16.0 / 15.0 / np.linalg.norm(X_star))
    return _summarize(
        X_star,
        times,
        Us,
        Vs,
        Es,
        pert,
        h if method == "rk4" else math.nan,
        n_steps,
        method,
        est,
        n_evals,
    )


def _check_records(X_star, Us, Vs, record_every, h, method) -> None:
    """Raise ``DivergenceError`` at the first record whose loss ½‖UVᵀ − X*‖²_F is non-finite
    or has exploded (relative to the initial loss)."""
    D = (Us @ np.swapaxes(Vs, 1, 2) - X_star).reshape(Us.shape[0], -1)
    loss = 0.5 * np.einsum("ij,ij->i", D, D)
    bad = np.flatnonzero(~np.isfinite(loss) | (loss > 1e12 * max(loss[0], 1.0)))
    if bad.size:
        j = int(bad[0])
        check_divergence(
            float(loss[j]),
            j * record_every,
            method=f"perturbed gradient flow ({method})",
            step_size=h,
            reference=float(loss[0]),
        )


def _lowrank_sv(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Singular values of the stacked products ``P Qᵀ`` via two thin QRs (cheap for thin P, Q)."""
    Rp = np.linalg.qr(P, mode="r")
    Rq = np.linalg.qr(Q, mode="r")
    return np.linalg.svd(Rp @ np.swapaxes(Rq, -1, -2), compute_uv=False)


def _summarize(X_star, times, Us, Vs, Es, pert, h, n_steps, method, est, n_evals) -> FlowSolution:
    """Batched diagnostics of the records, using that UVᵀ and UVᵀ − X* have low rank."""
    n_rec, n1, k = Us.shape
    Xs = Us @ np.swapaxes(Vs, 1, 2)
    D = Xs - X_star
    err_f = np.linalg.norm(D.reshape(n_rec, -1), axis=1) / np.linalg.norm(X_star)
    Ws, s, Yt = np.linalg.svd(X_star)
    r = max(1, int(np.sum(s > 1e-12 * s[0])))
    P = np.concatenate([Us, np.broadcast_to(-Ws[:, :r] * s[:r], (n_rec, n1, r))], axis=2)
    Q = np.concatenate([Vs, np.broadcast_to(Yt[:r].T, (n_rec, Vs.shape[1], r))], axis=2)
    err_2 = _lowrank_sv(P, Q)[:, 0] / s[0]
    q = min(k, *X_star.shape)
    sv = _lowrank_sv(Us, Vs)[:, :q]
    H = np.swapaxes(Us, 1, 2) @ Us - np.swapaxes(Vs, 1, 2) @ Vs
    drift = np.linalg.norm((H - H[0]).reshape(n_rec, -1), axis=1)
    if math.isnan(pert.bound):
        pn = np.linalg.svd(Es, compute_uv=False)[:, 0]
    else:
        pn = np.full(n_rec, pert.bound)
    return FlowSolution(
        t=times,
        U=Us,
        V=Vs,
        rel_error_fro=err_f,
        rel_error_op=err_2,
        singular_values=sv,
        imbalance_drift=drift,
        perturbation_norm=pn,
        kind=pert.kind,
        dt=h,
        n_steps=n_steps,
        method=method,
        error_estimate=est,
        n_evals=n_evals,
    )


# -- closed forms and the GD time axis --------------------------------------------------------
def linearized_flow(X_star: Any, U0: Any, V0: Any, t: Any) -> tuple[np.ndarray, np.ndarray]:
    """The flow linearized at Z = 0, ``Z(t) = exp(t X̄*) Z0``: the power method.

    Valid while ‖Z‖² ≪ σ_r (the ``off(ZZᵀ)`` term is negligible). ``t`` is a scalar or 1-D array;
    returns ``(U, V)`` with a leading time axis when ``t`` is an array.
    """
    X_star = check_array("X_star", X_star, ndim=2)
    n1, n2 = X_star.shape
    U0 = check_array("U0", U0, ndim=2)
    V0 = check_array("V0", V0, shape=(n2, U0.shape[1]))
    if U0.shape[0] != n1:
        raise ValueError(f"U0 must have n1 = {n1} rows, got shape {U0.shape}")
    ts = check_array("t", np.atleast_1d(t), ndim=1)
    if np.any(ts < 0):
        raise ValueError(f"t must be non-negative, got min {ts.min():g}")
    lam, Q = np.linalg.eigh(dilation(X_star))
    c = Q.T @ np.vstack([U0, V0])
    Z = np.einsum("ij,tj,jk->tik", Q, np.exp(np.outer(ts, lam)), c)
    U, V = Z[:, :n1], Z[:, n1:]
    return (U[0], V[0]) if np.ndim(t) == 0 else (U, V)


def logistic_mode(t: Any, sigma: float, s0: float) -> np.ndarray:
    """``s(t) = σ e^{2σt} / (e^{2σt} + σ/s0 − 1)``: the solution of ``s' = 2s(σ − s)``, s(0) = s0.

    One aligned mode of the unperturbed flow (U = V = a·u, s = a², X* = σ u vᵀ) follows it.
    """
    sigma = check_real("sigma", sigma, 0.0, 1e6, low_open=True)
    s0 = check_real("s0", s0, 0.0, 1e6, low_open=True)
    ts = check_array("t", t)
    # divide through by e^{2σt} for stability at large t
    return sigma / (1.0 + (sigma / s0 - 1.0) * np.exp(-2.0 * sigma * ts))


def gd_times(steps: int, eta: float) -> np.ndarray:
    """Flow time of GD iterates 0..steps: ``t_k = k η`` (GD is explicit Euler on the flow)."""
    steps = check_int("steps", steps, 0, 100_000_000)
    eta = check_real("eta", eta, 0.0, 10.0, low_open=True)
    return np.arange(steps + 1) * eta


def alignment(U: Any, U_star: Any) -> np.ndarray:
    """Fraction of U's energy in span(U*): ``‖U*ᵀU‖²_F / ‖U‖²_F`` (1 = fully aligned).

    ``U`` may carry a leading time axis; ``U_star`` has orthonormal columns.
    """
    U = check_array("U", U)
    U_star = check_array("U_star", U_star, ndim=2)
    if U.ndim not in (2, 3) or U.shape[-2] != U_star.shape[0]:
        raise ValueError(f"U must have {U_star.shape[0]} rows (shape (..., n, k)), got {U.shape}")
    num = np.sum((np.swapaxes(U_star, 0, 1) @ U) ** 2, axis=(-2, -1))
    den = np.sum(U**2, axis=(-2, -1))
    return num / np.maximum(den, 1e-300)


# -- experiments that connect the flow with sensing GD ---------------------------------------
def gd_flow_gap(
    problem: S.SensingProblem,
    U0: Any,
    V0: Any,
    eta: float,
    t_end: float,
    *,
    substeps: int | None = None,
    max_records: int = 400,
) -> tuple[S.Trajectory, FlowSolution, float]:
    """GD with step η and the flow (A = I), compared on the flow's time axis t = kη.

    Runs :func:`course_lib.sensing.run_gd` for ``round(t_end/η)`` steps and the unperturbed
    flow with RK4 steps η/``substeps`` (default: steps ≤ 0.05/σ_1), both from ``(U0, V0)``,
    recording both at the same times kη (every step, or evenly spaced steps when there are more
    than ``max_records``). Returns ``(trajectory, flow, gap)`` with
    ``gap = max_{k,i} |σ_i(U_k V_kᵀ) − σ_i(U(kη)V(kη)ᵀ)| / σ_1``: the drift of GD off the flow
    (first order in η: GD is the explicit Euler method of the flow).
    """
    if not isinstance(problem, S.SensingProblem) or not problem.identity:
        raise ValueError("problem must be a SensingProblem with the identity operator (m=None)")
    eta = check_real("eta", eta, 0.0, 10.0, low_open=True)
    t_end = check_real("t_end", t_end, eta, 1e6)
    s1 = float(problem.sigma[0])
    if substeps is None:
        substeps = max(1, math.ceil(eta * s1 / 0.05 - 1e-9))
    substeps = check_int("substeps", substeps, 1, 100_000)
    U0 = check_array("U0", U0, ndim=2)
    max_records = check_int("max_records", max_records, 2, 1_000_000)
    every = max(1, math.ceil(round(t_end / eta) / (max_records - 1)))
    steps = max(1, round(t_end / eta / every)) * every  # a whole number of recording strides
    traj = S.run_gd(problem, U0.shape[1], 1.0, eta, steps, U0=U0, V0=V0, record_every=every)
    flow = integrate_flow(
        problem.X_star, U0, V0, steps * eta, dt=eta / substeps, record_every=substeps * every
    )
    q = flow.singular_values.shape[1]
    gap = float(np.max(np.abs(traj.singular_values[:, :q] - flow.singular_values)) / s1)
    return traj, flow, gap


def mode_size(U0: Any, V0: Any, u: Any, v: Any) -> float:
    """Initial size ``s0 = ‖wᵀ Z0‖² / 2`` of the mode ``u vᵀ`` in the init, ``w = [u; v]/√2``
    (the growing eigenvector of the dilation of ``u vᵀ``; see ``sensing.mode_init_sizes``)."""
    U0 = check_array("U0", U0, ndim=2)
    V0 = check_array("V0", V0, shape=(None, U0.shape[1]))
    u = check_array("u", u, shape=(U0.shape[0],))
    v = check_array("v", v, shape=(V0.shape[0],))
    c = (u @ U0 + v @ V0) / math.sqrt(2.0)
    return 0.5 * float(c @ c)


def spurious_threshold(t_stop: float, s0: float) -> float:
    """The ξ above which an aligned spurious perturbation of size ξ is fitted by time ``t_stop``.

    The spurious mode follows the logistic curve of rate ξ from size ``s0``; it reaches ξ/2 at
    ``t½(ξ) = ln(ξ/s0 − 1)/(2ξ)`` (:func:`course_lib.sensing.emergence_times`), which falls as ξ
    grows. The threshold solves ``t½(ξ) = t_stop``: below it the flow stopped at ``t_stop`` has
    not yet learned the perturbation, above it recovery fails (error ≈ ξ).
    """
    t_stop = check_real("t_stop", t_stop, 0.0, 1e6, low_open=True)
    s0 = check_real("s0", s0, 0.0, 1e3, low_open=True)
    from scipy.optimize import brentq

    def f(log_xi: float) -> float:
        return float(S.emergence_times(math.exp(log_xi), s0)[0]) - t_stop

    # t½ rises from 0 at ξ = 2·s0 to a maximum, then falls: the threshold is on the falling side
    grid = np.linspace(math.log(2.0 * s0) + 1e-6, math.log(1e3), 2000)
    lo = float(grid[int(np.argmax([f(g) for g in grid]))])
    hi = float(grid[-1])
    if f(lo) <= 0 or f(hi) >= 0:
        raise ValueError(
            f"no threshold for t_stop = {t_stop:g} and s0 = {s0:g}: the spurious mode is fitted "
            "at every ξ or at none in (2·s0, 1e3)"
        )
    return math.exp(brentq(f, lo, hi, xtol=1e-12))
