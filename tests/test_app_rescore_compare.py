"""Results re-scores from the stored probabilities at once, Compare says and lets you choose which
evaluation of each run it shows, and both link an image to its frame on the Label page (AppTest)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import db
from db_fixtures import make_layout, sqlite_store  # noqa: F401
from model_support import conv_model
from test_app_proposals import ROOT
from test_db_predictions import _finished_run

pytestmark = pytest.mark.slow


@pytest.fixture
def two_runs(sqlite_store, tmp_path):  # noqa: F811
    make_layout(tmp_path / "src", {"Train": 1, "Validation": 1, "Test": 3})
    dataset_id = db.import_folder(tmp_path / "src", name="compare").dataset_id
    first = _finished_run(dataset_id, conv_model(seed=11), threshold=0.5)
    second = _finished_run(dataset_id, conv_model(seed=12), threshold=0.5)
    return first, second, db.evaluate_run(first, "test"), db.evaluate_run(second, "test")


def _page(name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=120).run()
    assert not at.exception, at.exception
    return at


def test_results_re_scores_at_another_threshold_at_once_and_shows_the_new_evaluation(two_runs):
    first, _, evaluation, _ = two_runs
    at = _page("4_Results.py")
    at.selectbox(key="results_run").set_value(first).run()
    at.slider(key="instant_threshold").set_value(0.3)  # in a form: sent with the button
    [b for b in at.button if b.label == "Re-score now"][0].click().run()
    assert not at.exception, at.exception
    newest = max(db.list_evaluations(first), key=lambda e: e.id)
    assert newest.id != evaluation.id and newest.threshold == 0.3
    assert at.selectbox(key="results_evaluation").value == newest.id
    image = at.selectbox(key=f"results_image_{newest.id}").value
    frame_id = int(db.per_image_results(newest.id).set_index("image").loc[image, "frame_id"])
    # Run alone (no navigation), the page says where the frame is instead of linking to it.
    shown = " ".join(str(getattr(e, "value", "")) for e in at.caption)
    links = " ".join(str(link.proto) for link in at.get("page_link"))
    assert f"is frame {frame_id} on the Label page" in shown or f"frame={frame_id}" in links, (shown, links)


def test_compare_says_which_evaluation_it_shows_and_takes_the_one_chosen(two_runs):
    first, second, old, _ = two_runs
    newer = db.rescore_evaluation(old.id, 0.3)
    at = _page("5_Compare.py")
    at.multiselect(key="compare_runs").set_value([first, second]).run()
    captions = " ".join(c.value for c in at.caption)
    assert f"evaluation #{newer.id} at threshold 0.3" in captions  # the newest by default
    assert "different thresholds" in captions
    at.selectbox(key=f"compare_eval_{first}_test").set_value(old.id).run()
    assert not at.exception, at.exception
    captions = " ".join(c.value for c in at.caption)
    assert f"evaluation #{old.id} at threshold 0.5" in captions and "different thresholds" not in captions
    table = at.dataframe[-1].value
    frames = db.per_image_results(old.id).set_index("image")["frame_id"]
    assert {row.frame for row in table.itertuples()} == {f"Label?frame={int(frames[i])}" for i in table["image"]}
    assert (db.compare_runs([first, second], evaluation_ids={first: old.id})
            .set_index("run_id").loc[first, "evaluation_id"]) == old.id
    with pytest.raises(db.StoreError, match="not an evaluation of run"):
        db.compare_runs([first, second], evaluation_ids={second: old.id})


def test_results_keeps_a_runs_notes_and_tags_and_deletes_it_only_when_confirmed(two_runs):
    first, second, _, _ = two_runs
    at = _page("4_Results.py")
    at.selectbox(key="results_run").set_value(first).run()
    at.text_area(key=f"results_notes_text_{first}").input("crop 128, first try")
    at.text_input(key=f"results_tags_{first}").input("baseline, paper")
    [b for b in at.button if b.label == "Save notes and tags"][0].click().run()
    assert not at.exception, at.exception
    assert (db.get_run(first).notes, db.get_run(first).tags) == ("crop 128, first try", ("baseline", "paper"))

    delete = at.button(key=f"results_delete_{first}")
    assert delete.disabled  # not before the confirmation
    at.checkbox(key=f"results_delete_sure_{first}").check().run()
    at.button(key=f"results_delete_{first}").click().run()
    assert not at.exception, at.exception
    assert [r.id for r in db.list_runs()] == [second]


def test_the_label_page_deletes_a_frame_only_when_confirmed_and_says_why_it_keeps_one(two_runs, monkeypatch):
    from db import runs as run_manager

    dataset_id = db.get_run(two_runs[0]).dataset_id
    monkeypatch.setattr(run_manager, "_launch", lambda run_id, resume: None)
    used = db.start_run({"epochs": 1}, dataset_id)
    db.cancel_run(used)
    at = _page("2_Label.py")
    frame_id = at.selectbox(key="lbl_frame").value
    assert at.button(key="lbl_delete_frame").disabled
    at.checkbox(key=f"lbl_delete_sure_{frame_id}").check().run()
    at.button(key="lbl_delete_frame").click().run()
    assert f"was used by run(s) {used}" in " ".join(e.value for e in at.error)
    assert db.get_frame(frame_id)

    db.delete_run(used)
    at.button(key="lbl_delete_frame").click().run()
    assert not at.exception, at.exception
    assert frame_id not in {f.id for f in db.list_frames(dataset_id)}
    assert at.selectbox(key="lbl_frame").value != frame_id
