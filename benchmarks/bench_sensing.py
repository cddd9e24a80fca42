"""Benchmarks of notebooks 01–02: slider update times and the cost of a factorized GD step.

* Kernel-side slider update time (recompute + redraw) of both demos at their default sizes,
  median over several updates.
* GD step time against the memory-bound floor: the matrix-vector products with A (or the
  symmetric one with AᵀA) that every step needs, timed in the same run; the ratio is the
  overhead of everything else (three small k-wide matrix products, updates, divergence check).
* The two operator paths (two products with A vs one with AᵀA) timed side by side.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from course_lib import sensing as S
from course_lib.demos import sensing as D


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _demo_update_ms(demo, name: str, values: list, repeats: int) -> tuple[float, float]:
    """Median kernel-side update time of a slider change: (wall ms, CPU ms of this process).

    On a shared machine the wall time includes waiting for a core; the CPU time is close to what
    an unloaded machine would show.
    """
    wall, cpu = [], []
    for i in range(repeats):
        c0 = time.process_time()
        demo.controls[name].value = values[i % len(values)]
        cpu.append(time.process_time() - c0)
        wall.append(demo.last_update_s)
    if demo.error is not None:
        raise RuntimeError(f"demo failed: {demo.error}")
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


def _step_vs_floor(n: int, r: int, m_mult: float, k: int, steps: int, repeats: int, path: str):
    """(GD step time, floor time per step) in seconds for an n×n problem."""
    m = int(m_mult * S.degrees_of_freedom(n, n, r))
    prob = S.make_problem(n, n, r, m=m, seed=0, path=path)
    eta = 0.2 / prob.sigma[0]
    x = np.random.default_rng(0).standard_normal(n * n)
    op = prob._grad_flat  # the operator application alone: AᵀA x − Aᵀy, or Aᵀ(A x − y)

    def floor():
        for _ in range(steps):
            op(x)

    def gd():
        S.run_gd(prob, k, 1e-3, eta, steps, max_records=2)

    t_gd, t_floor = [], []
    for _ in range(repeats):  # interleaved, so both see the same machine load
        t_gd.append(_median_time(gd, 1))
        t_floor.append(_median_time(floor, 1))
    return statistics.median(t_gd) / steps, statistics.median(t_floor) / steps, prob


def run(quick: bool = False) -> list[dict]:
    repeats = 3 if quick else 9
    rows: list[dict] = []
    alphas = [1e-2, 1e-4, 1e-6, 1e-3]
    demo = D.SensingDemo()
    wall, cpu = _demo_update_ms(demo, "alpha", alphas, repeats)
    what = f"SensingDemo defaults (n=20, r=3, k=20, m=2 dof, {demo.steps} steps), α changes"
    rows.append(
        {
            "name": "sensing demo slider update",
            "value": wall,
            "unit": "ms",
            "note": f"{what}, median wall time",
        }
    )
    rows.append(
        {
            "name": "sensing demo slider update (CPU)",
            "value": cpu,
            "unit": "ms",
            "note": f"{what}, median process CPU time (≈ unloaded wall time)",
        }
    )
    inc = D.IncrementalDemo()
    wall, cpu = _demo_update_ms(inc, "alpha", alphas, repeats)
    what = "IncrementalDemo defaults (A = I, n=20, k=20), α changes"
    rows.append(
        {
            "name": "incremental demo slider update",
            "value": wall,
            "unit": "ms",
            "note": f"{what}, median wall time",
        }
    )
    rows.append(
        {
            "name": "incremental demo slider update (CPU)",
            "value": cpu,
            "unit": "ms",
            "note": f"{what}, median process CPU time (≈ unloaded wall time)",
        }
    )
    steps = 200 if quick else 1000
    for n, m_mult in ((20, 2.0), (30, 4.0)):
        t_gd, t_floor, prob = _step_vs_floor(n, 3, m_mult, n, steps, repeats, "auto")
        rows.append(
            {
                "name": f"GD step n={n} m={prob.m}",
                "value": 1e6 * t_gd,
                "unit": "us",
                "note": f"factorized GD step, k={n}, operator path {prob.path}",
            }
        )
        rows.append(
            {
                "name": f"GD step / mat-vec floor n={n}",
                "value": t_gd / t_floor,
                "unit": "x",
                "note": f"step time over the {prob.path} product(s) it needs",
            }
        )
    t_gram, _, _ = _step_vs_floor(20, 3, 4.0, 20, steps, repeats, "gram")
    t_mv, _, _ = _step_vs_floor(20, 3, 4.0, 20, steps, repeats, "matvec")
    rows.append(
        {
            "name": "matvec path / gram path n=20 m=4dof",
            "value": t_mv / t_gram,
            "unit": "x",
            "note": "GD step with two A products over one AᵀA product "
            "(auto picks AᵀA when n1·n2 < 2m)",
        }
    )
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
