"""Child process of one run: papermill-execute the notebook, render HTML, write ``.child.json``.

Started by :func:`course_lib.report.runner.run_one`, either forked from a forkserver that has
already imported papermill and nbconvert (:func:`run_in_process`, saves seconds of imports per
run) or, inside daemonic processes such as Dask workers, as ``python -m
course_lib.report._child job.json`` with the run's environment. Either way the kernel inherits
the run's environment (static figures, the run's metrics file, one math thread).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import nbformat
import papermill as pm
from nbconvert import HTMLExporter  # noqa: F401 - preloaded for the forked children

from ..core import _atomic_write_text
from .runner import render_job, tail_lines

#: An HTML output this large that contains plotly.js is the renderer's inlined library.
_PLOTLYJS_MIN_CHARS = 500_000


def _html_text(output: dict) -> str:
    html = output.get("data", {}).get("text/html", "")
    return "".join(html) if isinstance(html, list) else str(html)


def share_plotlyjs(executed: Path, plotly_src: str) -> int:
    """Replace the inlined plotly.js (≈ 5 MB per run) by ``<script src=plotly_src>``.

    The report writes one ``plotly.min.js`` next to ``index.html``; a plain ``<script src>``
    loads synchronously, before the figures' own scripts run, so run pages stay offline and
    small. Returns the number of outputs replaced.
    """
    nb = nbformat.read(str(executed), as_version=4)
    n = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            html = _html_text(output)
            if len(html) > _PLOTLYJS_MIN_CHARS and "plotly.js v" in html[:200_000]:
                output["data"]["text/html"] = f'<script src="{plotly_src}"></script>'
                n += 1
    if n:
        _atomic_write_text(executed, nbformat.writes(nb))
    return n


def main(job: dict) -> dict:
    """Execute the run described by ``job`` in this process; write and return the result."""
    run_dir = Path(job["run_dir"])
    executed = run_dir / job["executed"]
    result: dict = {"error": None, "traceback": []}
    try:
        pm.execute_notebook(
            job["notebook_path"],
            str(executed),
            parameters=job["parameters"],
            kernel_name="python3",
            cwd=str(run_dir),
            progress_bar=False,
            store_widget_state=False,
            execution_timeout=max(1, int(job["timeout"])),
        )
    except pm.PapermillExecutionError as exc:
        result["error"] = f"{exc.ename}: {' '.join(tail_lines(str(exc.evalue), 3))}"[:500]
        result["traceback"] = tail_lines("\n".join(exc.traceback))
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, never raised
        result["error"] = f"{type(exc).__name__}: {exc}"[:500]
        result["traceback"] = tail_lines(traceback.format_exc())
    if executed.exists():
        try:
            share_plotlyjs(executed, job["plotly_src"])
            render_job(job)
        except Exception as exc:  # noqa: BLE001
            if result["error"] is None:
                result["error"] = f"HTML rendering failed: {type(exc).__name__}: {exc}"
                result["traceback"] = tail_lines(traceback.format_exc())
    _atomic_write_text(run_dir / ".child.json", json.dumps(result, indent=2) + "\n")
    return result


def run_in_process(job: dict, env: dict[str, str], log_path: str) -> None:
    """Entry point of a forked child: set the run's environment, send output to the log, run."""
    os.environ.update(env)
    os.chdir(job["run_dir"])
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    main(job)


if __name__ == "__main__":
    main(json.loads(Path(sys.argv[1]).read_text()))
