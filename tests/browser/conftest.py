"""Fixtures of the browser tests: one JupyterLab server and one headless Chromium per session.

* ``lab_server``: ``jupyter lab`` on 127.0.0.1, a random token, a free port, serving a temporary
  copy of ``notebooks/`` (JupyterLab autosaves, so the committed notebooks are never touched).
  Its settings, workspaces, runtime and config folders are temporary too; notebook windowing is
  off (every cell stays in the page), news/update checks and the extension manager are off, and
  the app object is exposed as ``window.jupyterapp`` so tests can run commands and query the
  kernel. The kernel environment gets ``OMP_NUM_THREADS=1`` and a temporary
  ``COURSE_LIB_METRICS``. The server is stopped by its own pid (terminate, wait, kill).
* ``lab_browser``: Debian's Chromium (``/usr/bin/chromium``, or ``$CHROMIUM``) driven by
  Playwright for Python, headless, with the flags needed as root. A missing browser skips
  locally and fails under ``CI=true`` (``tests/conftest.py:require``).
* ``latency_log``: per-demo slider round trips collected by the tests, written at the end of
  the session to ``<artifacts>/latency.json``.

Artifacts (screenshots, ``latency.json``, the server log) go to ``test-artifacts/browser/`` at
the repository root, or to ``$COURSE_BROWSER_ARTIFACTS``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, require

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
INSTALL_HINT = "install it with `apt-get install -y chromium` (Debian package, /usr/bin/chromium)"
SERVER_START_TIMEOUT_S = 120.0

#: JupyterLab user settings for the tests (plugin id -> settings).
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    # JupyterLab >= 4.2 virtualizes notebooks: off-screen cells would be missing from the page.
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
    # No news feed, no update check, no "would you like news?" toast: no network, no popups.
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
    # The extension manager would query PyPI.
    "@jupyterlab/extensionmanager-extension:plugin": {"enabled": False},
}


def artifacts_dir() -> Path:
    """Where screenshots and ``latency.json`` go (created on demand)."""
    path = Path(os.environ.get("COURSE_BROWSER_ARTIFACTS") or ROOT / "test-artifacts" / "browser")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_settings(settings_dir: Path) -> None:
    """User settings files ``<dir>/<package>/<plugin>.jupyterlab-settings``."""
    for plugin_id, values in LAB_SETTINGS.items():
        package, plugin = plugin_id.split(":")
        path = settings_dir / package / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))


@dataclass
class LabServer:
    """A running JupyterLab server."""

    url: str
    token: str
    root_dir: Path
    proc: subprocess.Popen
    log_path: Path
    metrics_path: Path

    def lab_url(self, notebook: str, workspace: str) -> str:
        """URL that opens ``notebook`` in a fresh workspace (no restored layout)."""
        return f"{self.url}/lab/workspaces/{workspace}/tree/{notebook}?token={self.token}"

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        """Terminate the server by its own pid; kill it if it does not exit in 20 s."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_lab_server(base: Path) -> LabServer:
    """Copy the notebooks into ``base`` and start JupyterLab on it; wait until it answers."""
    root_dir = base / "notebooks"
    shutil.copytree(NOTEBOOKS, root_dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings_dir = base / "lab-settings"
    _write_settings(settings_dir)
    for sub in ("workspaces", "runtime", "config", "data", "ipython"):
        (base / sub).mkdir()
    token = secrets.token_hex(16)
    port = _free_port()
    metrics = base / "metrics.json"
    env = {
        **os.environ,
        "COURSE_LIB_METRICS": str(metrics),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "IPYTHONDIR": str(base / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    env.pop("COURSE_LIB_STATIC", None)  # live widgets, not static snapshots
    # The kernels must not believe they run under pytest: with PYTEST_CURRENT_TEST set, ipykernel
    # skips its output redirection and the FigureWidgets of the panels were drawn without data.
    for key in [k for k in env if k.startswith("PYTEST_")]:
        del env[key]
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.terminals_enabled=False",
        f"--LabApp.user_settings_dir={settings_dir}",
        f"--LabApp.workspaces_dir={base / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    log_path = base / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    server = LabServer(f"http://127.0.0.1:{port}", token, root_dir, proc, log_path, metrics)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    status_url = f"{server.url}/api/status?token={token}"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(status_url, timeout=2) as resp:
                if resp.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"jupyter lab did not answer in time:\n{server.log_tail()}")
        time.sleep(0.25)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    require(shutil.which(CHROMIUM) is not None, f"no Chromium at {CHROMIUM}: {INSTALL_HINT}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require(False, "Playwright for Python is missing: pip install -e '.[browser]'")
    return CHROMIUM


@pytest.fixture(scope="session")
def lab_server(chromium_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    server = start_lab_server(tmp_path_factory.mktemp("jupyterlab"))
    try:
        yield server
    finally:
        server.stop()
        shutil.copy(server.log_path, artifacts_dir() / "server.log")


@pytest.fixture(scope="session")
def lab_browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def lab_page(lab_browser: Any) -> Iterator[Any]:
    """A fresh browser context and page (own cookies and storage) for one notebook."""
    context = lab_browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.console_errors = []  # JavaScript errors, shown in failure messages
    page.on(
        "console",
        lambda msg: page.console_errors.append(msg.text[:500]) if msg.type == "error" else None,
    )
    page.on("pageerror", lambda exc: page.console_errors.append(f"pageerror: {exc}"[:500]))
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="session")
def browser_artifacts() -> Path:
    """The folder for screenshots and ``latency.json``."""
    return artifacts_dir()


@dataclass
class LatencyLog:
    """Slider round trips per demo, written to ``latency.json`` at the end of the session."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        self.rows.append(row)


@pytest.fixture(scope="session")
def latency_log() -> Iterator[LatencyLog]:
    log = LatencyLog()
    yield log
    if log.rows:
        path = artifacts_dir() / "latency.json"
        path.write_text(json.dumps(log.rows, indent=2) + "\n")
