"""How many clicks and seconds one frame takes (#10 §5): accepting and rejecting LA Cosmic's proposed
cosmics, against painting the same mask with the brush, or erasing the false cosmics with the eraser.

Scripted in a real browser on a simulated frame with known truth. The target mask is what component
decisions can reach: every proposed cosmic whose pixels are mostly true cosmic pixels, kept whole.
Each path starts where a user would and must save exactly that mask. A "click" is a mouse click, a
key press or one brush stroke (press, drag, release). Seconds are wall time, the app's reruns included.
The numbers are printed (``-s``) and written to ``effort.json`` in the test's temporary folder.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from browser_support import app_fixtures, drawing_canvas, reaches_canvas, wait_idle, wait_until

from segcore import io
from segcore.classical import LACosmicParams, lacosmic_mask
from segcore.metrics import label_cosmics
from segcore.synth import generate_dataset

DEMO = {"COSMICS_DEMO_FRAMES": "1,1,1,0", "COSMICS_DEMO_SIZE": "64"}
# A 64-pixel frame fills the drawing area at 8 screen pixels per frame pixel: a 1-pixel brush is exact.
# Seed 12: LA Cosmic proposes 8 cosmics, 7 of them true and one false of 13 pixels.
SIDE, SEED = 64, 12
#: How long the page may take to show the result of one action (a rerun on a loaded machine).
ACTION_SECONDS = 60

pytestmark = [pytest.mark.browser, pytest.mark.slow]


server, store = app_fixtures("browser-effort", DEMO)


class Counter:
    """Clicks, key presses and strokes, and the seconds since it started."""

    def __init__(self, page):
        self.page, self.clicks, self.started = page, 0, time.perf_counter()

    def click(self, locator, done, what: str) -> None:
        """One click, then wait until ``done()`` shows it took. A click that a rerun of the page swallowed
        (the element was being redrawn) is made again, and counted once: the user clicked once."""
        for attempt in range(3):
            wait_idle(self.page)
            locator.click(force=True, timeout=ACTION_SECONDS * 1000)  # redrawn parts of the page are there
            try:
                wait_until(done, what, ACTION_SECONDS / 2, self.page)
                break
            except AssertionError:
                if attempt == 2:
                    raise
        self.clicks += 1
        wait_idle(self.page)

    def key(self, key: str) -> None:
        self.page.locator("[data-testid=stMarkdown]").first.click()  # focus outside any field (not counted)
        self.page.keyboard.press(key)
        self.clicks += 1
        wait_idle(self.page)

    def stroke(self, points: list[tuple[float, float]]) -> None:
        mouse = self.page.mouse
        mouse.move(*points[0])
        mouse.down()
        for x, y in points[1:]:
            mouse.move(x, y, steps=4)
        mouse.up()
        self.clicks += 1
        wait_idle(self.page)

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 1)


def _runs(mask: np.ndarray) -> list[tuple[int, int, int]]:
    """(row, first column, last column) of each horizontal run of pixels: one brush stroke each."""
    runs = []
    for row in range(mask.shape[0]):
        cols = np.flatnonzero(mask[row])
        if cols.size:
            breaks = np.flatnonzero(np.diff(cols) > 1)
            for start, end in zip(np.r_[0, breaks + 1], np.r_[breaks, cols.size - 1]):
                runs.append((row, int(cols[start]), int(cols[end])))
    return runs


def _canvas(page):
    """The drawing canvas' box, where a click reaches it, and screen pixels per frame pixel. Read again
    before every stroke: a rerun may move the page (the canvas is redrawn after a tool change)."""
    box = drawing_canvas(page)
    return box, box["width"] / SIDE


def _point(box: dict, scale: float, row: float, col: float) -> tuple[float, float]:
    """The screen position of the centre of frame pixel (row, col)."""
    return box["x"] + (col + 0.5) * scale, box["y"] + (row + 0.5) * scale


def _paint(counter: Counter, page, pixels: np.ndarray) -> None:
    for row, first, last in _runs(pixels):
        box, scale = _canvas(page)
        counter.stroke([_point(box, scale, row, first), _point(box, scale, row, last)])


def _start(page, url: str, frame_id: int, ready: str) -> None:
    """Open the frame by its address, and wait until the page shows ``ready`` (the frame's own controls)."""
    page.goto(f"{url}/Label?frame={frame_id}&author=Effort")
    page.get_by_text("Save as new revision").first.wait_for(timeout=120_000)
    page.get_by_text(ready).first.wait_for(timeout=120_000)
    wait_idle(page)


def test_accepting_cosmics_takes_fewer_clicks_and_seconds_than_painting_the_same_mask(server, page, store, tmp_path):
    url, _ = server
    info = generate_dataset(tmp_path / "sim", 1, 0, 0, size=SIDE, seed=SEED)
    frame_path = next((tmp_path / "sim" / "Train").glob("*.png"))
    truth = io.read_mask(tmp_path / "sim" / "TrainAnnotation" / frame_path.name)
    dataset = store.create_dataset("effort")
    store.import_files(dataset.id, "real", [frame_path])  # no mask: what a user brings
    (frame,) = store.list_frames(dataset.id)
    job = store.wait_for_prediction(store.start_prediction(dataset.id, frame_ids=[frame.id], lacosmic={}), timeout=300)
    assert job.status == "finished", job.error
    (proposal,) = store.frame_proposals(frame.id)
    proposed = store.proposal_mask(proposal.id)
    np.testing.assert_array_equal(proposed, lacosmic_mask(store.read_frame(frame.id), LACosmicParams()))
    # The proposal's cosmics as the Label page numbers them (the same labelling of the same stored mask).
    _, labels = label_cosmics(proposed)
    keep = {k for k in range(1, labels.max() + 1) if truth[labels == k].mean() >= 0.5}
    rejected = [k for k in range(1, labels.max() + 1) if k not in keep]
    target = np.isin(labels, sorted(keep))
    assert rejected and keep, "this frame must have both true and false proposed cosmics"
    results = {"frame": f"{SIDE}x{SIDE} simulated (seed {SEED}), {info['cosmics']} cosmics, {int(truth.sum())} true pixels",
               "proposed cosmics": int(labels.max()), "kept": len(keep), "rejected": len(rejected),
               "rejected sizes": [int((labels == k).sum()) for k in rejected],
               "target pixels": int(target.sum()), "target F1 against truth":
               round(2 * (target & truth).sum() / (target.sum() + truth.sum()), 3)}

    def saved(count: int) -> np.ndarray:
        wait_until(lambda: len(store.mask_history(frame.id)) >= count, "the mask to be saved", ACTION_SECONDS, page)
        return store.current_mask(frame.id)

    proposal_option = "Proposal of LA Cosmic (built in"
    panel = page.get_by_text("Proposed cosmics").first

    # 1. Components: start from the proposal, reject the false cosmics by clicking them, save.
    _start(page, url, frame.id, proposal_option)
    counter = Counter(page)
    counter.click(page.locator(".st-key-lbl_base").get_by_text(proposal_option), panel.is_visible,
                  "the proposal's cosmics")
    counter.click(page.locator(".st-key-lbl_click").get_by_text("rejects", exact=True),
                  lambda: page.locator(".st-key-lbl_click input[type=radio]").nth(1).is_checked(), "rejects")
    counter.click(page.locator(".st-key-lbl_tool").get_by_text("Pick cosmics"),
                  page.get_by_text("A click on a proposed cosmic").first.is_visible, "the Pick cosmics tool")
    for done, k in enumerate(rejected, start=1):
        rows, cols = np.nonzero(labels == k)
        i = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)  # its pixel nearest its centre
        box, scale = _canvas(page)
        x, y = _point(box, scale, rows[i], cols[i])
        page.mouse.move(x, y)  # the pointer on the canvas moves the canvas' toolbar out of the way
        wait_until(lambda: reaches_canvas(page, x, y), f"a click on cosmic {k} to reach the canvas", 10, page)
        counter.stroke([(x, y)])
        wait_until(page.get_by_text(f"{done} rejected").first.is_visible, f"cosmic {k} to be rejected", ACTION_SECONDS,
                   page)
    counter.key("S")
    components = saved(1)
    results["components"] = {"clicks": counter.clicks, "seconds": counter.seconds,
                             "pixels off target": int((components != target).sum())}

    # 2. Eraser: start from the proposal, erase the false cosmics pixel run by pixel run, save.
    _start(page, url, frame.id, proposal_option)
    counter = Counter(page)
    counter.click(page.locator(".st-key-lbl_base").get_by_text(proposal_option), panel.is_visible,
                  "the proposal's cosmics")
    counter.click(page.locator(".st-key-lbl_erase").get_by_text("Erase"),
                  page.get_by_text("Strokes remove cosmic pixels").first.is_visible, "the eraser")
    _paint(counter, page, np.isin(labels, rejected))
    counter.key("S")
    erased = saved(2)
    results["eraser from the proposal"] = {"clicks": counter.clicks, "seconds": counter.seconds,
                                           "pixels off target": int((erased != target).sum())}

    # 3. Brush: no proposal; paint the same mask on the empty one, save.
    store.save_mask_revision(frame.id, np.zeros_like(target), author="reset")
    _start(page, url, frame.id, "Strokes add cosmic pixels")
    counter = Counter(page)
    _paint(counter, page, target)
    counter.key("S")
    painted = saved(4)
    results["brush from nothing"] = {"clicks": counter.clicks, "seconds": counter.seconds,
                                     "pixels off target": int((painted != target).sum())}

    (tmp_path / "effort.json").write_text(json.dumps(results, indent=1))
    print("effort per frame:", json.dumps(results))
    assert results["components"]["pixels off target"] == 0
    assert results["components"]["clicks"] < results["brush from nothing"]["clicks"]
    assert results["components"]["clicks"] <= results["eraser from the proposal"]["clicks"]
