"""What the browser tests share: the app served on a free port over a fresh store (the ``server``
and ``store`` fixtures, :func:`app_fixtures`), Debian's Chromium, and waiting on the app's state.

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


def app_fixtures(name: str, extra_env: dict[str, str] | None = None):
    """A browser test module's ``server`` and ``store`` fixtures:
    ``server, store = app_fixtures("browser-loop", DEMO)``.

    ``server`` (module scope): the app on a free port over a fresh store in a folder named after
    ``name``, with ``extra_env`` (e.g. the demo dataset's size); yields (base URL, COSMICS_HOME).
    ``store``: the ``db`` module opened on that store in the test's own process.
    """

    @pytest.fixture(scope="module", name="server")
    def server(tmp_path_factory):
        home = tmp_path_factory.mktemp(name) / "home"
        with serve_app(home, extra_env) as url:
            yield url, home

    @pytest.fixture(name="store")
    def store(server, monkeypatch):
        import db

        monkeypatch.setenv("COSMICS_HOME", str(server[1]))
        monkeypatch.delenv("COSMICS_DB_URL", raising=False)
        db.reset()
        yield db
        db.reset()

    return server, store


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


def wait_until(done, what: str, timeout: float, page=None):
    """Poll ``done()`` (the app's own state) until it gives a true value, and return it; past ``timeout`` seconds,
    fail saying what was awaited and, with ``page``, what the page's alerts say."""
    deadline = time.monotonic() + timeout
    while True:
        value = done()
        if value:
            return value
        if time.monotonic() > deadline:
            alerts = page.locator("[data-testid=stAlert]").all_inner_texts() if page is not None else []
            raise AssertionError(f"timed out waiting for {what}; the page says: {alerts}")
        time.sleep(0.25)


def wait_idle(page, timeout: float = 60) -> None:
    """Until the script run the last action caused has finished."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    status = page.locator("[data-testid=stStatusWidget]")
    try:
        status.wait_for(state="attached", timeout=1000)
    except PlaywrightTimeout:
        pass  # the run was over before we looked
    status.wait_for(state="detached", timeout=timeout * 1000)
    page.wait_for_timeout(300)


def choose(page, label: str, index: int, attempts: int = 5) -> None:
    """Pick an option of a select box (again if a late rerun closed the list before the click)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(attempts):
        page.get_by_role("combobox", name=label).click()
        try:
            page.get_by_role("option").nth(index).click(timeout=3000)
            return
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise
            wait_idle(page)


def wait_for_revisions(page, store, frame_id: int, count: int, timeout: float = 30) -> None:
    """Until the frame has ``count`` mask revisions; on time-out, say what the page shows."""
    deadline = time.monotonic() + timeout
    while len(store.mask_history(frame_id)) < count:
        if time.monotonic() > deadline:
            alerts = page.locator("[data-testid=stAlert]").all_inner_texts()
            pytest.fail(f"no new mask revision after saving; the page says: {alerts}")
        page.wait_for_timeout(250)


def drawing_canvas(page, attempts: int = 10) -> dict:
    """The Label page's drawing canvas scrolled to the middle of the window, clear of the page's fixed
    header (which covers whatever is scrolled under it, so a click there never reaches the canvas);
    returns its bounding box once a click at its corners would land on it (the top right corner may
    hold the canvas' own toolbar, see :func:`reaches_canvas`)."""
    from playwright.sync_api import Error as PlaywrightError

    for _ in range(attempts):
        wait_idle(page)
        canvas = page.locator("canvas.upper-canvas").first
        try:
            canvas.evaluate("element => element.scrollIntoView({block: 'center', inline: 'center'})", timeout=5000)
            box = canvas.bounding_box(timeout=5000)
            if box and all(reaches_canvas(page, box["x"] + dx, box["y"] + dy) for dx, dy in (
                    (1, 1), (box["width"] / 2, 1), (1, box["height"] - 2), (box["width"] - 2, box["height"] - 2))):
                return box
        except PlaywrightError:
            pass  # redrawn meanwhile (a new canvas after a tool change): look again
        page.wait_for_timeout(500)
    raise AssertionError("the drawing canvas did not settle where a click reaches it")


def reaches_canvas(page, x: float, y: float) -> bool:
    """Would a click at window position (x, y) land on the drawing canvas (not on the page's header,
    or the canvas' toolbar, which sits over its top right corner until the pointer is on the canvas)?"""
    return page.locator("canvas.upper-canvas").first.evaluate(
        # The canvas lives in its component's shadow root: hit-test there.
        "(element, [x, y]) => element.getRootNode().elementFromPoint(x, y) === element", [x, y], timeout=5000)
