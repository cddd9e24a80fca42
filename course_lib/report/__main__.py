"""Command line: ``python -m course_lib.report [SWEEP.toml | NOTEBOOK.ipynb ...] [options]``.

No argument: the default course report (every ``notebooks/NN_*.ipynb`` with its defaults) into
``reports/``. A sweep file: its grid into ``reports/<sweep file stem>/`` (``--out`` overrides).
Notebook files: each with its defaults. Exit status 0 if every run succeeded, 1 if some failed,
2 for an invalid sweep, 130 when interrupted (the report of what finished is still written).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from ..notebooks import NOTEBOOK_DIR
from .index import write_report
from .runner import default_workers, run_sweep
from .sweep import SweepError, default_sweep, load_sweep, notebook_sweep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m course_lib.report",
        description="Run notebooks (or a TOML sweep over their parameters) with papermill and "
        "write an HTML report.",
    )
    ap.add_argument(
        "inputs",
        nargs="*",
        help="a sweep .toml file, or .ipynb notebooks; "
        "default: every notebooks/NN_*.ipynb with its default parameters",
    )
    ap.add_argument("--out", help="output folder (default: reports, or reports/<sweep name>)")
    ap.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"parallel runs on this machine (default: number of cores, here {default_workers()})",
    )
    ap.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="time limit per run in seconds (default: the sweep's, else 900)",
    )
    ap.add_argument(
        "--scheduler",
        help="address of a dask.distributed scheduler "
        "(tcp://host:port): one task per run; folders must be on a shared filesystem",
    )
    ap.add_argument("--force", action="store_true", help="rerun runs that already finished")
    ap.add_argument("--no-input", action="store_true", help="hide code cells in run pages")
    ap.add_argument("--dry-run", action="store_true", help="validate and list the runs only")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)

    tomls = [a for a in args.inputs if a.endswith(".toml")]
    nbs = [a for a in args.inputs if a.endswith(".ipynb")]
    other = [a for a in args.inputs if a not in tomls and a not in nbs]
    if other or len(tomls) > 1 or (tomls and nbs):
        ap.error("give one sweep .toml file, or notebooks (.ipynb), or nothing")
    try:
        if tomls:
            sweep = load_sweep(tomls[0])
            out = Path(args.out or Path("reports") / Path(tomls[0]).stem)
        elif nbs:
            sweep = notebook_sweep(nbs, title="Notebook report")
            out = Path(args.out or "reports")
        else:
            sweep = default_sweep(NOTEBOOK_DIR)
            out = Path(args.out or "reports")
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        for spec in sweep.runs:
            print(spec.run_dir(out))
        print(f"{len(sweep.runs)} run(s)", file=sys.stderr)
        return 0
    where = (
        f"the Dask cluster at {args.scheduler}"
        if args.scheduler
        else (f"{args.workers or default_workers()} worker(s)")
    )
    print(f"{sweep.title}: {len(sweep.runs)} run(s) on {where} -> {out}", file=sys.stderr)
    records: list[dict] = []
    status = 0
    previous = signal.signal(signal.SIGTERM, _terminate)  # a batch system's kill: stop cleanly
    try:
        records = run_sweep(
            sweep,
            out,
            workers=args.workers,
            timeout=args.timeout,
            scheduler=args.scheduler,
            force=args.force,
            no_input=args.no_input,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        print("interrupted: writing the report of the finished runs", file=sys.stderr)
        status = 130
        records = _finished_records(sweep, out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    index = write_report(sweep, records, out)
    bad = [r for r in records if r["status"] != "ok"]
    reused = sum(bool(r.get("reused")) for r in records)
    print(f"{len(records) - len(bad)} ok ({reused} reused), {len(bad)} failed", file=sys.stderr)
    for r in bad:
        print(f"  {r['status']}: {r['rel_dir']}: {r.get('error')}", file=sys.stderr)
    print(index.resolve())
    return status or (1 if bad else 0)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _finished_records(sweep, out: Path) -> list[dict]:
    """The run.json records present on disk for the runs of ``sweep`` (after an interruption)."""
    import json

    recs = []
    for spec in sweep.runs:
        try:
            r = json.loads((spec.run_dir(out.resolve()) / "run.json").read_text())
        except (OSError, ValueError):
            continue
        if r.get("key") == spec.key and r.get("status") in ("ok", "failed", "timeout"):
            recs.append(r)
    return recs


if __name__ == "__main__":
    raise SystemExit(main())
