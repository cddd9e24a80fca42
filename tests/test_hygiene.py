"""Committed notebooks are clean, and the hygiene checker really catches violations."""

from __future__ import annotations

import copy

import nbformat
import pytest

from course_lib.notebooks import course_notebooks, hygiene_problems, read_parameters

NOTEBOOKS = course_notebooks()


def test_there_are_notebooks():
    assert any(p.name == "00_start_here.ipynb" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean(path):
    assert hygiene_problems(path) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_calls_setup_first(path):
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    params_idx = next(
        i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])
    )
    after = [c.source for c in nb.cells[params_idx + 1 :] if c.cell_type == "code"]
    assert after and "cl.setup(" in after[0], "the first code cell after the parameters calls setup"
    assert "seed" in read_parameters(nb)
    assert code


@pytest.fixture
def clean_nb(tmp_path):
    src = nbformat.read(NOTEBOOKS[0], as_version=4)
    return src, tmp_path


def _write(nb, tmp_path, name="01_bad.ipynb"):
    p = tmp_path / name
    nbformat.write(nb, p)
    return p


def test_checker_accepts_the_clean_notebook(clean_nb):
    nb, tmp = clean_nb
    assert hygiene_problems(_write(nb, tmp)) == []


def test_outputs_are_caught(clean_nb):
    nb, tmp = clean_nb
    bad = copy.deepcopy(nb)
    cell = next(c for c in bad.cells if c.cell_type == "code")
    cell.execution_count = 3
    cell.outputs = [nbformat.v4.new_output("stream", text="hi\n")]
    assert any("outputs" in p for p in hygiene_problems(_write(bad, tmp)))


def test_foreign_kernel_is_caught(clean_nb):
    nb, tmp = clean_nb
    bad = copy.deepcopy(nb)
    bad.metadata.kernelspec = {"name": "my-conda-env", "display_name": "x", "language": "python"}
    assert any("kernelspec" in p for p in hygiene_problems(_write(bad, tmp)))


def test_missing_or_double_parameters_cell_is_caught(clean_nb):
    nb, tmp = clean_nb
    none = copy.deepcopy(nb)
    for c in none.cells:
        c.metadata.pop("tags", None)
    assert any("exactly one" in p for p in hygiene_problems(_write(none, tmp)))
    two = copy.deepcopy(nb)
    for c in two.cells:
        if c.cell_type == "code":
            c.metadata["tags"] = ["parameters"]
    assert any("exactly one" in p for p in hygiene_problems(_write(two, tmp)))


def test_bad_name_title_and_parameters_are_caught(clean_nb):
    nb, tmp = clean_nb
    assert any("NN_topic" in p for p in hygiene_problems(_write(nb, tmp, "Untitled.ipynb")))
    bad = copy.deepcopy(nb)
    bad.cells[0].source = "Some text without a title"
    assert any("title" in p for p in hygiene_problems(_write(bad, tmp)))
    computed = copy.deepcopy(nb)
    cell = next(c for c in computed.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += "\nderived = seed * 2\n"
    assert any("literal" in p for p in hygiene_problems(_write(computed, tmp)))
