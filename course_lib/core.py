"""Notebook setup, the metrics contract and small numeric helpers shared by all topics.

* :func:`setup` is the first call of every notebook: seeds, plotly renderer, torch threads.
* :func:`record_metric` writes a named scalar result of a notebook run into ``metrics.json``
  (the contract read by ``course_lib.report`` and by the checks).
* :func:`loglog_slope` fits the slope of log(y) against log(x), the course's most common claim.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ._validate import check_array, check_int

__all__ = ["setup", "record_metric", "read_metrics", "metrics_path", "loglog_slope", "static_mode"]

#: Environment variable naming the metrics file (the report runner and the tests set it).
METRICS_ENV = "COURSE_LIB_METRICS"
#: Environment variable that switches demos to static figures (set by the report runner).
STATIC_ENV = "COURSE_LIB_STATIC"
#: Renderer that works both live in JupyterLab and in HTML exports (plotly.js inlined, offline).
RENDERER = "plotly_mimetype+notebook"

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def static_mode() -> bool:
    """True when figures must be static (batch reports): demos then show plain figures."""
    return os.environ.get(STATIC_ENV, "") not in ("", "0")


def setup(seed: int = 0, *, torch_threads: int | None = None) -> dict[str, Any]:
    """Prepare a notebook kernel: seed every RNG, set the plotly renderer, configure torch.

    Seeds Python's, NumPy's legacy and torch's global generators (library code itself always
    takes explicit seeds). The plotly renderer is ``plotly_mimetype+notebook``: interactive in
    JupyterLab and self-contained in HTML exports. If torch is in use (imported before this call,
    as the RWKV notebooks do) it gets ``torch_threads`` threads (default: ``OMP_NUM_THREADS`` or
    the number of cores) and flush-to-zero for denormals, which speeds up CPU training of small
    recurrent models a lot; notebooks that never use torch do not pay for importing it.
    Returns a short summary dict.
    """
    seed = check_int("seed", seed, 0, 2**32 - 1)
    default_threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or (os.cpu_count() or 1)
    threads = check_int(
        "torch_threads", default_threads if torch_threads is None else torch_threads, 1, 1024
    )
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - legacy global seed for any third-party code
    import plotly.io as pio

    pio.renderers.default = RENDERER
    pio.templates.default = "plotly_white"
    info: dict[str, Any] = {"seed": seed, "renderer": RENDERER, "static": static_mode()}
    torch = sys.modules.get("torch")
    if torch is None:
        return info
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    info.update(torch=torch.__version__, torch_threads=threads)
    return info


def metrics_path() -> Path:
    """Where :func:`record_metric` writes: ``$COURSE_LIB_METRICS`` or ``./metrics.json``."""
    return Path(os.environ.get(METRICS_ENV) or "metrics.json")


def read_metrics(path: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """Read a ``metrics.json`` file (empty dict if it does not exist)."""
    p = Path(path) if path is not None else metrics_path()
    if not p.exists():
        return {}
    return json.loads(p.read_text())


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide report files from a web server
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_metric(name: str, value: float, unit: str = "", meaning: str = "") -> float:
    """Record a named scalar result of this notebook run into ``metrics.json``.

    The file maps ``name -> {"value", "unit", "meaning"}``; recording a name again replaces it.
    The write is atomic, so a report never reads half a file. Returns ``value`` so a cell can
    record and assert in one line.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"name must be an identifier-like string (letters, digits, _ . -), got {name!r}"
        )
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"value must be a real number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"value must be finite, got {value!r} for metric {name!r}")
    if not isinstance(unit, str) or not isinstance(meaning, str):
        raise ValueError("unit and meaning must be strings")
    path = metrics_path()
    data = read_metrics(path)
    v = int(value) if isinstance(value, (int, np.integer)) else float(value)
    data[name] = {"value": v, "unit": unit, "meaning": meaning}
    _atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return v


def loglog_slope(x: Any, y: Any) -> float:
    """Least-squares slope of log(y) against log(x): the exponent p in y ≈ c·x^p."""
    xa = check_array("x", x, ndim=1)
    ya = check_array("y", y, ndim=1)
    if xa.shape != ya.shape or xa.size < 2:
        raise ValueError(f"x and y must have the same length >= 2, got {xa.size} and {ya.size}")
    if np.any(xa <= 0) or np.any(ya <= 0):
        raise ValueError("x and y must be positive for a log-log fit")
    return float(np.polyfit(np.log(xa), np.log(ya), 1)[0])
