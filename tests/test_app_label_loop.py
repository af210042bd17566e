"""The Label page's labeling loop through Streamlit's AppTest: the queue of frames without a mask,
most uncertain first, review statuses, and one click to retrain on the masks as they are now.

Proposals come from real prediction jobs (a tiny random conv net) run by the worker in this process;
the expected order is counted here from the stored probabilities."""

from __future__ import annotations

import numpy as np
import pytest

import db
from model_support import conv_model
from segcore import io
from test_app_proposals import _button, _in_process, _label_page
from test_db_predictions import _finished_run

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("home")]


def _unmasked_frames(tmp_path, dataset_id: int, n: int = 3) -> list[int]:
    rng = np.random.default_rng(7)
    paths = []
    for i in range(n):
        paths.append(tmp_path / f"new_{i}.png")
        io.write_frame(paths[-1], rng.integers(0, 4000, (64, 64)).astype(np.uint16))
    db.import_files(dataset_id, "train", paths)
    return [f.id for f in db.list_frames(dataset_id, "train") if f.revision_id is None]


def _doubt(frame_id: int) -> int:
    (proposal,) = db.frame_proposals(frame_id)
    p = db.proposal_probabilities(proposal.id)
    return int(((p >= 0.2) & (p <= 0.8)).sum())


def test_the_queue_shows_the_most_uncertain_frame_first_and_a_saved_one_leaves_it(tmp_path, monkeypatch):
    at = _label_page()
    demo = db.list_datasets()[0]
    new = _unmasked_frames(tmp_path, demo.id)
    run_id = _finished_run(demo.id, conv_model(seed=3), threshold=0.5)
    assert _in_process(monkeypatch)(db.start_prediction(demo.id, run_id, split="train")) == 0

    at.radio(key="lbl_order").set_value("uncertain").run()
    assert not at.exception, at.exception
    # Then the Real frame, which has no mask and no proposal.
    expected = sorted(new, key=lambda f: -_doubt(f)) + [f.id for f in db.list_frames(demo.id, "real")]
    shown = at.selectbox(key="lbl_frame")
    assert shown.options == [shown.format_func(f) for f in expected]
    assert f"{_doubt(expected[0])} px in doubt" in shown.options[0]
    assert shown.value == expected[0]
    assert "Review status: **proposed (not saved yet)**" in "".join(c.value for c in at.caption)

    at.text_input(key="_author_box").input("Ada").run()
    _button(at, "Save as new revision").click().run()
    assert db.review_statuses(demo.id)[expected[0]] == "corrected"
    assert at.selectbox(key="lbl_frame").value == expected[1]  # the saved frame left the queue
    assert len(at.selectbox(key="lbl_frame").options) == len(expected) - 1

    at.radio(key="lbl_order").set_value("name").run()
    at.selectbox(key="lbl_frame").set_value(expected[0]).run()
    _button(at, "Mark this mask reviewed").click().run()
    assert not at.exception, at.exception
    assert db.review_statuses(demo.id)[expected[0]] == "reviewed"
    assert not [b for b in at.button if b.label == "Mark this mask reviewed"]
    assert "· reviewed" in at.selectbox(key="lbl_frame").format_func(expected[0])


def test_retrain_starts_a_run_with_the_newest_runs_options_on_the_masks_as_they_are_now(tmp_path, monkeypatch):
    from db import runs as run_manager

    monkeypatch.setattr(run_manager, "_launch", lambda run_id, resume: None)  # the record only: no training here
    at = _label_page()
    demo = db.list_datasets()[0]
    options = {"backbone": "tiny", "backbone_weights": "none", "epochs": 2, "crop_size": 32}
    previous = db.start_run(options, demo.id, name="first")
    frame = db.list_frames(demo.id, "train")[0]
    saved = db.save_mask_revision(frame.id, np.zeros((64, 64), bool), author="Ada")

    at.run()
    _button(at, "Retrain on the masks as they are now").click().run()
    assert not at.exception, at.exception
    newest = max(db.list_runs(demo.id), key=lambda r: r.id)
    assert newest.id != previous and newest.config == db.get_run(previous).config
    assert newest.name == f"retrained after run {previous}"
    used = db.run_revisions(newest.id).set_index("frame_id")["revision_id"]
    assert used[frame.id] == saved.id
    assert len(used) == sum(1 for f in db.list_frames(demo.id) if f.split != "real")
    assert "started on the masks as they are now" in "".join(t.value for t in at.toast)


def test_a_reload_keeps_the_dataset_the_frame_and_the_author_from_the_address():
    from streamlit.testing.v1 import AppTest

    from test_app_proposals import ROOT, TIMEOUT

    at = _label_page()
    demo = db.list_datasets()[0]
    other = db.create_dataset("other")
    at.text_input(key="_author_box").input("Ada Lovelace").run()
    at.selectbox(key="lbl_frame").set_value(db.list_frames(demo.id, "test")[1].id).run()
    address = dict(at.query_params)
    assert address["author"] == ["Ada Lovelace"] or address["author"] == "Ada Lovelace"

    def reload(params: dict):
        fresh = AppTest.from_file(str(ROOT / "pages" / "2_Label.py"), default_timeout=TIMEOUT)
        for key, value in params.items():
            fresh.query_params[key] = value if isinstance(value, str) else value[0]
        return fresh.run()

    again = reload(address)
    assert not again.exception, again.exception
    assert again.selectbox(key="lbl_frame").value == db.list_frames(demo.id, "test")[1].id
    assert again.text_input(key="_author_box").value == "Ada Lovelace"
    assert again.session_state["author"] == "Ada Lovelace"

    # An empty dataset chosen: the address forgets the frame, and a reload stays on that dataset.
    again.selectbox(key="_dataset_choice").set_value(other.id).run()
    address = dict(again.query_params)
    assert "frame" not in address
    assert reload(address).session_state["dataset_id"] == other.id
    assert reload({"dataset": "no such"}).session_state["dataset_id"] == demo.id  # a bad address: the first


def test_with_no_run_at_all_the_predict_form_offers_lacosmic_built_in(monkeypatch):
    from ui.proposals import BUILT_IN

    run_prediction = _in_process(monkeypatch)
    at = _label_page()
    demo = db.list_datasets()[0]
    assert at.selectbox(key="lbl_predict_run").value == BUILT_IN  # no run yet: LA Cosmic built in is offered first
    at.radio(key="lbl_predict_scope").set_value("frame")
    _button(at, "Predict").click().run()
    assert not at.exception, at.exception
    (job,) = db.list_predictions(demo.id)
    assert run_prediction(job.id) == 0
    job = db.get_prediction(job.id)
    assert (job.status, job.model_source, job.run_id, job.scope) == ("finished", "lacosmic", None, "frame")
