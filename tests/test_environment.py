"""environment.yml (conda) and pyproject.toml (pip) ask for the same packages and lower bounds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# conda-forge names that differ from the PyPI ones
CONDA_NAME = {"torch": "pytorch-cpu"}


def _req(spec: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    assert m, spec
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _environment_specs() -> dict[str, str]:
    specs: dict[str, str] = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"^\s+- (?!pip:)(.+)$", line)
        if m and not m.group(1).startswith("-e"):
            name, bound = _req(
                m.group(1).replace("=", "==", 1) if "python=" in line else m.group(1)
            )
            specs[name] = bound
    return specs


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in ("test", "browser"):
        wanted += project["optional-dependencies"][extra]
    env = _environment_specs()
    for spec in wanted:
        name, bound = _req(spec)
        conda = CONDA_NAME.get(name, name)
        assert conda in env, f"{conda} (from pyproject's {spec!r}) is missing in environment.yml"
        assert env[conda] == bound, (
            f"{conda}: environment.yml has {env[conda]!r}, pyproject {bound!r}"
        )
    assert env["python"] == "==3.11"
    assert "-e ." in (ROOT / "environment.yml").read_text()


def test_torch_is_pinned_to_the_cpu_build_where_make_installs():
    constraints = (ROOT / "constraints.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", constraints, re.M)
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()
