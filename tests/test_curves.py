"""Pixel curves from histograms agree with scikit-learn's exact ones; object curves with object_scores."""

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from segcore.curves import BIN_EDGES, OBJECT_THRESHOLDS, ObjectCurve, ProbabilityHistogram, SplitCurves
from segcore.metrics import object_scores

SEEDS = [0, 1, 2]


def scored_pixels(seed, n=20000):
    """A (100, n/100) truth and continuous probabilities that rank cosmics mostly higher."""
    rng = np.random.default_rng(seed)
    true = rng.random(n) < 0.05
    probabilities = np.where(true, rng.beta(5, 2, n), rng.beta(1, 6, n)).astype(np.float32)
    return true.reshape(100, -1), probabilities.reshape(100, -1)


def histogram_of(true, probabilities, split=1):
    histogram = ProbabilityHistogram()
    for part_true, part_probabilities in zip(np.array_split(true, split), np.array_split(probabilities, split)):
        histogram.add(part_true, part_probabilities)
    return histogram


def on_bins(probabilities):
    """Each probability moved to its bin's upper edge: what the histogram cannot tell apart."""
    return BIN_EDGES[np.searchsorted(BIN_EDGES, probabilities.astype(np.float64), side="left")]


@pytest.mark.parametrize("seed", SEEDS)
def test_probabilities_on_the_bin_edges_give_sklearn_values_exactly(seed):
    true, probabilities = scored_pixels(seed)
    quantized = on_bins(probabilities)
    histogram = histogram_of(true, quantized)
    y, s = true.ravel(), quantized.ravel()
    assert histogram.roc_auc() == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert histogram.average_precision() == pytest.approx(average_precision_score(y, s), abs=1e-12)
    precision, recall, _ = precision_recall_curve(y, s)
    assert histogram.precision_at_recall(0.95) == pytest.approx(precision[recall >= 0.95].max(), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    for limit in (1e-3, 1e-2, 0.1):
        assert histogram.tpr_at_fpr(limit) == pytest.approx(tpr[fpr <= limit].max(), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_continuous_probabilities_are_within_the_documented_tolerance_of_sklearn(seed):
    true, probabilities = scored_pixels(seed)
    histogram = histogram_of(true, probabilities)
    y, s = true.ravel(), probabilities.ravel()
    assert histogram.roc_auc() == pytest.approx(roc_auc_score(y, s), abs=1e-5)
    assert histogram.average_precision() == pytest.approx(average_precision_score(y, s), abs=1e-3)
    # one bin's worth of the curve: a handful of the 1,000 cosmic pixels
    precision, recall, _ = precision_recall_curve(y, s)
    exact = precision[recall >= 0.95].max()
    assert exact - 0.01 <= histogram.precision_at_recall(0.95) <= exact
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    for limit in (1e-3, 1e-2):
        exact = tpr[fpr <= limit].max()
        assert exact - 0.01 <= histogram.tpr_at_fpr(limit) <= exact


def test_curves_at_every_edge_are_sklearns_points():
    true, probabilities = scored_pixels(4)
    roc = histogram_of(true, probabilities).roc_curve()
    y, s = true.ravel(), probabilities.ravel()
    for edge in (0.01, 0.2, 0.5, 0.93):
        index = int(np.flatnonzero(roc["threshold"] == edge)[0])
        predicted = s > edge
        assert roc["tpr"][index] == np.count_nonzero(predicted & y) / np.count_nonzero(y)
        assert roc["fpr"][index] == np.count_nonzero(predicted & ~y) / np.count_nonzero(~y)


def test_a_split_of_images_sums_to_the_whole():
    true, probabilities = scored_pixels(5)
    whole, parts = histogram_of(true, probabilities), histogram_of(true, probabilities, split=7)
    np.testing.assert_array_equal(whole.positives, parts.positives)
    np.testing.assert_array_equal(whole.negatives, parts.negatives)
    merged = ProbabilityHistogram()
    merged.merge(whole)
    assert merged.headline() == whole.headline()


def test_the_histogram_keeps_constant_memory():
    histogram = ProbabilityHistogram()
    size = histogram.positives.nbytes + histogram.negatives.nbytes
    for seed in range(3):
        histogram.add(*scored_pixels(seed))
    assert histogram.positives.nbytes + histogram.negatives.nbytes == size


def test_at_threshold_is_the_pooled_scores_of_the_mask_above_it():
    true, probabilities = scored_pixels(6)
    point = histogram_of(true, probabilities).at_threshold(0.42)
    predicted = probabilities > 0.42
    tp = np.count_nonzero(predicted & true)
    assert point["precision"] == tp / np.count_nonzero(predicted)
    assert point["recall"] == tp / np.count_nonzero(true)
    assert point["fpr"] == np.count_nonzero(predicted & ~true) / np.count_nonzero(~true)


def test_probabilities_exactly_on_a_threshold_are_not_above_it():
    histogram = ProbabilityHistogram()
    histogram.add(np.array([[True, False]]), np.array([[0.5, 0.5]]))
    assert histogram.at_threshold(0.5)["recall"] == 0.0
    assert histogram.at_threshold(0.49)["recall"] == 1.0


def test_headline_numbers_of_a_perfect_ranking():
    histogram = ProbabilityHistogram()
    histogram.add(np.array([[1, 1, 0, 0, 0]]), np.array([[0.9, 0.8, 0.3, 0.2, 0.0]]))
    assert histogram.headline() == {
        "average_precision": 1.0,
        "roc_auc": 1.0,
        "precision_at_95_recall": 1.0,
        "tpr_at_0.01%_fpr": 1.0,
        "tpr_at_0.1%_fpr": 1.0,
    }


def test_numbers_are_nan_without_cosmic_pixels():
    histogram = ProbabilityHistogram()
    histogram.add(np.zeros((4, 4)), np.full((4, 4), 0.3))
    assert all(np.isnan(v) for v in histogram.headline().values())


def test_the_histogram_survives_json():
    true, probabilities = scored_pixels(7)
    histogram = histogram_of(true, probabilities)
    again = ProbabilityHistogram.from_dict(json.loads(json.dumps(histogram.to_dict())))
    np.testing.assert_array_equal(again.edges, histogram.edges)
    np.testing.assert_array_equal(again.positives, histogram.positives)
    np.testing.assert_array_equal(again.negatives, histogram.negatives)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="differs"):
        ProbabilityHistogram().add(np.zeros((4, 4)), np.zeros((4, 5)))


# --- objects ---------------------------------------------------------------------------


def blobby_pair(seed, shape=(48, 48)):
    rng = np.random.default_rng(seed)
    true = rng.random(shape) < 0.03
    probabilities = np.clip(0.7 * true + rng.random(shape) * 0.45, 0, 1)
    return true, probabilities


def test_object_curve_sums_object_scores_over_images_at_every_threshold():
    pairs = [blobby_pair(seed) for seed in range(3)]
    curve = ObjectCurve()
    for true, probabilities in pairs:
        curve.add(true, probabilities)
    values = curve.curve()
    for index, threshold in enumerate(OBJECT_THRESHOLDS):
        scores = [object_scores(true, probabilities > threshold) for true, probabilities in pairs]
        matched = sum(s["matched"] for s in scores)
        n_true = sum(s["true_count"] for s in scores)
        n_pred = sum(s["pred_count"] for s in scores)
        assert values["object_recall"][index] == pytest.approx(matched / n_true)
        assert values["object_precision"][index] == pytest.approx(matched / n_pred)
        assert values["object_f1"][index] == pytest.approx(2 * matched / (n_true + n_pred))


def test_a_detector_mask_is_the_same_at_every_threshold():
    true, probabilities = blobby_pair(3)
    mask = probabilities > 0.5
    curves = SplitCurves()
    curves.add_mask(true, mask)
    values = curves.objects.curve()
    expected = object_scores(true, mask)
    assert np.all(values["object_recall"] == expected["object_recall"])
    # pixels: one operating point, every threshold in (0, 1) gives the mask
    point = curves.histogram.at_threshold(0.3)
    assert point["recall"] == np.count_nonzero(mask & true) / np.count_nonzero(true)


def test_split_curves_survive_json():
    curves = SplitCurves()
    curves.add(*blobby_pair(4))
    again = SplitCurves.from_dict(json.loads(json.dumps(curves.to_dict())))
    assert again.histogram.headline() == curves.histogram.headline()
    np.testing.assert_array_equal(again.objects.curve()["object_f1"], curves.objects.curve()["object_f1"])
