"""Notes and tags on runs, and deleting one frame without losing what a run's record needs."""

from __future__ import annotations

import numpy as np
import pytest

import db
from db_fixtures import make_layout, sqlite_store  # noqa: F401
from test_db_predictions import _finished_run, no_process  # noqa: F401


@pytest.fixture
def dataset(sqlite_store, tmp_path):  # noqa: F811
    make_layout(tmp_path / "src", {"Train": 2, "Validation": 1, "Test": 1}, real=2)
    return db.import_folder(tmp_path / "src", name="tidy").dataset_id


def test_a_runs_notes_and_tags_are_kept_cleaned(dataset):
    run_id = _finished_run(dataset)
    assert (db.get_run(run_id).notes, db.get_run(run_id).tags) == (None, ())
    db.set_run_notes(run_id, "  first try, crop 128 \n", " baseline,paper , baseline,,  two  words ")
    run = db.get_run(run_id)
    assert (run.notes, run.tags) == ("first try, crop 128", ("baseline", "paper", "two words"))
    assert [r.tags for r in db.list_runs() if r.id == run_id] == [("baseline", "paper", "two words")]
    db.set_run_notes(run_id, "", [])
    assert (db.get_run(run_id).notes, db.get_run(run_id).tags) == (None, ())
    with pytest.raises(db.StoreError, match="longer than 40"):
        db.set_run_notes(run_id, tags=["x" * 41])
    with pytest.raises(db.StoreError, match="at most 20 tags"):
        db.set_run_notes(run_id, tags=[f"t{i}" for i in range(21)])
    with pytest.raises(db.NotFound):
        db.set_run_notes(10**6, "x")


def test_deleting_a_frame_removes_its_masks_proposals_and_files_and_nothing_else(dataset, no_process):
    real = db.list_frames(dataset, "real")[0]
    lacosmic = _finished_run(dataset, kind="lacosmic", config={"tune": False})
    assert no_process(db.start_prediction(dataset, lacosmic, split="real")) == 0
    (proposal,) = db.frame_proposals(real.id)
    first = db.save_mask_revision(real.id, np.zeros((64, 64), bool), author="ana")
    second = db.save_mask_revision(real.id, db.proposal_mask(proposal.id), author="ana", proposal_id=proposal.id)
    others = {f.id: f.revision_id for f in db.list_frames(dataset) if f.id != real.id}
    files = [real.path, first.path, second.path, proposal.mask_path]
    assert all(p.exists() for p in files)

    assert db.delete_frame(real.id) == real.name
    assert {f.id: f.revision_id for f in db.list_frames(dataset)} == others
    assert not any(p.exists() for p in files)
    with pytest.raises(db.NotFound):
        db.get_frame(real.id)
    with pytest.raises(db.NotFound):
        db.delete_frame(real.id)
    assert db.get_dataset(dataset).frames["real"] == 1


def test_a_frame_a_run_used_is_kept_until_the_run_is_deleted(dataset, monkeypatch):
    from db import runs as run_manager

    monkeypatch.setattr(run_manager, "_launch", lambda run_id, resume: None)
    run_id = db.start_run({"epochs": 1, "backbone": "tiny", "backbone_weights": "none"}, dataset)
    db.cancel_run(run_id)
    frame = db.list_frames(dataset, "train")[0]
    with pytest.raises(db.StoreError, match=rf"{frame.name} was used by run\(s\) {run_id}; .*delete those runs first"):
        db.delete_frame(frame.id)
    assert db.get_frame(frame.id).revision_id is not None and frame.path.exists()
    assert len(db.run_revisions(run_id)) == 4

    db.delete_run(run_id)
    db.delete_frame(frame.id)
    assert frame.id not in {f.id for f in db.list_frames(dataset)}
