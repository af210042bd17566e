"""The app in a real browser: draw a stroke on the Label page, save it, find it in the store.

Starts ``streamlit run app.py`` on a free port with its own COSMICS_HOME and drives the
system's Chromium (``/usr/bin/chromium``) through Playwright. Also refreshes the
screenshots of the Home, Datasets and Label pages (see ``browser_support``).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from browser_support import app_fixtures, choose, screenshot_folder, wait_for_revisions, wait_idle

DEMO = {"COSMICS_DEMO_FRAMES": "4,2,2,1", "COSMICS_DEMO_SIZE": "256"}

pytestmark = [pytest.mark.browser, pytest.mark.slow]


server, store = app_fixtures("browser", DEMO)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return screenshot_folder(tmp_path_factory)


def screenshot(page, folder, name: str) -> None:
    """Save a screenshot, as a palette PNG when that keeps it small."""
    from PIL import Image

    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    if path.stat().st_size > 250_000:
        Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)


def test_home_and_datasets_pages_render(server, page, shots):
    url, _ = server
    page.goto(url)
    page.get_by_text("Next step:").wait_for(timeout=120_000)
    wait_idle(page)
    page.locator("[data-testid=stDataFrame] canvas").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)  # the table draws itself after it appears
    assert page.locator("[data-testid=stException]").count() == 0
    screenshot(page, shots, "home")

    page.goto(f"{url}/Datasets")
    # The dataset's heading: its name also sits in the overview table's cells, which the grid keeps hidden.
    page.get_by_role("heading", name="Simulated demo").first.wait_for(timeout=60_000)
    page.locator("[data-testid=stImage] img").nth(8).wait_for(timeout=60_000)
    wait_idle(page)
    assert page.locator("[data-testid=stException]").count() == 0
    screenshot(page, shots, "datasets")


def test_a_stroke_drawn_on_the_label_canvas_is_saved_as_a_revision(server, page, store, shots):
    url, _ = server
    page.goto(f"{url}/Label")
    page.get_by_role("button", name="Save as new revision").wait_for(timeout=120_000)
    wait_idle(page)
    name = page.get_by_role("textbox", name="Your name")
    name.fill("Browser tester")
    name.press("Enter")
    wait_idle(page)

    demo = store.list_datasets()[0]
    frame = store.list_frames(demo.id)[0]
    before = store.current_mask(frame.id)
    revisions_before = len(store.mask_history(frame.id))

    canvas = page.locator("canvas.upper-canvas").first
    box = canvas.bounding_box()
    scale = box["width"] / frame.width  # whole frame shown at zoom 1
    row = 200  # a row of the frame, well inside it
    col0, col1 = 20, 120
    y = box["y"] + (row + 0.5) * scale
    page.mouse.move(box["x"] + (col0 + 0.5) * scale, y)
    page.mouse.down()
    for step in range(1, 31):
        page.mouse.move(box["x"] + (col0 + 0.5 + (col1 - col0) * step / 30) * scale, y)
    page.mouse.up()
    page.get_by_text(re.compile(r"^\+[1-9]\d* −0$")).wait_for(timeout=30_000)
    wait_idle(page)

    page.get_by_role("button", name="Save as new revision").click()
    wait_for_revisions(page, store, frame.id, revisions_before + 1)
    wait_idle(page)
    assert page.locator("[data-testid=stException]").count() == 0

    history = store.mask_history(frame.id)
    assert len(history) == revisions_before + 1
    newest = history[0]
    assert newest.source == "drawn" and newest.author == "Browser tester"
    after = store.current_mask(frame.id)
    assert after[row, col0 + 1:col1].all(), "every pixel under the stroke is cosmic (its ends may be half-covered)"
    changed = after & ~before
    assert set(np.nonzero(changed)[0]) == {row}, "a stroke 1 frame pixel wide paints only its row"
    assert np.nonzero(changed)[1].min() >= col0 - 1 and np.nonzero(changed)[1].max() <= col1 + 1
    assert not (before & ~after).any(), "nothing was removed"


def test_a_rectangle_drawn_zoomed_in_fills_exactly_the_frame_pixels_under_it(server, page, store, shots):
    url, _ = server
    page.goto(f"{url}/Label")
    page.get_by_role("button", name="Save as new revision").wait_for(timeout=120_000)
    wait_idle(page)
    name = page.get_by_role("textbox", name="Your name")
    name.fill("Zoom tester")
    name.press("Enter")
    wait_idle(page)
    frame = store.list_frames(store.list_datasets()[0].id)[0]
    before = store.current_mask(frame.id)

    # Centre on the first cosmic: the view zooms in (8x: 32x32 frame pixels on the canvas).
    choose(page, "Go to cosmic", 1)
    wait_idle(page)
    caption = page.get_by_text(re.compile(r"^Showing rows")).inner_text()
    top, bottom, left, right = map(int, re.search(r"rows (\d+)-(\d+), columns (\d+)-(\d+)", caption).groups())
    assert bottom - top + 1 == frame.height // 8

    page.locator(".st-key-lbl_tool").get_by_text("Rectangle").click()
    wait_idle(page)
    box = page.locator("canvas.upper-canvas").first.bounding_box()
    pixel = box["width"] / (right - left + 1)
    page.mouse.move(box["x"] + 2 * pixel + 1, box["y"] + 2 * pixel + 1)
    page.mouse.down()
    page.mouse.move(box["x"] + 5 * pixel - 1, box["y"] + 5 * pixel - 1, steps=8)
    page.mouse.up()
    page.get_by_text(re.compile(r"^\+[1-9]\d* −0$")).wait_for(timeout=30_000)
    wait_idle(page)
    screenshot(page, shots, "label")

    revisions_before = len(store.mask_history(frame.id))
    page.get_by_role("button", name="Save as new revision").click()
    wait_for_revisions(page, store, frame.id, revisions_before + 1)
    wait_idle(page)
    expected = before.copy()
    expected[top + 2:top + 5, left + 2:left + 5] = True
    assert np.array_equal(store.current_mask(frame.id), expected)
    assert store.current_revision(frame.id).author == "Zoom tester"
