"""The whole labeling loop in a real browser, as a new user walks it (#10 §5).

Upload simulated frames without masks, pre-fill them with LA Cosmic (built in, no run needed),
accept and reject its cosmics and save, train a tiny run, predict with it on the Real frames,
correct the frame it is least sure about, retrain in one click, run the LA Cosmic baseline, and
see all three runs in Compare. Every request the browser makes stays on the app's own server.

The seconds each step took are printed (``-s``) and written to ``loop_timings.json`` in the
test's temporary folder.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlparse

import pytest
from browser_support import app_fixtures, choose, wait_idle, wait_until

from segcore.synth import generate_dataset

DEMO = {"COSMICS_DEMO_FRAMES": "1,1,1,0", "COSMICS_DEMO_SIZE": "64"}
#: How long a background job (prediction, training) may take: each starts a Python process that loads
#: NumPy and TensorFlow, minutes on a loaded machine; the waits end as soon as the store says it ended.
TIMEOUT = 600
#: The tiny run: crops of 32 pixels, batches of 2, one epoch of 2 batches (one training step costs little;
#: loading TensorFlow and evaluating cost the most).
TINY = (("Crop size (pixels)", "32"), ("Batch size", "2"), ("Epochs (at most)", "1"), ("Batches per epoch", "2"))

pytestmark = [pytest.mark.browser, pytest.mark.slow]


server, store = app_fixtures("browser-loop", DEMO)


def _wait(predicate, what: str, timeout: float = TIMEOUT, page=None):
    return wait_until(predicate, what, timeout, page)


def _keys(page, *keys: str) -> None:
    """Keyboard shortcuts, with the focus outside any field."""
    page.locator("[data-testid=stMarkdown]").first.click()
    for key in keys:
        page.keyboard.press(key)
        wait_idle(page)


def _until(page, action, done, what: str, attempts: int = 4, wait: float = 30):
    """Do ``action`` until ``done()`` says it took: a click while a self-refreshing part of the page
    (the prediction jobs, every 2 s) redraws may be lost."""
    for _ in range(attempts):
        wait_idle(page)
        action()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            value = done()
            if value:
                return value
            time.sleep(0.5)
    raise AssertionError(f"{what} did not take after {attempts} attempts")


def _predict(page, store, dataset_id: int, scope: str, before: int) -> None:
    def click():
        if not page.get_by_role("button", name="Predict", exact=True).is_visible():
            page.get_by_text("Predict with a model").click()
            wait_idle(page)
        page.locator(".st-key-lbl_predict_scope").get_by_text(scope).click()
        wait_idle(page)
        page.get_by_role("button", name="Predict", exact=True).click()

    _until(page, click, lambda: len(store.list_predictions(dataset_id)) > before, f"Predict ({scope})")


def _open(page, url: str, ready: str, attempts: int = 4) -> None:
    """Go to a page as a user does, through the sidebar's navigation (the session, and with it the
    chosen dataset and name, goes along), or by its address for the first one; until it shows ``ready``.
    A click on the navigation while the page reruns (after a save) may be lost: it is made again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    title = urlparse(url).path.strip("/")
    for attempt in range(attempts):
        wait_idle(page)
        if title:
            page.locator("[data-testid=stSidebarNav]").get_by_role("link", name=title).click()
        else:
            page.goto(url)
        try:
            page.get_by_text(ready).first.wait_for(timeout=60_000)
            break
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise
    wait_idle(page)


def test_a_new_user_walks_the_whole_loop(server, page, store, tmp_path):
    url, _ = server
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal started
        timings[step] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()

    generate_dataset(tmp_path / "sim", 1, 1, 1, 2, size=64, seed=3)

    # Home: the demo is said to be simulated; bringing one's own frames comes first.
    _open(page, url, "Next step:")
    page.get_by_text("Bring your frames").first.wait_for()
    lap("home")

    # Datasets: a new dataset, frames without masks into four splits.
    _open(page, f"{url}/Datasets", "Upload files")
    page.get_by_role("tab", name="New dataset").click()
    page.get_by_role("textbox", name="Name").fill("Beamtime")
    page.get_by_role("button", name="Create dataset").click()
    (mine,) = _wait(lambda: [d for d in store.list_datasets() if d.name == "Beamtime"], "the new dataset", 120, page)
    for index, (split, folder) in enumerate((("train", "Train"), ("validation", "Validation"), ("test", "Test"),
                                             ("real", "Real"))):

        def upload(index=index, folder=folder):
            page.get_by_role("tab", name="Upload files").last.click()  # during a rerun the old tabs may linger
            choose(page, "Split", index)
            page.locator(".st-key-upload_frames input[type=file]").set_input_files(
                sorted(str(p) for p in (tmp_path / "sim" / folder).glob("*.png")))
            page.get_by_role("tabpanel", name="Upload files").last.get_by_test_id("stBaseButton-primaryFormSubmit").click()

        # The rerun that follows creating the dataset (or the last upload) may replace the form under a slow
        # machine's click; a repeated upload of frames already there is refused by name, so trying again is safe.
        _until(page, upload, lambda split=split: store.get_dataset(mine.id).frames.get(split), f"the {split} frames",
               attempts=3, wait=60)
        wait_idle(page)
    assert store.get_dataset(mine.id).frames == {"train": 1, "validation": 1, "test": 1, "real": 2}
    assert all(f.revision_id is None for f in store.list_frames(mine.id))
    lap("create and upload 5 frames")

    # Label: LA Cosmic proposes masks for every frame, before any run exists.
    _open(page, f"{url}/Label", "Save as new revision")
    _predict(page, store, mine.id, "The whole dataset", 0)
    job = _wait(lambda: [j for j in store.list_predictions(mine.id) if not j.active], "LA Cosmic's proposals",
                page=page)[0]
    assert job.status == "finished" and job.model_source == "lacosmic", job.error
    page.reload()
    page.get_by_text("Save as new revision").first.wait_for(timeout=120_000)
    wait_idle(page)
    name = page.get_by_role("textbox", name="Your name")
    name.fill("New user")
    name.press("Enter")
    wait_idle(page)
    lap("LA Cosmic proposals for 5 frames")

    # Accept and reject whole cosmics, save, next: the train, validation and test frames.
    labelled = [f for f in store.list_frames(mine.id) if f.split != "real"]
    for i, frame in enumerate(sorted(labelled, key=lambda f: ("train", "validation", "test").index(f.split))):
        # Each frame by its address, as a link or a reload gives it: dataset, frame and name come back.
        page.goto(f"{url}/Label?dataset={mine.id}&frame={frame.id}&author=New+user")
        page.get_by_text("Save as new revision").first.wait_for(timeout=120_000)
        wait_idle(page)
        _until(page, lambda: page.locator(".st-key-lbl_base").get_by_text("Proposal of LA Cosmic (built in").click(),
               lambda: page.get_by_text("Proposed cosmics").first.is_visible(), "starting from the proposal")
        if i == 0:
            # The first proposed cosmic rejected, the others kept as proposed.
            _until(page, lambda: _keys(page, "K", "X"), page.get_by_text("1 rejected").first.is_visible,
                   "rejecting the first cosmic")
        else:
            _until(page, lambda: _keys(page, "Shift+A"), page.get_by_text(" 0 undecided").first.is_visible,
                   "accepting all cosmics")
        _until(page, lambda: _keys(page, "S"), lambda frame=frame: store.current_revision(frame.id),
               f"saving {frame.name}")
    assert all(store.get_frame(f.id).revision_id is not None for f in labelled)
    first = store.current_revision(labelled[0].id)
    assert first.source in ("corrected", "predicted") and first.proposal_id is not None
    lap("accept/reject and save 3 frames")

    # Train: a tiny run on the masks just made.
    _open(page, f"{url}/Train", "Start a new run")
    page.get_by_role("textbox", name="Run name").fill("tiny-1")
    for label, value in TINY:
        field = page.get_by_role("spinbutton", name=label)
        field.fill(value)
        field.press("Tab")
    page.get_by_text("No ResNet50: a tiny network").click()
    page.get_by_role("button", name="Start training").click()
    wait_idle(page)
    tiny = _wait(lambda: [r for r in store.list_runs(mine.id) if r.name == "tiny-1"], "the tiny run", 120, page)[0]
    tiny = _wait(lambda: (lambda r: r if not r.active else None)(store.get_run(tiny.id)), "the tiny run to end")
    assert tiny.status == "finished", tiny.error
    assert tiny.config["backbone"] == "tiny" and len(store.list_evaluations(tiny.id)) == 1
    lap("train a tiny run")

    # Label: the tiny run predicts the Real frames; the one it is least sure about is corrected.
    _open(page, f"{url}/Label", "Save as new revision")
    _predict(page, store, mine.id, "Split: Real", 1)
    _wait(lambda: [j for j in store.list_predictions(mine.id) if j.run_id == tiny.id and not j.active],
          "the tiny run's proposals", page=page)
    page.reload()
    page.get_by_text("Save as new revision").first.wait_for(timeout=120_000)
    wait_idle(page)
    page.locator(".st-key-lbl_order").get_by_text("Most uncertain first").click()
    wait_idle(page)
    queue = store.labeling_queue(mine.id)
    assert [e.split for e in queue] == ["real", "real"]
    target = store.get_frame(queue[0].frame_id)
    _wait(lambda: f"frame={target.id}" in page.url, f"the most uncertain frame ({target.name}) on screen", 60, page)
    _until(page, lambda: page.locator(".st-key-lbl_base").get_by_text("Proposal of tiny-1").click(),
           lambda: page.get_by_text("Proposed cosmics").first.is_visible(), "starting from the tiny run's proposal")
    _keys(page, "Shift+X")  # the tiny model's guesses all rejected: this frame has no cosmic
    revision = _until(page, lambda: _keys(page, "S"), lambda: store.current_revision(target.id),
                      "saving the corrected real frame")
    assert revision.run_id == tiny.id and revision.cosmic_pixels == 0
    assert store.review_statuses(mine.id)[target.id] == "corrected"
    lap("predict the Real frames and correct one")

    # One click: retrain on the masks as they are now (the tiny run's options).
    again = _until(page, lambda: page.get_by_role("button", name="Retrain on the masks as they are now").click(),
                   lambda: [r for r in store.list_runs(mine.id) if r.id != tiny.id and r.kind == "train"],
                   "Retrain")[0]
    assert again.config == tiny.config
    again = _wait(lambda: (lambda r: r if not r.active else None)(store.get_run(again.id)), "the retrained run")
    assert again.status == "finished", again.error
    lap("retrain in one click")

    # The LA Cosmic baseline on the same test frame, from the Train page.
    _open(page, f"{url}/Train", "No training: LA Cosmic")
    page.get_by_text("No training: LA Cosmic").click()
    page.get_by_role("textbox", name="LA Cosmic run name").fill("baseline")
    page.get_by_text("Tune sigclip, objlim and sigfrac on the validation frames").click()
    # The form's submit can be lost to a rerun still redrawing the page (seen once on a loaded machine).
    baseline = _until(page, lambda: page.get_by_role("button", name="Start LA Cosmic").click(),
                      lambda: [r for r in store.list_runs(mine.id) if r.kind == "lacosmic"], "Start LA Cosmic",
                      wait=60)[0]
    baseline = _wait(lambda: (lambda r: r if not r.active else None)(store.get_run(baseline.id)), "the baseline")
    assert baseline.status == "finished", baseline.error
    lap("LA Cosmic baseline")

    # Compare: the two runs and the baseline, each said with the evaluation shown.
    _open(page, f"{url}/Compare", "Runs to compare")
    page.get_by_role("combobox", name="Runs to compare").click()
    page.get_by_role("option").filter(has_text="tiny-1").first.click()
    page.keyboard.press("Escape")
    wait_idle(page)

    def shown() -> str:
        text = page.get_by_text("Shown:").first.inner_text() if page.get_by_text("Shown:").count() else ""
        return text if all(f"#{run.id} {run.name}: evaluation #" in text for run in (tiny, again, baseline)) else ""

    _wait(shown, "the three runs in Compare", 120, page)
    assert page.locator("[data-testid=stException]").count() == 0
    lap("compare")

    outside = sorted({u for u in requests if not u.startswith(("data:", "blob:"))
                      and urlparse(u).hostname not in ("127.0.0.1", "localhost")})
    assert outside == [], f"fetched from outside the app: {outside}"
    (tmp_path / "loop_timings.json").write_text(json.dumps(timings, indent=1))
    print("loop timings (s):", json.dumps(timings))
