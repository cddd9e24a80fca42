"""Shared test configuration.

* Notebook kernels (nbval) inherit this process's environment: metrics go to a temporary file,
  not into ``notebooks/``, and math libraries use one thread per kernel (xdist runs several).
* ``require(condition, message)``: skip locally, but fail under ``CI=true`` — in CI a missing
  component is an error, not a skip.
"""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("COURSE_LIB_METRICS", os.path.join(tempfile.mkdtemp(), "metrics.json"))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

#: Debian's Chromium (Playwright cannot download browsers here) and the flags it needs as root
#: on a machine without network: no sandbox, no GPU, no background connections.
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def require(condition: bool, message: str) -> None:
    """Skip the calling test when ``condition`` is false, or fail it under ``CI=true``."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {message}")
    pytest.skip(message)
