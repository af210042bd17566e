"""Prediction jobs and proposals: any finished run's model (or LA Cosmic, or an uploaded file) on any
frames, in its own process; proposals kept apart from the saved masks.

Models are tiny random conv nets saved as a run's best checkpoint (64-96 px frames), so a job takes
seconds; one job per test runs in a real process, the bad-input ones run the worker in this process.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label

import db
from db_fixtures import make_layout, postgres_cluster, sqlite_store, store  # noqa: F401
from model_support import conv_model
from segcore.classical import LACosmicParams, lacosmic_mask
from segcore.inference import predict_probabilities
from segcore.model import load_model, save_model

TIMEOUT = 300


def _finished_run(dataset_id: int, model=None, threshold: float = 0.5, kind: str = "train", config=None) -> int:
    """A finished run as the worker leaves it: for "train" a model file as its best checkpoint."""
    from db.models import Run
    from db.paths import run_dir, to_stored

    with db.session_scope() as session:
        run = Run(name="model run", dataset_id=dataset_id, kind=kind, config=config or {}, status="finished",
                  threshold=threshold, threshold_source="fixed", epochs_run=1)
        session.add(run)
        session.flush()
        folder = run_dir(run.id)
        (folder / "checkpoints").mkdir(parents=True)
        run.run_dir, run.checkpoint_dir = to_stored(folder), to_stored(folder / "checkpoints")
        run_id = run.id
    if model is not None:
        best = run_dir(run_id) / "checkpoints" / "best.keras"
        save_model(model, best)
        with db.session_scope() as session:
            session.get(Run, run_id).best_checkpoint = to_stored(best)
    return run_id


def _labelled(tmp_path) -> int:
    make_layout(tmp_path / "src", {"Train": 2, "Validation": 1, "Test": 1}, real=2)
    return db.import_folder(tmp_path / "src", name="labelled").dataset_id


@pytest.fixture
def labelled(sqlite_store, tmp_path):
    """A 64 px dataset with masks and 2 real frames without."""
    return _labelled(tmp_path)


@pytest.fixture
def labelled_anywhere(store, tmp_path):
    """The same dataset on SQLite and on PostgreSQL (when installed)."""
    return _labelled(tmp_path)


@pytest.fixture
def no_process(monkeypatch):
    """Record jobs without starting their process; the test runs the worker in this process."""
    from db import prediction_worker, predictions

    monkeypatch.setattr(predictions, "_launch", lambda job_id: None)
    monkeypatch.setattr(prediction_worker.signal, "signal", lambda *args: None)
    return prediction_worker.run_prediction


def _masks_now(dataset_id: int) -> dict[int, int | None]:
    return {f.id: f.revision_id for f in db.list_frames(dataset_id)}


@pytest.mark.slow
def test_a_run_predicts_the_real_split_in_its_own_process_keeping_probabilities_and_threshold(labelled):
    model = conv_model(seed=3)
    run_id = _finished_run(labelled, model, threshold=0.45)
    before = _masks_now(labelled)

    job_id = db.start_prediction(labelled, run_id, split="real")
    job = db.wait_for_prediction(job_id, timeout=TIMEOUT)

    assert job.status == "finished", f"{job.error}\n{db.prediction_log(job_id)}"
    assert (job.scope, job.frames_total, job.frames_done, job.progress) == ("real", 2, 2, 1.0)
    assert (job.run_id, job.model_source, job.threshold) == (run_id, "train", 0.45)
    assert job.pid is not None and job.precision
    saved = load_model(db.get_run(run_id).best_checkpoint, compile=False)
    for frame in db.list_frames(labelled, "real"):
        (proposal,) = db.frame_proposals(frame.id)
        expected = predict_probabilities(saved, db.read_frame(frame.id))
        probabilities = db.proposal_probabilities(proposal.id)
        assert probabilities.shape == (64, 64)
        np.testing.assert_allclose(probabilities, expected, atol=1e-3)  # kept as float16
        mask = db.proposal_mask(proposal.id)
        np.testing.assert_array_equal(mask, probabilities > 0.45)
        assert (proposal.threshold, proposal.run_id, proposal.job_id) == (0.45, run_id, job_id)
        assert (proposal.cosmic_pixels, proposal.cosmics) == (mask.sum(), label(mask, connectivity=2).max())
    # Proposals are not masks: nothing saved changed, the real frames still have none.
    assert _masks_now(labelled) == before
    assert [j.id for j in db.list_predictions(labelled)] == [job_id]


def test_a_model_trained_on_one_dataset_predicts_the_frame_on_screen_of_another_size(labelled, tmp_path, no_process):
    run_id = _finished_run(labelled, conv_model(seed=5))
    make_layout(tmp_path / "other", {"Train": 1, "Test": 1}, size=72)  # not a multiple of 16
    other = db.import_folder(tmp_path / "other", name="other").dataset_id
    frame = db.list_frames(other, "test")[0]

    job_id = db.start_prediction(other, run_id, frame_ids=[frame.id], threshold=0.3)
    assert no_process(job_id) == 0

    job = db.get_prediction(job_id)
    assert (job.status, job.scope, job.frame_ids, job.threshold) == ("finished", "frame", (frame.id,), 0.3)
    (proposal,) = db.frame_proposals(frame.id)
    expected = predict_probabilities(load_model(db.get_run(run_id).best_checkpoint, compile=False),
                                     db.read_frame(frame.id))
    np.testing.assert_allclose(db.proposal_probabilities(proposal.id), expected, atol=1e-3)
    assert db.proposal_mask(proposal.id).shape == (72, 72)
    assert db.frame_proposals(db.list_frames(other, "train")[0].id) == []


def test_a_job_with_eight_views_keeps_the_probabilities_averaged_over_the_flipped_and_transposed_frame(
        labelled, no_process):
    run_id = _finished_run(labelled, conv_model(seed=6))
    frame = db.list_frames(labelled, "real")[0]

    job_id = db.start_prediction(labelled, run_id, frame_ids=[frame.id], threshold=0.4, views=8)
    assert no_process(job_id) == 0

    job = db.get_prediction(job_id)
    assert (job.status, job.views) == ("finished", 8)
    (proposal,) = db.frame_proposals(frame.id)
    model = load_model(db.get_run(run_id).best_checkpoint, compile=False)
    pixels = db.read_frame(frame.id)
    eight = predict_probabilities(model, pixels, views=8)
    np.testing.assert_allclose(db.proposal_probabilities(proposal.id), eight, atol=1e-3)
    assert np.abs(eight - predict_probabilities(model, pixels)).max() > 1e-2  # the views were really averaged
    np.testing.assert_array_equal(db.proposal_mask(proposal.id), db.proposal_probabilities(proposal.id) > 0.4)


def test_an_lacosmic_run_proposes_its_masks_with_its_chosen_parameters(labelled_anywhere, no_process):
    labelled = labelled_anywhere
    params = LACosmicParams(sigclip=4.5, objlim=2.0, niter=2)
    run_id = _finished_run(labelled, kind="lacosmic", config={**params.to_dict(), "tune": False})

    job_id = db.start_prediction(labelled, run_id)  # the whole dataset
    assert no_process(job_id) == 0

    job = db.get_prediction(job_id)
    assert (job.status, job.scope, job.model_source, job.threshold, job.frames_done) == (
        "finished", "dataset", "lacosmic", 0.5, 6)
    assert job.model_name == "model run (LA Cosmic)" and job.params == params.to_dict()
    for frame in db.list_frames(labelled):
        (proposal,) = db.frame_proposals(frame.id)
        np.testing.assert_array_equal(db.proposal_mask(proposal.id), lacosmic_mask(db.read_frame(frame.id), params))
        assert db.proposal_probabilities(proposal.id) is None
    with pytest.raises(db.StoreError, match="no probability threshold"):
        db.start_prediction(labelled, run_id, threshold=0.3)


def test_an_uploaded_model_predicts_at_its_own_threshold_and_other_files_are_refused(labelled, tmp_path, no_process):
    import keras

    from segcore.model import ModelCard

    # A model file carries its threshold in its card, as segcore's models do.
    inputs = keras.Input((None, None, 3))
    carded = ModelCard(input_recipe="stretch", threshold=0.35, name="model_card")(inputs)
    model = keras.Model(inputs, conv_model(seed=8)(carded))
    path = tmp_path / "mine.keras"
    save_model(model, path)
    frame = db.list_frames(labelled, "real")[0]

    job_id = db.start_prediction(labelled, model_file=("mine.keras", path.read_bytes()), frame_ids=[frame.id])
    assert no_process(job_id) == 0

    job = db.get_prediction(job_id)
    assert (job.status, job.model_source, job.model_name, job.threshold, job.run_id) == (
        "finished", "file", "mine.keras", 0.35, None)
    (proposal,) = db.frame_proposals(frame.id)
    np.testing.assert_array_equal(db.proposal_mask(proposal.id), db.proposal_probabilities(proposal.id) > 0.35)
    with pytest.raises(db.StoreError, match="weights.h5: not a Keras model file"):
        db.start_prediction(labelled, model_file=("weights.h5", b"x"))
    with pytest.raises(db.StoreError, match="with a run, a model file or LA Cosmic.s parameters"):
        db.start_prediction(labelled)


def test_bad_requests_are_refused_before_anything_is_recorded(labelled):
    no_model = _finished_run(labelled)  # finished, but its checkpoint files are gone
    with pytest.raises(db.StoreError, match="has no model file to predict with"):
        db.start_prediction(labelled, no_model)
    with pytest.raises(db.StoreError, match="no frames in the validation split"):
        db.start_prediction(db.create_dataset("empty").id, _finished_run(labelled, conv_model(1)), split="validation")
    with pytest.raises(db.StoreError, match="threshold must be between 0 and 1"):
        db.start_prediction(labelled, _finished_run(labelled, conv_model(1)), threshold=1.5)
    with pytest.raises(db.NotFound):
        db.start_prediction(labelled, 999)
    with pytest.raises(db.StoreError, match="views must be one of 1, 2, 4, 8, got 3"):
        db.start_prediction(labelled, _finished_run(labelled, conv_model(1)), views=3)
    with pytest.raises(db.StoreError, match="LA Cosmic looks at each frame once"):
        db.start_prediction(labelled, lacosmic={}, views=8)
    assert db.list_predictions() == []


def test_a_missing_model_file_fails_the_job_with_its_name_and_leaves_masks_alone(labelled, no_process):
    run_id = _finished_run(labelled, conv_model(seed=2))
    before = _masks_now(labelled)
    job_id = db.start_prediction(labelled, run_id, split="test")
    db.get_run(run_id).best_checkpoint.unlink()  # removed after the job was queued

    assert no_process(job_id) == 1

    job = db.get_prediction(job_id)
    assert job.status == "failed" and job.ended_at is not None
    assert "best.keras: no such model file" in job.error
    assert _masks_now(labelled) == before
    assert db.frame_proposals(db.list_frames(labelled, "test")[0].id) == []


def test_a_model_of_the_wrong_kind_fails_the_job_saying_so(labelled, tmp_path, no_process):
    import keras

    inputs = keras.Input((None, None, 3))
    three_classes = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs))
    path = tmp_path / "classes.keras"
    three_classes.save(path)

    job_id = db.start_prediction(labelled, model_file=path, split="real")
    assert no_process(job_id) == 1

    job = db.get_prediction(job_id)
    assert job.status == "failed"
    assert "model.keras: not a cosmic segmentation model" in job.error and "2 classes" in job.error
    assert job.frames_done == 0


def test_a_dataset_deleted_mid_job_fails_the_job_saying_so(labelled_anywhere, monkeypatch, no_process):
    labelled = labelled_anywhere
    from db import prediction_worker

    run_id = _finished_run(labelled, conv_model(seed=4))
    job_id = db.start_prediction(labelled, run_id, split="train")
    store = prediction_worker._store_proposal

    def store_then_delete(*args):
        store(*args)
        db.delete_dataset(labelled)  # as another user might, while frames remain to predict

    monkeypatch.setattr(prediction_worker, "_store_proposal", store_then_delete)
    assert no_process(job_id) == 1

    job = db.get_prediction(job_id)
    assert (job.status, job.dataset_id, job.dataset_name, job.frames_done) == ("failed", None, "labelled", 1)
    assert job.error == "dataset 'labelled' was deleted while its frames were being predicted"


def test_a_cancelled_job_keeps_the_proposals_made_so_far(labelled, no_process):
    run_id = _finished_run(labelled, conv_model(seed=6))
    job_id = db.start_prediction(labelled, run_id)
    db.cancel_prediction(job_id)  # no process: marked at once
    assert db.get_prediction(job_id).status == "cancelled"
    assert no_process(job_id) == 0  # a late worker does nothing
    assert db.get_prediction(job_id).frames_done == 0


# --- saving from a proposal --------------------------------------------------------------


def _proposal_on(dataset_id: int, split: str, no_process) -> db.Proposal:
    run_id = _finished_run(dataset_id, conv_model(seed=9), threshold=0.5)
    frame = db.list_frames(dataset_id, split)[0]
    assert no_process(db.start_prediction(dataset_id, run_id, frame_ids=[frame.id])) == 0
    return db.frame_proposals(frame.id)[0]


def test_a_proposal_saved_as_it_is_records_itself_and_its_run(labelled, no_process):
    proposal = _proposal_on(labelled, "real", no_process)
    mask = db.proposal_mask(proposal.id)

    revision = db.save_mask_revision(proposal.frame_id, mask, author="ana", proposal_id=proposal.id)

    assert (revision.source, revision.run_id, revision.proposal_id) == ("predicted", proposal.run_id, proposal.id)
    assert (revision.changed_pixels, revision.changed_cosmics) == (0, 0)
    np.testing.assert_array_equal(db.current_mask(proposal.frame_id), mask)


def test_accepting_and_rejecting_components_saves_exactly_those_pixels_and_counts_the_changes(
    labelled_anywhere, no_process
):
    labelled = labelled_anywhere
    from segcore.components import apply_decisions

    frame = db.list_frames(labelled, "test")[0]
    saved_before = db.current_mask(frame.id)
    # A proposal with four cosmics: the test frame's three true hits and one false alarm.
    proposal_mask = saved_before.copy()
    proposal_mask[62:64, 0:2] = True  # rows no hit reaches
    proposal = _proposal_on(labelled, "test", no_process)
    from segcore import io

    io.write_mask(proposal.mask_path, proposal_mask)  # the proposal as a model might have made it
    labels = label(proposal_mask, connectivity=2)
    n = labels.max()
    false_alarm = labels[62, 0]
    kept = [k for k in range(1, n + 1) if k != false_alarm]

    corrected = apply_decisions(proposal_mask, labels, {false_alarm: False, kept[0]: True})
    revision = db.save_mask_revision(frame.id, corrected, author="ana", proposal_id=proposal.id)

    expected = np.isin(labels, kept)  # every component but the rejected one, pixel for pixel
    np.testing.assert_array_equal(db.current_mask(frame.id), expected)
    np.testing.assert_array_equal(expected, saved_before)
    assert (revision.source, revision.proposal_id, revision.run_id) == ("corrected", proposal.id, proposal.run_id)
    assert (revision.changed_pixels, revision.changed_cosmics) == (4, 1)
    # Restoring it keeps saying where it came from.
    later = db.save_mask_revision(frame.id, np.zeros((64, 64), bool), author="ana")
    restored = db.restore_revision(revision.id, author="ana")
    assert later.proposal_id is None
    assert (restored.source, restored.proposal_id, restored.changed_pixels) == ("corrected", proposal.id, 4)


def test_a_proposal_of_another_frame_is_refused(labelled, no_process):
    proposal = _proposal_on(labelled, "real", no_process)
    other = db.list_frames(labelled, "train")[0]
    with pytest.raises(db.StoreError, match=f"proposal {proposal.id} is for frame {proposal.frame_id}"):
        db.save_mask_revision(other.id, np.zeros((64, 64), bool), proposal_id=proposal.id)
    with pytest.raises(db.StoreError, match="corrected mask is saved with the proposal"):
        db.save_mask_revision(other.id, np.zeros((64, 64), bool), source="corrected")


def test_migration_0005_downgrades_keeping_corrected_masks_as_drawn(labelled_anywhere, no_process):
    labelled = labelled_anywhere
    from sqlalchemy import inspect, text

    from db.session import get_engine
    from test_db_store import _migrate

    proposal = _proposal_on(labelled, "real", no_process)
    corrected = db.save_mask_revision(proposal.frame_id, np.ones((64, 64), bool), proposal_id=proposal.id)

    _migrate(get_engine(), "0004", "downgrade")
    assert not {"prediction_jobs", "proposals"} & set(inspect(get_engine()).get_table_names())
    with get_engine().connect() as connection:
        assert connection.execute(text(f"SELECT source FROM mask_revisions WHERE id = {corrected.id}")).scalar() == "drawn"
    _migrate(get_engine(), "head")

    revision = db.current_revision(proposal.frame_id)
    assert (revision.id, revision.source, revision.proposal_id) == (corrected.id, "drawn", None)
    assert db.list_predictions() == []


def test_evaluations_that_scored_a_changed_mask_are_named(labelled_anywhere, no_process):
    labelled = labelled_anywhere
    run_id = _finished_run(labelled, kind="lacosmic", config={**LACosmicParams(niter=1).to_dict(), "tune": False})
    evaluation = db.evaluate_run(run_id, "test")
    test_frame, train_frame = db.list_frames(labelled, "test")[0], db.list_frames(labelled, "train")[0]
    assert db.evaluations_on_older_masks(labelled) == {}

    db.save_mask_revision(test_frame.id, np.zeros((64, 64), bool), author="ana")
    db.save_mask_revision(train_frame.id, np.zeros((64, 64), bool), author="ana")

    assert db.evaluations_on_older_masks(labelled) == {evaluation.id: 1}
    assert db.evaluations_on_older_masks(labelled, test_frame.id) == {evaluation.id: 1}
    assert db.evaluations_on_older_masks(labelled, train_frame.id) == {}


def test_adopting_an_evaluation_prediction_goes_through_a_proposal(labelled, no_process):
    run_id = _finished_run(labelled, kind="lacosmic", config={**LACosmicParams(niter=1).to_dict(), "tune": False})
    evaluation = db.evaluate_run(run_id, "test")
    (row,) = db.per_image_results(evaluation.id).itertuples()

    revision = db.adopt_prediction(int(row.result_id), author="ana")
    again = db.propose_from_evaluation(int(row.result_id))

    assert (revision.source, revision.run_id, revision.proposal_id, revision.changed_pixels) == (
        "predicted", run_id, again.id, 0)
    np.testing.assert_array_equal(db.current_mask(row.frame_id), db.prediction_mask(int(row.result_id)))
    assert again.model_name == f"model run (LA Cosmic), evaluation {evaluation.id}"
    assert [p.id for p in db.frame_proposals(row.frame_id)] == [again.id]  # made once


def test_frames_with_a_proposal_newer_than_their_mask_are_listed(labelled, no_process):
    run_id = _finished_run(labelled, kind="lacosmic", config={**LACosmicParams(niter=1).to_dict(), "tune": False})
    real, train = db.list_frames(labelled, "real"), db.list_frames(labelled, "train")
    assert no_process(db.start_prediction(labelled, run_id, frame_ids=[real[0].id, train[0].id])) == 0
    assert db.proposed_frames(labelled) == {real[0].id, train[0].id}

    (proposal,) = db.frame_proposals(train[0].id)
    db.save_mask_revision(train[0].id, db.proposal_mask(proposal.id), author="ana", proposal_id=proposal.id)

    assert db.proposed_frames(labelled) == {real[0].id}  # the saved mask is newer than its proposal


def test_deleting_a_dataset_removes_its_ended_jobs_and_their_files(labelled, no_process):
    run_id = _finished_run(labelled, kind="lacosmic", config={**LACosmicParams(niter=1).to_dict(), "tune": False})
    ended = db.start_prediction(labelled, run_id, split="real")
    assert no_process(ended) == 0
    folder = db.get_prediction(ended).folder
    assert any(folder.glob("*.png"))
    running = db.start_prediction(labelled, run_id, split="test")  # queued: its worker would fail later

    db.delete_dataset(labelled)

    assert [j.id for j in db.list_predictions()] == [running]
    assert db.get_prediction(running).dataset_id is None and not folder.exists()
