"""The Label page's proposals, through Streamlit's AppTest: predicting with a finished run, correcting
a proposal cosmic by cosmic, and what it saves (checked against scikit-image's labels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage.measure import label

import db
from segcore.classical import LACosmicParams, lacosmic_mask

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120
PARAMS = LACosmicParams(sigclip=4.5, objlim=2.0, niter=2)


def _label_page():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/2_Label.py").run()
    assert not at.exception, at.exception
    return at


def _button(at, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}; have {[b.label for b in at.button]}"
    return found[0]


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _lacosmic_run(dataset_id: int) -> int:
    """A finished LA Cosmic run with fixed parameters, as its worker leaves it."""
    from db.models import Run

    with db.session_scope() as session:
        run = Run(name="baseline", dataset_id=dataset_id, kind="lacosmic", status="finished", threshold=0.5,
                  threshold_source="fixed", config={**PARAMS.to_dict(), "tune": False})
        session.add(run)
        session.flush()
        return run.id


def _in_process(monkeypatch):
    from db import prediction_worker, predictions

    monkeypatch.setattr(predictions, "_launch", lambda job_id: None)
    monkeypatch.setattr(prediction_worker.signal, "signal", lambda *args: None)
    return prediction_worker.run_prediction


def test_predict_with_lacosmic_then_reject_all_and_accept_one_cosmic_saves_exactly_it(home):
    at = _label_page()
    demo = db.list_datasets()[0]
    frame = db.list_frames(demo.id)[0]
    run_id = _lacosmic_run(demo.id)
    at.run()
    at.text_input(key="_author_box").input("Ada").run()

    at.selectbox(key="lbl_predict_run").set_value(run_id)
    at.radio(key="lbl_predict_scope").set_value("frame")
    _button(at, "Predict").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (job,) = db.list_predictions(demo.id)
    job = db.wait_for_prediction(job.id, timeout=TIMEOUT)
    assert job.status == "finished", job.error
    (proposal,) = db.frame_proposals(frame.id)
    proposed = lacosmic_mask(db.read_frame(frame.id), PARAMS)
    labels = label(proposed, connectivity=2)
    assert labels.max() >= 2, "the demo frame should give LA Cosmic at least two cosmics"

    at.run()
    assert at.selectbox(key="lbl_frame").options[0].endswith(" · proposal to review")
    at.radio(key="lbl_base").set_value(f"proposal:{proposal.id}").run()
    assert _metrics(at)["Cosmic pixels"] == str(int(proposed.sum()))
    assert f"**{labels.max()} undecided**" in "\n".join(c.value for c in at.caption)

    _button(at, "Reject all").click().run()
    assert _metrics(at)["Cosmic pixels"] == "0"
    at.selectbox(key="lbl_component").set_value(2).run()
    _button(at, "Accept").click().run()
    kept = labels == 2  # skimage numbers components in raster order, as the page does
    assert _metrics(at)["Cosmic pixels"] == str(int(kept.sum()))
    _button(at, "Save as new revision").click().run()
    assert not at.exception

    revision = db.current_revision(frame.id)
    np.testing.assert_array_equal(db.current_mask(frame.id), kept)
    assert "proposal to review" not in at.selectbox(key="lbl_frame").options[0]
    assert (revision.source, revision.proposal_id, revision.run_id, revision.author) == (
        "corrected", proposal.id, run_id, "Ada")
    assert (revision.changed_pixels, revision.changed_cosmics) == (int(proposed.sum() - kept.sum()), labels.max() - 1)
    history = at.dataframe[0].value
    assert history["Source"].iloc[0] == (f"proposal of run {run_id}, LA Cosmic corrected: {labels.max() - 1} "
                                         f"cosmic(s), {revision.changed_pixels} px changed")


def test_changing_a_test_mask_from_a_proposal_asks_for_confirmation_first(home, monkeypatch):
    at = _label_page()
    demo = db.list_datasets()[0]
    # a test frame with cosmics in its mask, so rejecting every proposed cosmic changes it
    frame = next(f for f in db.list_frames(demo.id, "test") if db.current_mask(f.id).any())
    saved = db.current_revision(frame.id)
    run_id = _lacosmic_run(demo.id)
    assert _in_process(monkeypatch)(db.start_prediction(demo.id, run_id, frame_ids=[frame.id])) == 0
    (proposal,) = db.frame_proposals(frame.id)

    at.text_input(key="_author_box").input("Ada").run()
    at.selectbox(key="lbl_split").set_value("test").run()
    at.selectbox(key="lbl_frame").set_value(frame.id).run()
    at.radio(key="lbl_base").set_value(f"proposal:{proposal.id}").run()
    _button(at, "Reject all").click().run()
    _button(at, "Save as new revision").click().run()

    assert "runs are scored on its mask" in "\n".join(w.value for w in at.warning)
    assert db.current_revision(frame.id).id == saved.id  # nothing saved
    at.checkbox(key="lbl_confirm_scored").check()
    _button(at, "Save as new revision").click().run()
    assert db.current_revision(frame.id).id != saved.id
    assert not db.current_mask(frame.id).any()


def test_a_failed_prediction_job_says_why_on_the_page(home, monkeypatch):
    at = _label_page()
    demo = db.list_datasets()[0]
    run = _in_process(monkeypatch)
    job_id = db.start_prediction(demo.id, model_file=("broken.keras", b"not a model"), split="real")
    assert run(job_id) == 1

    at.run()
    errors = "\n".join(e.value for e in at.error)
    assert f"Job {job_id}: broken.keras" in errors and "not a Keras model" in errors
    assert db.get_prediction(job_id).status == "failed"


def test_a_running_job_shows_its_progress_from_the_store_in_a_fresh_session_and_can_be_stopped(home, monkeypatch):
    import os

    from db import predictions
    from db.models import PredictionJob, utcnow
    from db.processes import create_time

    _label_page()
    demo = db.list_datasets()[0]
    monkeypatch.setattr(predictions, "_launch", lambda job_id: None)
    job_id = db.start_prediction(demo.id, _lacosmic_run(demo.id), split="train")
    with db.session_scope() as session:  # as its worker (this process stands in for it) reports
        session.query(PredictionJob).filter_by(id=job_id).update(dict(
            status="running", frames_done=3, pid=os.getpid(), process_started=create_time(os.getpid()),
            heartbeat=utcnow()))

    at = _label_page()  # a browser refresh: a new session reads the job from the store

    bars = [p.proto.text for p in at.get("progress")]
    assert f"Job {job_id}: baseline (LA Cosmic), 3 of 4 frame(s) (split), running" in "\n".join(bars)
    at.button(key=f"lbl_stop_job_{job_id}").click().run()
    assert (db.get_prediction(job_id).folder / "cancel").exists()  # the worker stops after its frame


# --- the pictures and clicks, without Streamlit ----------------------------------------------


def test_undecided_cosmics_show_in_their_own_colour_and_rejected_ones_faintly():
    from ui.proposals import REJECTED_COLOR, UNDECIDED_COLOR, proposal_overlay

    gray = np.zeros((6, 6), np.uint8)
    proposal = np.zeros((6, 6), bool)
    proposal[0, 0] = proposal[3, 3] = proposal[5, 5] = True
    labels = label(proposal, connectivity=2)
    mask = proposal.copy()
    mask[5, 5] = False  # rejected
    mask[0, 5] = True  # drawn by hand

    rgb = proposal_overlay(gray, mask, labels, {labels[3, 3]: True, labels[5, 5]: False}, (255, 0, 0), opacity=1.0)

    assert tuple(rgb[0, 0]) == UNDECIDED_COLOR  # not decided yet
    assert tuple(rgb[3, 3]) == tuple(rgb[0, 5]) == (255, 0, 0)  # accepted, and the hand-drawn pixel
    assert tuple(rgb[5, 5]) == tuple(round(c * 0.5) for c in REJECTED_COLOR)  # faint, over black
    assert tuple(rgb[2, 2]) == (0, 0, 0)


def test_canvas_points_map_back_to_the_frame_pixel_clicked():
    from ui.images import Window
    from ui.proposals import clicked_pixels

    window = Window(top=10, left=20, height=8, width=16)  # shown 4x: 32 x 64 canvas pixels
    # The canvas stores a point as a circle whose left edge is radius + strokeWidth / 2 left of the click.
    click = {"type": "circle", "left": 4 * 5 + 2 - 3 - 0.5, "top": 4 * 3 + 2, "radius": 3, "strokeWidth": 1}
    stroke = {"type": "path", "left": 0, "top": 0}
    assert clicked_pixels({"objects": [click, stroke]}, window, (32, 64)) == [(13, 25)]
    assert clicked_pixels(None, window, (32, 64)) == []


def test_shortcut_buttons_step_brush_and_zoom_and_choose_the_next_undecided_cosmic(home, monkeypatch):
    at = _label_page()
    demo = db.list_datasets()[0]
    frame = db.list_frames(demo.id)[0]
    assert _in_process(monkeypatch)(db.start_prediction(demo.id, _lacosmic_run(demo.id), frame_ids=[frame.id])) == 0
    (proposal,) = db.frame_proposals(frame.id)
    labels = label(db.proposal_mask(proposal.id), connectivity=2)
    at.run()
    at.radio(key="lbl_base").set_value(f"proposal:{proposal.id}").run()
    assert "| K | choose the next undecided proposed cosmic |" in "\n".join(m.value for m in at.markdown)

    at.button(key="lbl_brush_up").click().run()
    at.button(key="lbl_zoom_in").click().run()
    assert (at.slider(key="lbl_brush").value, at.select_slider(key="lbl_zoom").value) == (2, 2)
    at.button(key="lbl_zoom_out").click().run()
    at.button(key="lbl_brush_down").click().run()
    assert (at.slider(key="lbl_brush").value, at.select_slider(key="lbl_zoom").value) == (1, 1)

    at.button(key="lbl_next_cosmic").click().run()  # the first undecided: #1, the view centred on it
    rows, cols = np.nonzero(labels == 1)
    assert at.selectbox(key="lbl_component").value == 1
    assert (at.slider(key="lbl_row").value, at.slider(key="lbl_col").value) == (int(rows.mean()), int(cols.mean()))
    at.button(key="lbl_accept").click().run()
    at.button(key="lbl_next_cosmic").click().run()
    assert at.selectbox(key="lbl_component").value == 2
    assert not at.exception


def test_set_extent_grows_the_chosen_cosmic_to_its_signal_and_undo_takes_it_back(home, monkeypatch):
    from segcore.components import extent_at
    from segcore.preprocess import excess_significance

    at = _label_page()
    demo = db.list_datasets()[0]
    frame = db.list_frames(demo.id)[0]
    assert _in_process(monkeypatch)(db.start_prediction(demo.id, _lacosmic_run(demo.id), frame_ids=[frame.id])) == 0
    (proposal,) = db.frame_proposals(frame.id)
    proposed = db.proposal_mask(proposal.id)
    labels = label(proposed, connectivity=2)
    at.run()
    at.text_input(key="_author_box").input("Ada").run()
    at.radio(key="lbl_base").set_value(f"proposal:{proposal.id}").run()

    at.selectbox(key="lbl_component").set_value(1).run()
    at.slider(key="lbl_extent_k").set_value(1.0).run()
    at.button(key="lbl_extent").click().run()
    grown = extent_at(excess_significance(db.read_frame(frame.id)), labels, 1, 1.0)
    expected = (proposed & (labels != 1)) | grown
    assert _metrics(at)["Cosmic pixels"] == str(int(expected.sum()))
    assert grown.sum() != (labels == 1).sum()  # it did change
    at.button(key="lbl_undo").click().run()
    assert _metrics(at)["Cosmic pixels"] == str(int(proposed.sum()))
    at.button(key="lbl_extent").click().run()
    _button(at, "Save as new revision").click().run()

    np.testing.assert_array_equal(db.current_mask(frame.id), expected)
    revision = db.current_revision(frame.id)
    assert (revision.source, revision.changed_cosmics) == ("corrected", 1)
    assert revision.changed_pixels == int((expected ^ proposed).sum())


def test_the_predict_form_offers_every_split_and_predicts_the_real_frames(home):
    at = _label_page()
    demo = db.list_datasets()[0]
    run_id = _lacosmic_run(demo.id)
    at.run()
    assert at.radio(key="lbl_predict_scope").options == [
        "This frame", "Split: Train (4)", "Split: Validation (2)", "Split: Test (2)", "Split: Real (no masks) (1)",
        "The whole dataset"]

    assert at.select_slider(key="lbl_predict_views").options == ["1", "2", "4", "8"]

    at.selectbox(key="lbl_predict_run").set_value(run_id)
    at.radio(key="lbl_predict_scope").set_value("real")
    at.select_slider(key="lbl_predict_views").set_value(8)  # LA Cosmic looks once whatever is chosen
    _button(at, "Predict").click().run()

    (job,) = db.list_predictions(demo.id)
    assert (job.scope, job.frame_ids, job.run_id) == ("real", tuple(f.id for f in db.list_frames(demo.id, "real")), run_id)
    assert job.views == 1
    assert db.wait_for_prediction(job.id, timeout=TIMEOUT).status == "finished"


def test_a_job_whose_dataset_was_deleted_says_so_on_another_dataset_s_page(home, monkeypatch):
    from db import prediction_worker

    at = _label_page()
    demo = db.list_datasets()[0]
    other = db.import_simulated("Other", 1, 0, 0, size=64, seed=2)
    run = _in_process(monkeypatch)
    job_id = db.start_prediction(other.dataset_id, _lacosmic_run(other.dataset_id))
    frame_or_none = prediction_worker._frame_or_none

    def delete_first(*args):
        db.delete_dataset(other.dataset_id)  # as another user might, just as the job starts
        return frame_or_none(*args)

    monkeypatch.setattr(prediction_worker, "_frame_or_none", delete_first)
    assert run(job_id) == 1  # the dataset went before its first frame

    at.run()
    assert at.session_state["dataset_id"] == demo.id
    assert "dataset 'Other' was deleted while its frames were being predicted" in "\n".join(e.value for e in at.error)
