"""Where to label next: review statuses that follow the loop, the queue ordered by the models' doubt,
and retraining on the masks as they are now.

Proposals come from real prediction jobs (a tiny random conv net, and LA Cosmic) run by the worker in
this process; the expected numbers are counted here from the stored probabilities and masks.
"""

from __future__ import annotations

import numpy as np
import pytest

import db
from db_fixtures import make_layout, sqlite_store  # noqa: F401
from model_support import conv_model
from segcore import io
from test_db_predictions import _finished_run, no_process  # noqa: F401


@pytest.fixture
def dataset(sqlite_store, tmp_path):
    """64 px frames: train/validation/test with masks, 2 real frames and 2 train frames without."""
    make_layout(tmp_path / "src", {"Train": 2, "Validation": 1, "Test": 1}, real=2)
    dataset_id = db.import_folder(tmp_path / "src", name="loop").dataset_id
    rng = np.random.default_rng(4)
    for name in ("new_a.png", "new_b.png"):
        io.write_frame(tmp_path / name, rng.integers(0, 4000, (64, 64)).astype(np.uint16))
    db.import_files(dataset_id, "train", [tmp_path / "new_a.png", tmp_path / "new_b.png"])
    return dataset_id


def _unmasked(dataset_id: int) -> set[int]:
    return {f.id for f in db.list_frames(dataset_id) if f.revision_id is None}


def test_the_queue_holds_frames_without_a_mask_most_doubt_first_and_statuses_follow_the_loop(dataset, no_process):
    model_run = _finished_run(dataset, conv_model(seed=3), threshold=0.5)
    lacosmic_run = _finished_run(dataset, kind="lacosmic", config={"tune": False})
    assert db.labeling_queue(dataset)[0].doubt is None  # nothing proposed yet: frames in split and name order
    assert {e.frame_id for e in db.labeling_queue(dataset)} == _unmasked(dataset)
    assert no_process(db.start_prediction(dataset, lacosmic_run)) == 0
    assert no_process(db.start_prediction(dataset, model_run)) == 0

    queue = db.labeling_queue(dataset)
    assert {e.frame_id for e in queue} == _unmasked(dataset) and len(queue) == 4
    expected = {}
    for entry in queue:
        model, lacosmic = db.frame_proposals(entry.frame_id)  # newest first
        probabilities = db.proposal_probabilities(model.id)
        uncertain = int(((probabilities >= 0.2) & (probabilities <= 0.8)).sum())
        differ = int((db.proposal_mask(model.id) != db.proposal_mask(lacosmic.id)).sum())
        assert (entry.model_proposal_id, entry.lacosmic_proposal_id) == (model.id, lacosmic.id)
        assert (entry.uncertain_pixels, entry.disagreement, entry.doubt) == (uncertain, differ, uncertain + differ)
        assert entry.status == "proposed" and entry.proposed_cosmics == model.cosmics
        expected[entry.frame_id] = uncertain + differ
    assert [e.doubt for e in queue] == sorted(expected.values(), reverse=True)
    assert max(expected.values()) > 0
    assert [e.split for e in db.labeling_queue(dataset, "real")] == ["real", "real"]
    # Frames whose masks were imported have no status; a proposal does not change that.
    statuses = db.review_statuses(dataset)
    assert set(statuses) == _unmasked(dataset) and set(statuses.values()) == {"proposed"}

    first = queue[0].frame_id
    db.save_mask_revision(first, db.proposal_mask(queue[0].model_proposal_id), author="ana",
                          proposal_id=queue[0].model_proposal_id)
    assert db.review_statuses(dataset)[first] == "corrected"
    assert first not in {e.frame_id for e in db.labeling_queue(dataset)}
    db.set_review_status(first, "reviewed", author="ben")
    assert db.review_statuses(dataset)[first] == "reviewed"
    db.save_mask_revision(first, np.zeros((64, 64), bool), author="ana")  # changed again: to be reviewed again
    assert db.review_statuses(dataset)[first] == "corrected"

    with pytest.raises(db.StoreError, match="no saved mask"):
        db.set_review_status(queue[1].frame_id, "reviewed")
    with pytest.raises(db.StoreError, match="review status must be one of"):
        db.set_review_status(first, "done")
    with pytest.raises(db.NotFound):
        db.set_review_status(10**6, "reviewed")


def test_a_proposal_made_before_uncertain_pixels_were_kept_is_counted_when_the_queue_needs_it(dataset, no_process):
    from db.models import ProposalRow

    model_run = _finished_run(dataset, conv_model(seed=5), threshold=0.5)
    frame = db.list_frames(dataset, "real")[0]
    assert no_process(db.start_prediction(dataset, model_run, frame_ids=[frame.id])) == 0
    (proposal,) = db.frame_proposals(frame.id)
    with db.session_scope() as session:
        counted = session.get(ProposalRow, proposal.id).uncertain_pixels
        session.get(ProposalRow, proposal.id).uncertain_pixels = None

    (entry,) = [e for e in db.labeling_queue(dataset) if e.frame_id == frame.id]
    assert entry.uncertain_pixels == counted == db.count_uncertain(db.proposal_probabilities(proposal.id))
    with db.session_scope(write=False) as session:
        assert session.get(ProposalRow, proposal.id).uncertain_pixels == counted  # stored for next time
    proposal.probabilities_path.unlink()  # a lost file: no number, and no traceback
    with db.session_scope() as session:
        session.get(ProposalRow, proposal.id).uncertain_pixels = None
    (entry,) = [e for e in db.labeling_queue(dataset) if e.frame_id == frame.id]
    assert entry.uncertain_pixels is None and entry.doubt is None


def test_the_queue_counts_a_models_disagreement_with_la_cosmic_once_and_again_for_a_new_la_cosmic_proposal(
    dataset, no_process, monkeypatch
):
    from db.models import ProposalRow
    from segcore import io as segcore_io

    model_run = _finished_run(dataset, conv_model(seed=3), threshold=0.5)
    frame = db.list_frames(dataset, "real")[0]
    assert no_process(db.start_prediction(dataset, model_run, frame_ids=[frame.id])) == 0
    assert no_process(db.start_prediction(dataset, frame_ids=[frame.id], lacosmic={})) == 0
    lacosmic, model = db.frame_proposals(frame.id)  # newest first
    differ = int((db.proposal_mask(model.id) != db.proposal_mask(lacosmic.id)).sum())
    reads = []
    real_read = segcore_io.read_mask
    monkeypatch.setattr(segcore_io, "read_mask", lambda path: reads.append(path) or real_read(path))

    def entry():
        reads.clear()
        (found,) = [e for e in db.labeling_queue(dataset) if e.frame_id == frame.id]
        return found

    assert entry().disagreement == differ and len(reads) == 2
    with db.session_scope(write=False) as session:
        row = session.get(ProposalRow, model.id)
        assert (row.disagreement, row.disagreement_with) == (differ, lacosmic.id)
    assert entry().disagreement == differ and reads == []  # read from the store, no mask read again

    # A new LA Cosmic proposal (other parameters) is counted against afresh.
    assert no_process(db.start_prediction(dataset, frame_ids=[frame.id], lacosmic={"sigclip": 1.0, "objlim": 0.5})) == 0
    newer = db.frame_proposals(frame.id)[0]
    differ_newer = int((db.proposal_mask(model.id) != db.proposal_mask(newer.id)).sum())
    assert entry().disagreement == differ_newer and len(reads) == 2
    assert differ_newer != differ


def test_retraining_takes_the_newest_training_runs_options_and_records_the_masks_as_they_are_now(
    dataset, monkeypatch
):
    from db import runs as run_manager

    monkeypatch.setattr(run_manager, "_launch", lambda run_id, resume: None)  # the record only: no training here
    defaults = {"backbone": "tiny", "backbone_weights": "none", "epochs": 1}
    first = db.start_retraining(dataset, defaults=defaults)
    assert db.get_run(first).config == {**db.get_run(first).config, **defaults}
    older = {"backbone": "tiny", "backbone_weights": "none", "epochs": 3, "crop_size": 32}
    previous = db.start_run(older, dataset, name="mine")
    frame = next(f for f in db.list_frames(dataset, "train") if f.revision_id is None)
    saved = db.save_mask_revision(frame.id, np.ones((64, 64), bool), author="ana")

    again = db.get_run(db.start_retraining(dataset, defaults=defaults))

    assert again.config == db.get_run(previous).config and again.name == f"retrained after run {previous}"
    assert again.kind == "train" and again.status == "queued"
    used = db.run_revisions(again.id)
    assert saved.id in set(used["revision_id"]) and frame.id in set(used["frame_id"])
    assert frame.id not in set(db.run_revisions(previous)["frame_id"])


def test_migration_0007_downgrades_and_upgrades_keeping_proposals_and_masks(dataset, no_process):
    from db.session import get_engine
    from test_db_store import _migrate

    model_run = _finished_run(dataset, conv_model(seed=3), threshold=0.5)
    assert no_process(db.start_prediction(dataset, model_run, split="real")) == 0
    before = {f.id: f.revision_id for f in db.list_frames(dataset)}
    _migrate(get_engine(), "0006", "downgrade")
    _migrate(get_engine(), "head")
    assert {f.id: f.revision_id for f in db.list_frames(dataset)} == before
    assert db.review_statuses(dataset) == {}  # statuses go with the table; proposals stay
    queue = [e for e in db.labeling_queue(dataset) if e.split == "real"]
    assert all(e.model_proposal_id is not None and e.uncertain_pixels is not None for e in queue)


def test_lacosmic_built_in_proposes_without_any_run_and_bad_parameters_are_refused(dataset, no_process):
    from segcore.classical import LACosmicParams, lacosmic_mask

    real = db.list_frames(dataset, "real")
    job_id = db.start_prediction(dataset, split="real", lacosmic={"sigclip": 5.0})
    assert no_process(job_id) == 0
    job = db.get_prediction(job_id)
    assert (job.status, job.model_source, job.run_id, job.model_name) == (
        "finished", "lacosmic", None, "LA Cosmic (built in, no run)")
    for frame in real:
        (proposal,) = db.frame_proposals(frame.id)
        expected = lacosmic_mask(db.read_frame(frame.id), LACosmicParams(sigclip=5.0))
        np.testing.assert_array_equal(db.proposal_mask(proposal.id), expected)
    assert set(db.review_statuses(dataset).values()) == {"proposed"}
    before = len(db.list_predictions())
    with pytest.raises(db.StoreError, match="unknown LA Cosmic parameter"):
        db.start_prediction(dataset, lacosmic={"sigma": 3})
    with pytest.raises(db.StoreError, match="one of them"):
        db.start_prediction(dataset, 1, lacosmic={})
    with pytest.raises(db.StoreError, match="no probability threshold"):
        db.start_prediction(dataset, lacosmic={}, threshold=0.3)
    assert len(db.list_predictions()) == before
