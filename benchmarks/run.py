"""Run every ``benchmarks/bench_*.py`` and print one table.

Each benchmark module defines ``run(quick: bool = False) -> list[dict]``; a row has the keys
``name`` (what was measured), ``value`` (a number), ``unit`` ("x" for a ratio measured side by
side in the same run, else "ms", "tok/s", ...) and ``note`` (what the ratio compares). Results are
also written to ``benchmarks/results.json`` (git-ignored).

Usage: ``python benchmarks/run.py [--quick] [name-substring ...]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes / fewer repeats")
    ap.add_argument("only", nargs="*", help="run only benchmark files whose name contains these")
    args = ap.parse_args(argv)
    files = sorted(HERE.glob("bench_*.py"))
    if args.only:
        files = [f for f in files if any(s in f.stem for s in args.only)]
    rows: list[dict] = []
    failed = 0
    for f in files:
        t0 = time.perf_counter()
        print(f"running {f.name} ...", file=sys.stderr, flush=True)
        try:
            for row in _load(f).run(quick=args.quick):
                rows.append({"file": f.stem, **row})
        except Exception:  # keep going: one broken benchmark must not hide the others
            failed += 1
            traceback.print_exc()
            rows.append(
                {
                    "file": f.stem,
                    "name": "FAILED",
                    "value": float("nan"),
                    "unit": "",
                    "note": "see traceback above",
                }
            )
        print(f"  {f.name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    w = max([len(r["name"]) for r in rows] + [9])
    print(f"\n| {'benchmark':<{w}} | {'value':>10} | unit  | note")
    print(f"|{'-' * (w + 2)}|{'-' * 12}|-------|------")
    for r in rows:
        print(f"| {r['name']:<{w}} | {r['value']:>10.3g} | {r['unit']:<5} | {r.get('note', '')}")
    (HERE / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
