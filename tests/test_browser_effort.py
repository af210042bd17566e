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
from browser_support import serve_app
from skimage.measure import label
from test_browser_label import wait_idle

from segcore import io
from segcore.classical import LACosmicParams, lacosmic_mask
from segcore.synth import generate_dataset

DEMO = {"COSMICS_DEMO_FRAMES": "1,1,1,0", "COSMICS_DEMO_SIZE": "64"}
SIDE = 128  # on the 520-pixel drawing area: 4 screen pixels per frame pixel, a 1-pixel brush is exact

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    # Scripted but not yet seen to finish: first attempts stalled on the canvas being redrawn after a
    # tool change (see the closing note of #10). Run it by name without this mark to continue.
    pytest.mark.skip(reason="work in progress (#10 §5): not yet seen passing"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser-effort") / "home"
    with serve_app(home, DEMO) as url:
        yield url, home


@pytest.fixture
def store(server, monkeypatch):
    import db

    monkeypatch.setenv("COSMICS_HOME", str(server[1]))
    monkeypatch.delenv("COSMICS_DB_URL", raising=False)
    db.reset()
    yield db
    db.reset()


class Counter:
    """Clicks, key presses and strokes, and the seconds since it started."""

    def __init__(self, page):
        self.page, self.clicks, self.started = page, 0, time.perf_counter()

    def click(self, locator) -> None:
        wait_idle(self.page)
        locator.click(force=True)  # the page redraws parts of itself while idle; the label is there
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
    """The drawing canvas' box and screen pixels per frame pixel (the canvas is redrawn after a tool change)."""
    from playwright.sync_api import Error as PlaywrightError

    for _ in range(10):
        wait_idle(page)
        canvas = page.locator("canvas.upper-canvas").first
        try:
            canvas.scroll_into_view_if_needed(timeout=5000)
            box = canvas.bounding_box(timeout=5000)
        except PlaywrightError:
            continue
        if box:
            return box, box["width"] / SIDE
    raise AssertionError("the drawing canvas did not settle")


def _paint(counter: Counter, page, pixels: np.ndarray) -> None:
    box, scale = _canvas(page)
    for row, first, last in _runs(pixels):
        y = box["y"] + (row + 0.5) * scale
        counter.stroke([(box["x"] + (first + 0.5) * scale, y), (box["x"] + (last + 0.5) * scale, y)])


def _start(page, url: str, frame_id: int) -> None:
    page.goto(f"{url}/Label?frame={frame_id}&author=Effort")
    page.get_by_text("Save as new revision").first.wait_for(timeout=120_000)
    wait_idle(page)


def test_accepting_cosmics_takes_fewer_clicks_and_seconds_than_painting_the_same_mask(server, page, store, tmp_path):
    url, _ = server
    info = generate_dataset(tmp_path / "sim", 1, 0, 0, size=SIDE, seed=21)
    frame_path = next((tmp_path / "sim" / "Train").glob("*.png"))
    truth = io.read_mask(tmp_path / "sim" / "TrainAnnotation" / frame_path.name)
    dataset = store.create_dataset("effort")
    store.import_files(dataset.id, "real", [frame_path])  # no mask: what a user brings
    (frame,) = store.list_frames(dataset.id)
    job = store.wait_for_prediction(store.start_prediction(dataset.id, frame_ids=[frame.id], lacosmic={}), timeout=120)
    assert job.status == "finished", job.error
    (proposal,) = store.frame_proposals(frame.id)
    proposed = store.proposal_mask(proposal.id)
    np.testing.assert_array_equal(proposed, lacosmic_mask(store.read_frame(frame.id), LACosmicParams()))
    labels = label(proposed, connectivity=2)
    keep = {k for k in range(1, labels.max() + 1) if truth[labels == k].mean() >= 0.5}
    rejected = [k for k in range(1, labels.max() + 1) if k not in keep]
    target = np.isin(labels, sorted(keep))
    assert rejected and keep, "this frame must have both true and false proposed cosmics"
    results = {"frame": f"{SIDE}x{SIDE} simulated, {info['cosmics']} cosmics, {int(truth.sum())} true pixels",
               "proposed cosmics": int(labels.max()), "kept": len(keep), "rejected": len(rejected),
               "target pixels": int(target.sum()), "target F1 against truth":
               round(2 * (target & truth).sum() / (target.sum() + truth.sum()), 3)}

    def saved(count: int) -> np.ndarray:
        deadline = time.monotonic() + 30
        while len(store.mask_history(frame.id)) < count:
            assert time.monotonic() < deadline, "the mask was not saved"
            time.sleep(0.5)
        return store.current_mask(frame.id)

    # 1. Components: start from the proposal, reject the false cosmics by clicking them, save.
    _start(page, url, frame.id)
    counter = Counter(page)
    counter.click(page.locator(".st-key-lbl_base").get_by_text("Proposal of LA Cosmic (built in"))
    counter.click(page.locator(".st-key-lbl_click").get_by_text("rejects", exact=True))
    counter.click(page.locator(".st-key-lbl_tool").get_by_text("Pick cosmics"))
    box, scale = _canvas(page)
    for k in rejected:
        rows, cols = np.nonzero(labels == k)
        i = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
        counter.stroke([(box["x"] + (cols[i] + 0.5) * scale, box["y"] + (rows[i] + 0.5) * scale)])
    counter.key("S")
    components = saved(1)
    results["components"] = {"clicks": counter.clicks, "seconds": counter.seconds,
                             "pixels off target": int((components != target).sum())}

    # 2. Eraser: start from the proposal, erase the false cosmics pixel run by pixel run, save.
    _start(page, url, frame.id)
    counter = Counter(page)
    counter.click(page.locator(".st-key-lbl_base").get_by_text("Proposal of LA Cosmic (built in"))
    counter.click(page.locator(".st-key-lbl_erase").get_by_text("Erase"))
    _paint(counter, page, np.isin(labels, rejected))
    counter.key("S")
    erased = saved(2)
    results["eraser from the proposal"] = {"clicks": counter.clicks, "seconds": counter.seconds,
                                           "pixels off target": int((erased != target).sum())}

    # 3. Brush: no proposal; paint the same mask on the empty one, save.
    store.save_mask_revision(frame.id, np.zeros_like(target), author="reset")
    _start(page, url, frame.id)
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
