import json

import numpy as np
import pytest
from model_support import intensity_model, random_frame
from skimage.measure import label as sk_label
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    jaccard_score,
    precision_score,
    recall_score,
)

from segcore import evaluator as ev
from segcore import overlays
from segcore.errors import InputFileError
from segcore.io import read_mask, write_frame, write_mask
from segcore.metrics import find_cosmics, object_scores
from segcore.preprocess import display_image, normalize_frame

# --------------------------------------------------------------------------- #
# Evaluation
# --------------------------------------------------------------------------- #

# Constant background 100; the few marked pixels stay under 2 % of the frame, so
# normalisation scales by the peak (3000): background x = -0.95, faint 300 -> -0.84,
# hot 2500 -> 0.64, cosmic 3000 -> 1. With k = 4: probabilities 0.022, 0.034, 0.93, 0.98.
K, B = 4.0, 0.0
SHAPES = [(48, 64), (64, 64), (40, 72)]


def make_sample(shape, seed):
    rng = np.random.default_rng(seed)
    frame = np.full(shape, 100, np.uint16)
    mask = np.zeros(shape, bool)
    for _ in range(3):  # bright cosmics: found
        r, c = rng.integers(2, shape[0] - 4), rng.integers(2, shape[1] - 4)
        frame[r : r + 2, c : c + 3] = 3000
        mask[r : r + 2, c : c + 3] = True
    r, c = rng.integers(2, shape[0] - 3), rng.integers(2, shape[1] - 3)
    frame[r, c : c + 2] = 300  # faint cosmic: missed
    mask[r, c : c + 2] = True
    for _ in range(2):  # hot pixels, not cosmic: false positives
        r, c = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        if not mask[r, c]:
            frame[r, c] = 2500
    frame[0, 0] = 3000  # fixes the peak even if a cosmic was overwritten
    mask[0, 0] = True
    return frame, mask


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    pairs, samples = [], []
    for i, shape in enumerate(SHAPES):
        frame, mask = make_sample(shape, seed=i)
        image_path, mask_path = root / "Test" / f"frame_{i:05d}.png", root / "TestAnnotation" / f"frame_{i:05d}.png"
        write_frame(image_path, frame)
        write_mask(mask_path, mask)
        pairs.append((image_path, mask_path))
        samples.append((frame, mask))
    return pairs, samples


@pytest.fixture(scope="module")
def threshold_model():
    return intensity_model(K, B)


def expected_probabilities(frame):
    x = normalize_frame(frame).astype(np.float64)
    return 1.0 / (1.0 + np.exp(-(K * x - B)))


def expected_prediction(frame, threshold):
    return expected_probabilities(frame) > threshold


#: Pooled numbers of the masks at the threshold (not read from the curves).
AT_THRESHOLD = ("precision", "recall", "f1", "iou", "object_precision", "object_recall", "object_f1")


def test_evaluate_pairs_pixel_scores_match_sklearn_on_predicted_masks(dataset, threshold_model):
    pairs, samples = dataset
    result = ev.evaluate_pairs(threshold_model, pairs, threshold=0.5)
    table = result.per_image
    assert list(table["image"]) == [p[0].name for p in pairs]
    assert list(table["image_path"]) == [str(p[0]) for p in pairs]
    for (_, row), (frame, mask) in zip(table.iterrows(), samples):
        pred = expected_prediction(frame, 0.5)
        t, p = mask.ravel(), pred.ravel()
        tn, fp, fn, tp = confusion_matrix(t, p, labels=[False, True]).ravel()
        assert (row.tp, row.fp, row.fn, row.tn) == (tp, fp, fn, tn)
        assert row.fp > 0 and row.fn > 0 and row.tp > 0  # every kind of pixel occurs
        assert row.precision == pytest.approx(precision_score(t, p))
        assert row.recall == pytest.approx(recall_score(t, p))
        assert row.f1 == pytest.approx(f1_score(t, p))
        assert row.dice == pytest.approx(f1_score(t, p))
        assert row.iou == pytest.approx(jaccard_score(t, p))
        assert row.pixel_accuracy == pytest.approx(accuracy_score(t, p))
        assert row.specificity == pytest.approx(tn / (tn + fp))


def test_evaluate_pairs_counts_cosmics_with_8_connectivity(dataset, threshold_model):
    pairs, samples = dataset
    table = ev.evaluate_pairs(threshold_model, pairs).per_image
    for (_, row), (frame, mask) in zip(table.iterrows(), samples):
        pred = expected_prediction(frame, 0.5)
        true_count = sk_label(mask, connectivity=2).max()
        pred_count = sk_label(pred, connectivity=2).max()
        assert (row.true_count, row.pred_count) == (true_count, pred_count)
        assert row.count_score == pytest.approx(min(1.0, pred_count / true_count))
        objects = object_scores(mask, pred)
        assert row.object_recall == pytest.approx(objects["object_recall"])
        assert row.object_precision == pytest.approx(objects["object_precision"])


def test_pooled_scores_match_sklearn_over_all_pixels(dataset, threshold_model):
    pairs, samples = dataset
    result = ev.evaluate_pairs(threshold_model, pairs)
    t = np.concatenate([mask.ravel() for _, mask in samples])
    p = np.concatenate([expected_prediction(frame, 0.5).ravel() for frame, _ in samples])
    assert result.pooled["precision"] == pytest.approx(precision_score(t, p))
    assert result.pooled["recall"] == pytest.approx(recall_score(t, p))
    assert result.pooled["f1"] == pytest.approx(f1_score(t, p))
    assert result.pooled["iou"] == pytest.approx(jaccard_score(t, p))


def test_summary_is_mean_and_population_std_of_each_score(dataset, threshold_model):
    result = ev.evaluate_pairs(threshold_model, dataset[0])
    summary = result.summary()
    assert list(summary.columns) == ["mean", "std"]
    assert list(summary.index) == list(ev.SCORE_COLUMNS)
    for name in ev.SCORE_COLUMNS:
        values = result.per_image[name].to_numpy(float)
        assert summary.loc[name, "mean"] == pytest.approx(np.mean(values))
        assert summary.loc[name, "std"] == pytest.approx(np.std(values))


def test_to_json_dict_holds_means_pooled_threshold_precision_policy_and_count(dataset, threshold_model):
    result = ev.evaluate_pairs(threshold_model, dataset[0], threshold=0.5)
    report = json.loads(json.dumps(result.to_json_dict()))
    assert set(report) == {
        *ev.JSON_MEAN_KEYS, "pooled", "threshold", "dilation", "views", "precision_policy", "n_images",
    }
    assert report["views"] == 1
    assert report["precision_policy"] == "float32"  # not a DeepLabV3+: run as given
    for key in ev.JSON_MEAN_KEYS:
        assert report[key] == pytest.approx(result.per_image[key].mean())
    assert report["pooled"] == pytest.approx({k: result.pooled[k] for k in ev.POOLED_KEYS})
    assert (report["threshold"], report["dilation"]) == (0.5, 0)
    assert report["n_images"] == 3


def test_count_errors_and_object_scores_per_image(dataset, threshold_model):
    pairs, samples = dataset
    table = ev.evaluate_pairs(threshold_model, pairs, threshold=0.5).per_image
    for (_, row), (frame, mask) in zip(table.iterrows(), samples):
        objects = object_scores(mask, expected_prediction(frame, 0.5))
        error = (objects["pred_count"] - objects["true_count"]) / objects["true_count"]
        assert row.count_error == pytest.approx(error)
        assert row.abs_count_error == pytest.approx(abs(error))
        assert (row.object_f1, row.matched_count) == (pytest.approx(objects["object_f1"]), objects["matched"])


def test_pooled_object_scores_sum_the_matches_of_every_image(dataset, threshold_model):
    pairs, samples = dataset
    result = ev.evaluate_pairs(threshold_model, pairs, threshold=0.5)
    scores = [object_scores(mask, expected_prediction(frame, 0.5)) for frame, mask in samples]
    matched = sum(s["matched"] for s in scores)
    n_true, n_pred = sum(s["true_count"] for s in scores), sum(s["pred_count"] for s in scores)
    assert result.pooled["object_recall"] == pytest.approx(matched / n_true)
    assert result.pooled["object_precision"] == pytest.approx(matched / n_pred)
    assert result.pooled["object_f1"] == pytest.approx(2 * matched / (n_true + n_pred))


def test_curves_of_the_split_match_sklearn_on_all_its_probabilities(dataset, threshold_model):
    from sklearn.metrics import roc_auc_score

    pairs, samples = dataset
    result = ev.evaluate_pairs(threshold_model, pairs, threshold=0.5)
    y = np.concatenate([mask.ravel() for _, mask in samples])
    p = np.concatenate([expected_probabilities(frame).ravel() for frame, _ in samples])
    assert result.pooled["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-5)
    point = result.curves.histogram.at_threshold(0.5)
    assert (point["precision"], point["recall"]) == pytest.approx((result.pooled["precision"], result.pooled["recall"]))


def test_dilation_grows_every_predicted_mask_before_scoring_and_writing(dataset, threshold_model, tmp_path):
    import cv2

    pairs, samples = dataset
    result = ev.evaluate_pairs(threshold_model, pairs, threshold=0.5, dilation=1, predictions_dir=tmp_path)
    assert result.dilation == 1 and result.to_json_dict()["dilation"] == 1
    for (_, row), (frame, mask) in zip(result.per_image.iterrows(), samples):
        grown = cv2.dilate(expected_prediction(frame, 0.5).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        np.testing.assert_array_equal(read_mask(row.prediction), grown)
        assert row.tp == np.count_nonzero(grown & mask)
        assert row.pred_count == sk_label(grown, connectivity=2).max()


def test_a_detectors_masks_are_grown_alike(dataset):
    import cv2

    pairs, samples = dataset
    table = ev.evaluate_detector(threshold_detector, pairs, dilation=2).per_image
    for (_, row), (frame, mask) in zip(table.iterrows(), samples):
        grown = cv2.dilate(threshold_detector(frame).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert (row.tp, row.fp) == (np.count_nonzero(grown & mask), np.count_nonzero(grown & ~mask))


@pytest.mark.parametrize("dilation", [-1, 1.5, 65])
def test_a_bad_dilation_is_refused(dataset, threshold_model, dilation):
    with pytest.raises(ValueError, match="dilation"):
        ev.evaluate_pairs(threshold_model, dataset[0], dilation=dilation)


def test_threshold_zero_marks_every_pixel_as_cosmic(dataset, threshold_model):
    table = ev.evaluate_pairs(threshold_model, dataset[0], threshold=0.0).per_image
    assert list(table["tp"] + table["fp"]) == [h * w for h, w in SHAPES]
    assert list(table["pred_count"]) == [1, 1, 1]


def test_higher_threshold_drops_less_confident_pixels(dataset, threshold_model):
    pairs, samples = dataset
    low = ev.evaluate_pairs(threshold_model, pairs, threshold=0.03).per_image
    mid = ev.evaluate_pairs(threshold_model, pairs, threshold=0.5).per_image
    high = ev.evaluate_pairs(threshold_model, pairs, threshold=0.95).per_image
    assert (low["fn"] == 0).all()  # the faint cosmic (0.034) is found
    assert (mid["fn"] > 0).all()
    assert (high["fp"] == 0).all()  # hot pixels (0.93) are dropped
    assert (mid["fp"] > 0).all()
    for (_, row), (frame, mask) in zip(high.iterrows(), samples):
        assert row.tp + row.fp == expected_prediction(frame, 0.95).sum()


def test_predictions_dir_receives_readable_masks(dataset, threshold_model, tmp_path):
    pairs, samples = dataset
    out = tmp_path / "pred"
    table = ev.evaluate_pairs(threshold_model, pairs, predictions_dir=out).per_image
    for (_, row), (image, _), (frame, _) in zip(table.iterrows(), pairs, samples):
        assert row.prediction == str(out / f"{image.stem}.png")
        np.testing.assert_array_equal(read_mask(row.prediction), expected_prediction(frame, 0.5))


def test_prediction_column_absent_without_predictions_dir(dataset, threshold_model):
    table = ev.evaluate_pairs(threshold_model, dataset[0]).per_image
    assert "prediction" not in table.columns


def test_progress_is_called_after_each_image(dataset, threshold_model):
    calls = []
    ev.evaluate_pairs(threshold_model, dataset[0], progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_mask_of_other_size_raises_input_file_error_naming_mask(dataset, threshold_model, tmp_path):
    pairs, _ = dataset
    bad_mask = tmp_path / "frame_bad.png"
    write_mask(bad_mask, np.zeros((10, 10), bool))
    with pytest.raises(InputFileError, match="frame_bad.png") as info:
        ev.evaluate_pairs(threshold_model, [pairs[0], (pairs[1][0], bad_mask)])
    assert info.value.path == str(bad_mask)


def test_empty_pairs_are_refused(threshold_model):
    with pytest.raises(ValueError, match="no image"):
        ev.evaluate_pairs(threshold_model, [])


def test_rescore_from_kept_probabilities_matches_fresh_evaluation(dataset, threshold_model):
    pairs, samples = dataset
    kept = ev.evaluate_pairs(threshold_model, pairs, threshold=0.5, keep_probabilities=True)
    assert set(kept.probabilities) == {p[0].name for p in pairs}
    assert all(m.dtype == np.float16 for m in kept.probabilities.values())
    rescored = ev.rescore(kept, pairs, threshold=0.95)
    fresh = ev.evaluate_pairs(threshold_model, pairs, threshold=0.95)
    assert rescored.threshold == 0.95
    assert rescored.per_image.equals(fresh.per_image)
    # the curves of float16 maps put a few pixels in a neighbouring bin
    assert rescored.pooled == pytest.approx(fresh.pooled, abs=0.02)
    assert {k: rescored.pooled[k] for k in AT_THRESHOLD} == {k: fresh.pooled[k] for k in AT_THRESHOLD}


def test_rescore_needs_kept_probabilities(dataset, threshold_model):
    pairs, _ = dataset
    plain = ev.evaluate_pairs(threshold_model, pairs)
    with pytest.raises(ValueError, match="keep_probabilities"):
        ev.rescore(plain, pairs, threshold=0.3)


# --------------------------------------------------------------------------- #
# Detectors that give masks themselves
# --------------------------------------------------------------------------- #


def threshold_detector(frame):
    """The mask ``threshold_model`` gives at 0.5, computed without the network."""
    return expected_prediction(frame, 0.5)


def test_a_detector_scores_exactly_as_a_model_giving_the_same_masks(dataset, threshold_model, tmp_path):
    pairs, _ = dataset
    calls = []
    by_model = ev.evaluate_pairs(threshold_model, pairs, threshold=0.5, predictions_dir=tmp_path / "model")
    by_detector = ev.evaluate_detector(
        threshold_detector, pairs, progress=lambda done, total: calls.append((done, total)),
        predictions_dir=tmp_path / "detector",
    )
    drop = ["prediction"]
    assert by_detector.per_image.drop(columns=drop).equals(by_model.per_image.drop(columns=drop))
    assert {k: by_detector.pooled[k] for k in AT_THRESHOLD} == {k: by_model.pooled[k] for k in AT_THRESHOLD}
    assert by_detector.summary().equals(by_model.summary())
    assert (by_detector.threshold, by_detector.precision) == (ev.DETECTOR_THRESHOLD, None)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    for model_path, detector_path in zip(by_model.per_image["prediction"], by_detector.per_image["prediction"]):
        np.testing.assert_array_equal(read_mask(detector_path), read_mask(model_path))


def test_a_detector_report_is_plain_json(dataset):
    report = json.loads(json.dumps(ev.evaluate_detector(threshold_detector, dataset[0]).to_json_dict()))
    assert (report["threshold"], report["precision_policy"], report["n_images"]) == (0.5, None, 3)


def test_a_detector_mask_of_another_shape_is_refused_naming_the_image(dataset):
    pairs, _ = dataset
    with pytest.raises(ValueError, match="detector's mask of frame_00000.png has shape"):
        ev.evaluate_detector(lambda frame: np.zeros((3, 3), bool), pairs)


# --------------------------------------------------------------------------- #
# Overlays
# --------------------------------------------------------------------------- #


def blended(gray, color):
    return np.round(0.4 * gray + 0.6 * np.asarray(color, float)).astype(np.uint8)


@pytest.fixture
def overlay_case():
    frame = random_frame((40, 50), seed=4)
    true = np.zeros((40, 50), bool)
    pred = np.zeros((40, 50), bool)
    true[5, 5] = pred[5, 5] = True  # true positive
    pred[20, 30] = True  # false positive
    true[30, 10] = True  # false negative
    return frame, true, pred


def test_overlay_colours_true_false_positive_and_false_negative_pixels(overlay_case):
    frame, true, pred = overlay_case
    rgb = overlays.overlay(frame, true, pred, numbers=False)
    gray = display_image(frame).astype(float)
    assert rgb.shape == (40, 50, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[5, 5], blended(gray[5, 5], overlays.TRUE_POSITIVE_COLOR))
    np.testing.assert_array_equal(rgb[20, 30], blended(gray[20, 30], overlays.FALSE_POSITIVE_COLOR))
    np.testing.assert_array_equal(rgb[30, 10], blended(gray[30, 10], overlays.FALSE_NEGATIVE_COLOR))
    unmarked = ~(true | pred)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel][unmarked], gray[unmarked])


def test_overlay_colours_are_distinct():
    colours = {overlays.TRUE_POSITIVE_COLOR, overlays.FALSE_POSITIVE_COLOR, overlays.FALSE_NEGATIVE_COLOR, overlays.PREDICTED_COLOR}
    assert len(colours) == 4


def test_overlay_without_true_mask_marks_predictions(overlay_case):
    frame, _, pred = overlay_case
    rgb = overlays.overlay(frame, None, pred, numbers=False)
    gray = display_image(frame).astype(float)
    np.testing.assert_array_equal(rgb[5, 5], blended(gray[5, 5], overlays.PREDICTED_COLOR))
    np.testing.assert_array_equal(rgb[20, 30], blended(gray[20, 30], overlays.PREDICTED_COLOR))
    np.testing.assert_array_equal(rgb[30, 10], np.repeat(gray[30, 10], 3))  # a true cosmic is not shown


def test_prediction_overlay_is_overlay_without_true_mask(overlay_case):
    frame, _, pred = overlay_case
    np.testing.assert_array_equal(overlays.prediction_overlay(frame, pred), overlays.overlay(frame, None, pred))


def test_overlay_numbers_are_written_beside_each_predicted_cosmic():
    frame = random_frame((128, 128), seed=6)
    pred = np.zeros((128, 128), bool)
    pred[20:23, 15:18] = True
    pred[90:92, 70:74] = True
    plain = overlays.overlay(frame, None, pred, numbers=False)
    numbered = overlays.overlay(frame, None, pred, numbers=True)
    changed = np.any(plain != numbered, axis=-1)
    near = np.zeros_like(changed)
    for cosmic in find_cosmics(pred):
        row0, col0, row1, col1 = cosmic.bbox
        box = changed[max(row0 - 3, 0) : row0 + 14, col1 - 2 : col1 + 14]
        assert box.any()  # a label sits right of this cosmic
        near[max(row0 - 3, 0) : row0 + 14, col0 - 14 : col1 + 14] = True
    assert not changed[~near].any()


def test_overlay_rejects_mask_of_other_shape(overlay_case):
    frame, true, _ = overlay_case
    with pytest.raises(ValueError, match="pred_mask"):
        overlays.overlay(frame, true, np.zeros((10, 10), bool))
