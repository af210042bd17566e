import dataclasses

import numpy as np
import pytest
from skimage.measure import label as sk_label
from skimage.measure import regionprops
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    jaccard_score,
    precision_score,
    recall_score,
)

from segcore.metrics import (
    Cosmic,
    confusion_counts,
    find_cosmics,
    count_error,
    count_score,
    label_cosmics,
    n_cosmics,
    object_scores,
    object_scores_from_counts,
    pooled_scores,
    scores_from_counts,
    segmentation_scores,
)

SEEDS = [0, 1, 2, 3]


def random_pair(seed, shape=(37, 53), true_density=0.2, pred_density=0.25):
    rng = np.random.default_rng(seed)
    true = rng.random(shape) < true_density
    # Prediction correlated with the truth so scores are neither 0 nor 1.
    pred = np.where(rng.random(shape) < 0.6, true, rng.random(shape) < pred_density)
    return true, pred


def sklearn_scores(true, pred):
    t, p = true.ravel().astype(int), pred.ravel().astype(int)
    return {
        "iou": jaccard_score(t, p),
        "dice": f1_score(t, p),
        "pixel_accuracy": accuracy_score(t, p),
        "precision": precision_score(t, p),
        "recall": recall_score(t, p),
        "f1": f1_score(t, p),
        "specificity": recall_score(t, p, pos_label=0),
    }


# --------------------------------------------------------------------------- #
# Pixel scores
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_counts_match_sklearn_confusion_matrix(seed):
    true, pred = random_pair(seed)
    tn, fp, fn, tp = confusion_matrix(true.ravel(), pred.ravel(), labels=[False, True]).ravel()
    assert confusion_counts(true, pred) == (tp, fp, fn, tn)


def test_confusion_counts_are_python_ints():
    true, pred = random_pair(0)
    assert all(type(c) is int for c in confusion_counts(true, pred))


@pytest.mark.parametrize("seed", SEEDS)
def test_segmentation_scores_match_sklearn(seed):
    true, pred = random_pair(seed, true_density=0.05 + 0.1 * seed)
    ours = segmentation_scores(true, pred)
    reference = sklearn_scores(true, pred)
    assert ours.keys() == reference.keys()
    for name, value in reference.items():
        assert ours[name] == pytest.approx(value, abs=1e-12), name


def test_segmentation_scores_hand_computed_case():
    true = np.array([[1, 1, 0], [0, 0, 0]])
    pred = np.array([[1, 0, 1], [0, 0, 0]])
    # tp=1, fp=1, fn=1, tn=3
    assert segmentation_scores(true, pred) == pytest.approx(
        {
            "iou": 1 / 3,
            "dice": 0.5,
            "pixel_accuracy": 4 / 6,
            "precision": 0.5,
            "recall": 0.5,
            "f1": 0.5,
            "specificity": 0.75,
        }
    )


def test_f1_equals_dice_for_one_image():
    true, pred = random_pair(7)
    scores = segmentation_scores(true, pred)
    assert scores["f1"] == scores["dice"]


def test_nonzero_values_count_as_cosmic():
    true, pred = random_pair(3)
    as_bool = segmentation_scores(true, pred)
    as_uint16 = segmentation_scores(true.astype(np.uint16) * 4095, pred.astype(np.uint8) * 255)
    assert as_uint16 == as_bool


def test_segmentation_scores_accept_any_equal_shape():
    true, pred = random_pair(5, shape=(3, 7, 11))
    assert segmentation_scores(true, pred) == pytest.approx(sklearn_scores(true, pred))


def test_both_masks_empty_score_one_everywhere():
    empty = np.zeros((4, 5), bool)
    scores = segmentation_scores(empty, empty)
    assert scores == {name: 1.0 for name in scores}
    assert scores["specificity"] == 1.0


def test_empty_prediction_of_nonempty_truth_scores_zero_precision_and_recall():
    true = np.array([[1, 0], [0, 0]])
    pred = np.zeros((2, 2))
    assert segmentation_scores(true, pred) == {
        "iou": 0.0,
        "dice": 0.0,
        "pixel_accuracy": 0.75,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "specificity": 1.0,
    }


def test_nonempty_prediction_of_empty_truth_scores_zero_precision_and_recall():
    true = np.zeros((2, 2))
    pred = np.array([[0, 0], [0, 1]])
    assert segmentation_scores(true, pred) == {
        "iou": 0.0,
        "dice": 0.0,
        "pixel_accuracy": 0.75,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "specificity": 0.75,
    }


def test_specificity_without_negatives_is_one_when_masks_agree():
    full = np.ones((3, 3), bool)
    scores = segmentation_scores(full, full)
    assert scores == {name: 1.0 for name in scores}


def test_specificity_without_negatives_is_zero_when_masks_disagree():
    full = np.ones((3, 3), bool)
    pred = full.copy()
    pred[0, 0] = False
    assert segmentation_scores(full, pred)["specificity"] == 0.0


def test_shape_mismatch_raises_naming_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(3, 2\)"):
        segmentation_scores(np.zeros((2, 3)), np.zeros((3, 2)))


def test_scores_from_counts_hand_computed_case():
    scores = scores_from_counts(tp=3, fp=1, fn=2, tn=4)
    assert scores == pytest.approx(
        {
            "iou": 3 / 6,
            "dice": 6 / 9,
            "pixel_accuracy": 7 / 10,
            "precision": 3 / 4,
            "recall": 3 / 5,
            "f1": 6 / 9,
            "specificity": 4 / 5,
        }
    )


def test_scores_from_counts_rejects_negative_counts():
    with pytest.raises(ValueError, match="non-negative"):
        scores_from_counts(1, -1, 0, 0)


def test_pooled_scores_match_sklearn_on_concatenated_pixels():
    pairs = [
        random_pair(0, shape=(8, 8), true_density=0.02),
        random_pair(1, shape=(16, 5), true_density=0.5),
        random_pair(2, shape=(3, 30), true_density=0.9),
    ]
    true = np.concatenate([t.ravel() for t, _ in pairs])
    pred = np.concatenate([p.ravel() for _, p in pairs])
    assert pooled_scores(iter(pairs)) == pytest.approx(sklearn_scores(true, pred))


# --------------------------------------------------------------------------- #
# Cosmic counting
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("seed", SEEDS)
def test_cosmic_count_matches_skimage_8_connectivity(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((61, 47)) < 0.1 + 0.1 * seed
    assert n_cosmics(mask) == sk_label(mask, connectivity=2).max()


@pytest.mark.parametrize("seed", SEEDS)
def test_labels_match_skimage_label_numbering(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((40, 70)) < 0.3
    n, labels = label_cosmics(mask)
    reference = sk_label(mask, connectivity=2)
    assert labels.dtype == np.int32
    assert n == reference.max()
    np.testing.assert_array_equal(labels, reference)


def test_diagonally_touching_pixels_are_one_cosmic():
    mask = np.array(
        [
            [1, 0, 0, 0],
            [0, 1, 0, 0],
            [0, 0, 0, 1],
            [0, 0, 1, 0],
        ]
    )
    assert n_cosmics(mask) == 2
    assert n_cosmics(mask[:2, :2]) == 1


@pytest.mark.parametrize("seed", SEEDS)
def test_cosmic_properties_match_regionprops(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((50, 45)) < 0.25
    cosmics = find_cosmics(mask)
    regions = regionprops(sk_label(mask, connectivity=2))
    assert len(cosmics) == len(regions)
    for cosmic, region in zip(cosmics, regions):
        assert cosmic.label == region.label
        assert cosmic.area == region.area
        assert cosmic.bbox == region.bbox
        assert cosmic.centroid == pytest.approx(region.centroid)


def test_find_cosmics_hand_computed_case():
    mask = np.zeros((7, 6), np.uint8)
    mask[1:3, 2:5] = 1
    mask[5, 0] = 1
    assert find_cosmics(mask) == [
        Cosmic(label=1, area=6, bbox=(1, 2, 3, 5), centroid=(1.5, 3.0)),
        Cosmic(label=2, area=1, bbox=(5, 0, 6, 1), centroid=(5.0, 0.0)),
    ]


def test_cosmic_fields_are_python_numbers():
    (cosmic,) = find_cosmics(np.eye(3))
    assert type(cosmic.area) is int
    assert all(type(v) is int for v in cosmic.bbox)
    assert all(type(v) is float for v in cosmic.centroid)


def test_cosmic_is_frozen():
    (cosmic,) = find_cosmics(np.eye(3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cosmic.area = 5


def test_empty_mask_has_no_cosmics():
    empty = np.zeros((9, 9), bool)
    assert find_cosmics(empty) == []
    assert n_cosmics(empty) == 0
    n, labels = label_cosmics(empty)
    assert n == 0 and not labels.any()


def test_counting_rejects_non_2d_mask():
    with pytest.raises(ValueError, match=r"2-D.*\(2, 3, 4\)"):
        find_cosmics(np.zeros((2, 3, 4)))


@pytest.mark.parametrize(
    ("true_count", "pred_count", "expected"),
    [
        (10, 5, 0.5),
        (10, 10, 1.0),
        (10, 20, 1.0),  # over-counting is not punished
        (0, 0, 1.0),
        (0, 3, 0.0),
        (4, 0, 0.0),
    ],
)
def test_count_score(true_count, pred_count, expected):
    assert count_score(true_count, pred_count) == expected


def test_count_score_rejects_negative_counts():
    with pytest.raises(ValueError, match="non-negative"):
        count_score(-1, 2)


def test_object_scores_hand_computed_case():
    true = np.zeros((8, 8), bool)
    true[0:2, 0:2] = True  # found by the first prediction
    true[0, 5] = True  # missed
    true[4, 4] = true[5, 5] = True  # one diagonal cosmic, found
    pred = np.zeros((8, 8), bool)
    pred[1, 1:3] = True  # overlaps the block
    pred[5, 5] = True  # overlaps the diagonal cosmic
    pred[7, 0] = True  # false detection
    assert object_scores(true, pred) == {
        "object_recall": pytest.approx(2 / 3),
        "object_precision": pytest.approx(2 / 3),
        "object_f1": pytest.approx(2 / 3),
        "true_count": 3,
        "pred_count": 3,
        "matched": 2,
        "matched_true": 2,
        "matched_pred": 2,
    }


def test_one_predicted_cosmic_spanning_two_true_cosmics_finds_one():
    true = np.array([[1, 0, 1]])
    pred = np.array([[1, 1, 1]])
    scores = object_scores(true, pred)
    assert scores["matched"] == 1
    assert scores["object_recall"] == 0.5
    assert scores["object_precision"] == 1.0
    assert scores["object_f1"] == pytest.approx(2 / 3)


def test_a_true_cosmic_split_in_two_predicted_pieces_leaves_one_piece_false():
    true = np.array([[1, 1, 1]])
    pred = np.array([[1, 0, 1]])
    scores = object_scores(true, pred)
    assert (scores["matched"], scores["object_recall"], scores["object_precision"]) == (1, 1.0, 0.5)


def test_matching_takes_the_most_pairs_not_the_first_overlap():
    # predicted A touches true 1 and true 2, predicted B only true 1: pairing A with true 1 (both first in
    # raster order) would leave true 2 unfound; the best matching pairs B-1 and A-2
    true = np.zeros((3, 6), bool)
    true[0:3, 0] = True  # true 1, a vertical bar
    true[0, 4:6] = True  # true 2
    pred = np.zeros((3, 6), bool)
    pred[0, 0:5] = True  # A
    pred[2, 0] = True  # B
    scores = object_scores(true, pred)
    assert scores["matched"] == 2 == brute_force_matches(true, pred)


def brute_force_matches(true, pred) -> int:
    """The most one-to-one (true, predicted) pairs that overlap, by trying every assignment."""
    true_labels, pred_labels = sk_label(true, connectivity=2), sk_label(pred, connectivity=2)
    touching = [
        {int(p) for p in np.unique(pred_labels[(true_labels == t) & (pred_labels > 0)])}
        for t in range(1, true_labels.max() + 1)
    ]

    def best(index: int, used: frozenset) -> int:
        if index == len(touching):
            return 0
        options = [best(index + 1, used)]
        options += [1 + best(index + 1, used | {p}) for p in touching[index] if p not in used]
        return max(options)

    return best(0, frozenset())


@pytest.mark.parametrize("seed", SEEDS)
def test_object_scores_match_a_brute_force_matching(seed):
    # dense small masks, so blobs merge and split and the matching matters
    true, pred = random_pair(seed, shape=(10, 12), true_density=0.25, pred_density=0.3)
    n_true = sk_label(true, connectivity=2).max()
    n_pred = sk_label(pred, connectivity=2).max()
    matched = brute_force_matches(true, pred)
    scores = object_scores(true, pred)
    assert (scores["true_count"], scores["pred_count"], scores["matched"]) == (n_true, n_pred, matched)
    assert scores["object_recall"] == pytest.approx(matched / n_true)
    assert scores["object_precision"] == pytest.approx(matched / n_pred)
    assert scores["object_f1"] == pytest.approx(2 * matched / (n_true + n_pred))


@pytest.mark.parametrize(
    ("true_count", "pred_count", "expected"),
    [(4, 2, -0.5), (4, 6, 0.5), (4, 4, 0.0), (0, 0, 0.0), (0, 3, 3.0), (1, 0, -1.0)],
    ids=["under", "over", "exact", "both-empty", "false-cosmics-on-an-empty-frame", "all-missed"],
)
def test_count_error_is_signed_relative_with_one_for_an_empty_truth(true_count, pred_count, expected):
    assert count_error(true_count, pred_count) == expected


def test_count_error_rejects_negative_counts():
    with pytest.raises(ValueError, match="non-negative"):
        count_error(2, -1)


def test_object_scores_from_counts_refuse_more_matches_than_cosmics():
    with pytest.raises(ValueError, match="impossible"):
        object_scores_from_counts(2, 1, 2)


@pytest.mark.parametrize(
    ("true", "pred", "expected"),
    [
        (np.zeros((3, 3)), np.zeros((3, 3)), 1.0),
        (np.zeros((3, 3)), np.eye(3), 0.0),
        (np.eye(3), np.zeros((3, 3)), 0.0),
    ],
    ids=["both-empty", "empty-truth", "empty-prediction"],
)
def test_object_scores_empty_conventions(true, pred, expected):
    scores = object_scores(true, pred)
    assert scores["object_recall"] == expected
    assert scores["object_precision"] == expected
    assert scores["object_f1"] == expected


def test_object_scores_shape_mismatch_raises_naming_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 4\) and \(4, 5\)"):
        object_scores(np.zeros((4, 4)), np.zeros((4, 5)))


# --- threshold search ------------------------------------------------------------------


def test_threshold_search_f1_equals_scikit_learn_at_every_threshold():
    from sklearn.metrics import f1_score

    from segcore.metrics import THRESHOLD_GRID, ThresholdSearch

    rng = np.random.default_rng(7)
    pairs = []
    for shape in [(20, 30), (16, 16)]:
        true = rng.random(shape) < 0.1
        probs = np.clip(0.6 * true + rng.random(shape) * 0.6, 0, 1).astype(np.float32)
        probs[0, :4] = [0.5, 0.25, 0.01, 0.99]  # values exactly on the grid: strictly above counts
        pairs.append((true, probs))
    search = ThresholdSearch()
    for true, probs in pairs:
        search.add(true, probs)
    truth = np.concatenate([t.ravel() for t, _ in pairs])
    scores = np.concatenate([p.ravel() for _, p in pairs])
    expected = [f1_score(truth, scores > t, zero_division=0.0) for t in THRESHOLD_GRID]
    np.testing.assert_allclose(search.f1(), expected, atol=1e-12)


def test_best_threshold_is_the_brute_force_argmax_nearest_half_on_ties():
    from segcore.metrics import best_f1_threshold

    true = np.array([[1, 1, 0, 0]])
    probs = np.array([[0.9, 0.8, 0.3, 0.1]])
    # every threshold in [0.30, 0.79] separates perfectly; 0.5 is nearest the middle
    assert best_f1_threshold([(true, probs)]) == (0.5, 1.0)
    probs = np.array([[0.9, 0.2, 0.3, 0.1]])
    # no threshold separates these: compare with a brute-force search (best F1, then nearest 0.5)
    threshold, f1 = best_f1_threshold([(true, probs)], tolerance=0.0)
    brute = max(
        (2 * np.sum(true & (probs > t)) / (np.sum(true) + np.sum(probs > t)), -abs(t - 0.5), t)
        for t in np.arange(1, 100) / 100
    )
    assert f1 == pytest.approx(brute[0]) and threshold == pytest.approx(brute[2])


def test_threshold_within_tolerance_of_the_best_f1_prefers_half():
    from segcore.metrics import best_f1_threshold

    true = np.ones((1, 101), bool)
    probs = np.full((1, 101), 0.6)
    probs[0, 100] = 0.3
    # t < 0.3 finds all 101 (F1 1.0); t in 0.30..0.59 misses one (F1 200/201, within 0.01): 0.5 is kept
    assert best_f1_threshold([(true, probs)]) == (0.5, pytest.approx(200 / 201))
    assert best_f1_threshold([(true, probs)], tolerance=0.0) == (0.29, 1.0)
    # half the cosmics at 0.02: only t = 0.01 finds them (F1 1.0 against 0.67), far beyond the tolerance
    probs[0, 50:] = 0.02
    assert best_f1_threshold([(true, probs)]) == (0.01, 1.0)


def test_derived_scores_agree_with_the_scores_of_the_masks():
    from segcore.metrics import derived_scores

    rows = [object_scores(*random_pair(seed, shape=(12, 12), true_density=0.2)) for seed in SEEDS]
    rows.append(object_scores(np.zeros((3, 3)), np.zeros((3, 3))))
    rows.append(object_scores(np.eye(3), np.zeros((3, 3))))
    derived = derived_scores(
        [r["object_precision"] for r in rows], [r["object_recall"] for r in rows],
        [r["true_count"] for r in rows], [r["pred_count"] for r in rows],
    )
    np.testing.assert_allclose(derived["object_f1"], [r["object_f1"] for r in rows])
    expected = [count_error(r["true_count"], r["pred_count"]) for r in rows]
    np.testing.assert_allclose(derived["count_error"], expected)
    np.testing.assert_allclose(derived["abs_count_error"], np.abs(expected))


def test_every_score_list_is_a_part_of_the_one_list_in_its_order():
    from db.models import EvaluationResultRow
    from segcore import metrics

    pixel = ("iou", "dice", "pixel_accuracy", "precision", "recall", "f1", "specificity")
    objects = ("object_precision", "object_recall", "object_f1")
    assert metrics.SCORE_COLUMNS == (*pixel, *objects, "count_error", "abs_count_error", "count_score", "true_count",
                                     "pred_count")
    assert metrics.BOUNDED_SCORES == (*pixel, *objects, "count_score")
    assert metrics.PER_IMAGE_SCORES == (*pixel, "object_precision", "object_recall", "count_score")
    assert set(metrics.PER_IMAGE_SCORES) < {column.name for column in EvaluationResultRow.__table__.columns}
