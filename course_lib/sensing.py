"""Low-rank matrix sensing by factorized gradient descent from a small random initialization.

Seed paper: J. S. Wind, "Asymmetric matrix sensing by gradient descent with small random
initialization" (arXiv 2309.01796). In the course, ``alpha`` is the *init scale* (entries of the
factors are iid N(0, α²/k)); in the paper's v2 "α" names a misalignment ratio instead.

Setup (all maths, no plotting):

* Target ``X* = U* diag(σ) V*ᵀ`` of rank r in R^{n1×n2}; measurements ``y_i = <A_i, X*> (+ noise)``
  with Gaussian ``A_i`` of iid N(0, 1/m) entries, so that E[A*A] = I. ``A`` is stored as an
  ``(m, n1·n2)`` matrix acting on row-major flattened matrices. ``m=None`` is the identity
  operator (pure factorization, A = I).
* Loss ``f(U, V) = ½‖A(U Vᵀ) − y‖²``, ``G = A*(A(U Vᵀ) − y)``, gradients ``∇_U = G V``,
  ``∇_V = Gᵀ U``; GD updates both factors simultaneously: ``U ← U − η G V``, ``V ← V − η Gᵀ U``.
* One aligned mode follows the logistic equation ``s' = 2 s (σ − s)``; it reaches σ/2 at
  ``t½ = ln(σ/s0 − 1) / (2σ)`` (``t/η`` GD iterations): :func:`emergence_times`.
* GD's implicit balancing: with ``H = UᵀU − VᵀV``,
  ``H_{k+1} − H_k = η² (∇_Uᵀ∇_U − ∇_Vᵀ∇_V)`` exactly: :func:`balancing_identity`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg.blas import dsymv

from ._validate import (
    check_array,
    check_choice,
    check_divergence,
    check_int,
    check_real,
    check_rng,
)

__all__ = [
    "SensingProblem",
    "Trajectory",
    "make_problem",
    "degrees_of_freedom",
    "init_factors",
    "run_gd",
    "emergence_times",
    "mode_init_sizes",
    "observed_emergence",
    "steps_to_error",
    "horizon",
    "relative_error",
    "min_norm_interpolant",
    "balancing_identity",
    "factor_gradients",
    "nuclear_norm_available",
]

#: Largest number of matrix entries n1·n2 the course allows (keeps A and AᵀA in memory).
MAX_ENTRIES = 10_000
#: Largest number of measurements m.
MAX_MEASUREMENTS = 200_000
#: A run is declared diverged once its loss exceeds this multiple of max(initial loss, 1).
DIVERGENCE_LIMIT = 1e12


def degrees_of_freedom(n1: int, n2: int, r: int) -> int:
    """Dimension of the manifold of n1×n2 matrices of rank r: ``r (n1 + n2 − r)``."""
    n1 = check_int("n1", n1, 1, MAX_ENTRIES)
    n2 = check_int("n2", n2, 1, MAX_ENTRIES)
    r = check_int("r", r, 1, min(n1, n2))
    return r * (n1 + n2 - r)


@dataclass(frozen=True, eq=False)
class SensingProblem:
    """A seeded matrix-sensing instance ``y = A(X*) + noise`` (see :func:`make_problem`).

    ``A`` is the ``(m, n1·n2)`` measurement matrix, or ``None`` for the identity operator; then
    ``m = n1·n2`` and ``y`` is the (noisy) target flattened row-major. ``gram`` holds AᵀA when the
    cheap operator path uses it (``path == "gram"``), and ``Aty`` holds Aᵀy.
    """

    X_star: np.ndarray
    U_star: np.ndarray
    V_star: np.ndarray
    sigma: np.ndarray
    A: np.ndarray | None
    y: np.ndarray
    n1: int
    n2: int
    r: int
    m: int
    noise: float
    path: str
    gram: np.ndarray | None = field(default=None, repr=False)
    Aty: np.ndarray | None = field(default=None, repr=False)

    @property
    def identity(self) -> bool:
        """True for the pure factorization problem (A = I)."""
        return self.A is None

    @property
    def kappa(self) -> float:
        """Condition number σ_1/σ_r of the target."""
        return float(self.sigma[0] / self.sigma[-1])

    def _check_X(self, X: Any) -> np.ndarray:
        return check_array("X", X, shape=(self.n1, self.n2))

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Measurements ``A(X)``: ``(A @ vec(X))``, shape (m,); ``vec(X)`` for the identity."""
        x = self._check_X(X).ravel()
        return x.copy() if self.A is None else self.A @ x

    def adjoint(self, z: np.ndarray) -> np.ndarray:
        """Adjoint ``A*(z) = Σ z_i A_i`` as an (n1, n2) matrix."""
        z = check_array("z", z, shape=(self.m,))
        out = z if self.A is None else self.A.T @ z
        return out.reshape(self.n1, self.n2).copy()

    def _grad_flat(self, x: np.ndarray) -> np.ndarray:
        """``vec(A*(A(X) − y))`` without validation (the GD hot path)."""
        if self.A is None:
            return x - self.y
        if self.gram is not None:
            # symmetric mat-vec (BLAS symv reads one triangle): AᵀA x − Aᵀy in one call;
            # gram is C-ordered and symmetric, so gram.T is the same matrix in Fortran order
            return dsymv(1.0, self.gram.T, x, beta=-1.0, y=self.Aty)
        return self.A.T @ (self.A @ x - self.y)

    def gradient_matrix(self, X: np.ndarray) -> np.ndarray:
        """``G = A*(A(X) − y)`` (``X − Y`` for the identity), by the cheaper operator path.

        Two matrix-vector products with A cost 2·m·n1·n2 flops; one with the precomputed AᵀA costs
        (n1·n2)², which is cheaper when n1·n2 < 2m.
        """
        return self._grad_flat(self._check_X(X).ravel()).reshape(self.n1, self.n2)

    def loss(self, X: np.ndarray) -> float:
        """Training loss ``½‖A(X) − y‖²`` (computed from the residual, accurate near 0)."""
        res = self.forward(X) - self.y
        return 0.5 * float(res @ res)


def make_problem(
    n1: int,
    n2: int,
    r: int,
    *,
    m: int | None = None,
    kappa: float = 2.0,
    singular_values: Any = None,
    noise: float = 0.0,
    seed: int | np.random.Generator = 0,
    path: str = "auto",
) -> SensingProblem:
    """A seeded rank-r sensing problem ``y = A(X*) + noise·ε``, ``ε ~ N(0, I_m)``.

    ``X* = U* diag(σ) V*ᵀ`` with Haar-random orthonormal ``U*``, ``V*`` and
    ``σ = linspace(κ, 1, r)`` (condition number κ; σ = [1] when r = 1) unless ``singular_values``
    are given. ``A`` has iid N(0, 1/m) entries so that E[A*A] = I; ``m=None`` gives the identity
    operator. ``path`` picks the gradient's operator path: ``"matvec"`` (two products with A),
    ``"gram"`` (one with AᵀA) or ``"auto"`` (AᵀA iff n1·n2 < 2m).
    """
    n1 = check_int("n1", n1, 1, MAX_ENTRIES)
    n2 = check_int("n2", n2, 1, MAX_ENTRIES // n1)
    r = check_int("r", r, 1, min(n1, n2))
    noise = check_real("noise", noise, 0.0)
    path = check_choice("path", path, ["auto", "matvec", "gram"])
    rng = check_rng("seed", seed)
    if singular_values is None:
        kappa = check_real("kappa", kappa, 1.0, 1e6)
        sigma = np.linspace(kappa, 1.0, r) if r > 1 else np.ones(1)
    else:
        sigma = check_array("singular_values", singular_values, shape=(r,))
        if np.any(sigma <= 0) or np.any(np.diff(sigma) > 0):
            raise ValueError(
                f"singular_values must be positive and non-increasing, got {sigma.tolist()}"
            )
        sigma = sigma.astype(float).copy()
    U_star = np.linalg.qr(rng.standard_normal((n1, r)))[0]
    V_star = np.linalg.qr(rng.standard_normal((n2, r)))[0]
    X_star = (U_star * sigma) @ V_star.T
    N = n1 * n2
    if m is None:
        A = gram = Aty = None
        m_eff = N
        y = X_star.ravel() + noise * rng.standard_normal(N)
        path = "identity"
    else:
        m_eff = check_int("m", m, 1, MAX_MEASUREMENTS)
        A = rng.standard_normal((m_eff, N)) / math.sqrt(m_eff)
        y = A @ X_star.ravel() + noise * rng.standard_normal(m_eff)
        if path == "auto":
            path = "gram" if N < 2 * m_eff else "matvec"
        Aty = A.T @ y
        gram = A.T @ A if path == "gram" else None
    for arr in (X_star, U_star, V_star, sigma, y, A, gram, Aty):
        if arr is not None:
            arr.setflags(write=False)
    return SensingProblem(
        X_star=X_star,
        U_star=U_star,
        V_star=V_star,
        sigma=sigma,
        A=A,
        y=y,
        n1=n1,
        n2=n2,
        r=r,
        m=m_eff,
        noise=noise,
        path=path,
        gram=gram,
        Aty=Aty,
    )


def init_factors(
    n1: int, n2: int, k: int, alpha: float, seed: int | np.random.Generator = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Small random init: ``U0 ∈ R^{n1×k}``, ``V0 ∈ R^{n2×k}`` with iid N(0, α²/k) entries.

    The same seed gives the same directions for every α (the factors scale linearly in α).
    """
    n1 = check_int("n1", n1, 1, MAX_ENTRIES)
    n2 = check_int("n2", n2, 1, MAX_ENTRIES)
    k = check_int("k", k, 1, 10_000)
    alpha = check_real("alpha", alpha, 0.0, 1e3, low_open=True)
    rng = check_rng("seed", seed)
    scale = alpha / math.sqrt(k)
    return scale * rng.standard_normal((n1, k)), scale * rng.standard_normal((n2, k))


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Recorded GD run (every ``record_every`` steps, always including 0 and the last).

    ``loss``: ½‖A(UVᵀ) − y‖²; ``rel_error_fro``/``rel_error_op``: ‖UVᵀ − X*‖/‖X*‖ in Frobenius /
    operator norm; ``singular_values``: the k largest singular values of UVᵀ (zeros beyond
    min(n1, n2)); ``imbalance``: ‖UᵀU − VᵀV‖ (operator norm); ``U``, ``V``: the final factors.
    """

    steps: np.ndarray
    loss: np.ndarray
    rel_error_fro: np.ndarray
    rel_error_op: np.ndarray
    singular_values: np.ndarray
    imbalance: np.ndarray
    U: np.ndarray
    V: np.ndarray
    eta: float
    alpha: float

    @property
    def X(self) -> np.ndarray:
        """Final product UVᵀ."""
        return self.U @ self.V.T

    @property
    def final_error(self) -> float:
        """Relative Frobenius error at the last step."""
        return float(self.rel_error_fro[-1])


def _record_steps(steps: int, record_every: int | None, max_records: int) -> np.ndarray:
    if record_every is None:
        record_every = max(1, math.ceil(steps / max(max_records - 1, 1)))
    rec = np.arange(0, steps + 1, record_every)
    if rec[-1] != steps:
        rec = np.append(rec, steps)
    return rec


def run_gd(
    problem: SensingProblem,
    k: int,
    alpha: float,
    eta: float,
    steps: int,
    *,
    seed: int | np.random.Generator = 0,
    record_every: int | None = None,
    max_records: int = 400,
    U0: np.ndarray | None = None,
    V0: np.ndarray | None = None,
) -> Trajectory:
    """Factorized GD ``U ← U − η G V``, ``V ← V − η Gᵀ U`` with ``G = A*(A(UVᵀ) − y)``.

    Starts from :func:`init_factors` ``(n1, n2, k, alpha, seed)`` unless ``U0``/``V0`` are given.
    Records ``max_records`` evenly spaced steps (or every ``record_every`` steps). The loss is
    checked at every step: a non-finite or exploding loss raises ``DivergenceError``
    ("diverged at step k ... with step size η").
    """
    if not isinstance(problem, SensingProblem):
        raise ValueError(f"problem must be a SensingProblem, got {type(problem).__name__}")
    n1, n2 = problem.n1, problem.n2
    k = check_int("k", k, 1, 10_000)
    alpha = check_real("alpha", alpha, 0.0, 1e3, low_open=True)
    eta = check_real("eta", eta, 0.0, 10.0, low_open=True)
    steps = check_int("steps", steps, 0, 10_000_000)
    max_records = check_int("max_records", max_records, 2, 1_000_000)
    if record_every is not None:
        record_every = check_int("record_every", record_every, 1, max(steps, 1))
    if (U0 is None) != (V0 is None):
        raise ValueError("U0 and V0 must be given together")
    if U0 is None:
        U, V = init_factors(n1, n2, k, alpha, seed)
    else:
        U = check_array("U0", U0, shape=(n1, k)).copy()
        V = check_array("V0", V0, shape=(n2, k)).copy()
    rec = _record_steps(steps, record_every, max_records)
    Xs = np.empty((rec.size, n1, n2))
    Hs = np.empty((rec.size, k, k))
    A, gram, yv, Aty = problem.A, problem.gram, problem.y, problem.Aty
    gram_f = None if gram is None else gram.T
    loss0 = problem.loss(U @ V.T)
    # Divergence test on q = x·g (cheap: one dot product per step). q = 2·loss + (Ax)·y − y·y, so
    # q ≈ 2·loss once the loss explodes; only then is the exact loss computed and checked.
    q_bound = 2.0 * DIVERGENCE_LIMIT * max(loss0, 1.0)
    rec_list = rec.tolist() + [-1]
    j = 0
    with np.errstate(all="ignore"):
        for t in range(steps + 1):
            X = U @ V.T
            x = X.ravel()
            if A is None:
                g = x - yv
            elif gram is not None:
                g = dsymv(1.0, gram_f, x, beta=-1.0, y=Aty)  # AᵀA x − Aᵀy, see _grad_flat
            else:
                g = A.T @ (A @ x - yv)
            if not x.dot(g) <= q_bound:  # also catches NaN
                res = x - yv if A is None else A @ x - yv
                check_divergence(
                    0.5 * float(res @ res),
                    t,
                    method="factorized gradient descent",
                    step_size=eta,
                    limit=DIVERGENCE_LIMIT,
                    reference=loss0,
                )
            if t == rec_list[j]:
                Xs[j] = X
                Hs[j] = U.T @ U - V.T @ V
                j += 1
            if t == steps:
                break
            G = g.reshape(n1, n2)
            U, V = U - eta * (G @ V), V - eta * (G.T @ U)
    return _summarize(problem, rec, Xs, Hs, U, V, eta, alpha)


def _summarize(
    problem: SensingProblem,
    rec: np.ndarray,
    Xs: np.ndarray,
    Hs: np.ndarray,
    U: np.ndarray,
    V: np.ndarray,
    eta: float,
    alpha: float,
) -> Trajectory:
    """Batched metrics of the recorded iterates (one SVD call per quantity)."""
    k = U.shape[1]
    flat = Xs.reshape(rec.size, -1)
    res = flat - problem.y if problem.identity else flat @ problem.A.T - problem.y
    loss = 0.5 * np.einsum("ij,ij->i", res, res)
    D = Xs - problem.X_star
    nrm_f = np.linalg.norm(problem.X_star)
    nrm_2 = float(problem.sigma[0])
    err_f = np.linalg.norm(D.reshape(rec.size, -1), axis=1) / nrm_f
    err_2 = np.linalg.svd(D, compute_uv=False)[:, 0] / nrm_2
    sv = np.linalg.svd(Xs, compute_uv=False)
    svk = np.zeros((rec.size, k))
    q = min(k, sv.shape[1])
    svk[:, :q] = sv[:, :q]
    imb = np.abs(np.linalg.eigvalsh(Hs)).max(axis=1)
    return Trajectory(
        steps=rec,
        loss=loss,
        rel_error_fro=err_f,
        rel_error_op=err_2,
        singular_values=svk,
        imbalance=imb,
        U=U,
        V=V,
        eta=eta,
        alpha=alpha,
    )


def emergence_times(
    sigma: Any, s0: Any, eta: float | None = None, *, discrete: bool = False
) -> np.ndarray:
    """Predicted time at which each aligned mode reaches half its singular value.

    The logistic solution of ``s' = 2 s (σ − s)``, ``s(0) = s0``, reaches σ/2 at
    ``t½ = ln(σ/s0 − 1) / (2σ)``. With ``eta`` the result is in GD iterations, ``t½ / η``; with
    ``discrete=True`` the flow's growth rate 2ησ per step is replaced by GD's exact linear growth
    rate ``2 ln(1 + ησ)`` (a small mode is multiplied by (1 + ησ)² per step), i.e.
    ``ln(σ/s0 − 1) / (2 ln(1 + ησ))``. ``s0`` is a scalar or one value per mode, 0 < s0 < σ/2.
    """
    sig = check_array("sigma", np.atleast_1d(sigma), ndim=1)
    s = check_array("s0", np.broadcast_to(np.atleast_1d(s0), sig.shape), ndim=1)
    if np.any(sig <= 0):
        raise ValueError(f"sigma must be positive, got {sig.tolist()}")
    if np.any(s <= 0) or np.any(s >= sig / 2):
        raise ValueError(f"s0 must lie in (0, sigma/2) for every mode, got {s.tolist()}")
    if eta is None:
        if discrete:
            raise ValueError("discrete=True needs the step size eta")
        return np.log(sig / s - 1.0) / (2.0 * sig)
    eta = check_real("eta", eta, 0.0, 10.0, low_open=True)
    rate = np.log1p(eta * sig) if discrete else eta * sig
    return np.log(sig / s - 1.0) / (2.0 * rate)


def mode_init_sizes(
    problem: SensingProblem, U0: np.ndarray, V0: np.ndarray, *, sequential: bool = True
) -> np.ndarray:
    """Initial size ``s0_i`` of each target mode in the init ``Z0 = [U0; V0]``.

    ``w_i = [u_i; v_i]/√2`` is the growing eigenvector (eigenvalue σ_i) of the dilation
    ``[[0, X*], [X*ᵀ, 0]]``; while Z is small, ``c_i = w_iᵀ Z0 ∈ R^k`` grows like ``exp(σ_i t)``
    and the mode's part of UVᵀ along ``u_i v_iᵀ`` starts at ``‖c_i‖²/2`` (≈ α²/2 on average).
    With ``sequential=True`` (default) mode i only gets the part of ``c_i`` orthogonal to
    ``c_1, …, c_{i−1}``: the larger modes, learned first, occupy those directions of R^k (at
    balance UᵀU = Q diag(σ) Qᵀ). Then ``s0_i = R_ii²/2`` with ``[c_1 … c_r] = QR`` (Gram–Schmidt);
    this matters when k is close to r, and needs k ≥ r.
    """
    k = np.shape(U0)[1] if np.ndim(U0) == 2 else 0
    U0 = check_array("U0", U0, shape=(problem.n1, k))
    V0 = check_array("V0", V0, shape=(problem.n2, k))
    c = (problem.U_star.T @ U0 + problem.V_star.T @ V0) / math.sqrt(2.0)  # (r, k)
    if not sequential:
        return 0.5 * np.einsum("ij,ij->i", c, c)
    if k < problem.r:
        raise ValueError(f"sequential mode sizes need width k >= r = {problem.r}, got k = {k}")
    R = np.linalg.qr(c.T, mode="r")
    return 0.5 * np.diag(R) ** 2


def observed_emergence(traj: Trajectory, sigma: Any) -> np.ndarray:
    """Step at which the i-th singular value of UVᵀ first reaches σ_i/2 (log-interpolated).

    Raises ``ValueError`` naming the mode if it never got there within the run.
    """
    sig = check_array("sigma", np.atleast_1d(sigma), ndim=1)
    if sig.size > traj.singular_values.shape[1]:
        raise ValueError(f"sigma has {sig.size} modes but the run has width {traj.U.shape[1]}")
    out = np.empty(sig.size)
    for i, s in enumerate(sig):
        out[i] = _crossing(
            traj.steps,
            traj.singular_values[:, i],
            s / 2,
            up=True,
            what=f"singular value {i + 1} (sigma = {s:g})",
        )
    return out


def steps_to_error(traj: Trajectory, level: float = 0.1) -> float:
    """First step at which the relative Frobenius error falls to ``level`` (log-interpolated)."""
    level = check_real("level", level, 0.0, low_open=True)
    return _crossing(traj.steps, traj.rel_error_fro, level, up=False, what="the relative error")


def _crossing(t: np.ndarray, v: np.ndarray, level: float, *, up: bool, what: str) -> float:
    hit = v >= level if up else v <= level
    if not hit.any():
        raise ValueError(
            f"{what} never reached {level:g} within {int(t[-1])} steps; increase steps"
        )
    i = int(np.argmax(hit))
    if i == 0:
        return float(t[0])
    a, b = np.log(max(v[i - 1], 1e-300)), np.log(max(v[i], 1e-300))
    frac = (np.log(level) - a) / (b - a) if b != a else 1.0
    return float(t[i - 1] + frac * (t[i] - t[i - 1]))


def horizon(
    problem: SensingProblem, alpha: float, eta: float, factor: float = 1.5, extra: int = 0
) -> int:
    """A step budget that grows with log(1/α): ``factor · ln(σ_r/α²) / (η σ_r) + extra``.

    This is the theory's horizon K ≈ log(σ_r/a0²)/(η σ_r) (a0 ~ α), times a safety factor.
    """
    alpha = check_real("alpha", alpha, 0.0, 1e3, low_open=True)
    eta = check_real("eta", eta, 0.0, 10.0, low_open=True)
    factor = check_real("factor", factor, 0.0, 1e3, low_open=True)
    extra = check_int("extra", extra, 0)
    s_r = float(problem.sigma[-1])
    return int(math.ceil(factor * max(math.log(s_r / alpha**2), 1.0) / (eta * s_r))) + extra


def relative_error(X: np.ndarray, X_star: np.ndarray, ord: str = "fro") -> float:
    """``‖X − X*‖ / ‖X*‖`` in the Frobenius (``"fro"``) or operator (``"op"``) norm."""
    X_star = check_array("X_star", X_star, ndim=2)
    X = check_array("X", X, shape=X_star.shape)
    ord = check_choice("ord", ord, ["fro", "op"])
    o = "fro" if ord == "fro" else 2
    return float(np.linalg.norm(X - X_star, o) / np.linalg.norm(X_star, o))


def min_norm_interpolant(problem: SensingProblem) -> np.ndarray:
    """Minimum-Frobenius-norm solution of ``A(X) = y``: ``vec(X) = A⁺ y`` (pseudo-inverse).

    With m < n1·n2 it interpolates the measurements but does not recover X*: it is X*'s
    orthogonal projection onto the row space of A (relative error ≈ √(1 − m/(n1·n2))).
    """
    if not isinstance(problem, SensingProblem):
        raise ValueError(f"problem must be a SensingProblem, got {type(problem).__name__}")
    if problem.identity:
        return problem.y.reshape(problem.n1, problem.n2).copy()
    x = np.linalg.lstsq(problem.A, problem.y, rcond=None)[0]
    return x.reshape(problem.n1, problem.n2)


def factor_gradients(
    problem: SensingProblem, U: np.ndarray, V: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``f(U, V) = ½‖A(UVᵀ) − y‖²``: ``∇_U = G V``, ``∇_V = Gᵀ U``."""
    U = check_array("U", U, ndim=2)
    V = check_array("V", V, shape=(problem.n2, U.shape[1]))
    if U.shape[0] != problem.n1:
        raise ValueError(f"U must have {problem.n1} rows, got shape {U.shape}")
    G = problem.gradient_matrix(U @ V.T)
    return G @ V, G.T @ U


def balancing_identity(
    problem: SensingProblem, U: np.ndarray, V: np.ndarray, eta: float
) -> tuple[np.ndarray, np.ndarray]:
    """Both sides of GD's implicit balancing identity for one step from (U, V).

    Returns ``(H_{k+1} − H_k, η² (∇_Uᵀ∇_U − ∇_Vᵀ∇_V))`` with ``H = UᵀU − VᵀV``; they are equal
    up to rounding, because the first-order terms ``−η(UᵀGV + VᵀGᵀU)`` cancel.
    """
    eta = check_real("eta", eta, 0.0, 10.0, low_open=True)
    gU, gV = factor_gradients(problem, U, V)
    U1, V1 = U - eta * gU, V - eta * gV
    lhs = (U1.T @ U1 - V1.T @ V1) - (U.T @ U - V.T @ V)
    rhs = eta**2 * (gU.T @ gU - gV.T @ gV)
    return lhs, rhs


def nuclear_norm_available() -> bool:
    """Whether a convex solver (cvxpy) is installed for the nuclear-norm baseline.

    The course does not add the dependency; without it the baseline is only described.
    """
    try:
        import cvxpy  # noqa: F401
    except ImportError:
        return False
    return True
