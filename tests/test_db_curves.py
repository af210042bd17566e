"""The store keeps an evaluation's curves, its split-level numbers and its dilation, without a schema change."""

from __future__ import annotations

import numpy as np
import pytest

import db
from db_fixtures import postgres_cluster, sqlite_store, store  # noqa: F401
from segcore.classical import LACosmicParams, lacosmic_mask
from segcore.evaluator import POOLED_KEYS, evaluate_detector
from segcore.metrics import DERIVED_SCORES


@pytest.fixture
def lacosmic_run(sqlite_store, monkeypatch):  # noqa: F811
    """A finished LA Cosmic run on a tiny simulated dataset, its worker run in this process."""
    from db import runs as run_manager
    from db.worker import run_worker

    monkeypatch.setattr(run_manager, "_launch", lambda run_id, resume: None)
    dataset_id = db.import_simulated("curves", 1, 1, 2, size=80, seed=3).dataset_id
    run_id = db.start_lacosmic_run(dataset_id, params={"sigclip": 5.0}, tune=False)
    assert run_worker(run_id) == 0
    return dataset_id, run_id


def _direct(dataset_id, dilation=0):
    frames = sorted(db.list_frames(dataset_id, "test"), key=lambda f: f.name)
    pairs = [(db.frame_path(f.id), db.current_revision(f.id).path) for f in frames]
    detect = lambda frame: lacosmic_mask(frame, LACosmicParams(sigclip=5.0))  # noqa: E731
    return evaluate_detector(detect, pairs, dilation=dilation)


def test_an_evaluation_keeps_every_split_level_number_and_its_curves(lacosmic_run):
    dataset_id, run_id = lacosmic_run
    (evaluation,) = db.list_evaluations(run_id)
    direct = _direct(dataset_id)
    assert set(evaluation.pooled) == set(POOLED_KEYS)
    assert evaluation.pooled == pytest.approx(direct.pooled, nan_ok=True)
    assert evaluation.dilation == 0
    curves = db.evaluation_curves(evaluation.id)
    assert curves.histogram.headline() == pytest.approx(direct.curves.histogram.headline(), nan_ok=True)
    np.testing.assert_array_equal(curves.objects.matched, direct.curves.objects.matched)


def test_per_image_results_carry_object_f1_and_count_errors(lacosmic_run):
    dataset_id, run_id = lacosmic_run
    (evaluation,) = db.list_evaluations(run_id)
    stored = db.per_image_results(evaluation.id)
    direct = _direct(dataset_id).per_image
    for column in DERIVED_SCORES:
        np.testing.assert_allclose(stored[column].to_numpy(float), direct[column].to_numpy(float))
    assert evaluation.summary["abs_count_error"]["mean"] == pytest.approx(direct["abs_count_error"].mean())


def test_a_dilated_evaluation_is_stored_with_its_dilation(lacosmic_run):
    dataset_id, run_id = lacosmic_run
    grown = db.evaluate_run(run_id, "test", dilation=2)
    assert grown.dilation == 2 and "dilation" not in grown.pooled
    assert db.get_evaluation(grown.id).dilation == 2
    direct = _direct(dataset_id, dilation=2)
    assert grown.pooled["f1"] == pytest.approx(direct.pooled["f1"])
    masks = db.per_image_results(grown.id)
    np.testing.assert_array_equal(db.prediction_mask(int(masks.loc[0, "result_id"])), lacosmic_dilated(dataset_id, 0, 2))
    table = db.compare_runs([run_id])
    assert table.loc[0, "dilation"] == 2
    assert table.loc[0, "pooled_object_f1"] == pytest.approx(direct.pooled["object_f1"])


def lacosmic_dilated(dataset_id, index, pixels):
    from segcore.postprocess import dilate

    frame = sorted(db.list_frames(dataset_id, "test"), key=lambda f: f.name)[index]
    return dilate(lacosmic_mask(db.read_frame(frame.id), LACosmicParams(sigclip=5.0)), pixels)


def test_a_bad_dilation_is_refused_by_the_store(lacosmic_run):
    _, run_id = lacosmic_run
    with pytest.raises(db.StoreError, match="dilation"):
        db.evaluate_run(run_id, "test", dilation=-1)


def test_an_evaluation_without_a_curves_file_has_no_curves(lacosmic_run):
    _, run_id = lacosmic_run
    (evaluation,) = db.list_evaluations(run_id)
    evaluation.curves_path.unlink()
    assert db.evaluation_curves(evaluation.id) is None


def test_a_cleaned_frame_comes_in_its_own_format_with_the_predicted_cosmics_replaced(lacosmic_run, tmp_path):
    from segcore import io
    from segcore.postprocess import clean_frame

    dataset_id, run_id = lacosmic_run
    (evaluation,) = db.list_evaluations(run_id)
    row = db.per_image_results(evaluation.id).iloc[0]
    name, data = db.cleaned_frame(int(row["result_id"]))
    frame_file = db.frame_path(int(row["frame_id"]))
    assert name == frame_file.name
    (tmp_path / name).write_bytes(data)
    expected = clean_frame(io.read_raw(frame_file), db.prediction_mask(int(row["result_id"])))
    cleaned = io.read_raw(tmp_path / name)
    assert cleaned.dtype == expected.dtype
    np.testing.assert_array_equal(cleaned, expected)
    with pytest.raises(db.NotFound):
        db.cleaned_frame(10_000)
