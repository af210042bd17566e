"""The Train, Results and Compare pages in a real browser (headless Chromium).

Starts ``streamlit run app.py`` on a free port over a store with one really
trained tiny run and a changed copy of it, opens the pages, checks that the
Plotly charts and the overlay images render, and takes screenshots.

The documentation's screenshots (``docs/screenshots/train.png``, ``results.png``,
``compare.png``) come from a store with better-trained runs: set
``COSMICS_SCREENSHOT_STORE`` to its data folder (it is copied, the original is
not touched), and set ``COSMICS_SCREENSHOTS=docs`` to write them into the docs.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from browser_support import screenshot_folder, serve_app

import db

MAX_SCREENSHOT_BYTES = 300_000

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    target = tmp_path_factory.mktemp("browser") / "home"
    source = os.environ.get("COSMICS_SCREENSHOT_STORE")
    if source:
        shutil.copytree(source, target)
        return target
    from test_app_train_results_compare import TINY_RUN, _copy_run, _use_store

    with pytest.MonkeyPatch.context() as monkeypatch:
        _use_store(monkeypatch, target)
        dataset = db.import_simulated("Tiny", 2, 1, 2, size=64, seed=1)
        run_id = db.start_run(TINY_RUN, dataset.dataset_id, name="tiny baseline")
        run = db.wait_for_run(run_id, timeout=600)
        assert run.status == "finished", run.error
        _copy_run(run_id, "tiny copy", {"learning_rate": 0.001, "crop_size": 128}, 0.25)
        db.reset()
    return target


@pytest.fixture(scope="module")
def app_url(home):
    with serve_app(home) as url:
        yield url


def _settle(page) -> None:
    """Wait until the script run is over: the 'running' widget shows up late, so look twice."""
    for _ in range(2):
        page.wait_for_timeout(1000)
        page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("h1", timeout=60_000)
    _settle(page)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return screenshot_folder(tmp_path_factory)


def _screenshot(page, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    _settle(page)
    page.screenshot(path=str(path))
    assert path.stat().st_size < MAX_SCREENSHOT_BYTES, f"{path.name} is {path.stat().st_size} bytes"
    return path


def _no_traceback(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, page.locator("[data-testid='stException']").first.inner_text()


def test_results_page_renders_the_boxplot_and_an_overlay(page, app_url, screenshots):
    _open(page, f"{app_url}/Results")
    # the all-scores chart by its key: the one-score charts in the tab below may draw first
    boxplot = page.locator(".st-key-box_all .js-plotly-plot")
    boxplot.locator(".boxlayer .trace").first.wait_for(timeout=60_000)
    _no_traceback(page)
    assert boxplot.locator(".boxlayer .trace").count() >= 8  # one box per score
    _screenshot(page, screenshots, "results")

    # Hovering a dot names its image.
    boxplot.locator(".boxlayer .trace .points path").first.hover(force=True)
    hover = page.locator(".hoverlayer .hovertext").first
    hover.wait_for(timeout=10_000)
    assert re.search(r"\.(png|tif|tiff|npy)", hover.text_content())

    page.get_by_role("tab", name="Overlays").click()
    page.wait_for_function(
        """() => [...document.querySelectorAll("[data-testid='stImage'] img")]
                 .filter(i => i.complete && i.naturalWidth > 0).length >= 4""",
        timeout=60_000,
    )
    assert page.locator("[data-testid='stImage'] img").first.is_visible()
    assert page.get_by_text("Green: cosmic found", exact=False).count() >= 1


def test_train_page_shows_the_learning_curves_of_an_ended_run(page, app_url):
    _open(page, f"{app_url}/Train")
    page.wait_for_selector(".js-plotly-plot .scatterlayer .trace", timeout=60_000)
    _no_traceback(page)
    assert page.get_by_text("Start a new run").count() == 1
    page.get_by_text("Earlier runs").evaluate("e => e.scrollIntoView({block: 'start'})")


def test_compare_page_shows_two_runs_side_by_side(page, app_url, screenshots):
    _open(page, f"{app_url}/Compare")
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    _no_traceback(page)
    assert page.get_by_text("What differs in their set-up").count() == 1
    assert page.locator(".js-plotly-plot").count() >= 3
    _screenshot(page, screenshots, "compare")


def test_train_page_follows_a_run_as_it_trains_and_stops_it(page, app_url, home, monkeypatch, screenshots):
    monkeypatch.setenv("COSMICS_HOME", str(home))
    monkeypatch.delenv("COSMICS_DB_URL", raising=False)
    db.reset()
    dataset = db.list_datasets()[0]
    # More epochs (and patience) than the test can see, so the run is still training when it is stopped.
    watched = dict(
        crop_size=64, batch_size=2, epochs=1000, patience=1000, steps_per_epoch=2, backbone="tiny", backbone_weights="none"
    )
    run_id = db.start_run(watched, dataset.id, name="watched")
    try:
        _open(page, f"{app_url}/Train")
        assert page.get_by_text("Running now").count() == 1
        # No reload from here on: the view refreshes itself, so the epoch count it shows goes up.
        first = page.get_by_text(re.compile(r"Epochs: [1-9]\d* of 1000 done")).first
        first.wait_for(timeout=240_000)
        seen = int(re.search(r"Epochs: (\d+)", first.inner_text()).group(1))
        page.wait_for_function(
            """seen => [...document.querySelectorAll("p, span, div")].some(
                   e => Number((/Epochs: (\\d+) of 1000 done/.exec(e.textContent) || [0, 0])[1]) > seen)""",
            arg=seen,
            timeout=120_000,
        )
        _no_traceback(page)
        assert page.get_by_text("Time left (at most)").count() == 1
        _screenshot(page, screenshots, "train")
        page.get_by_role("button", name="Stop this run").click()
        ended = db.wait_for_run(run_id, timeout=240)
        assert ended.status == "cancelled"
        page.get_by_text(f"#{run_id} watched (cancelled)").first.wait_for(timeout=30_000)
    finally:
        if db.get_run(run_id).status in ("queued", "running"):
            db.cancel_run(run_id)
            db.wait_for_run(run_id, timeout=240)
        db.reset()
