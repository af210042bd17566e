"""LA Cosmic runs: a detector that needs no training, stored, run in its own process and evaluated like a trained run.

The datasets are tiny simulated ones (80 px frames), and tuning tries a small grid, so each run takes seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label

import db
from db_fixtures import postgres_cluster, sqlite_store, store  # noqa: F401
from segcore.classical import LACosmicParams, lacosmic_mask, tune_lacosmic, tuning_grid
from segcore.evaluator import evaluate_detector
from segcore.metrics import pooled_scores

SMALL_GRID = {"sigclip": [4.5, 8.0], "objlim": [2.0], "sigfrac": [0.3, 0.5]}
TIMEOUT = 300


def _simulated(name: str, validation: int = 2, test: int = 2) -> int:
    return db.import_simulated(name, 1, validation, test, size=80, seed=3).dataset_id


def _labelled(dataset_id: int, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame, current mask) of a split, in file-name order."""
    frames = sorted(db.list_frames(dataset_id, split), key=lambda f: f.name)
    return [(db.read_frame(f.id), db.current_mask(f.id)) for f in frames]


def _finished(run_id: int) -> db.RunInfo:
    run = db.wait_for_run(run_id, timeout=TIMEOUT)
    assert run.status == "finished", f"{run.error}\n{db.run_log(run_id)[-3000:]}"
    return run


@pytest.fixture
def no_process(monkeypatch):
    """Record LA Cosmic runs without starting their process (the test runs the worker's part itself)."""
    from db import runs as run_manager

    monkeypatch.setattr(run_manager, "_launch", lambda run_id, resume: None)


@pytest.mark.slow
def test_a_tuned_run_keeps_the_validation_choice_and_stores_its_test_evaluation(sqlite_store):
    dataset_id = _simulated("tuned")
    run_id = db.start_lacosmic_run(dataset_id, name="la cosmic", params={"niter": 2}, grid=SMALL_GRID)
    queued = db.get_run(run_id)
    assert (queued.kind, queued.trains, queued.threshold, queued.threshold_source) == ("lacosmic", False, 0.5, "fixed")

    run = _finished(run_id)

    # The choice is tune_lacosmic's on the validation frames, over the grid asked for.
    validation = _labelled(dataset_id, "validation")
    best, ranking = tune_lacosmic(validation, tuning_grid(LACosmicParams(niter=2), **SMALL_GRID))
    config = run.config
    assert (config["sigclip"], config["objlim"], config["sigfrac"], config["niter"]) == (
        best.sigclip, best.objlim, best.sigfrac, 2
    )
    assert (config["gain"], config["read_noise"], config["offset"], config["saturation"]) == (None,) * 4
    assert config["tune"] is True and config["tuned"] is True and config["tuning_frames"] == 2
    assert config["tuned_f1"] == pytest.approx(ranking[0][1]["f1"])
    assert config["tuning_grid"] == SMALL_GRID
    # Progress went through every validation and test frame.
    assert (run.steps_per_epoch, run.current_step, run.progress, run.attempts) == (4, 4, 1.0, 1)
    assert len(db.run_revisions(run_id)) == 5  # 1 train + 2 validation + 2 test frames

    # The test evaluation is stored as a trained model's, with LA Cosmic's masks at the chosen parameters.
    (evaluation,) = db.list_evaluations(run_id)
    assert (evaluation.split, evaluation.threshold, evaluation.precision, evaluation.checkpoint) == (
        "test", 0.5, None, "lacosmic"
    )
    test = _labelled(dataset_id, "test")
    predicted = [lacosmic_mask(frame, best) for frame, _ in test]
    expected = pooled_scores((true, pred) for (_, true), pred in zip(test, predicted))
    assert evaluation.n_images == 2
    pixel_keys = ("precision", "recall", "f1", "iou")
    assert {k: evaluation.pooled[k] for k in pixel_keys} == pytest.approx({k: expected[k] for k in pixel_keys})
    results = db.per_image_results(evaluation.id)
    for row, pred in zip(results.itertuples(), predicted):
        np.testing.assert_array_equal(db.prediction_mask(row.result_id), pred)
        assert row.pred_count == label(pred, connectivity=2).max()
    assert "chose" in db.run_log(run_id) and "finished" in db.run_log(run_id)
    table = db.runs_table().set_index("run_id")
    assert (table.loc[run_id, "kind"], table.loc[run_id, "epochs"]) == ("lacosmic", None)
    assert db.compare_runs([run_id]).loc[0, "kind"] == "lacosmic"


@pytest.mark.slow
def test_an_untuned_run_uses_its_parameters_and_can_be_evaluated_again(store):
    dataset_id = _simulated("as given")
    params = {"sigclip": 6.0, "sigfrac": 0.4, "objlim": 3.0, "niter": 1, "read_noise": None}
    run = _finished(db.start_lacosmic_run(dataset_id, params=params, tune=False))

    assert run.name == f"run {run.id}"
    assert run.config == {**LACosmicParams(**params).to_dict(), "tune": False, "tuned": False}
    assert (run.steps_per_epoch, run.current_step) == (2, 2)  # the test frames only
    (evaluation,) = db.list_evaluations(run.id)

    # Evaluated again in this process, on another split: with the run's own parameters.
    again = db.evaluate_run(run.id, "validation")
    validation = _labelled(dataset_id, "validation")
    expected = pooled_scores((true, lacosmic_mask(frame, LACosmicParams(**params))) for frame, true in validation)
    assert (again.split, again.threshold, again.checkpoint, again.n_images) == ("validation", 0.5, "lacosmic", 2)
    assert again.pooled["f1"] == pytest.approx(expected["f1"])
    assert db.evaluate_run(run.id, "test", threshold=0.5).pooled == pytest.approx(evaluation.pooled)
    with pytest.raises(db.StoreError, match="LA Cosmic run: its masks have no probability threshold"):
        db.evaluate_run(run.id, "test", threshold=0.3)
    with pytest.raises(db.StoreError, match="LA Cosmic run: it has no 'last' checkpoint"):
        db.evaluate_run(run.id, "test", checkpoint="last")


def test_the_test_evaluation_equals_evaluate_detector_on_the_recorded_masks(sqlite_store, no_process):
    from db.worker import run_worker

    dataset_id = _simulated("in process")
    run_id = db.start_lacosmic_run(dataset_id, params={"sigclip": 5.0}, tune=False)
    assert db.get_run(run_id).status == "queued"

    assert run_worker(run_id) == 0  # the worker's part, here

    run = db.get_run(run_id)
    assert run.status == "finished" and run.ended_at is not None
    (evaluation,) = db.list_evaluations(run_id)
    frames = sorted(db.list_frames(dataset_id, "test"), key=lambda f: f.name)
    pairs = [(db.frame_path(f.id), db.current_revision(f.id).path) for f in frames]
    direct = evaluate_detector(lambda frame: lacosmic_mask(frame, LACosmicParams(sigclip=5.0)), pairs)
    stored = db.per_image_results(evaluation.id)
    for column in ("iou", "f1", "precision", "recall", "count_score", "true_count", "pred_count"):
        np.testing.assert_allclose(stored[column].to_numpy(float), direct.per_image[column].to_numpy(float))
    assert evaluation.summary["f1"]["mean"] == pytest.approx(direct.summary().loc["f1", "mean"], nan_ok=True)


def test_a_run_without_validation_masks_to_tune_on_keeps_its_parameters(sqlite_store, no_process, capsys):
    from db.worker import run_worker

    dataset_id = _simulated("no validation", validation=0)
    run_id = db.start_lacosmic_run(dataset_id, params={"sigclip": 7.0}, grid=SMALL_GRID)
    assert run_worker(run_id) == 0
    run = db.get_run(run_id)
    assert run.status == "finished"
    assert (run.config["tuned"], run.config["sigclip"], run.steps_per_epoch) == (False, 7.0, 2)
    assert "no validation frames with masks to tune on; the parameters as given" in capsys.readouterr().out


@pytest.mark.slow
def test_a_frame_that_cannot_be_read_fails_the_run_with_one_line(sqlite_store):
    dataset_id = _simulated("broken")
    broken = sorted(db.list_frames(dataset_id, "test"), key=lambda f: f.name)[0]
    db.frame_path(broken.id).write_bytes(b"not a png")

    run = db.wait_for_run(db.start_lacosmic_run(dataset_id, tune=False), timeout=TIMEOUT)

    assert run.status == "failed"
    assert run.error.startswith("InputFileError: ") and broken.name in run.error
    assert "\n" not in run.error
    assert "Traceback" in db.run_log(run.id)  # the details stay in the log
    assert db.list_evaluations(run.id) == []


def test_a_cancelled_run_stops_at_the_next_frame_and_stores_no_evaluation(sqlite_store, no_process):
    from db.classical import detect_with_lacosmic
    from segcore.listeners import CancelToken

    dataset_id = _simulated("cancelled")
    run_id = db.start_lacosmic_run(dataset_id, tune=False)
    cancel = CancelToken()
    cancel.cancel()

    assert detect_with_lacosmic(run_id, db.get_run(run_id).config, cancel) == "cancelled"

    assert db.list_evaluations(run_id) == []
    evaluations = db.get_run(run_id).run_dir / "evaluations"
    assert not evaluations.exists() or not any(evaluations.iterdir())  # the half-written masks are gone


@pytest.mark.parametrize(
    "params, grid, problem",
    [
        ({"sigclip": -1.0}, None, "sigclip must be positive"),
        ({"niter": 2.5}, None, "niter must be a whole number"),
        ({"sigclip": "high"}, None, "invalid LA Cosmic parameters"),
        ({"threshold": 0.3}, None, "unknown LA Cosmic parameter(s): threshold"),
        (None, {"niter": [1, 2]}, "only sigclip, objlim, sigfrac are tuned, not niter"),
        (None, {"sigclip": []}, "the sigclip values to try must be positive numbers"),
    ],
)
def test_bad_parameters_are_refused_before_a_run_is_recorded(sqlite_store, no_process, params, grid, problem):
    dataset_id = _simulated("bad")
    with pytest.raises(db.StoreError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        db.start_lacosmic_run(dataset_id, params=params, grid=grid)
    assert db.list_runs() == []


def test_a_dataset_without_test_masks_is_refused(sqlite_store, no_process):
    dataset_id = db.import_simulated("no test", 1, 1, 0, size=64, seed=1).dataset_id
    with pytest.raises(db.StoreError, match="'no test' has no test frames with masks"):
        db.start_lacosmic_run(dataset_id)
    assert db.list_runs() == []
