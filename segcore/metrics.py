"""Segmentation scores and cosmic counting, in NumPy.

The streaming Keras twins used during training live in ``segcore.training_metrics``.

Masks are arrays of any numeric or boolean type; non-zero means cosmic.

Empty cases follow one rule everywhere, in NumPy and in Keras: a ratio whose
denominator is 0 is 1.0 when the two masks agree on every pixel (no false
positive and no false negative), otherwise 0.0. So two empty masks score 1.0
on every ratio, and an empty prediction against a non-empty truth scores 0.0
precision and 0.0 recall.

A cosmic is a connected component of the mask with 8-connectivity: two pixels
touching only at a corner belong to the same cosmic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

#: Pixel scores of a frame against its true mask.
PIXEL_SCORES = ("iou", "dice", "pixel_accuracy", "precision", "recall", "f1", "specificity")
#: Cosmic scores, true and predicted cosmics matched one to one (:func:`object_scores`).
OBJECT_SCORES = ("object_precision", "object_recall", "object_f1")
#: (predicted - true) / true cosmics and its absolute value (:func:`count_error`): not bounded by 1.
COUNT_ERRORS = ("count_error", "abs_count_error")
#: True and predicted cosmics of a frame.
COUNTS = ("true_count", "pred_count")
#: Every per-image number of an evaluation, in the order the app, the command line and the store show
#: them; the lists below are parts of it.
SCORE_COLUMNS = (*PIXEL_SCORES, *OBJECT_SCORES, *COUNT_ERRORS, "count_score", *COUNTS)
#: Per-image numbers that follow from the others (:func:`derived_scores`), so a table of the
#: other scores and the cosmic counts can always be given them.
DERIVED_SCORES = ("object_f1", "count_error", "abs_count_error")
#: The per-image scores the store keeps (the derived ones follow from them and the counts).
PER_IMAGE_SCORES = tuple(name for name in SCORE_COLUMNS if name not in (*DERIVED_SCORES, *COUNTS))
#: Per-image scores between 0 and 1 (higher is better).
BOUNDED_SCORES = tuple(name for name in SCORE_COLUMNS if name not in (*COUNT_ERRORS, *COUNTS))


# --------------------------------------------------------------------------- #
# Pixel scores
# --------------------------------------------------------------------------- #


def _as_mask(mask) -> np.ndarray:
    mask = np.asarray(mask)
    return mask if mask.dtype == bool else mask != 0


def check_mask(mask, shape, name: str) -> np.ndarray:
    """``mask`` as bool; ValueError naming it (``name``) unless it has the frame's ``shape``."""
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f"{name} has shape {mask.shape} but the frame is {tuple(shape)}")
    return _as_mask(mask)


def _check_pair(true, pred) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(true)
    pred = np.asarray(pred)
    if true.shape != pred.shape:
        raise ValueError(
            f"true and pred masks must have the same shape, got {true.shape} and {pred.shape}"
        )
    return _as_mask(true), _as_mask(pred)


def confusion_counts(true, pred) -> tuple[int, int, int, int]:
    """Pixel confusion counts of a predicted mask against the true mask.

    Parameters
    ----------
    true, pred : array_like
        Masks of the same shape; non-zero means cosmic.

    Returns
    -------
    (tp, fp, fn, tn) : tuple of int
    """
    true, pred = _check_pair(true, pred)
    tp = int(np.count_nonzero(true & pred))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(true)) - tp
    tn = true.size - tp - fp - fn
    return tp, fp, fn, tn


def _ratio(num: float, den: float, agree: bool) -> float:
    if den > 0:
        return float(num) / float(den)
    return 1.0 if agree else 0.0


def scores_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """Pixel scores from confusion counts.

    A ratio whose denominator is 0 is 1.0 when ``fp == fn == 0`` (the masks
    agree everywhere) and 0.0 otherwise.

    Parameters
    ----------
    tp, fp, fn, tn : int
        True positive, false positive, false negative and true negative pixels.

    Returns
    -------
    dict
        ``iou``, ``dice``, ``pixel_accuracy``, ``precision``, ``recall``,
        ``f1`` and ``specificity`` as floats. ``f1`` equals ``dice``.
    """
    counts = (tp, fp, fn, tn)
    if any(c < 0 for c in counts):
        raise ValueError(f"counts must be non-negative, got tp={tp}, fp={fp}, fn={fn}, tn={tn}")
    agree = fp == 0 and fn == 0
    dice = _ratio(2 * tp, 2 * tp + fp + fn, agree)
    return {
        "iou": _ratio(tp, tp + fp + fn, agree),
        "dice": dice,
        "pixel_accuracy": _ratio(tp + tn, tp + fp + fn + tn, agree),
        "precision": _ratio(tp, tp + fp, agree),
        "recall": _ratio(tp, tp + fn, agree),
        "f1": dice,
        "specificity": _ratio(tn, tn + fp, agree),
    }


def segmentation_scores(true, pred) -> dict[str, float]:
    """Pixel scores of one predicted mask against its true mask.

    Parameters
    ----------
    true, pred : array_like
        Masks of the same shape; non-zero means cosmic.

    Returns
    -------
    dict
        ``iou``, ``dice``, ``pixel_accuracy``, ``precision``, ``recall``,
        ``f1`` and ``specificity`` as floats. ``f1`` equals ``dice`` for a
        single image; both are kept because they are reported under both names.

    Notes
    -----
    A ratio whose denominator is 0 is 1.0 when the masks agree on every pixel
    and 0.0 otherwise: two empty masks score 1.0 everywhere; an empty
    prediction against a non-empty truth has precision 0.0 and recall 0.0; a
    truth with no background pixels has specificity 1.0 when the prediction
    also covers every pixel.
    """
    return scores_from_counts(*confusion_counts(true, pred))


def pooled_scores(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Pixel scores over many images from their summed confusion counts.

    Every pixel of the split weighs the same, so large or cosmic-rich images
    count for more than in a mean of per-image scores.

    Parameters
    ----------
    pairs : iterable of (true, pred)
        Mask pairs; each pair must share a shape, pairs may differ in shape.

    Returns
    -------
    dict
        The scores of :func:`scores_from_counts` on the summed counts.
    """
    total = np.zeros(4, dtype=np.int64)
    for true, pred in pairs:
        total += confusion_counts(true, pred)
    return scores_from_counts(*(int(c) for c in total))


#: Thresholds :func:`best_f1_threshold` chooses from: 0.01, 0.02, ..., 0.99.
THRESHOLD_GRID = np.round(np.arange(1, 100) / 100.0, 2)
#: F1 within this of the best counts as the best when choosing a threshold.
F1_TOLERANCE = 0.01


class ThresholdSearch:
    """Pooled pixel F1 at every threshold of a grid, accumulated image by image.

    A pixel is predicted cosmic at threshold t when its probability is strictly
    above t, as everywhere in segcore. Only per-threshold counts are kept, so a
    split of large frames needs no more memory than one frame.
    """

    def __init__(self, thresholds=THRESHOLD_GRID):
        self.thresholds = np.asarray(thresholds, np.float64)
        if self.thresholds.ndim != 1 or self.thresholds.size == 0 or np.any(np.diff(self.thresholds) <= 0):
            raise ValueError("thresholds must be a non-empty increasing 1-D sequence")
        # positives[k] / negatives[k]: pixels above exactly k of the thresholds
        self.positives = np.zeros(self.thresholds.size + 1, np.int64)
        self.negatives = np.zeros(self.thresholds.size + 1, np.int64)

    def add(self, true, probabilities) -> None:
        true, probabilities = np.asarray(true) != 0, np.asarray(probabilities, np.float64)
        if true.shape != probabilities.shape:
            raise ValueError(f"mask shape {true.shape} differs from probabilities shape {probabilities.shape}")
        above = np.searchsorted(self.thresholds, probabilities, side="left")
        size = self.thresholds.size + 1
        self.positives += np.bincount(above[true], minlength=size)
        self.negatives += np.bincount(above[~true], minlength=size)

    def f1(self) -> np.ndarray:
        """Pooled pixel F1 at each threshold (the project's empty-case rule applies)."""
        # predicted at threshold j: pixels above more than j thresholds
        tp = np.cumsum(self.positives[::-1])[::-1][1:]
        fp = np.cumsum(self.negatives[::-1])[::-1][1:]
        fn = self.positives.sum() - tp
        return np.array([_ratio(2 * t, 2 * t + f + n, f == 0 and n == 0) for t, f, n in zip(tp, fp, fn)])

    def best(self, tolerance: float = F1_TOLERANCE) -> tuple[float, float]:
        """(threshold, F1): the threshold nearest 0.5 among those within ``tolerance`` of the highest F1.

        F1 is flat near its optimum, and on a small validation split the exact
        argmax is often an extreme threshold (0.01) that does not carry over to
        other frames; the tolerance keeps the choice near 0.5 unless that costs F1.
        """
        f1 = self.f1()
        candidates = np.flatnonzero(f1 >= f1.max() - tolerance)
        best = candidates[np.argmin(np.abs(self.thresholds[candidates] - 0.5))]
        return float(self.thresholds[best]), float(f1[best])


def best_f1_threshold(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], thresholds=THRESHOLD_GRID, tolerance: float = F1_TOLERANCE
) -> tuple[float, float]:
    """The threshold of a grid with the best pooled pixel F1 over (true mask, probabilities) pairs.

    Among thresholds within ``tolerance`` of the best F1, the one nearest 0.5 (see :meth:`ThresholdSearch.best`).

    Returns
    -------
    (threshold, f1)
    """
    search = ThresholdSearch(thresholds)
    for true, probabilities in pairs:
        search.add(true, probabilities)
    return search.best(tolerance)


# --------------------------------------------------------------------------- #
# Cosmic counting
# --------------------------------------------------------------------------- #


@dataclass(frozen=True, slots=True)
class Cosmic:
    """One cosmic: a connected component of a mask.

    ``bbox`` is ``(row0, col0, row1, col1)`` with the end excluded, as in
    ``skimage.measure.regionprops``; ``centroid`` is ``(row, col)``.
    """

    label: int
    area: int
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]


def _mask_u8(mask) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    return np.ascontiguousarray(_as_mask(mask)).view(np.uint8)


# SAUF scans pixel by pixel, so labels follow raster order of each cosmic's
# first pixel, the same numbering as skimage.measure.label.
_CCL = cv2.CCL_SAUF


def label_cosmics(mask) -> tuple[int, np.ndarray]:
    """Label the cosmics of a mask with 8-connectivity.

    Parameters
    ----------
    mask : array_like, 2-D
        Non-zero means cosmic.

    Returns
    -------
    n : int
        Number of cosmics.
    labels : ndarray of int32, same shape as ``mask``
        0 for background, 1..n for the cosmics in raster order of their
        first pixel.
    """
    n, labels = cv2.connectedComponentsWithAlgorithm(_mask_u8(mask), 8, cv2.CV_32S, _CCL)
    return int(n) - 1, labels


def n_cosmics(mask) -> int:
    """Number of cosmics (8-connected components) in a 2-D mask."""
    return label_cosmics(mask)[0]


def find_cosmics(mask) -> list[Cosmic]:
    """The cosmics of a 2-D mask with their area, bounding box and centroid.

    Parameters
    ----------
    mask : array_like, 2-D
        Non-zero means cosmic.

    Returns
    -------
    list of Cosmic
        One per 8-connected component, ordered by label.
    """
    _, _, stats, centroids = cv2.connectedComponentsWithStatsWithAlgorithm(
        _mask_u8(mask), 8, cv2.CV_32S, _CCL
    )
    # One conversion to Python lists keeps this cheap for thousands of cosmics.
    return [
        Cosmic(label, area, (top, left, top + height, left + width), (cy, cx))
        for label, ((left, top, width, height, area), (cx, cy)) in enumerate(
            zip(stats[1:].tolist(), centroids[1:].tolist()), start=1
        )
    ]


def count_score(true_count: int, pred_count: int) -> float:
    """The original cosmic-count score, ``min(1, pred_count / true_count)``.

    With no true cosmics it is 1.0 when none are predicted and 0.0 otherwise.
    It does not punish over-counting (twice the true number still scores
    1.0), which is why the plain counts are reported beside it.
    """
    if true_count < 0 or pred_count < 0:
        raise ValueError(
            f"counts must be non-negative, got true_count={true_count}, pred_count={pred_count}"
        )
    if true_count == 0:
        return 1.0 if pred_count == 0 else 0.0
    return min(1.0, float(pred_count) / float(true_count))


def matched_pairs(true_labels: np.ndarray, pred_labels: np.ndarray, n_true: int, n_pred: int) -> int:
    """Most (true cosmic, predicted cosmic) pairs that overlap with no cosmic in two pairs."""
    overlap = (true_labels > 0) & (pred_labels > 0)
    if not overlap.any():
        return 0
    pairs = np.unique(true_labels[overlap].astype(np.int64) * (n_pred + 1) + pred_labels[overlap])
    rows, cols = np.divmod(pairs, n_pred + 1)
    graph = csr_matrix((np.ones(rows.size, np.int8), (rows - 1, cols - 1)), shape=(n_true, n_pred))
    matched = maximum_bipartite_matching(graph, perm_type="column")
    return int(np.count_nonzero(matched >= 0))


def object_counts(true, pred) -> tuple[int, int, int]:
    """(true count, predicted count, matched pairs) under the rule of :func:`object_scores`."""
    true, pred = _check_pair(true, pred)
    n_true, true_labels = label_cosmics(true)
    n_pred, pred_labels = label_cosmics(pred)
    return n_true, n_pred, matched_pairs(true_labels, pred_labels, n_true, n_pred)


def object_scores_from_counts(true_count: int, pred_count: int, matched: int) -> dict[str, float]:
    """``object_recall``, ``object_precision`` and ``object_f1`` from cosmic counts.

    With no true cosmics the recall is 1.0 when none are predicted and 0.0
    otherwise; with no predicted cosmics the precision is 1.0 when there are no
    true ones and 0.0 otherwise; F1 = 2 matched / (true + predicted), 1.0 when
    both are 0.
    """
    if min(true_count, pred_count, matched) < 0 or matched > min(true_count, pred_count):
        raise ValueError(f"impossible counts: true {true_count}, predicted {pred_count}, matched {matched}")
    nothing = true_count == 0 and pred_count == 0
    return {
        "object_recall": _ratio(matched, true_count, nothing),
        "object_precision": _ratio(matched, pred_count, nothing),
        "object_f1": _ratio(2 * matched, true_count + pred_count, nothing),
    }


def object_scores(true, pred) -> dict[str, float | int]:
    """How many cosmics were found, and how many predicted cosmics are real.

    Matching rule: a true cosmic and a predicted cosmic (8-connected components)
    can be matched when they overlap by at least one pixel; each cosmic, true or
    predicted, is matched at most once, and the most pairs possible are matched
    (a maximum bipartite matching). So one predicted blob covering two true
    cosmics finds one of them, and a true track split in two predicted pieces
    makes one of the pieces a false cosmic.

    Parameters
    ----------
    true, pred : array_like, 2-D
        Masks of the same shape; non-zero means cosmic.

    Returns
    -------
    dict
        ``object_recall`` (matched / true count), ``object_precision``
        (matched / predicted count), ``object_f1``, ``true_count``,
        ``pred_count``, ``matched``, and ``matched_true`` and
        ``matched_pred`` (both equal to ``matched``). Empty cases as in
        :func:`object_scores_from_counts`.
    """
    n_true, n_pred, matched = object_counts(true, pred)
    return {
        **object_scores_from_counts(n_true, n_pred, matched),
        "true_count": n_true,
        "pred_count": n_pred,
        "matched": matched,
        "matched_true": matched,
        "matched_pred": matched,
    }


def count_error(true_count: int, pred_count: int) -> float:
    """Signed count error of one frame, ``(pred_count - true_count) / max(true_count, 1)``.

    Negative when cosmics are missed, positive when too many are predicted,
    penalising both alike (unlike :func:`count_score`). On a frame without
    true cosmics every predicted cosmic counts as one whole error (the
    denominator is 1), so false cosmics on empty frames are not forgiven.
    """
    if true_count < 0 or pred_count < 0:
        raise ValueError(
            f"counts must be non-negative, got true_count={true_count}, pred_count={pred_count}"
        )
    return float(pred_count - true_count) / float(max(true_count, 1))


def derived_scores(object_precision, object_recall, true_count, pred_count) -> dict[str, np.ndarray]:
    """:data:`DERIVED_SCORES` of many frames from their object scores and cosmic counts.

    ``object_f1`` is 2PR / (P + R) (0 when both are 0; NaN where either is NaN), which
    equals :func:`object_scores_from_counts`' F1; ``count_error`` is :func:`count_error`,
    ``abs_count_error`` its absolute value.
    """
    precision = np.asarray(object_precision, np.float64)
    recall = np.asarray(object_recall, np.float64)
    true_count = np.asarray(true_count, np.float64)
    pred_count = np.asarray(pred_count, np.float64)
    total = precision + recall
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)
    f1 = np.where(np.isnan(total), np.nan, f1)
    error = (pred_count - true_count) / np.maximum(true_count, 1)
    return {"object_f1": f1, "count_error": error, "abs_count_error": np.abs(error)}
