"""The report's aggregate files: ``index.html``, ``summary.csv``, ``summary.json``.

``index.html`` is self-contained and works offline: it loads ``plotly.min.js`` from its own
folder, embeds the run data as JSON and draws, per notebook, a sortable table of runs
(parameters, status, duration, metrics with their meaning and unit as tooltips, links to each
run's page), a summary plot of any metric against any swept parameter (menus choose the metric,
the parameter and an optional colour-by parameter) and the first figure of one run. Every file is
written atomically (temporary file + rename), so a reader never sees half a report.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from ..core import _atomic_write_text
from .runner import write_plotly_js
from .sweep import Sweep

__all__ = ["write_report", "first_figure", "summary_rows"]

#: Figures larger than this (JSON characters) are not embedded as previews in index.html.
MAX_PREVIEW_CHARS = 2_000_000
_PLOTLY_MIME = "application/vnd.plotly.v1+json"


def first_figure(executed: str | Path) -> dict | None:
    """The first plotly figure (``{"data", "layout"}``) among an executed notebook's outputs."""
    try:
        nb = json.loads(Path(executed).read_text())
    except (OSError, ValueError):
        return None
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            fig = output.get("data", {}).get(_PLOTLY_MIME)
            if isinstance(fig, dict) and fig.get("data") is not None:
                return {"data": fig["data"], "layout": fig.get("layout", {})}
    return None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if v is None:
        return ""
    return str(v) if isinstance(v, (int, str)) else json.dumps(v)


def _sort_value(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, (int, float)):
        return repr(v)
    return str(v) if isinstance(v, str) else json.dumps(v)


def _groups(sweep: Sweep, records: Sequence[dict]) -> list[dict]:
    """Records grouped by notebook (sweep order), with runs that never finished as ``pending``."""
    by_key = {(r["notebook"], r["key"]): r for r in records}
    groups: dict[str, dict] = {}
    for spec in sweep.runs:
        g = groups.setdefault(
            spec.name, {"name": spec.name, "runs": [], "swept": sweep.swept.get(spec.name, [])}
        )
        rec = by_key.get((spec.name, spec.key)) or {
            "notebook": spec.name,
            "key": spec.key,
            "parameters": spec.parameters,
            "rel_dir": spec.run_dir(".").as_posix().removeprefix("./"),
            "status": "pending",
            "metrics": {},
            "html": None,
            "duration_s": None,
        }
        g["runs"].append(rec)
    for g in groups.values():
        params: list[str] = []
        metrics: dict[str, dict] = {}
        for r in g["runs"]:
            params += [p for p in r.get("parameters", {}) if p not in params]
            for m, info in (r.get("metrics") or {}).items():
                metrics.setdefault(
                    m, {"unit": info.get("unit", ""), "meaning": info.get("meaning", "")}
                )
        g["params"], g["metrics"] = params, metrics
    return list(groups.values())


def summary_rows(sweep: Sweep, records: Sequence[dict]) -> list[dict[str, Any]]:
    """One flat dict per run (notebook, run, status, duration, parameters, metrics) for the CSV."""
    rows = []
    for g in _groups(sweep, records):
        for r in g["runs"]:
            row: dict[str, Any] = {
                "notebook": r["notebook"],
                "run": r["rel_dir"],
                "status": r["status"],
                "duration_s": r.get("duration_s"),
                "reused": r.get("reused", False),
                "error": r.get("error") or "",
            }
            for p, v in r.get("parameters", {}).items():
                row[p] = v if isinstance(v, (int, float, str)) else json.dumps(v)
            for m, info in (r.get("metrics") or {}).items():
                row[m if m not in row else f"metric:{m}"] = info.get("value")
            rows.append(row)
    return rows


def _csv_text(rows: list[dict[str, Any]]) -> str:
    cols: list[str] = []
    for row in rows:
        cols += [c for c in row if c not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _metric_list(run: dict) -> str:
    """A single run's metrics as rows (name, value, unit, meaning): readable for many metrics."""
    rows = "".join(
        f'<tr><td data-v="{escape(m)}">{escape(m)}</td>'
        f'<td data-v="{escape(_sort_value(info.get("value")))}">{_fmt(info.get("value"))}</td>'
        f"<td>{escape(info.get('unit', ''))}</td>"
        f'<td class="err">{escape(info.get("meaning", ""))}</td></tr>'
        for m, info in (run.get("metrics") or {}).items()
    )
    if not rows:
        return ""
    return (
        '<div class="scroll"><table class="runs"><thead><tr><th>metric</th><th>value</th>'
        f"<th>unit</th><th>meaning</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _table(i: int, g: dict) -> str:
    """The sortable table of a notebook's runs; a single run lists its metrics below instead."""
    single = len(g["runs"]) == 1
    metric_cols = {} if single else g["metrics"]
    has_err = any(r.get("error") for r in g["runs"])
    head = ["<th>run</th>", "<th>status</th>", "<th>duration<br><span class=unit>s</span></th>"]
    head += [f'<th class="param">{escape(p)}</th>' for p in g["params"]]
    for m, info in metric_cols.items():
        tip = escape(f"{info['meaning']} [{info['unit']}]" if info["unit"] else info["meaning"])
        head.append(
            f'<th class="metric" title="{tip}">{escape(m)}'
            f"<br><span class=unit>{escape(info['unit'])}</span></th>"
        )
    if has_err:
        head.append("<th>error</th>")
    body = []
    for r in g["runs"]:
        label = r["rel_dir"].split("/", 1)[1] if "/" in r["rel_dir"] else "default parameters"
        link = escape(label)
        if r.get("html"):
            link = f'<a href="{escape(r["rel_dir"])}/{escape(r["html"])}">{link}</a>'
        if r.get("executed") and r["status"] not in ("pending",):
            link += (
                f' <a class="nb" href="{escape(r["rel_dir"])}/{escape(r["executed"])}">ipynb</a>'
            )
        st = r["status"] + (" (reused)" if r.get("reused") else "")
        dur = r.get("duration_s")
        cells = [
            f'<td data-v="{escape(label)}">{link}</td>',
            f'<td class="st {escape(r["status"])}" data-v="{escape(st)}">{escape(st)}</td>',
            f'<td data-v="{_sort_value(dur)}">{_fmt(dur)}</td>',
        ]
        params = r.get("parameters", {})
        for p in g["params"]:
            v = params.get(p)
            cells.append(f'<td data-v="{escape(_sort_value(v))}">{escape(_fmt(v))}</td>')
        metrics = r.get("metrics") or {}
        for m in metric_cols:
            v = metrics.get(m, {}).get("value")
            tip = escape(metrics.get(m, {}).get("meaning", ""))
            cells.append(f'<td data-v="{escape(_sort_value(v))}" title="{tip}">{_fmt(v)}</td>')
        if has_err:
            err = r.get("error") or ""
            tb = "\n".join(r.get("traceback") or [])
            cell = escape(err)
            if tb:
                cell += f"<details><summary>traceback</summary><pre>{escape(tb)}</pre></details>"
            cells.append(f'<td class="err" data-v="{escape(err)}">{cell}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table class="runs" id="runs-{i}"><thead><tr>{"".join(head)}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table></div>"
        + (_metric_list(g["runs"][0]) if single else "")
    )


def _plot_data(g: dict) -> dict | None:
    ok = [r for r in g["runs"] if r["status"] == "ok"]
    if not g["swept"] or not g["metrics"] or len(ok) < 2:
        return None
    rows = [
        {
            "run": r["rel_dir"],
            "params": r.get("parameters", {}),
            "metrics": {m: v.get("value") for m, v in (r.get("metrics") or {}).items()},
        }
        for r in ok
    ]
    logs = {}
    for p in g["swept"]:
        vals = [r["params"].get(p) for r in rows]
        nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        logs[p] = bool(nums) and min(nums) > 0 and max(nums) / min(nums) >= 20
    # metrics that vary across runs first: the menu's first entry is the one drawn on load
    varying = [m for m in g["metrics"] if len({repr(r["metrics"].get(m)) for r in rows}) > 1]
    order = varying + [m for m in g["metrics"] if m not in varying]
    metrics = {m: g["metrics"][m] for m in order}
    return {"swept": g["swept"], "metrics": metrics, "rows": rows, "log": logs}


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1400px;
padding:0 1em;color:#222}
h1{margin-bottom:.2em}.meta{color:#555}section{margin-top:2em;border-top:1px solid #ddd}
table.runs{border-collapse:collapse;font-size:13px;margin:.8em 0}
table.runs th,table.runs td{border:1px solid #ddd;padding:3px 7px;text-align:right;
vertical-align:top}
table.runs td:first-child,table.runs th:first-child,table.runs td.err{text-align:left}
table.runs th{background:#f3f5f8;cursor:pointer;user-select:none;position:sticky;top:0}
table.runs th[data-dir=asc]::after{content:" ▲"}table.runs th[data-dir=desc]::after{content:" ▼"}
th.metric{background:#eef6ee}.unit{font-weight:normal;color:#777;font-size:11px}
td.st.ok{color:#1a7f37}td.st.failed,td.st.timeout{color:#c62828;font-weight:bold}
td.st.pending{color:#888}td.err{max-width:420px;font-size:12px}
td.err pre{white-space:pre-wrap;font-size:11px;background:#fafafa}
a.nb{font-size:11px;color:#777}.ctl{margin:.5em 0;font-size:14px}.ctl select{margin-right:1em}
.plot{width:100%;max-width:900px;height:420px}.scroll{overflow-x:auto;max-width:100%}
"""

_JS = """
const D = JSON.parse(document.getElementById('report-data').textContent);
function sortBy(th) {
  const table = th.closest('table'), idx = [...th.parentNode.children].indexOf(th);
  const dir = th.dataset.dir === 'asc' ? 'desc' : 'asc';
  table.querySelectorAll('th').forEach(h => delete h.dataset.dir);
  th.dataset.dir = dir;
  const tbody = table.tBodies[0], rows = [...tbody.rows], sign = dir === 'asc' ? 1 : -1;
  const key = r => r.cells[idx].dataset.v ?? r.cells[idx].textContent;
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === '' || y === '') return (x === '') - (y === '');
    const nx = Number(x), ny = Number(y);
    if (!isNaN(nx) && !isNaN(ny)) return sign * (nx - ny);
    return sign * x.localeCompare(y, undefined, {numeric: true});
  });
  rows.forEach(r => tbody.appendChild(r));
}
document.querySelectorAll('table.runs th')
  .forEach(th => th.addEventListener('click', () => sortBy(th)));
function draw(i) {
  const g = D.groups[i].plot, v = id => document.getElementById(id + '-' + i);
  const y = v('y').value, x = v('x').value, c = v('c').value;
  const series = new Map();
  for (const r of g.rows) {
    if (r.metrics[y] === undefined || r.params[x] === undefined) continue;
    const k = c ? c + ' = ' + JSON.stringify(r.params[c]) : y;
    if (!series.has(k)) series.set(k, []);
    series.get(k).push(r);
  }
  const traces = [];
  for (const [name, rs] of series) {
    rs.sort((a, b) => (a.params[x] > b.params[x]) - (a.params[x] < b.params[x]));
    traces.push({x: rs.map(r => r.params[x]), y: rs.map(r => r.metrics[y]), name: name,
      mode: 'lines+markers', type: 'scatter', text: rs.map(r => r.run),
      hovertemplate: x + ' = %{x}<br>' + y + ' = %{y}<br>%{text}<extra>%{fullData.name}</extra>'});
  }
  const m = g.metrics[y] || {};
  Plotly.react('plot-' + i, traces, {
    title: {text: y + ' vs ' + x, x: 0.02}, template: 'plotly_white',
    xaxis: {title: {text: x}, type: v('lx').checked ? 'log' : '-'},
    yaxis: {title: {text: y + (m.unit ? ' [' + m.unit + ']' : '')},
            type: v('ly').checked ? 'log' : '-'},
    margin: {l: 70, r: 20, t: 50, b: 50}, showlegend: traces.length > 1}, {responsive: true});
}
D.groups.forEach((g, i) => {
  if (g.preview) Plotly.newPlot('prev-' + i, g.preview.data,
      Object.assign({}, g.preview.layout, {autosize: true}), {responsive: true});
  if (!g.plot) return;
  ['y', 'x', 'c', 'lx', 'ly'].forEach(id => document.getElementById(id + '-' + i)
      .addEventListener('change', () => {
        if (id === 'x') document.getElementById('lx-' + i).checked = !!g.plot.log[
            document.getElementById('x-' + i).value];
        draw(i);
      }));
  draw(i);
});
"""


def _options(values: Sequence[str], selected: str | None = None, none: bool = False) -> str:
    opts = ['<option value="">(none)</option>'] if none else []
    opts += [
        f'<option value="{escape(v)}"{" selected" if v == selected else ""}>{escape(v)}</option>'
        for v in values
    ]
    return "".join(opts)


def _section(i: int, g: dict, plot: dict | None, preview: dict | None) -> str:
    counts = {s: sum(r["status"] == s for r in g["runs"]) for s in ("ok", "failed", "timeout")}
    parts = [
        f'<section id="nb-{escape(g["name"])}"><h2>{escape(g["name"])}</h2>',
        f'<p class="meta">{len(g["runs"])} run(s): {counts["ok"]} ok, {counts["failed"]} failed, '
        f"{counts['timeout']} timed out"
        + (f" · swept: {escape(', '.join(g['swept']))}" if g["swept"] else "")
        + "</p>",
    ]
    if plot is not None:
        x0 = plot["swept"][0]
        other = [p for p in plot["swept"] if p != x0]
        parts.append(
            f'<div class="ctl">metric <select id="y-{i}">{_options(list(plot["metrics"]))}</select>'
            f'against <select id="x-{i}">{_options(plot["swept"], x0)}</select>'
            f'colour by <select id="c-{i}">'
            f"{_options(plot['swept'], other[0] if other else None, none=True)}</select>"
            f'<label><input type="checkbox" id="lx-{i}"{" checked" if plot["log"][x0] else ""}>'
            f' log x</label> <label><input type="checkbox" id="ly-{i}"> log y</label></div>'
            f'<div class="plot" id="plot-{i}"></div>'
        )
    if preview is not None:
        parts.append(
            f"<details open><summary>first figure of run <code>{escape(preview['run'])}</code>"
            f'</summary><div class="plot" id="prev-{i}"></div></details>'
        )
    parts.append(_table(i, g))
    parts.append("</section>")
    return "\n".join(parts)


def write_report(sweep: Sweep, records: Sequence[dict], out: str | Path) -> Path:
    """Write ``index.html``, ``summary.csv``, ``summary.json`` and ``plotly.min.js`` into ``out``.

    ``records`` are the run records (``run.json`` contents); runs of ``sweep`` without a record
    are listed as ``pending``. Returns the path of ``index.html``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    groups = _groups(sweep, records)
    runs = [r for g in groups for r in g["runs"]]
    counts = {
        s: sum(r["status"] == s for r in runs) for s in ("ok", "failed", "timeout", "pending")
    }
    created = datetime.now(UTC).isoformat(timespec="seconds")
    total = sum(r.get("duration_s") or 0.0 for r in runs if not r.get("reused"))
    summary = {
        "title": sweep.title,
        "description": sweep.description,
        "source": sweep.source,
        "created": created,
        "counts": counts,
        "swept": sweep.swept,
        "metrics": {g["name"]: g["metrics"] for g in groups},
        "runs": runs,
    }
    _atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    _atomic_write_text(out / "summary.csv", _csv_text(summary_rows(sweep, records)))
    write_plotly_js(out)

    data_groups, sections = [], []
    for i, g in enumerate(groups):
        plot = _plot_data(g)
        preview = None
        for r in g["runs"]:
            if r["status"] == "ok" and r.get("executed"):
                fig = first_figure(out / r["rel_dir"] / r["executed"])
                if fig is not None and len(json.dumps(fig)) <= MAX_PREVIEW_CHARS:
                    preview = {**fig, "run": r["rel_dir"]}
                    break
        data_groups.append({"name": g["name"], "plot": plot, "preview": preview})
        sections.append(_section(i, g, plot, preview))
    payload = json.dumps({"groups": data_groups}, allow_nan=True, default=str)
    payload = payload.replace("</", "<\\/")
    failed = counts["failed"] + counts["timeout"]
    meta = (
        f"{len(runs)} run(s): {counts['ok']} ok, {failed} failed or timed out"
        + (f", {counts['pending']} not run" if counts["pending"] else "")
        + f" · summed run time {total:.1f} s · written {created} · "
        '<a href="summary.csv">summary.csv</a> · <a href="summary.json">summary.json</a>'
    )
    desc = f"<p>{escape(sweep.description)}</p>" if sweep.description else ""
    nav = " · ".join(f'<a href="#nb-{escape(g["name"])}">{escape(g["name"])}</a>' for g in groups)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(sweep.title)}</title><style>{_CSS}</style>
<script src="plotly.min.js"></script></head>
<body><h1>{escape(sweep.title)}</h1>{desc}<p class="meta">{meta}</p>
<p class="meta">Notebooks: {nav}</p>
<p class="meta">Click a column header to sort; hover over a metric for its meaning.</p>
{"".join(sections)}
<script type="application/json" id="report-data">{payload}</script>
<script>{_JS}</script>
</body></html>
"""
    index = out / "index.html"
    _atomic_write_text(index, page)
    return index
