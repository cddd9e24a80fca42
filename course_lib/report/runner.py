"""Execute runs: one papermill run per folder, in parallel (threads or a Dask cluster), resumable.

Each run executes in its own child process (``python -m course_lib.report._child``) whose
environment sets ``COURSE_LIB_STATIC=1``, ``COURSE_LIB_METRICS=<run_dir>/metrics.json`` and one
thread for every math library, so parallel runs do not oversubscribe the cores; the Jupyter
kernel inherits that environment. The child runs papermill (``cwd=run_dir``,
``store_widget_state=False``) and renders the executed notebook to HTML. The parent enforces the
per-run time limit by killing the child's whole process tree (the kernel included), reads the
metrics, and writes ``run.json`` atomically. A folder whose ``run.json`` says ``ok`` for the same
parameters and the same notebook content is reused unless ``force``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._validate import check_int, check_real
from ..core import _atomic_write_text, read_metrics
from .sweep import RunSpec, Sweep

__all__ = [
    "run_one",
    "run_sweep",
    "make_job",
    "render_html",
    "write_plotly_js",
    "default_workers",
    "THREAD_VARS",
]

#: Math-library thread variables set to 1 in every run.
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
#: Default per-run time limit in seconds (a sweep file's ``timeout`` or ``--timeout`` override it).
DEFAULT_TIMEOUT = 900.0
TRACEBACK_LINES = 15
#: Fields of a job copied into its record.
_RECORD_KEYS = ("notebook", "notebook_path", "notebook_sha256", "key", "parameters", "rel_dir")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_REQUIRE_JS = re.compile(r'<script src="https://[^"]*require(\.min)?\.js"></script>\s*')
_LIVE: set[int] = set()  # pids of running children
_CTX: Any = None
_LIVE_LOCK = threading.Lock()


def default_workers() -> int:
    """The number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython tracebacks carry them)."""
    return _ANSI.sub("", text)


def tail_lines(text: str, n: int = TRACEBACK_LINES) -> list[str]:
    """The last ``n`` non-empty lines of ``text`` without colour codes."""
    lines = [ln.rstrip() for ln in strip_ansi(text).splitlines() if ln.strip()]
    return lines[-n:]


def render_html(
    executed: str | Path, html: str | Path, *, title: str, banner: str = "", no_input: bool = False
) -> None:
    """Render an executed notebook to a standalone HTML page (nbconvert's ``lab`` template).

    Plotly figures keep working offline: ``course_lib.setup`` selects the
    ``plotly_mimetype+notebook`` renderer, whose first output carries plotly.js (the report
    replaces it by a ``<script src>`` of its shared ``plotly.min.js`` before rendering) and whose
    figure outputs are ``text/html`` that nbconvert shows. The CDN ``<script>`` for require.js
    (unused: no widget state is stored) is dropped so the page makes no network request for it.
    ``banner`` (markdown) is shown first.
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    if banner:
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(banner))
    exporter = HTMLExporter(
        template_name="lab",
        exclude_input=no_input,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    _atomic_write_text(Path(html), _REQUIRE_JS.sub("", body, count=1))


def render_job(job: dict) -> None:
    """Render the executed notebook of ``job`` (see :func:`make_job`) into its HTML page."""
    run_dir = Path(job["run_dir"])
    render_html(
        run_dir / job["executed"],
        run_dir / job["html"],
        title=job["notebook"],
        banner=job["banner"],
        no_input=job["no_input"],
    )


def write_plotly_js(out: Path) -> Path:
    """Write plotly.js once as ``<out>/plotly.min.js`` (shared by index.html and run pages)."""
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    target = out / "plotly.min.js"
    if not target.exists() or target.stat().st_size != len(js.encode()):
        _atomic_write_text(target, js)
    return target


def _notebook_sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_job(spec: RunSpec, out: Path, *, timeout: float, no_input: bool = False) -> dict:
    """The plain-dict description of one run that :func:`run_one` executes (picklable)."""
    run_dir = spec.run_dir(out)
    params = ", ".join(f"`{k} = {v!r}`" for k, v in spec.parameters.items()) or "default parameters"
    href = Path(os.path.relpath(out / "index.html", run_dir)).as_posix()
    plotly_src = Path(os.path.relpath(out / "plotly.min.js", run_dir)).as_posix()
    return {
        "notebook": spec.name,
        "notebook_path": spec.notebook,
        "notebook_sha256": _notebook_sha(spec.notebook),
        "key": spec.key,
        "parameters": spec.parameters,
        "run_dir": str(run_dir),
        "rel_dir": run_dir.relative_to(out).as_posix(),
        "timeout": float(timeout),
        "no_input": bool(no_input),
        "executed": f"{spec.name}.ipynb",
        "html": f"{spec.name}.html",
        "plotly_src": plotly_src,
        "banner": f"**Batch run of `{spec.name}`** with {params} · [report index]({href})",
    }


def _kill_tree(pid: int) -> None:
    """Kill process ``pid`` and every descendant (the Jupyter kernel runs in its own session)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=5)


def _forkserver():
    """A forkserver context whose server has imported papermill and nbconvert once (or None)."""
    global _CTX
    if _CTX is None:
        import multiprocessing as mp

        if "forkserver" not in mp.get_all_start_methods() or mp.current_process().daemon:
            return None  # daemonic processes (Dask workers) may not have children
        _CTX = mp.get_context("forkserver")
        _CTX.set_forkserver_preload(["course_lib.report._child"])
    return _CTX


def _launch(job: dict, env: dict[str, str], log: Path) -> tuple[int | None, bool, str]:
    """Run the child for ``job``: (exit code, timed out, launcher). Kills the tree on timeout."""
    ctx = None if job.get("launcher") == "subprocess" else _forkserver()
    launcher = "subprocess" if ctx is None else "forkserver"
    if ctx is not None:
        from . import _child

        proc: Any = ctx.Process(target=_child.run_in_process, args=(job, env, str(log)))
        proc.start()
        wait = proc.join
    else:
        cmd = [
            sys.executable,
            "-m",
            "course_lib.report._child",
            str(Path(job["run_dir"]) / "job.json"),
        ]
        with open(log, "a") as fh:
            proc = subprocess.Popen(
                cmd,
                cwd=job["run_dir"],
                env={**os.environ, **env},
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait = proc.wait
    with _LIVE_LOCK:
        _LIVE.add(proc.pid)
    try:
        try:
            wait(timeout=job["timeout"])
        except subprocess.TimeoutExpired:
            pass
        alive = proc.is_alive() if ctx is not None else proc.poll() is None
        if alive:
            _kill_tree(proc.pid)
            wait()
            return None, True, launcher
        return (proc.exitcode if ctx is not None else proc.returncode), False, launcher
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc.pid)


def _running_cell(executed: Path) -> str:
    """First line of the cell papermill marked as running in a partially saved notebook."""
    try:
        nb = json.loads(executed.read_text())
        for i, c in enumerate(nb.get("cells", [])):
            if c.get("metadata", {}).get("papermill", {}).get("status") == "running":
                src = "".join(c.get("source", "")).strip().splitlines()
                return f"cell {i}: {src[0] if src else ''}"
    except (OSError, ValueError):
        pass
    return ""


def run_one(job: dict) -> dict:
    """Execute one run described by :func:`make_job` and return its record (also in run.json).

    Never raises for a failing notebook: the record's ``status`` is ``ok``, ``failed`` or
    ``timeout`` with ``error`` and the last ``traceback`` lines. Runs on the local machine or as
    a Dask task (the folder must be on a filesystem the workers share).
    """
    run_dir = Path(job["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("metrics.json", ".child.json", job["executed"], job["html"]):
        (run_dir / stale).unlink(missing_ok=True)
    record: dict[str, Any] = {k: job[k] for k in _RECORD_KEYS}
    record.update(
        status="running",
        started=_now(),
        host=socket.gethostname(),
        pid=os.getpid(),
        executed=job["executed"],
        html=None,
        log="log.txt",
    )
    _atomic_write_text(run_dir / "run.json", json.dumps(record, indent=2) + "\n")
    _atomic_write_text(run_dir / "job.json", json.dumps(job, indent=2) + "\n")
    env = {v: "1" for v in THREAD_VARS}
    env.update(COURSE_LIB_STATIC="1", COURSE_LIB_METRICS=str(run_dir / "metrics.json"))
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    log = run_dir / "log.txt"
    log.write_text("")
    t0 = time.perf_counter()
    rc, timed_out, record["launcher"] = _launch(job, env, log)
    record["duration_s"] = round(time.perf_counter() - t0, 3)
    child = _load_json(run_dir / ".child.json") or {}
    executed = run_dir / job["executed"]
    if timed_out:
        where = _running_cell(executed)
        record["status"] = "timeout"
        record["error"] = f"run exceeded the time limit of {job['timeout']:g} s" + (
            f" (running {where})" if where else ""
        )
        record["traceback"] = tail_lines((run_dir / "log.txt").read_text(errors="replace"))
        if executed.exists():  # render what was executed so far
            try:
                render_job(job)
            except Exception:  # noqa: BLE001 - a partial notebook may not render; keep going
                pass
    elif child.get("error") is None and rc == 0:
        record["status"], record["error"], record["traceback"] = "ok", None, []
    else:
        record["status"] = "failed"
        killed = f"killed by signal {-rc} (interrupted?)" if rc is not None and rc < 0 else ""
        record["error"] = child.get("error") or (
            f"runner process {killed or f'exited with code {rc}'}"
        )
        record["traceback"] = child.get("traceback") or tail_lines(
            (run_dir / "log.txt").read_text(errors="replace")
        )
    if (run_dir / job["html"]).exists():
        record["html"] = job["html"]
    try:
        record["metrics"] = read_metrics(run_dir / "metrics.json")
    except ValueError:
        record["metrics"] = {}
    record["finished"] = _now()
    _atomic_write_text(run_dir / "run.json", json.dumps(record, indent=2) + "\n")
    return record


def _reusable(prev: dict | None, job: dict) -> bool:
    return bool(
        prev
        and prev.get("status") == "ok"
        and prev.get("key") == job["key"]
        and prev.get("notebook_sha256") == job["notebook_sha256"]
        and (Path(job["run_dir"]) / job["executed"]).exists()
    )


def _crash_record(job: dict, exc: BaseException) -> dict:
    return {
        **{k: job[k] for k in _RECORD_KEYS},
        "status": "failed",
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": [],
        "metrics": {},
        "html": None,
        "duration_s": None,
    }


def _execute_local(jobs: list[dict], workers: int, done: Callable[[dict], None]) -> None:
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="course-run")
    futures = {pool.submit(run_one, j): j for j in jobs}
    try:
        for fut in as_completed(futures):
            try:
                done(fut.result())
            except Exception as exc:  # noqa: BLE001 - an internal error of one run only
                done(_crash_record(futures[fut], exc))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        with _LIVE_LOCK:
            live = list(_LIVE)
        for pid in live:
            _kill_tree(pid)
        raise
    pool.shutdown(wait=True)


def _execute_dask(jobs: list[dict], address: str, done: Callable[[dict], None]) -> None:
    from distributed import Client
    from distributed import as_completed as dask_completed

    with Client(address, timeout="30s") as client:
        futures = {
            client.submit(run_one, j, key=f"course-run-{j['notebook']}-{j['key']}", pure=False): j
            for j in jobs
        }
        try:
            for fut in dask_completed(list(futures)):
                try:
                    done(fut.result())
                except Exception as exc:  # noqa: BLE001 - e.g. a lost worker
                    done(_crash_record(futures[fut], exc))
        except BaseException:
            client.cancel(list(futures))
            raise


def run_sweep(
    sweep: Sweep,
    out: str | Path,
    *,
    workers: int | None = None,
    timeout: float | None = None,
    scheduler: str | None = None,
    force: bool = False,
    no_input: bool = False,
    progress: bool = True,
    on_record: Callable[[list[dict]], None] | None = None,
) -> list[dict]:
    """Run every run of ``sweep`` into ``out`` and return the records in sweep order.

    ``workers`` parallel runs on this machine (default: the number of cores), or one Dask task
    per run on the cluster at ``scheduler``. ``timeout`` seconds per run (default: the sweep's,
    else 900). Finished runs are reused unless ``force``. Reused records carry ``reused: True``.
    ``on_record(records_so_far)`` is called after each finished run (e.g. to refresh the index).
    """
    from tqdm.auto import tqdm

    workers = check_int("workers", default_workers() if workers is None else workers, 1, 4096)
    limit = timeout if timeout is not None else (sweep.timeout or DEFAULT_TIMEOUT)
    limit = check_real("timeout", limit, 0, None, low_open=True)
    if scheduler is not None and not isinstance(scheduler, str):
        raise ValueError(
            f"scheduler must be an address string like tcp://host:port, got {scheduler!r}"
        )
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    write_plotly_js(out)
    slots: dict[tuple[str, str], dict | None] = {}
    jobs = []
    for spec in sweep.runs:
        job = make_job(spec, out, timeout=limit, no_input=no_input)
        prev = _load_json(Path(job["run_dir"]) / "run.json")
        if not force and _reusable(prev, job):
            slots[(spec.name, spec.key)] = {**prev, "reused": True}
        else:
            slots[(spec.name, spec.key)] = None
            jobs.append(job)
    bar = tqdm(total=len(jobs), desc="runs", unit="run", disable=not progress or not jobs)
    failed = 0

    def done(record: dict) -> None:
        nonlocal failed
        slots[(record["notebook"], record["key"])] = {**record, "reused": False}
        failed += record["status"] != "ok"
        bar.update(1)
        bar.set_postfix(failed=failed, refresh=False)
        if on_record is not None:
            on_record(records())

    def records() -> list[dict]:
        return [r for r in slots.values() if r is not None]

    try:
        if not jobs:
            pass
        elif scheduler:
            _execute_dask(jobs, scheduler, done)
        else:
            _execute_local(jobs, min(workers, len(jobs)), done)
    finally:
        bar.close()
    return records()
