"""Batch report speed: wall time of an 8-run sweep of the test notebook, 1 worker vs 2 workers.

Both sweeps run side by side in this process on the same forkserver (warmed up by one untimed
run first, so neither pays the one-off papermill import); the full benchmark interleaves them
(1, 2, 2, 1 workers) and keeps the best time of each. The ratio is the parallel speed-up; on
an otherwise idle 2-core machine it approaches 2 (each run is a kernel start plus ~1 s of work).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from course_lib.report import load_sweep, run_sweep

NOTEBOOK = Path(__file__).resolve().parents[1] / "tests" / "data" / "sweep_demo.ipynb"


def _sweep(tmp: Path, runs: int):
    path = tmp / "bench.toml"
    path.write_text(
        f'title = "bench"\n[[sweep]]\nnotebook = "{NOTEBOOK}"\n'
        f"grid = {{ n = {{ range = [1, {runs + 1}] }} }}\n"
    )
    return load_sweep(path)


def run(quick: bool = False) -> list[dict]:
    runs = 4 if quick else 8
    order = (1, 2) if quick else (1, 2, 2, 1)  # interleaved; the best of each count is kept
    times: dict[int, float] = {1: float("inf"), 2: float("inf")}
    with tempfile.TemporaryDirectory(prefix="bench-report-") as d:
        tmp = Path(d)
        sweep = _sweep(tmp, runs)
        warm = type(sweep)(sweep.title, sweep.runs[:1], sweep.swept)
        run_sweep(warm, tmp / "warm", workers=1, progress=False)
        for i, workers in enumerate(order):
            t0 = time.perf_counter()
            recs = run_sweep(sweep, tmp / f"w{i}", workers=workers, progress=False)
            times[workers] = min(times[workers], time.perf_counter() - t0)
            bad = [r for r in recs if r["status"] != "ok"]
            if bad:
                raise RuntimeError(f"benchmark runs failed: {bad[0].get('error')}")
    return [
        {
            "name": f"report sweep of {runs} runs: 2 workers vs 1",
            "value": times[1] / times[2],
            "unit": "x",
            "note": f"wall time 1 worker / 2 workers ({times[1]:.1f} s / {times[2]:.1f} s)",
        },
        {
            "name": "report: wall time per run, 1 worker",
            "value": times[1] / runs,
            "unit": "s",
            "note": "kernel start + test notebook + HTML render, sequential",
        },
    ]


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
