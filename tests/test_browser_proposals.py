"""In a real browser: a click with *Pick cosmics* rejects exactly the proposed cosmic under it, and the
keyboard shortcuts choose, accept and save.

The click goes through the drawing canvas (a custom component AppTest cannot drive); the proposal
is LA Cosmic's, made before the page opens.
"""

from __future__ import annotations

import numpy as np
import pytest
from browser_support import app_fixtures, wait_for_revisions, wait_idle
from skimage.measure import label, regionprops

from segcore.classical import LACosmicParams, lacosmic_mask

DEMO = {"COSMICS_DEMO_FRAMES": "2,1,1,0", "COSMICS_DEMO_SIZE": "256"}
PARAMS = LACosmicParams(sigclip=4.5, objlim=2.0, niter=2)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


server, store = app_fixtures("browser-proposals", DEMO)


def test_a_click_with_pick_cosmics_rejects_the_cosmic_under_it_and_keys_accept_and_save(server, page, store):
    from db.models import Run

    url, _ = server
    page.goto(f"{url}/Label")
    page.get_by_role("button", name="Save as new revision").wait_for(timeout=120_000)
    wait_idle(page)
    demo = store.list_datasets()[0]
    frame = store.list_frames(demo.id)[0]
    with store.session_scope() as session:
        run = Run(name="baseline", dataset_id=demo.id, kind="lacosmic", status="finished", threshold=0.5,
                  threshold_source="fixed", config={**PARAMS.to_dict(), "tune": False})
        session.add(run)
        session.flush()
        run_id = run.id
    job = store.wait_for_prediction(store.start_prediction(demo.id, run_id, frame_ids=[frame.id]), timeout=120)
    assert job.status == "finished", job.error
    (proposal,) = store.frame_proposals(frame.id)
    proposed = lacosmic_mask(store.read_frame(frame.id), PARAMS)
    labels = label(proposed, connectivity=2)
    assert labels.max() >= 2
    # The largest cosmic away from the frame's top (where the page header may cover the canvas) is the
    # easiest to hit; click its pixel nearest the centroid.
    target = max((r for r in regionprops(labels) if r.centroid[0] > 64), key=lambda r: r.area)
    pixels = target.coords
    row, col = pixels[np.argmin(((pixels - target.centroid) ** 2).sum(axis=1))]

    page.reload()
    page.get_by_role("button", name="Save as new revision").wait_for(timeout=120_000)
    wait_idle(page)
    name = page.get_by_role("textbox", name="Your name")
    name.fill("Browser tester")
    name.press("Enter")
    wait_idle(page)
    page.locator(".st-key-lbl_base").get_by_text("Proposal of baseline (LA Cosmic)").click()
    wait_idle(page)
    page.locator(".st-key-lbl_click").get_by_text("rejects", exact=True).click()
    wait_idle(page)
    page.locator(".st-key-lbl_tool").get_by_text("Pick cosmics").click()
    wait_idle(page)

    canvas = page.locator("canvas.upper-canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    scale = box["width"] / frame.width  # whole frame at zoom 1
    x, y = box["x"] + (col + 0.5) * scale, box["y"] + (row + 0.5) * scale
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.up()
    page.get_by_text("1 rejected").wait_for(timeout=30_000)
    wait_idle(page)
    # Keyboard: K chooses the first undecided cosmic, A accepts it; S saves.
    page.locator("[data-testid=stMarkdown]").first.click()  # focus off any field
    page.keyboard.press("K")
    wait_idle(page)
    page.keyboard.press("A")
    page.get_by_text("1 accepted").wait_for(timeout=30_000)
    wait_idle(page)
    page.keyboard.press("S")
    wait_for_revisions(page, store, frame.id, 2)
    assert page.locator("[data-testid=stException]").count() == 0

    saved = store.current_mask(frame.id)
    np.testing.assert_array_equal(saved, proposed & (labels != target.label))
    revision = store.current_revision(frame.id)
    assert (revision.source, revision.proposal_id, revision.changed_cosmics, revision.changed_pixels) == (
        "corrected", proposal.id, 1, target.area)
