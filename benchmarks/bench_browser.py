"""Slider latency in a real browser: JupyterLab + headless Chromium, every demo of every notebook.

Runs the browser test suite (``tests/browser``, see its docstring) in a subprocess with its
artifacts in a temporary folder, then reads the ``latency.json`` it writes. Two rows per demo:

* ``browser round trip``: key press on a slider handle → widget message → kernel callback →
  figure update → plotly redraw with new data, timed in the page; median over the demo's moves.
* ``kernel callback``: ``Demo.last_update_s`` read back from the kernel after each of the same
  moves; median.

``quick=True`` measures only notebook 00. Needs Chromium (``apt-get install -y chromium``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(quick: bool = False) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench_browser_") as tmp:
        env = {**os.environ, "COURSE_BROWSER_ARTIFACTS": tmp, "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "pytest", "-m", "browser", "-q", "-p", "no:cacheprovider",
               "--tb=line", "tests/browser"]  # fmt: skip
        if quick:
            cmd += ["-k", "00_ or files_exist"]
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600, check=False
        )
        path = Path(tmp) / "latency.json"
        if proc.returncode != 0 or not path.exists():
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
            raise RuntimeError(f"browser suite failed (exit {proc.returncode}):\n{tail}")
        measured = json.loads(path.read_text())
    rows: list[dict] = []
    for m in measured:
        label = f"{m['notebook']}:{m['demo']}"
        rows.append({
            "name": f"browser round trip {label}",
            "value": float(m["round_trip_ms_median"]),
            "unit": "ms",
            "note": f"key press -> redrawn figure in JupyterLab/Chromium, median of {m['moves']} "
                    f"moves over {m['sliders']} slider(s), max {m['round_trip_ms_max']:.0f} ms",
        })  # fmt: skip
        if m.get("kernel_ms_median") is not None:
            rows.append({
                "name": f"kernel callback {label}",
                "value": float(m["kernel_ms_median"]),
                "unit": "ms",
                "note": "Demo.last_update_s for the same moves, median",
            })  # fmt: skip
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
