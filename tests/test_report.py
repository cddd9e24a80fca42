"""Tests of course_lib.report: sweep parsing/validation, runs, resume, faults, index, Dask, browser.

The runs use the small test notebook ``tests/data/sweep_demo.ipynb`` (about a second of work per
run); the course notebooks are never run here. One module-scoped sweep (4 combinations + one
failing run) feeds most checks, so the whole file costs a handful of kernel starts.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course_lib.report import (
    SweepError,
    expand_grid,
    grid_values,
    load_sweep,
    notebook_parameters,
    notebook_sweep,
    run_sweep,
    write_report,
)
from course_lib.report.__main__ import main as cli_main
from course_lib.report.runner import _reusable, make_job
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, require

DATA = Path(__file__).parent / "data"
DEMO = DATA / "sweep_demo.ipynb"


def write_sweep(tmp: Path, text: str, name: str = "sweep.toml") -> Path:
    """A sweep file in ``tmp`` whose ``notebook = "DEMO"`` points at the test notebook."""
    path = tmp / name
    path.write_text(text.replace('"DEMO"', json.dumps(str(DEMO))))
    return path


# ---------------------------------------------------------------------------------------------
# parsing and validation (no kernels)


def test_notebook_parameters_reads_literals_with_ast():
    params = notebook_parameters(DEMO)
    assert params == {"seed": 0, "scale": 1.0, "n": 5, "label": "a", "fail": False, "sleep_s": 0.0}


def _notebook(tmp: Path, source: str | None, name: str = "nb.ipynb") -> Path:
    nb = nbformat.v4.new_notebook()
    if source is not None:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells.append(nbformat.v4.new_code_cell("print(1)"))
    path = tmp / name
    nbformat.write(nb, path)
    return path


def test_notebook_parameters_errors(tmp_path):
    with pytest.raises(SweepError, match="exactly one cell tagged 'parameters'"):
        notebook_parameters(_notebook(tmp_path, None))
    with pytest.raises(SweepError, match="line 2: only single plain assignments"):
        notebook_parameters(_notebook(tmp_path, "a = 1\nprint(a)"))
    with pytest.raises(SweepError, match="b must be a literal value"):
        notebook_parameters(_notebook(tmp_path, "b = 2 * 3"))
    with pytest.raises(SweepError, match="does not exist"):
        notebook_parameters(tmp_path / "missing.ipynb")


def test_grid_value_forms():
    assert grid_values("a", [1, 2]) == [1, 2]
    assert grid_values("a", 3) == [3]
    assert grid_values("a", {"range": [0, 3]}) == [0, 1, 2]
    assert grid_values("a", {"range": [1, 10, 4]}) == [1, 5, 9]
    assert grid_values("a", {"linspace": [0, 1, 3]}) == [0.0, 0.5, 1.0]
    assert grid_values("a", {"logspace": [1e-3, 1e-1, 3]}) == [1e-3, 1e-2, 1e-1]  # canonical
    assert grid_values("a", {"values": [[1, 2], [3]]}) == [[1, 2], [3]]
    with pytest.raises(ValueError, match=r"grid\.alpha\.range"):
        grid_values("alpha", {"range": [0.0, 1.0]})
    with pytest.raises(ValueError, match=r"grid\.alpha\.logspace ends must be > 0"):
        grid_values("alpha", {"logspace": [0, 1, 3]})
    with pytest.raises(ValueError, match=r"grid\.alpha must be a list"):
        grid_values("alpha", {"logrange": [1, 2, 3]})
    with pytest.raises(ValueError, match=r"grid\.alpha is an empty list"):
        grid_values("alpha", [])
    assert expand_grid({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]


def test_load_sweep_expands_validates_and_keys_are_stable(tmp_path):
    text = """
title = "demo"
timeout = 30
[[sweep]]
notebook = "DEMO"
parameters = { label = "b" }
[sweep.grid]
scale = { logspace = [0.1, 10, 3] }
n = [3, 6]
[[sweep]]
notebook = "DEMO"
parameters = { fail = true, scale = 2 }
"""
    sweep = load_sweep(write_sweep(tmp_path, text))
    assert (sweep.title, sweep.timeout, len(sweep.runs)) == ("demo", 30.0, 7)
    assert sweep.swept == {"sweep_demo": ["scale", "n"]}
    first = sweep.runs[0]
    assert first.parameters == {"label": "b", "scale": 0.1, "n": 3}
    assert isinstance(sweep.runs[-1].parameters["scale"], float)  # int 2 -> float like 1.0
    assert first.slug.startswith("label=b_scale=0.1_n=3-")
    assert len({r.key for r in sweep.runs}) == 7
    again = load_sweep(write_sweep(tmp_path, text, "again.toml"))
    assert [r.key for r in again.runs] == [r.key for r in sweep.runs]
    assert first.run_dir("out") == Path("out") / "sweep_demo" / first.slug


def test_invalid_sweeps_list_every_problem_before_running(tmp_path):
    text = """
title = "bad"
colour = "red"
[[sweep]]
notebook = "DEMO"
[sweep.grid]
scael = [1.0, 2.0]
n = [1.5, 2]
label = { range = [0, 3] }
[[sweep]]
notebook = "nowhere.ipynb"
"""
    with pytest.raises(SweepError) as info:
        load_sweep(write_sweep(tmp_path, text))
    msg = str(info.value)
    assert "unknown top-level key 'colour'" in msg
    assert "unknown parameter 'scael'" in msg and "defines: seed, scale, n" in msg
    assert "parameter 'n' must be of type int" in msg and "1.5" in msg
    assert "parameter 'label' must be of type str" in msg
    assert "nowhere.ipynb" in msg and "does not exist" in msg
    assert len(info.value.problems) == 5
    syntax = tmp_path / "syntax.toml"
    syntax.write_text("title = \n")
    with pytest.raises(SweepError, match="TOML syntax error"):
        load_sweep(syntax)
    with pytest.raises(SweepError, match=r"no \[\[sweep\]\] sections"):
        load_sweep(write_sweep(tmp_path, 'title = "empty"\n', "empty.toml"))


def test_cli_rejects_invalid_sweep_with_exit_code_2(tmp_path, capsys):
    bad = write_sweep(tmp_path, '[[sweep]]\nnotebook = "DEMO"\ngrid = { nope = [1, 2] }\n')
    out = tmp_path / "out"
    assert cli_main([str(bad), "--out", str(out)]) == 2
    assert "unknown parameter 'nope'" in capsys.readouterr().err
    assert not out.exists()  # nothing ran


def test_write_report_without_runs_is_atomic_and_complete(tmp_path):
    sweep = notebook_sweep([DEMO], title="no runs yet")
    index = write_report(sweep, [], tmp_path)
    assert index == tmp_path / "index.html" and "pending" in index.read_text()
    assert json.loads((tmp_path / "summary.json").read_text())["counts"]["pending"] == 1
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_reuse_requires_same_notebook_content(tmp_path):
    spec = notebook_sweep([DEMO]).runs[0]
    job = make_job(spec, tmp_path, timeout=10)
    run_dir = Path(job["run_dir"])
    run_dir.mkdir(parents=True)
    (run_dir / job["executed"]).write_text("{}")
    prev = {"status": "ok", "key": job["key"], "notebook_sha256": job["notebook_sha256"]}
    assert _reusable(prev, job)
    assert not _reusable({**prev, "status": "failed"}, job)
    assert not _reusable({**prev, "notebook_sha256": "edited"}, job)


def test_run_sweep_validates_its_arguments(tmp_path):
    sweep = notebook_sweep([DEMO])
    with pytest.raises(ValueError, match="workers"):
        run_sweep(sweep, tmp_path, workers=0)
    with pytest.raises(ValueError, match="timeout"):
        run_sweep(sweep, tmp_path, timeout=-1)


# ---------------------------------------------------------------------------------------------
# real runs


GRID = """
title = "test sweep"
[[sweep]]
notebook = "DEMO"
[sweep.grid]
scale = { logspace = [0.1, 10, 2] }
n = [3, 6]
[[sweep]]
notebook = "DEMO"
parameters = { fail = true, scale = 2.0 }
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The sweep above run once with 2 workers: (sweep, records, out folder, wall seconds)."""
    tmp = tmp_path_factory.mktemp("report")
    sweep = load_sweep(write_sweep(tmp, GRID))
    out = tmp / "out"
    t0 = time.perf_counter()
    records = run_sweep(sweep, out, workers=2, timeout=300, progress=False)
    write_report(sweep, records, out)
    return sweep, records, out, time.perf_counter() - t0


def test_sweep_runs_every_combination_into_its_folder(swept):
    sweep, records, out, _ = swept
    ok = [r for r in records if r["status"] == "ok"]
    assert len(records) == 5 and len(ok) == 4, [(r["rel_dir"], r.get("error")) for r in records]
    for r in ok:
        run_dir = out / r["rel_dir"]
        for name in ("run.json", "metrics.json", "sweep_demo.ipynb", "sweep_demo.html", "log.txt"):
            assert (run_dir / name).is_file(), (run_dir, name)
        scale, n = r["parameters"]["scale"], r["parameters"]["n"]
        expected = scale * sum(x * x for x in range(1, n + 1))
        assert r["metrics"]["total"]["value"] == pytest.approx(expected, rel=1e-12)
        assert r["metrics"]["total"]["unit"] == "a.u."
        assert r["metrics"]["static"]["value"] == 1  # COURSE_LIB_STATIC reached the kernel
        assert r["metrics"]["omp_threads"]["value"] == 1
        assert json.loads((run_dir / "run.json").read_text())["status"] == "ok"
        html = (run_dir / "sweep_demo.html").read_text()
        assert "Plotly.newPlot" in html and "../../plotly.min.js" in html
        assert len(html) < 1_000_000  # plotly.js is shared, not inlined in every run
    assert {tuple(sorted(r["parameters"].items())) for r in ok} == {
        (("n", n), ("scale", s)) for s in (0.1, 10.0) for n in (3, 6)
    }


def test_failing_run_is_recorded_and_does_not_stop_the_others(swept):
    _, records, out, _ = swept
    (bad,) = [r for r in records if r["status"] != "ok"]
    assert bad["status"] == "failed" and bad["parameters"] == {"fail": True, "scale": 2.0}
    assert "RuntimeError: deliberate failure for scale=2.0" in bad["error"]
    assert any("RuntimeError" in line for line in bad["traceback"])
    assert (out / bad["rel_dir"] / "sweep_demo.html").is_file()  # partial page, error visible
    assert bad["metrics"]["total"]["value"] == pytest.approx(2.0 * 55)  # recorded before failing


def test_index_and_summaries(swept):
    _, records, out, _ = swept
    index = (out / "index.html").read_text()
    assert '<script src="plotly.min.js"></script>' in index and "https://" not in index
    for r in records:
        assert f'href="{r["rel_dir"]}/sweep_demo.html"' in index
    assert (
        "deliberate failure" in index and 'title="sum of scale * x^2 over x = 1..n [a.u.]"' in index
    )
    with open(out / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5 and {"scale", "n", "total", "status", "duration_s"} <= set(rows[0])
    assert sorted(r["status"] for r in rows) == ["failed", "ok", "ok", "ok", "ok"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"ok": 4, "failed": 1, "timeout": 0, "pending": 0}
    assert summary["metrics"]["sweep_demo"]["total"]["meaning"].startswith("sum of scale")
    assert summary["swept"] == {"sweep_demo": ["scale", "n"]}


def test_second_invocation_skips_finished_runs(swept):
    sweep, first, out, _ = swept
    before = {
        r["rel_dir"]: (out / r["rel_dir"] / "sweep_demo.html").stat().st_mtime_ns
        for r in first
        if r["status"] == "ok"
    }
    # only the failing run executes again: make it succeed now by dropping it from the sweep
    ok_only = type(sweep)(
        sweep.title, [s for s in sweep.runs if "fail" not in s.parameters], sweep.swept
    )
    again = run_sweep(ok_only, out, workers=2, timeout=300, progress=False)
    assert len(again) == 4 and all(r["reused"] and r["status"] == "ok" for r in again)
    for rel, mtime in before.items():
        assert (out / rel / "sweep_demo.html").stat().st_mtime_ns == mtime


def test_time_limit_kills_the_run(tmp_path):
    sweep = load_sweep(
        write_sweep(tmp_path, '[[sweep]]\nnotebook = "DEMO"\nparameters = { sleep_s = 600.0 }\n')
    )
    t0 = time.perf_counter()
    (rec,) = run_sweep(sweep, tmp_path / "out", workers=1, timeout=6, progress=False)
    assert rec["status"] == "timeout" and "time limit of 6 s" in rec["error"]
    assert time.perf_counter() - t0 < 60
    index = write_report(sweep, [rec], tmp_path / "out")
    assert "timeout" in index.read_text()


# ---------------------------------------------------------------------------------------------
# Dask: a real local cluster (scheduler + 2 workers as separate processes)


def _dask_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", f"distributed.cli.dask_{args[0]}", *args[1:]]


@pytest.mark.slow
def test_dask_cluster_runs_one_task_per_run(tmp_path):
    pytest.importorskip("distributed")
    import psutil

    sched_file = tmp_path / "scheduler.json"
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            _dask_cli(
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    ]
    try:
        deadline = time.time() + 90
        while not sched_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert sched_file.exists(), "dask scheduler did not start"
        address = json.loads(sched_file.read_text())["address"]
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    _dask_cli(
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--nworkers",
                        "1",
                        "--host",
                        "127.0.0.1",
                        "--no-dashboard",
                        "--local-directory",
                        str(tmp_path / "dask"),
                    ),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
            )
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=90)
        sweep = load_sweep(
            write_sweep(tmp_path, '[[sweep]]\nnotebook = "DEMO"\ngrid = { n = [2, 4] }\n')
        )
        out = tmp_path / "out"
        assert (
            cli_main(
                [str(tmp_path / "sweep.toml"), "--out", str(out), "--scheduler", address, "--quiet"]
            )
            == 0
        )
        records = [json.loads((out / s.run_dir(".") / "run.json").read_text()) for s in sweep.runs]
        assert [r["status"] for r in records] == ["ok", "ok"]
        assert [r["metrics"]["n_points"]["value"] for r in records] == [2, 4]
        worker_pids = {p.pid for w in procs[1:] for p in psutil.Process(w.pid).children(True)}
        worker_pids |= {w.pid for w in procs[1:]}
        assert all(r["pid"] in worker_pids for r in records)  # executed by the cluster's workers
        assert all(r["launcher"] == "subprocess" for r in records)  # daemonic worker processes
        assert (out / "index.html").is_file()
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# ---------------------------------------------------------------------------------------------
# the report in a real browser, offline


def _offline_page(browser):
    """A page that may load local files only (the report must work without network)."""
    page = browser.new_page()
    page.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort(),
    )
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


def _assert_plots_render(page, url: str, n_plots: int) -> None:
    """At least ``n_plots`` plotly figures drew traces at a real size (not a blank space)."""
    page.goto(url)
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
    assert page.locator(".js-plotly-plot").count() >= n_plots, url
    assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 1, url
    assert page.locator(".js-plotly-plot .main-svg").first.bounding_box()["height"] > 100, url


def _chromium():
    require(Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed")
    return sync_playwright


@pytest.mark.browser
def test_report_figures_render_offline_in_chromium(swept):
    _, records, out, _ = swept
    sync_playwright = _chromium()
    run_page = out / next(r for r in records if r["status"] == "ok")["rel_dir"] / "sweep_demo.html"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page, errors = _offline_page(browser)
            for url, n_plots in ((run_page.as_uri(), 1), ((out / "index.html").as_uri(), 2)):
                _assert_plots_render(page, url, n_plots)
            assert not errors, errors
            # the table sorts by a metric column when its header is clicked
            page.locator("th.metric", has_text="total").click()
            totals = page.locator("table.runs tbody tr td:nth-child(1)").all_inner_texts()
            assert totals[0].startswith("scale=0.1_n=3"), totals
        finally:
            browser.close()


@pytest.mark.browser
def test_course_report_of_notebook_00_shows_its_figures(tmp_path):
    """What `make report` does, for notebook 00: its page and index.html show real figures."""
    sync_playwright = _chromium()
    nb = Path(__file__).resolve().parent.parent / "notebooks" / "00_start_here.ipynb"
    out = tmp_path / "reports"
    proc = subprocess.run(
        [sys.executable, "-m", "course_lib.report", str(nb), "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    index = Path(proc.stdout.strip().splitlines()[-1])
    assert index == out / "index.html" and index.exists()
    pages = list(out.glob("00_start_here/**/*.html"))
    assert pages, sorted(p.name for p in out.rglob("*"))
    metrics = json.loads(next(out.glob("00_start_here/**/metrics.json")).read_text())
    assert {"contraction_error", "divergence_step"} <= set(metrics)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page, errors = _offline_page(browser)
            _assert_plots_render(page, pages[0].as_uri(), 2)  # the demo snapshot + GD figure
            _assert_plots_render(page, index.as_uri(), 1)
            assert "contraction_error" in page.content()
            assert not errors, errors
        finally:
            browser.close()
