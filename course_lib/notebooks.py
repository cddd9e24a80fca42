"""Reading the course notebooks: the ``parameters`` cell and the hygiene rules.

The rules every committed notebook follows (checked by ``tests/test_hygiene.py``):

* file name ``NN_topic.ipynb``; kernelspec ``python3``;
* no outputs and no execution counts (executed copies are build artefacts);
* exactly one code cell tagged ``parameters``, holding only plain assignments of literals;
* the first cell is markdown with a ``# `` title and a ``Learning goals`` list.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import Any

import nbformat

__all__ = ["NAME_RE", "course_notebooks", "parameters_cell", "read_parameters", "hygiene_problems"]

NAME_RE = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")
NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def course_notebooks(folder: str | os.PathLike[str] | None = None) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` of ``folder`` (default: the course's), sorted."""
    root = Path(folder) if folder is not None else NOTEBOOK_DIR
    return sorted(p for p in root.glob("*.ipynb") if NAME_RE.match(p.name))


def _load(nb: Any) -> nbformat.NotebookNode:
    if isinstance(nb, (str, os.PathLike)):
        return nbformat.read(os.fspath(nb), as_version=4)
    return nb


def parameters_cell(nb: Any) -> nbformat.NotebookNode:
    """The single code cell tagged ``parameters``; ``ValueError`` if there is not exactly one."""
    nb = _load(nb)
    cells = [
        c
        for c in nb.cells
        if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    if len(cells) != 1:
        raise ValueError(
            f"a notebook needs exactly one cell tagged 'parameters', found {len(cells)}"
        )
    return cells[0]


def read_parameters(nb: Any) -> dict[str, Any]:
    """The default parameters: ``name -> value`` from the ``parameters`` cell.

    Only plain assignments of literals (numbers, strings, booleans, None, lists/tuples/dicts of
    them) are allowed; anything else raises ``ValueError`` naming the offending line.
    """
    source = parameters_cell(nb).source
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"parameters cell is not valid Python: {exc}") from exc
    params: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            raise ValueError(
                f"parameters cell line {node.lineno}: only single plain assignments are allowed"
            )
        if not isinstance(target, ast.Name):
            raise ValueError(f"parameters cell line {node.lineno}: assign to a plain name")
        try:
            params[target.id] = ast.literal_eval(value)
        except ValueError as exc:
            raise ValueError(
                f"parameters cell line {node.lineno}: {target.id} must be a literal value"
            ) from exc
    return params


def hygiene_problems(path: str | os.PathLike[str]) -> list[str]:
    """Every rule (see module docstring) that the notebook at ``path`` breaks; empty if clean."""
    path = Path(path)
    problems: list[str] = []
    if not NAME_RE.match(path.name):
        problems.append(f"name {path.name!r} is not of the form NN_topic.ipynb")
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # any parse/validation failure is a hygiene problem
        return [*problems, f"not a valid notebook: {exc}"]
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"kernelspec is {kernel!r}, must be 'python3'")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(f"cell {i} has outputs or an execution count (commit notebooks clean)")
    try:
        read_parameters(nb)
    except ValueError as exc:
        problems.append(str(exc))
    first = nb.cells[0] if nb.cells else None
    if first is None or first.cell_type != "markdown" or not first.source.lstrip().startswith("# "):
        problems.append("the first cell must be markdown starting with a '# ' title")
    elif "learning goals" not in first.source.lower():
        problems.append("the first cell must list the learning goals")
    return problems
