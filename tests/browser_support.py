"""What the browser tests share: the app served on a free port, and Debian's Chromium.

Screenshots go to ``docs/screenshots/`` only when ``COSMICS_SCREENSHOTS=docs`` is set,
so a plain test run leaves the documentation alone.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 900}
DOC_SCREENSHOTS = ROOT / "docs" / "screenshots"



def missing_browser_requirement() -> str | None:
    """What the browser tests lack on this machine (the skip or failure reason), or None."""
    if not CHROMIUM.exists():
        return f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "needs the playwright Python package (pip install -r requirements-dev.txt)"
    if shutil.which("streamlit") is None and not (Path(sys.executable).parent / "streamlit").exists():
        return "needs the streamlit command (pip install -r requirements.txt)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_app(home: Path, extra_env: dict[str, str] | None = None, startup_seconds: float = 90):
    """Run ``streamlit run app.py`` over the store in ``home``; yield its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "COSMICS_DB_URL"}
    env.update(COSMICS_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2", **(extra_env or {}))
    log_path = home.parent / f"streamlit-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + startup_seconds
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                        if reply.status == 200:
                            break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the app did not start:\n{log_path.read_text()[-2000:]}")
                time.sleep(0.5)
            yield url
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def chromium_browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def new_page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot_folder(tmp_path_factory) -> Path:
    folder = DOC_SCREENSHOTS if os.environ.get("COSMICS_SCREENSHOTS") == "docs" else tmp_path_factory.mktemp("shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
