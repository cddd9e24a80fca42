"""Batch reports: run notebooks over parameter grids with papermill and aggregate one report.

``python -m course_lib.report`` (no argument) runs every ``notebooks/NN_*.ipynb`` with its default
parameters into ``reports/``; ``python -m course_lib.report sweep.toml`` runs a sweep (see
:mod:`course_lib.report.sweep` for the file format) into ``reports/<sweep name>/``. Each run gets
its own folder with the executed notebook, its HTML rendering, ``metrics.json`` and ``run.json``;
the output folder gets ``index.html``, ``summary.csv`` and ``summary.json``.

Python API: :func:`load_sweep` → :func:`run_sweep` → :func:`write_report`.
"""

from .index import write_report
from .runner import run_one, run_sweep
from .sweep import (
    RunSpec,
    Sweep,
    SweepError,
    default_sweep,
    expand_grid,
    grid_values,
    load_sweep,
    notebook_parameters,
    notebook_sweep,
)

__all__ = [
    "RunSpec",
    "Sweep",
    "SweepError",
    "default_sweep",
    "expand_grid",
    "grid_values",
    "load_sweep",
    "notebook_parameters",
    "notebook_sweep",
    "run_one",
    "run_sweep",
    "write_report",
]
