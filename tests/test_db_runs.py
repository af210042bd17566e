"""Real training runs through the run manager, each in its own process (tiny frames, few epochs)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from skimage.measure import label

import db
from ui.run_text import run_label
from db_fixtures import make_layout, sqlite_store  # noqa: F401
from segcore.precision import resolve_precision

# decay_frames = one epoch's frames (2 batches of 2), so the schedule decays per epoch here. The run
# manager is under test, not the network: the tiny backbone trains in seconds.
TINY = dict(
    crop_size=64, batch_size=2, steps_per_epoch=2, validation_steps=1, backbone="tiny", backbone_weights="none", decay_frames=4,
    schedule="step", learning_rate=1e-4,  # the original decay and rate, whose values the test checks
)
TIMEOUT = 300

pytestmark = pytest.mark.slow  # every test trains in a worker process


@pytest.fixture
def dataset_id(sqlite_store, tmp_path):
    make_layout(tmp_path / "src", {"Train": 2, "Validation": 1, "Test": 2})
    return db.import_folder(tmp_path / "src", name="tiny").dataset_id


def _wait(run_id: int, condition, what: str, timeout: float = TIMEOUT) -> db.RunInfo:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = db.get_run(run_id)
        if condition(run):
            return run
        if not run.active:
            pytest.fail(f"run ended ({run.status}: {run.error}) before {what}\n{db.run_log(run_id)[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}\n{db.run_log(run_id)[-3000:]}")


def test_a_run_trains_in_its_own_process_and_is_evaluated_on_the_test_split(dataset_id):
    from segcore.model import load_model, model_card
    from segcore.precision import explain_precision

    train_frame = db.list_frames(dataset_id, "train")[0]
    trained_revision = train_frame.revision_id

    run_id = db.start_run(dict(TINY, epochs=3), dataset_id, name="first")  # threshold chosen on validation
    queued = db.get_run(run_id)
    assert (queued.threshold, queued.threshold_source) == (None, "validation")

    # Epoch rows appear while the process is still running.
    running = _wait(run_id, lambda r: r.status == "running" and r.epochs_run >= 1, "the first epoch row")
    assert running.pid is not None and running.pid != os.getpid()
    assert len(db.epoch_metrics(run_id)) >= 1
    # Masks edited during training do not change what the run records it trained on.
    db.save_mask_revision(train_frame.id, np.zeros((64, 64), bool), author="ana")

    run = db.wait_for_run(run_id, timeout=TIMEOUT)

    assert run.status == "finished", run.error
    assert (run.epochs_run, run.epochs_total, run.attempts, run.stop_reason) == (3, 3, 1, "epochs")
    assert run.backbone_weights == "random"
    assert run.precision == resolve_precision("auto")  # what the worker really trained in
    assert run.precision_reason == explain_precision("auto").reason
    assert run.config == dict(TINY, epochs=3)
    assert run.best_checkpoint.exists() and run.last_checkpoint.exists() and run.model_path.exists()
    assert run.started_at <= run.ended_at and run.error is None
    metrics = db.epoch_metrics(run_id)
    assert metrics["epoch"].tolist() == [0, 1, 2]
    for column in ("loss", "val_loss", "accuracy", "precision", "recall", "specificity", "iou", "learning_rate"):
        assert metrics[column].notna().all(), column
    assert metrics["learning_rate"].tolist() == pytest.approx([1e-4, 1e-4, 1e-4 * np.exp(-0.1)])
    assert run.best_val_loss == pytest.approx(metrics["val_loss"].min())

    revisions = db.run_revisions(run_id)
    assert len(revisions) == 5  # 2 train + 1 validation + 2 test frames
    row = revisions[revisions["frame_id"] == train_frame.id].iloc[0]
    assert row["revision_id"] == trained_revision and row["changed_since"]

    # The threshold chosen on the validation frames is the model file's and the test evaluation's.
    card = model_card(load_model(run.model_path, compile=False))
    assert run.threshold_source == "validation" and not run.threshold_fallback
    assert card["threshold"] is not None and run.threshold == pytest.approx(card["threshold"])
    assert card["input_recipe"] == "stretch_log_count_excess"
    assert f"threshold {card['threshold']:g} chosen on the validation frames" in db.run_log(run_id)
    (evaluation,) = db.list_evaluations(run_id)
    assert (evaluation.split, evaluation.threshold, evaluation.n_images) == ("test", run.threshold, 2)
    assert evaluation.precision == resolve_precision("auto")
    results = db.per_image_results(evaluation.id)
    assert results["image"].tolist() == ["frame_003.png", "frame_004.png"]
    for row in results.itertuples():  # stored counts match the stored masks (8-connected hits)
        assert row.revision_id in set(revisions["revision_id"])
        assert row.true_count == label(db.read_revision(row.revision_id), connectivity=2).max()
        predicted = db.prediction_mask(row.result_id)
        assert predicted.shape == (64, 64)
        assert row.pred_count == label(predicted, connectivity=2).max()
    assert evaluation.summary["iou"]["mean"] == pytest.approx(results["iou"].mean(), nan_ok=True)
    assert db.runs_table()["status"].tolist() == ["finished"]


def test_cancel_stops_at_the_end_of_a_batch_and_keeps_the_best_checkpoint(dataset_id):
    run_id = db.start_run(dict(TINY, epochs=50), dataset_id)
    _wait(run_id, lambda r: r.epochs_run >= 1, "the first finished epoch")

    requested = db.cancel_run(run_id)
    # The process finishes its batch first: until it exits, the run is shown as cancelling.
    assert requested.active and requested.shown_status == "cancelling"
    assert "(cancelling)" in run_label(requested)
    run = db.wait_for_run(run_id, timeout=TIMEOUT)

    assert run.status == "cancelled", run.error
    assert run.shown_status == "cancelled" and run.stop_reason == "cancelled"
    assert 1 <= run.epochs_run < 50
    assert run.best_checkpoint is not None and run.best_checkpoint.exists()
    assert db.list_evaluations(run_id) == []
    # Cancelled before it could choose a threshold: evaluations fall back to 0.5.
    assert (run.threshold, run.threshold_source, run.threshold_fallback) == (None, "validation", True)
    assert db.evaluate_run(run_id, "test").threshold == 0.5


def test_a_killed_run_is_marked_failed_and_resumes_from_its_checkpoint(dataset_id):
    run_id = db.start_run(dict(TINY, epochs=3), dataset_id, threshold=0.4)
    running = _wait(run_id, lambda r: r.epochs_run >= 1, "the first finished epoch")

    os.killpg(running.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not db.refresh_run_states() and time.monotonic() < deadline:
        time.sleep(0.2)

    failed = db.get_run(run_id)
    assert failed.status == "failed"
    assert f"pid {running.pid}" in failed.error and "crashed or was killed" in failed.error
    assert failed.last_checkpoint.exists()
    done_before = failed.epochs_run

    db.resume_run(run_id)
    run = db.wait_for_run(run_id, timeout=TIMEOUT)

    assert run.status == "finished", run.error
    assert (run.epochs_run, run.attempts) == (3, 2)
    assert run.pid != running.pid
    assert db.epoch_metrics(run_id)["epoch"].tolist() == [0, 1, 2]
    assert done_before >= 1
    assert "resuming" in db.run_log(run_id)
    assert run.precision_reason == f"{run.precision}: kept from the checkpoint"
    # A fixed threshold stays, although training chose one on validation for the model file.
    assert (run.threshold, run.threshold_source) == (0.4, "fixed")
    (evaluation,) = db.list_evaluations(run_id)
    assert evaluation.threshold == 0.4
