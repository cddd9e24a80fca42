"""The course in a real browser: every notebook run in JupyterLab, every slider moved.

For each ``notebooks/NN_*.ipynb`` (a temporary copy, with the overrides below applied to its
``parameters`` cell): open it in JupyterLab in headless Chromium, run all cells, wait until the
kernel is idle and every code cell has an execution count, and check that

* no cell produced an error output or a traceback;
* every widget output rendered (no "Error displaying widget" / "model not found", no empty view);
* every course demo panel (CSS class ``course-demo``) shows a plotly figure with data;
* every slider of every panel, moved with the arrow keys on its handle, changes the data of the
  panel's figure in the page (a slider that does nothing under the panel's default dropdown
  choice, e.g. "random m" while instance = "line", is retried under the other choices);
* every dropdown of a panel has a choice that changes the figure.

Each move is timed in the page, from the key press to the figure being redrawn with new data
(the browser round trip: widget message, kernel callback, figure update, plotly redraw), and the
kernel-side callback time ``Demo.last_update_s`` is read back through the kernel. Medians per demo
go to ``test-artifacts/browser/latency.json`` (read by ``benchmarks/bench_browser.py``); a
screenshot of each notebook after the interaction goes to ``test-artifacts/browser/<name>.png``.
Latencies are measured here, not asserted (timings on a loaded CI machine are not a test).

Run only these tests: ``pytest -m browser tests/browser``.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
except ImportError:  # the chromium_path fixture then skips (fails under CI=true) with a message
    PlaywrightTimeoutError = TimeoutError

pytestmark = pytest.mark.browser

#: Parameter overrides applied to the temporary copy of a notebook before it is opened
#: (notebook file name -> {parameter: literal value}), to keep the suite within its time budget.
NOTEBOOK_OVERRIDES: dict[str, dict[str, Any]] = {
    # 07 trains two models for minutes at its defaults; its claims that need the full budget
    # are guarded by the notebook itself (full_run, recall_steps >= 100, long contexts)
    "07_rwkv_train.ipynb": {"train_steps": 30, "recall_steps": 20, "decode_contexts": [64, 512]},
}

#: Per-notebook time limit: open, run all cells, move every slider ($COURSE_BROWSER_TIMEOUT).
NOTEBOOK_TIMEOUT_S = float(os.environ.get("COURSE_BROWSER_TIMEOUT", "180"))
#: Timed moves per demo, at least: spread over its sliders, each slider moved n key presses one
#: way and n back (n >= 1, so every slider is exercised and ends where it started).
MOVES_PER_DEMO = 4
#: A move whose figure has not changed after QUICK_WAIT_S is checked again SETTLE_S after the
#: kernel went idle; then it counts as "did not change the figure".
QUICK_WAIT_S = 2.0
SETTLE_S = 1.0

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOK_FILES = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))

# -- page-side helpers (JavaScript) ---------------------------------------------------------------

#: Installed once per page: the time of the last user input (key press or selection), the time
#: of the last redraw of a hooked plot, and a hash of the data of a panel's plotly figures.
_INSTALL_JS = """
() => {
  if (window.__course) return;
  const hashData = (gd) => {
    // FNV-1a over a JSON rendering of the traces (typed arrays included).
    const s = JSON.stringify(gd.data || [], (k, v) =>
      ArrayBuffer.isView(v) ? Array.from(v) : v);
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193); }
    return (h >>> 0).toString(16) + ':' + s.length;
  };
  const c = window.__course = {lastInput: 0, lastPlot: 0};
  const plots = (p) => Array.from(p.querySelectorAll('.js-plotly-plot'));
  c.panelHash = (p) => plots(p).map(hashData).join('|');
  c.hook = (p) => plots(p).forEach((gd) => {
    if (gd.__courseHooked || !gd.on) return;
    gd.__courseHooked = true;
    gd.on('plotly_afterplot', () => { c.lastPlot = performance.now(); });
  });
  c.times = () => ({now: performance.now(), input: c.lastInput, plot: c.lastPlot});
  const mark = () => { c.lastInput = performance.now(); };
  document.addEventListener('keydown', mark, true);
  document.addEventListener('input', mark, true);
}
"""

#: State of the current notebook: kernel status, execution counts, errors, widget outputs.
_STATE_JS = """
() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  if (!panel || !panel.content || !panel.sessionContext) return {ready: false};
  const ctx = panel.sessionContext;
  const kernel = ctx.session && ctx.session.kernel;
  const cells = [];
  const model = panel.content.model;
  if (!model) return {ready: false};
  for (let i = 0; i < model.cells.length; i++) {
    const c = model.cells.get(i);
    if (c.type !== 'code') continue;
    const src = c.sharedModel.getSource();
    const errors = [];
    const widgets = [];  // indices of the widget outputs
    for (let j = 0; j < c.outputs.length; j++) {
      const item = c.outputs.get(j);  // serialize only errors and streams (figures are large)
      if (item.type === 'error' || item.type === 'stream') {
        const o = item.toJSON();
        if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
        else if (o.name === 'stderr' && /Traceback/.test(o.text))
          errors.push(String(o.text).slice(0, 500));
      } else if (item.data && item.data['application/vnd.jupyter.widget-view+json']) {
        widgets.push(j);
      }
    }
    cells.push({index: i, count: c.executionCount, empty: src.trim() === '', errors, widgets});
  }
  const prompts = Array.from(panel.node.querySelectorAll('.jp-InputPrompt'))
                       .map(e => e.textContent.trim());
  return {
    ready: ctx.isReady && !!kernel,
    status: kernel ? kernel.status : 'none',
    busyPrompts: prompts.filter(t => t.includes('*')).length,
    cells,
  };
}
"""

#: Widget outputs (from the state's cells) that did not render: no widget view in their output
#: node, an error text, or no height.
_UNRENDERED_JS = """
(cells) => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  const bad = [];
  for (const c of cells) for (const j of c.widgets) {
    const cell = nb.widgets[c.index];
    const child = cell.node.querySelectorAll('.jp-Cell-outputArea > .jp-OutputArea-child')[j];
    const out = child && child.querySelector('.jp-OutputArea-output');
    const text = out ? out.textContent : '';
    const ok = out && out.querySelector(':scope > .lm-Widget') &&
      !/Error displaying widget|model not found|Failed to load model class/.test(text) &&
      out.getBoundingClientRect().height > 5;
    if (!ok) bad.push({cell: c.index, output: j, text: out ? text.slice(0, 300) : 'no output'});
  }
  return bad;
}
"""

#: Run JavaScript-collected Python code in the notebook's kernel; returns its stdout.
_KERNEL_EXEC_JS = """
async (code) => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, silent: false, store_history: false});
  let out = '';
  future.onIOPub = (msg) => {
    if (msg.header.msg_type === 'stream') out += msg.content.text;
    if (msg.header.msg_type === 'error') out += 'ERROR ' + msg.content.ename + ': ' +
                                                msg.content.evalue;
  };
  await future.done;
  return out;
}
"""

#: Python run in the kernel: update counter and last callback time of every Demo reachable from
#: globals() (directly or in a list/tuple/dict), one entry per object, named after a variable.
_DEMO_TIMES_PY = """
def __course_demo_times():
    import json
    from course_lib.widgets import Demo
    seen = {}
    names = sorted(globals(), key=lambda k: (k.startswith("_") or k in ("In", "Out"), k))
    for container in (False, True):  # plain variables first, then lists/tuples/dicts
        for k in names:
            v = globals()[k]
            if not container:
                items = [(None, v)]
            elif isinstance(v, dict):
                items = list(v.items())
            elif isinstance(v, (list, tuple)):
                items = list(enumerate(v))
            else:
                continue
            for i, d in items:
                if isinstance(d, Demo) and id(d) not in seen:
                    seen[id(d)] = (k if i is None else f"{k}[{i!r}]", d)
    return json.dumps({k: [d.n_updates, d.last_update_s] for k, d in seen.values()})
print(__course_demo_times())
del __course_demo_times
"""

#: Description of each course-demo panel: title, sliders, figures (with trace counts).
_PANELS_JS = """
() => {
  const panel = window.jupyterapp.shell.currentWidget;
  return Array.from(panel.node.querySelectorAll('.course-demo')).map((el, i) => {
    const plots = Array.from(el.querySelectorAll('.js-plotly-plot'));
    const title = el.querySelector('.widget-html');
    return {
      index: i,
      title: title ? title.textContent.trim() : '',
      sliders: el.querySelectorAll('.noUi-handle').length,
      plots: plots.map(p => ({
        traces: (p.data || []).length,
        width: p.getBoundingClientRect().width,
        height: p.getBoundingClientRect().height,
      })),
    };
  });
}
"""

# -- helpers --------------------------------------------------------------------------------------


def apply_overrides(path: Path, overrides: dict[str, Any]) -> None:
    """Rewrite the assignments of the ``parameters``-tagged cell of ``path`` in place.

    Every overridden name must be assigned in that cell (a typo must not pass silently).
    """
    if not overrides:
        return
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path.name}: expected one cell tagged 'parameters', got {len(cells)}")
    cell = cells[0]
    lines = cell.source.splitlines()
    found: set[str] = set()
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            name = getattr(node.targets[0], "id", None)
            if name in overrides:
                lines[node.lineno - 1] = f"{name} = {overrides[name]!r}"
                for k in range(node.lineno, node.end_lineno or node.lineno):
                    lines[k] = ""
                found.add(name)
    missing = set(overrides) - found
    if missing:
        raise ValueError(f"{path.name}: overrides {sorted(missing)} not in the parameters cell")
    cell.source = "\n".join(lines)
    nbformat.write(nb, path)


def _wait_state(page: Any, deadline: float, what: str, done) -> dict:
    """Poll the notebook state until ``done(state)``; fail with the last state at the deadline."""
    state: dict = {}
    while time.monotonic() < deadline:
        state = page.evaluate(_STATE_JS)
        if state.get("ready") and done(state):
            return state
        page.wait_for_timeout(250)
    pytest.fail(f"timed out waiting for {what}; last state: {json.dumps(state)[:2000]}")


def _finished(state: dict) -> bool:
    if state["status"] != "idle" or state["busyPrompts"]:
        return False
    if any(c["errors"] for c in state["cells"]):
        return True  # run-all stops at the first error; report it below
    return all(c["count"] is not None for c in state["cells"] if not c["empty"])


def _demo_times(page: Any) -> dict[str, list[float]]:
    out = page.evaluate(_KERNEL_EXEC_JS, _DEMO_TIMES_PY)
    assert not out.startswith("ERROR"), out
    return json.loads(out.strip().splitlines()[-1])


def _screenshot(page: Any, path: Path) -> None:
    """The whole notebook: make the viewport as tall as its content, then capture."""
    height = page.evaluate(
        "() => { const n = window.jupyterapp.shell.currentWidget.content.node;"
        " const s = [n, ...n.querySelectorAll('.jp-WindowedPanel-outer')];"
        " s.forEach(e => { e.scrollTop = 0; });"
        " return Math.max(...s.map(e => e.scrollHeight)); }"
    )
    vp = page.viewport_size
    tall = int(min(max(height + 150, 600), 16000))
    page.set_viewport_size({"width": vp["width"], "height": tall})
    page.wait_for_timeout(300)
    page.evaluate(
        "() => { const n = window.jupyterapp.shell.currentWidget.content.node;"
        " [n, ...n.querySelectorAll('.jp-WindowedPanel-outer')].forEach(e => { e.scrollTop = 0; });"
        " }"
    )
    page.wait_for_timeout(200)
    page.screenshot(path=str(path))
    page.set_viewport_size(vp)


def _change(page: Any, panel: Any, action: Callable[[], None], deadline: float) -> float | None:
    """Run ``action`` (a key press, a selection) on a demo panel and wait until the data of the
    panel's figures changed in the page. Returns the ms from the input event to the redraw, or
    None when the kernel finished its callback and the data still did not change."""
    el = panel.element_handle()
    before = el.evaluate("(p) => window.__course.panelHash(p)")
    el.evaluate("(p) => window.__course.hook(p)")
    changed = "([p, h]) => window.__course.panelHash(p) !== h"
    action()
    try:
        page.wait_for_function(changed, arg=[el, before], polling=10, timeout=QUICK_WAIT_S * 1e3)
    except PlaywrightTimeoutError:
        _wait_idle(page, deadline)  # a slow callback: let the kernel finish, the page update
        page.wait_for_timeout(SETTLE_S * 1e3)
        if not page.evaluate(changed, [el, before]):
            return None
    t = page.evaluate("() => window.__course.times()")
    end = t["plot"] if t["input"] < t["plot"] <= t["now"] else t["now"]
    return end - t["input"]


def _drawn(panel: dict) -> bool:
    """A demo panel shows at least one plotly figure, every one with traces and a real size."""
    return bool(panel["plots"]) and all(
        f["traces"] > 0 and f["width"] > 50 and f["height"] > 50 for f in panel["plots"]
    )


def _wait_idle(page: Any, deadline: float) -> None:
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
        " === 'idle'",
        polling=20,
        timeout=max(1.0, deadline - time.monotonic()) * 1e3,
    )


def _exercise_panel(
    page: Any, panel: Any, where: str, deadline: float, kernel_check: Callable[[], Any]
) -> tuple[list[float], list[float], set[str]]:
    """Move every slider of a demo panel (and switch its dropdowns); assert each changed the
    figure. Returns the round trips (ms), the kernel-side callback times (ms) and the names of
    the demo variables that updated. ``kernel_check()`` waits for the kernel to be idle and
    returns (demo name, callback ms) of the demo that just updated, or None."""
    round_trips: list[float] = []
    kernel_ms: list[float] = []
    names: set[str] = set()

    def move(handle: Any, key: str) -> bool:
        """Press ``key`` on a slider handle; record the timings; True if it redrew."""
        ms = _change(page, panel, lambda: handle.press(key), deadline)
        found = kernel_check()
        if ms is None:
            return False
        round_trips.append(ms)
        if found:
            names.add(found[0])
            kernel_ms.append(found[1])
        return True

    handles = panel.locator(".noUi-handle")
    n_handles = handles.count()
    n = max(1, math.ceil(MOVES_PER_DEMO / (2 * n_handles)))
    keys: dict[int, tuple[str, str]] = {}
    inactive: list[int] = []  # sliders that did not change the figure (yet)
    for h in range(n_handles):
        handle = handles.nth(h)
        handle.scroll_into_view_if_needed()
        now = float(handle.get_attribute("aria-valuenow") or "nan")
        hi = float(handle.get_attribute("aria-valuemax") or "nan")
        lo = float(handle.get_attribute("aria-valuemin") or "nan")
        # move towards the side with more room, then back to the start
        fwd, back = ("ArrowLeft", "ArrowRight")
        if hi - now >= now - lo:
            fwd, back = back, fwd
        keys[h] = (fwd, back)
        if not move(handle, fwd):
            handle.press(back)  # restore, and retry with other dropdown choices
            _wait_idle(page, deadline)
            kernel_check()
            inactive.append(h)
            continue
        for key in [fwd] * (n - 1) + [back] * n:
            assert move(handle, key), f"{where}: slider {h}: {key} changed nothing"
    # dropdowns: some other choice must change the figure; sliders that did nothing
    # before are retried under each choice (e.g. "random m" once instance = "random")
    selects = panel.locator(".widget-dropdown select")
    for d in range(selects.count()):
        select = selects.nth(d)
        select.scroll_into_view_if_needed()
        original = select.input_value()
        options = select.evaluate("(s) => Array.from(s.options, o => o.value)")
        changed = False
        for value in [v for v in options if v != original]:
            ms = _change(page, panel, lambda s=select, v=value: s.select_option(value=v), deadline)
            kernel_check()
            changed = changed or ms is not None
            for h in list(inactive):
                fwd, back = keys[h]
                if move(handles.nth(h), fwd):
                    assert move(handles.nth(h), back), f"{where}: slider {h}: {back}"
                    inactive.remove(h)
                else:
                    handles.nth(h).press(back)
                    _wait_idle(page, deadline)
                    kernel_check()
            if changed and not inactive:
                break
        assert changed or len(options) < 2, f"{where}: dropdown {d} changed nothing"
        select.select_option(value=original)
        _wait_idle(page, deadline)
        kernel_check()
    assert not inactive, f"{where}: sliders {inactive} never changed the figure"
    return round_trips, kernel_ms, names


# -- the test -------------------------------------------------------------------------------------


def test_notebook_files_exist() -> None:
    assert NOTEBOOK_FILES, f"no notebooks NN_*.ipynb in {NOTEBOOKS}"
    unknown = set(NOTEBOOK_OVERRIDES) - set(NOTEBOOK_FILES)
    assert not unknown, f"NOTEBOOK_OVERRIDES names missing notebooks: {sorted(unknown)}"


@pytest.mark.parametrize("name", NOTEBOOK_FILES)
def test_notebook_in_jupyterlab(
    name: str, lab_server: Any, lab_page: Any, latency_log: Any, browser_artifacts: Path
) -> None:
    page = lab_page
    stem = Path(name).stem
    out_dir = browser_artifacts
    (out_dir / f"{stem}-failed.png").unlink(missing_ok=True)
    apply_overrides(lab_server.root_dir / name, NOTEBOOK_OVERRIDES.get(name, {}))
    t_start = time.monotonic()
    deadline = t_start + NOTEBOOK_TIMEOUT_S
    try:
        page.goto(lab_server.lab_url(name, workspace=re.sub(r"\W", "-", stem)))
        page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(timeout=120_000)
        _wait_state(page, deadline, "the kernel to start", lambda s: s["status"] == "idle")
        page.evaluate(_INSTALL_JS)
        page.evaluate("() => { window.jupyterapp.shell.collapseLeft(); }")  # room for the notebook
        t_run = time.monotonic()
        open_s = t_run - t_start
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        state = _wait_state(page, deadline, "all cells to run", _finished)
        run_s = time.monotonic() - t_run

        # 1. no errors, every cell executed
        errors = [(c["index"], e) for c in state["cells"] for e in c["errors"]]
        assert not errors, f"{name}: error output in cells: {errors}"
        not_run = [c["index"] for c in state["cells"] if c["count"] is None and not c["empty"]]
        assert not not_run, f"{name}: cells without execution count: {not_run}"

        # 2. every widget output rendered: a widget view in its output, no error text
        notebook = page.locator(".jp-NotebookPanel .jp-Notebook").first
        unrendered = page.evaluate(_UNRENDERED_JS, state["cells"])
        while unrendered and time.monotonic() < deadline:
            page.wait_for_timeout(250)  # widget views render asynchronously
            unrendered = page.evaluate(_UNRENDERED_JS, state["cells"])
        assert not unrendered, f"{name}: widget outputs not rendered: {unrendered}"
        panels = notebook.locator(".course-demo")
        info = page.evaluate(_PANELS_JS)
        while not all(_drawn(p) for p in info) and time.monotonic() < deadline:
            page.wait_for_timeout(250)  # FigureWidgets draw asynchronously
            info = page.evaluate(_PANELS_JS)
        text = "\n".join(notebook.locator(".jp-Cell-outputArea").all_inner_texts())
        for bad in ("Error displaying widget", "model not found", "Failed to load model class"):
            assert bad not in text, f"{name}: '{bad}' in the page"
        for p in info:
            if not _drawn(p):
                detail = page.evaluate(
                    "(i) => { const el = document.querySelectorAll('.course-demo')[i];"
                    " return el.outerHTML.slice(0, 3000); }",
                    p["index"],
                )
                pytest.fail(f"{name}: demo panel {p['index']} has no drawn figure: {p}\n{detail}")

        # 3. move every slider (and switch every dropdown): the panel's figure must change;
        #    time each slider move in the page, and read the kernel-side callback time
        t_moves = time.monotonic()
        kernel = {"before": _demo_times(page)}

        def kernel_ms_of_last_change() -> tuple[str, float] | None:
            """Wait for the kernel to be idle; (demo variable, callback ms) of the one demo
            whose update counter moved, or None when that is not unique."""
            _wait_idle(page, deadline)
            now = _demo_times(page)
            before, kernel["before"] = kernel["before"], now
            moved = [k for k, v in now.items() if v[0] > before.get(k, [0, 0.0])[0]]
            return (moved[0], 1e3 * now[moved[0]][1]) if len(moved) == 1 else None

        for p in info:
            panel = panels.nth(p["index"])
            where = f"{name}: panel {p['index']} ({p['title']!r})"
            round_trips, kernel_ms, names = _exercise_panel(
                page, panel, where, deadline, kernel_ms_of_last_change
            )
            demo_name = ", ".join(sorted(names))
            if round_trips:
                latency_log.add(
                    notebook=stem,
                    panel=p["index"],
                    demo=demo_name or p["title"] or f"panel{p['index']}",
                    title=p["title"],
                    sliders=p["sliders"],
                    moves=len(round_trips),
                    round_trip_ms_median=statistics.median(round_trips),
                    round_trip_ms_max=max(round_trips),
                    kernel_ms_median=statistics.median(kernel_ms) if kernel_ms else None,
                    notebook_run_s=run_s,
                )
        moves_s = time.monotonic() - t_moves
        n_sliders = sum(p["sliders"] for p in info)
        text = "\n".join(notebook.locator(".jp-Cell-outputArea").all_inner_texts())
        for bad in ("Error displaying widget", "model not found"):
            assert bad not in text, f"{name}: '{bad}' in the page after the slider moves"
        _screenshot(page, out_dir / f"{stem}.png")
        print(
            f"\n{name}: {len(info)} demo panels, {n_sliders} sliders; open {open_s:.1f} s, "
            f"run all {run_s:.1f} s, slider moves {moves_s:.1f} s, "
            f"total {time.monotonic() - t_start:.1f} s"
        )
    except BaseException:
        if page.console_errors:
            print(f"\n{name}: JavaScript console errors:\n  " + "\n  ".join(page.console_errors))
        try:
            _screenshot(page, out_dir / f"{stem}-failed.png")
        except Exception:  # noqa: BLE001 - the original failure matters, not the screenshot
            try:
                page.screenshot(path=str(out_dir / f"{stem}-failed.png"))
            except Exception:  # noqa: BLE001
                pass
        raise
    finally:
        try:  # free the kernel's CPU and memory for the next notebook
            page.evaluate(
                "async () => { const a = window.jupyterapp;"
                " const w = a && a.shell.currentWidget;"
                " if (w && w.sessionContext) await w.sessionContext.shutdown(); }"
            )
        except Exception:  # noqa: BLE001
            pass
