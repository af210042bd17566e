"""Re-scoring an evaluation at another threshold from the probabilities it kept (db.rescoring),
against a fresh evaluation at that threshold that runs the model again."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

import db
from db_fixtures import make_layout, sqlite_store  # noqa: F401
from model_support import conv_model
from test_db_predictions import _finished_run

SCORES = ["iou", "f1", "precision", "recall", "true_count", "pred_count", "object_recall", "object_precision"]


@pytest.fixture
def evaluated(sqlite_store, tmp_path):
    make_layout(tmp_path / "src", {"Train": 1, "Validation": 1, "Test": 4})
    dataset_id = db.import_folder(tmp_path / "src", name="rescore").dataset_id
    run_id = _finished_run(dataset_id, conv_model(seed=11), threshold=0.5)
    return run_id, db.evaluate_run(run_id, "test")


def test_another_threshold_from_the_kept_probabilities_scores_as_a_fresh_evaluation(evaluated):
    run_id, first = evaluated
    assert db.can_rescore(first.id)
    started = time.perf_counter()
    fresh = db.evaluate_run(run_id, "test", threshold=0.3)  # the model runs again
    evaluating = time.perf_counter() - started
    # A mask changed after the evaluations: the re-score still scores the masks the evaluation scored.
    test_frame = db.list_frames(db.get_run(run_id).dataset_id, "test")[0]
    db.save_mask_revision(test_frame.id, np.zeros((64, 64), bool), author="ana")

    started = time.perf_counter()
    again = db.rescore_evaluation(first.id, 0.3)
    rescoring = time.perf_counter() - started

    assert (again.run_id, again.split, again.threshold, again.n_images, again.dilation) == (run_id, "test", 0.3, 4, 0)
    assert again.id not in (first.id, fresh.id) and again.checkpoint == first.checkpoint
    a = db.per_image_results(again.id).set_index("image")
    b = db.per_image_results(fresh.id).set_index("image")
    old = db.per_image_results(first.id).set_index("image")
    assert list(a["revision_id"]) == list(old["revision_id"])
    # The maps are kept as float16: a pixel within rounding of 0.3 may fall the other way (here: one pixel).
    np.testing.assert_allclose(a[SCORES].to_numpy(float), b[SCORES].to_numpy(float), atol=1e-4, equal_nan=True)
    for key in ("precision", "recall", "f1", "average_precision"):
        assert again.pooled[key] == pytest.approx(fresh.pooled[key], abs=1e-4, nan_ok=True)
    assert db.evaluation_curves(again.id) is not None
    assert db.can_rescore(again.id)  # and again from the re-scored one
    print(f"re-score {rescoring:.2f} s, fresh evaluation {evaluating:.2f} s")


def test_re_scoring_refuses_what_it_cannot_do_and_changes_nothing(evaluated, sqlite_store):
    run_id, first = evaluated
    before = [e.id for e in db.list_evaluations(run_id)]
    for bad in (0.0, 1.0, "half"):
        with pytest.raises(db.StoreError, match="threshold"):
            db.rescore_evaluation(first.id, bad)
    with pytest.raises(db.NotFound):
        db.rescore_evaluation(10**6, 0.4)
    shutil.rmtree(first.predictions_dir / "probabilities")  # an evaluation made before the maps were kept
    assert not db.can_rescore(first.id)
    with pytest.raises(db.StoreError, match="kept no probabilities"):
        db.rescore_evaluation(first.id, 0.4)
    assert [e.id for e in db.list_evaluations(run_id)] == before

    dataset_id = db.get_run(run_id).dataset_id
    lacosmic = _finished_run(dataset_id, kind="lacosmic", config={"tune": False})
    masks_only = db.evaluate_run(lacosmic, "test")
    assert not db.can_rescore(masks_only.id)
    with pytest.raises(db.StoreError, match="no threshold to change"):
        db.rescore_evaluation(masks_only.id, 0.4)
