"""Sweep files: parse a TOML description, validate it against each notebook, expand the grid.

A sweep file names notebooks and parameter grids::

    title = "Matrix sensing: init scale × rank"
    timeout = 600                      # optional: seconds per run

    [[sweep]]
    notebook = "../01_matrix_sensing.ipynb"   # relative to the sweep file
    parameters = { steps = 2000 }             # optional: fixed overrides
    [sweep.grid]                              # every combination is one run
    alpha = { logspace = [1e-4, 1e-1, 4] }    # 4 values, geometric, ends included
    rank = [1, 2, 3]                          # an explicit list
    seed = { range = [0, 3] }                 # Python range: 0, 1, 2

Grid entries are a list, a single value, ``{range = [start, stop(, step)]}`` (integers, stop
excluded), ``{linspace = [start, stop, num]}``, ``{logspace = [start, stop, num]}`` (the values
themselves, not exponents; both ends included) or ``{values = [...]}`` (needed when the parameter
itself is a list). Every name must be an assignment of the notebook's cell tagged ``parameters``
(read with :mod:`ast`, nothing is executed) and every value must have the type of its default
(an int is accepted for a float parameter; a default of ``None`` accepts anything). All errors
of a file are reported together, before anything runs, as one :class:`SweepError`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import numpy as np

from ..notebooks import course_notebooks, read_parameters

__all__ = [
    "SweepError",
    "RunSpec",
    "Sweep",
    "notebook_parameters",
    "expand_grid",
    "grid_values",
    "load_sweep",
    "default_sweep",
    "notebook_sweep",
    "run_key",
]

#: Refuse grids larger than this (a typo such as ``logspace = [1e-4, 1, 4000]``).
MAX_RUNS = 10_000
_TOP_KEYS = {"title", "description", "timeout", "sweep"}
_SECTION_KEYS = {"notebook", "grid", "parameters"}
_GRID_FORMS = ("range", "linspace", "logspace", "values")


class SweepError(ValueError):
    """A sweep file (or a notebook it names) is invalid; the message lists every problem."""

    def __init__(self, problems: list[str] | str, source: str = "sweep"):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid {source}:\n{lines}")


@dataclass(frozen=True)
class RunSpec:
    """One notebook run: which notebook, which parameter overrides, where its folder is."""

    notebook: str  #: absolute path of the source notebook
    parameters: dict[str, Any]  #: overrides injected by papermill (empty: the defaults)
    key: str  #: stable hash of notebook name + parameters
    slug: str  #: folder name of the run inside ``<out>/<notebook stem>/`` ("" = the folder itself)

    @property
    def name(self) -> str:
        """The notebook's stem, e.g. ``01_matrix_sensing``."""
        return Path(self.notebook).stem

    def run_dir(self, out: str | Path) -> Path:
        """``<out>/<stem>`` for a default run, ``<out>/<stem>/<slug>`` for a sweep run."""
        base = Path(out) / self.name
        return base / self.slug if self.slug else base


@dataclass
class Sweep:
    """A validated sweep: a title, the runs in order, the swept parameter names per notebook."""

    title: str
    runs: list[RunSpec]
    swept: dict[str, list[str]] = field(default_factory=dict)  #: notebook stem -> grid names
    timeout: float | None = None
    description: str = ""
    source: str = ""  #: the sweep file, if any


# --------------------------------------------------------------------------------------------
# notebook parameters


def notebook_parameters(path: str | Path) -> dict[str, Any]:
    """The assignments of a notebook's ``parameters`` cell as ``{name: default value}``.

    Read with :func:`course_lib.notebooks.read_parameters` (:mod:`ast`, nothing is executed).
    Raises :class:`SweepError` if the notebook cannot be read, has no or several cells tagged
    ``parameters``, or the cell holds something other than assignments of literals.
    """
    p = Path(path)
    try:
        nb = nbformat.read(p, as_version=4)
    except FileNotFoundError:
        raise SweepError(f"notebook {str(p)!r} does not exist", "notebook") from None
    except Exception as exc:  # a broken JSON file, a wrong format version, ...
        raise SweepError(f"cannot read notebook {str(p)!r}: {exc}", "notebook") from None
    try:
        return read_parameters(nb)
    except ValueError as exc:
        raise SweepError(f"{p.name}: {exc}", "notebook") from None


def _type_name(v: Any) -> str:
    return type(v).__name__


def _coerce(name: str, value: Any, default: Any) -> Any:
    """``value`` converted to the type of ``default``; ``ValueError`` naming ``name`` if not."""
    if default is None:
        return value
    ok: bool
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
        if ok:
            value = type(default)(value)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ValueError(
            f"parameter {name!r} must be of type {_type_name(default)} like its default "
            f"{default!r}, got {value!r} ({_type_name(value)})"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"parameter {name!r} must be finite, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------
# grids


def _canon(x: float) -> float:
    """Round away float noise (``np.geomspace`` gives 0.0010000000000000002) for stable keys."""
    return float(f"{x:.12g}")


def grid_values(name: str, spec: Any) -> list[Any]:
    """The list of values one grid entry stands for (see the module docstring for the forms)."""
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"grid.{name} is an empty list")
        return list(spec)
    if not isinstance(spec, dict):
        return [spec]
    if len(spec) != 1 or next(iter(spec)) not in _GRID_FORMS:
        raise ValueError(
            f"grid.{name} must be a list, a value, or a table with exactly one of "
            f"{', '.join(_GRID_FORMS)}; got {spec!r}"
        )
    form, args = next(iter(spec.items()))
    if form == "values":
        if not isinstance(args, list) or not args:
            raise ValueError(f"grid.{name}.values must be a non-empty list, got {args!r}")
        return list(args)
    if not isinstance(args, list) or any(
        isinstance(a, bool) or not isinstance(a, (int, float)) for a in args
    ):
        raise ValueError(f"grid.{name}.{form} must be a list of numbers, got {args!r}")
    if form == "range":
        if not 2 <= len(args) <= 3 or not all(isinstance(a, int) for a in args):
            raise ValueError(
                f"grid.{name}.range must be [start, stop] or [start, stop, step] of integers "
                f"(use linspace for floats), got {args!r}"
            )
        values: list[Any] = list(range(*args))
        if not values:
            raise ValueError(f"grid.{name}.range {args!r} is empty")
        return values
    if len(args) != 3 or not isinstance(args[2], int) or args[2] < 1:
        raise ValueError(
            f"grid.{name}.{form} must be [start, stop, num] with an integer num >= 1, got {args!r}"
        )
    start, stop, num = float(args[0]), float(args[1]), args[2]
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise ValueError(f"grid.{name}.{form} ends must be finite, got {args!r}")
    if form == "logspace":
        if start <= 0 or stop <= 0:
            raise ValueError(
                f"grid.{name}.logspace ends must be > 0 (they are values, not exponents), "
                f"got {args!r}"
            )
        arr = np.geomspace(start, stop, num)
    else:
        arr = np.linspace(start, stop, num)
    return [_canon(float(v)) for v in arr]


def expand_grid(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's value lists (the first name varies slowest)."""
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


# --------------------------------------------------------------------------------------------
# run keys and folder names


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def run_key(notebook_name: str, parameters: dict[str, Any]) -> str:
    """A stable 10-hex-digit hash of the notebook's name and its (sorted) parameter overrides."""
    blob = json.dumps(
        {"notebook": notebook_name, "parameters": _jsonable(parameters)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def _fmt(v: Any) -> str:
    """Short text of a parameter value for folder names: 0.001, 2+3 (a list), a string as is."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "+".join(_fmt(x) for x in v)
    if isinstance(v, str | int | bool):
        return str(v)
    return json.dumps(_jsonable(v), separators=(",", ":"))


def _slug(parameters: dict[str, Any], key: str) -> str:
    if not parameters:
        return ""
    text = "_".join(f"{k}={_fmt(v)}" for k, v in parameters.items())
    text = re.sub(r"[^A-Za-z0-9_.=+-]+", "-", text).strip("-")[:80]
    return f"{text}-{key[:6]}"


def _make_spec(notebook: Path, parameters: dict[str, Any]) -> RunSpec:
    key = run_key(notebook.stem, parameters)
    return RunSpec(str(notebook.resolve()), dict(parameters), key, _slug(parameters, key))


# --------------------------------------------------------------------------------------------
# loading


def load_sweep(path: str | Path, *, notebook_dir: str | Path | None = None) -> Sweep:
    """Read, validate and expand a TOML sweep file (see the module docstring).

    Notebook paths are resolved relative to the sweep file (then to ``notebook_dir`` if given).
    Raises :class:`SweepError` listing every problem found; nothing is executed.
    """
    path = Path(path)
    src = f"sweep file {str(path)!r}"
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SweepError(f"{src} does not exist", "sweep file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"TOML syntax error: {exc}", src) from None
    problems: list[str] = []
    for k in sorted(set(data) - _TOP_KEYS):
        problems.append(f"unknown top-level key {k!r} (allowed: {', '.join(sorted(_TOP_KEYS))})")
    title = data.get("title", path.stem)
    description = data.get("description", "")
    if not isinstance(title, str) or not isinstance(description, str):
        problems.append("title and description must be strings")
        title, description = str(title), str(description)
    timeout = data.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        problems.append(f"timeout must be a positive number of seconds, got {timeout!r}")
        timeout = None
    sections = data.get("sweep")
    if not isinstance(sections, list) or not sections:
        problems.append("no [[sweep]] sections: add at least one with a 'notebook' key")
        sections = []

    runs: list[RunSpec] = []
    swept: dict[str, list[str]] = {}
    for i, sec in enumerate(sections, 1):
        where = f"[[sweep]] #{i}"
        if not isinstance(sec, dict):
            problems.append(f"{where} must be a table")
            continue
        for k in sorted(set(sec) - _SECTION_KEYS):
            problems.append(f"{where}: unknown key {k!r} (allowed: notebook, grid, parameters)")
        nb_rel = sec.get("notebook")
        if not isinstance(nb_rel, str):
            problems.append(f"{where}: 'notebook' (a path relative to the sweep file) is required")
            continue
        nb = path.parent / nb_rel
        if not nb.exists() and notebook_dir is not None:
            nb = Path(notebook_dir) / nb_rel
        where = f"{where} ({Path(nb_rel).name})"
        try:
            defaults = notebook_parameters(nb)
        except SweepError as exc:
            problems.extend(f"{where}: {p}" for p in exc.problems)
            continue
        grid_spec, fixed = sec.get("grid", {}), sec.get("parameters", {})
        if not isinstance(grid_spec, dict) or not isinstance(fixed, dict):
            problems.append(f"{where}: 'grid' and 'parameters' must be tables")
            continue
        both = sorted(set(grid_spec) & set(fixed))
        if both:
            problems.append(f"{where}: {', '.join(both)} both in grid and in parameters")
        grid = _checked(grid_spec, "grid", _grid_coerced, defaults, where, problems)
        fixed_ok = _checked(fixed, "parameters", _coerce, defaults, where, problems)
        n = math.prod(len(v) for v in grid.values())
        if n > MAX_RUNS:
            problems.append(f"{where}: the grid has {n} combinations (limit {MAX_RUNS})")
            continue
        swept.setdefault(nb.stem, [])
        swept[nb.stem] += [g for g in grid if len(grid[g]) > 1 and g not in swept[nb.stem]]
        for combo in expand_grid(grid):
            runs.append(_make_spec(nb, {**fixed_ok, **combo}))
    if problems:
        raise SweepError(problems, src)
    return Sweep(
        title=title,
        runs=_dedupe(runs),
        swept=swept,
        timeout=None if timeout is None else float(timeout),
        description=description,
        source=str(path),
    )


def _grid_coerced(name: str, spec: Any, default: Any) -> list[Any]:
    return [_coerce(name, v, default) for v in grid_values(name, spec)]


def _checked(
    table: dict[str, Any],
    kind: str,
    convert: Any,
    defaults: dict[str, Any],
    where: str,
    problems: list[str],
) -> dict[str, Any]:
    """``convert(name, value, default)`` for each known name of ``table``; problems appended."""
    known = ", ".join(defaults) or "(none)"
    ok: dict[str, Any] = {}
    for name, spec in table.items():
        if name not in defaults:
            problems.append(
                f"{where}: unknown parameter {name!r} in {kind}; "
                f"the notebook's parameters cell defines: {known}"
            )
            continue
        try:
            ok[name] = convert(name, spec, defaults[name])
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    return ok


def _dedupe(runs: list[RunSpec]) -> list[RunSpec]:
    seen: set[tuple[str, str]] = set()
    out = []
    for r in runs:
        if (r.notebook, r.key) not in seen:
            seen.add((r.notebook, r.key))
            out.append(r)
    return out


def notebook_sweep(notebooks: list[str | Path], title: str = "Course report") -> Sweep:
    """Each notebook once with its default parameters (checks each has a parameters cell)."""
    problems: list[str] = []
    runs = []
    for nb in notebooks:
        try:
            notebook_parameters(nb)
        except SweepError as exc:
            problems.extend(exc.problems)
            continue
        runs.append(_make_spec(Path(nb), {}))
    if problems:
        raise SweepError(problems, "notebooks")
    return Sweep(title=title, runs=_dedupe(runs), swept={r.name: [] for r in runs})


def default_sweep(notebook_dir: str | Path) -> Sweep:
    """The default course report: every ``NN_*.ipynb`` of ``notebook_dir`` with its defaults."""
    notebooks = course_notebooks(notebook_dir)
    if not notebooks:
        raise SweepError(f"no NN_*.ipynb notebooks in {str(notebook_dir)!r}", "course report")
    return notebook_sweep(notebooks)
