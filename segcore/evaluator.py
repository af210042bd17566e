"""Scoring a model, or any mask-producing detector, on image/mask pairs: per-image
result tables and pooled scores.

Inference itself lives in :mod:`segcore.inference` (probabilities), :mod:`segcore.tiles`
and :mod:`segcore.inference_graph` (the model to predict with); pictures of a result
in :mod:`segcore.overlays`. Progress callbacks take ``(done, total)`` and are
called after each image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from . import formats, io, metrics
from .curves import SplitCurves, headline_names as curve_headline_names
from .metrics import COUNTS, SCORE_COLUMNS
from .inference import check_threshold, check_views, model_threshold, predict_probabilities
from .inference_graph import inference_model, model_precision
from .postprocess import check_dilation, dilate
from .tiles import DEFAULT_OVERLAP, DEFAULT_TILE, check_tiling

#: ``progress(done, total)``, called after each image.
ProgressCallback = Callable[[int, int], None]
#: ``detect(frame) -> bool mask`` of the frame's shape: a detector that needs no model.
Detector = Callable[[np.ndarray], np.ndarray]
#: The threshold recorded for a detector's masks: read as probabilities of 0 and 1,
#: any threshold between them gives the same mask, and 0.5 stands for them all.
DETECTOR_THRESHOLD = 0.5

#: Pixel confusion counts kept per image, so pooled scores can be recomputed.
COUNT_COLUMNS = ("tp", "fp", "fn", "tn")
#: Matched (true, predicted) cosmic pairs per image, so pooled object scores can be recomputed.
MATCHED_COLUMN = "matched_count"
#: Split-level numbers of :attr:`EvaluationResult.pooled`, in order: pixel scores from the summed counts,
#: object scores from the summed cosmic counts, and the numbers read from the pixel curves.
POOLED_KEYS = ("precision", "recall", "f1", "iou", "object_precision", "object_recall", "object_f1",
               *curve_headline_names())
#: Means reported at the top level of :meth:`EvaluationResult.to_json_dict`: every score but specificity.
JSON_MEAN_KEYS = tuple(name for name in SCORE_COLUMNS if name not in ("specificity", *COUNTS))



# --------------------------------------------------------------------------- #
# Evaluation over image/mask pairs
# --------------------------------------------------------------------------- #


def _json_number(value):
    value = float(value)
    return value if np.isfinite(value) else None


@dataclass
class EvaluationResult:
    """Scores of a model on a set of image/mask pairs at one threshold.

    Attributes
    ----------
    per_image : DataFrame, one row per image: image (file name), image_path,
        the :data:`SCORE_COLUMNS`, the pixel counts tp/fp/fn/tn, and
        ``prediction`` (path of the written mask) when masks were written.
    threshold : probability threshold of the masks (:data:`DETECTOR_THRESHOLD`
        for a detector's masks).
    pooled : the :data:`POOLED_KEYS`: pixel precision, recall, f1 and iou from the
        confusion counts summed over all images (every pixel weighs the same);
        object precision, recall and f1 from the summed cosmic counts; and average
        precision, ROC AUC, precision at 95 % recall and TPR at 0.01 % and 0.1 % FPR
        from the pixel curves (:mod:`segcore.curves`; NaN when undefined).
    probabilities : float16 probability maps by image name, when kept (grown by
        ``dilation`` when it is not 0).
    precision : the Keras dtype policy the network computed in; None for a
        detector without a network.
    curves : the split's pixel histogram and object curve (:class:`segcore.curves.SplitCurves`).
    dilation : pixels every predicted mask was grown by before scoring and writing.
    views : views of each frame its probabilities were averaged over (1 = the frame as it is).
    """

    per_image: pd.DataFrame
    threshold: float
    pooled: dict[str, float]
    probabilities: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    precision: str | None = "float32"
    curves: SplitCurves = field(default_factory=SplitCurves, repr=False)
    dilation: int = 0
    views: int = 1

    def summary(self) -> pd.DataFrame:
        """Mean and standard deviation of each score over the images.

        Returns
        -------
        DataFrame with one row per score column and columns ``mean`` and
        ``std``; the standard deviation is the population one (ddof=0).
        """
        scores = self.per_image[list(SCORE_COLUMNS)].astype(float)
        return pd.DataFrame({"mean": scores.mean(), "std": scores.std(ddof=0)})

    def to_json_dict(self) -> dict:
        """The scores as plain JSON values: per-score means, pooled pixel scores,
        threshold, the network's precision policy and number of images."""
        means = self.per_image[list(JSON_MEAN_KEYS)].astype(float).mean()
        result = {key: _json_number(means[key]) for key in JSON_MEAN_KEYS}
        result["pooled"] = {key: _json_number(self.pooled[key]) for key in POOLED_KEYS}
        result["threshold"] = float(self.threshold)
        result["dilation"] = int(self.dilation)
        result["views"] = int(self.views)
        result["precision_policy"] = self.precision
        result["n_images"] = int(len(self.per_image))
        return result


def _check_pairs(pairs, predictions_dir=None) -> list[tuple[Path, Path]]:
    pairs = [(Path(image), Path(mask)) for image, mask in pairs]
    if not pairs:
        raise ValueError("no image/mask pairs to evaluate")
    if predictions_dir is not None:
        _check_unique([io.frame_stem(image) for image, _ in pairs], "file stem")
    return pairs


def _check_unique(values: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"two images share the {what} '{value}'")
        seen.add(value)


def _score_row(true: np.ndarray, pred: np.ndarray) -> dict:
    tp, fp, fn, tn = metrics.confusion_counts(true, pred)
    row = metrics.scores_from_counts(tp, fp, fn, tn)
    objects = metrics.object_scores(true, pred)
    row["true_count"] = int(objects["true_count"])
    row["pred_count"] = int(objects["pred_count"])
    row["count_error"] = metrics.count_error(row["true_count"], row["pred_count"])
    row["abs_count_error"] = abs(row["count_error"])
    row["count_score"] = metrics.count_score(row["true_count"], row["pred_count"])
    for key in ("object_recall", "object_precision", "object_f1"):
        row[key] = objects[key]
    row[MATCHED_COLUMN] = int(objects["matched"])
    row.update(tp=tp, fp=fp, fn=fn, tn=tn)
    return row


def _build_result(
    rows: list[dict], threshold: float, probabilities: dict, precision: str | None, curves: SplitCurves, dilation: int
) -> EvaluationResult:
    columns = ["image", "image_path", *SCORE_COLUMNS, *COUNT_COLUMNS, MATCHED_COLUMN]
    if rows and "prediction" in rows[0]:
        columns.append("prediction")
    table = pd.DataFrame(rows, columns=columns)
    totals = [int(table[c].sum()) for c in COUNT_COLUMNS]
    scores = metrics.scores_from_counts(*totals)
    pooled = {key: scores[key] for key in ("precision", "recall", "f1", "iou")}
    pooled.update(metrics.object_scores_from_counts(
        int(table["true_count"].sum()), int(table["pred_count"].sum()), int(table[MATCHED_COLUMN].sum())
    ))
    pooled.update(curves.histogram.headline())
    return EvaluationResult(table, threshold, pooled, probabilities, precision, curves, dilation)


def _score_image(image: Path, true: np.ndarray, pred: np.ndarray, predictions_dir) -> dict:
    row = {"image": io.frame_name(image), "image_path": str(image), **_score_row(true, pred)}
    if predictions_dir is not None:
        path = Path(predictions_dir) / f"{io.frame_stem(image)}.png"
        io.write_mask(path, pred)
        row["prediction"] = str(path)
    return row


def _score_frames(
    pairs: list[tuple[Path, Path]],
    predict: Callable[[Path, np.ndarray], np.ndarray],
    progress: ProgressCallback | None,
    predictions_dir,
    threshold: float,
    curves: SplitCurves,
    dilation: int,
    keep: Callable[[Path, np.ndarray], None] | None = None,
    hot_pixels: dict | None = None,
) -> list[dict]:
    """Read each frame and its mask, predict probabilities (or a bool mask) with ``predict(image path,
    frame)``, grow them by ``dilation``, add them to ``curves`` and score the mask above ``threshold``.

    A frame's invalid pixels (:func:`segcore.io.read_frame_and_invalid`) are never cosmics: neither
    predicted nor true there; ``keep(image, predicted)`` sees the predictions so cleared. The set's
    ``hot_pixels`` (:mod:`segcore.hotpixels`) are filled and never predicted, but the truth keeps them:
    a cosmic that strikes a hot pixel is still a cosmic there."""
    from .hotpixels import hot_mask

    rows: list[dict] = []
    for done, (image, mask_path) in enumerate(pairs, start=1):
        frame, invalid = io.read_frame_and_invalid(image, hot_pixels)
        hot = hot_mask(hot_pixels, frame.shape)
        own_invalid = invalid if hot is None else invalid & ~hot
        # Read the mask before predicting, so a bad mask fails fast.
        true = formats.clear_invalid(io.read_mask(mask_path, shape=frame.shape), own_invalid)
        predicted = formats.clear_invalid(dilate(predict(image, frame), dilation), invalid)
        if keep is not None:
            keep(image, predicted)
        if predicted.dtype == bool:
            curves.add_mask(true, predicted)
            pred = predicted
        else:
            curves.add(true, predicted)
            pred = predicted > threshold
        rows.append(_score_image(image, true, pred, predictions_dir))
        if progress is not None:
            progress(done, len(pairs))
    return rows


def evaluate_pairs(
    model,
    pairs: Iterable[tuple[str | os.PathLike, str | os.PathLike]],
    threshold: float | None = None,
    progress: ProgressCallback | None = None,
    predictions_dir: str | os.PathLike | None = None,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int | None = None,
    keep_probabilities: bool = False,
    precision: str | None = "auto",
    dilation: int = 0,
    views: int = 1,
    hot_pixels: dict | None = None,
) -> EvaluationResult:
    """Run a model on image/mask pairs and score every image.

    Parameters
    ----------
    model : keras.Model giving 2-class logits (see :func:`predict_probabilities`).
    pairs : (image path, mask path) pairs; each mask must match its frame's size.
    threshold : a pixel is cosmic where its probability is strictly above this;
        by default the model's own (chosen on validation frames), else 0.5.
    progress : ``progress(done, total)``, called after each image.
    predictions_dir : if given, each predicted mask is written there as
        ``<image stem>.png`` and its path recorded in a ``prediction`` column.
    tile, overlap, batch_size : tiling, as in :func:`predict_probabilities`.
    keep_probabilities : keep each probability map (float16) in
        ``result.probabilities`` under the image's file name, so that
        :func:`rescore` can apply another threshold without the network.
    precision : the model runs as :func:`segcore.inference_graph.inference_model`
        prepares it for this precision ("auto" by default); None runs it as given.
    dilation : grow every predicted mask by this many pixels (see
        :func:`segcore.postprocess.dilate`) before scoring, curves and writing.
    views : probabilities averaged over this many views of each frame (1, 2, 4
        or 8; see :func:`predict_probabilities`).
    hot_pixels : the set's hot pixels (:mod:`segcore.hotpixels`), filled before the
        network sees a frame and never predicted; the truth is scored as it is.

    Returns
    -------
    EvaluationResult

    Raises
    ------
    InputFileError
        If a frame or mask cannot be read, or a mask's size differs from its frame's.
    """
    threshold = check_threshold(model_threshold(model) if threshold is None else threshold)
    dilation = check_dilation(dilation)
    check_tiling(tile, overlap)
    views = check_views(views)
    pairs = _check_pairs(pairs, predictions_dir)
    if keep_probabilities:
        _check_unique([io.frame_name(image) for image, _ in pairs], "file name")
    if precision is not None:
        model = inference_model(model, precision)
    kept: dict[str, np.ndarray] = {}

    def predict(image: Path, frame: np.ndarray) -> np.ndarray:
        return predict_probabilities(model, frame, tile=tile, overlap=overlap, batch_size=batch_size, views=views)

    def keep(image: Path, probs: np.ndarray) -> None:
        kept[io.frame_name(image)] = probs.astype(np.float16)

    curves = SplitCurves()
    rows = _score_frames(pairs, predict, progress, predictions_dir, threshold, curves, dilation,
                         keep if keep_probabilities else None, hot_pixels)
    return replace(_build_result(rows, threshold, kept, model_precision(model), curves, dilation), views=views)


def evaluate_detector(
    detect: Detector,
    pairs: Iterable[tuple[str | os.PathLike, str | os.PathLike]],
    progress: ProgressCallback | None = None,
    predictions_dir: str | os.PathLike | None = None,
    dilation: int = 0,
    hot_pixels: dict | None = None,
) -> EvaluationResult:
    """Score a detector that gives masks itself (e.g. LA Cosmic) on image/mask pairs.

    The rows, summary and pooled scores are those :func:`evaluate_pairs` gives for
    a model whose mask of every frame is ``detect(frame)``.

    Parameters
    ----------
    detect : ``detect(frame) -> mask``, the frame as :func:`segcore.io.read_frame`
        reads it (float32, 2-D); the mask has the frame's shape, non-zero = cosmic.
    pairs, progress, predictions_dir, dilation, hot_pixels : as in :func:`evaluate_pairs`.

    Returns
    -------
    EvaluationResult with threshold :data:`DETECTOR_THRESHOLD` and precision None
    (no network computed).

    Raises
    ------
    InputFileError
        If a frame or mask cannot be read, or a mask's size differs from its frame's.
    ValueError
        If the detector's mask is not of its frame's shape (naming the image).
    """
    dilation = check_dilation(dilation)
    pairs = _check_pairs(pairs, predictions_dir)

    def predict(image: Path, frame: np.ndarray) -> np.ndarray:
        return metrics.check_mask(detect(frame), frame.shape, f"the detector's mask of {io.frame_name(image)}")

    curves = SplitCurves()
    rows = _score_frames(pairs, predict, progress, predictions_dir, DETECTOR_THRESHOLD, curves, dilation,
                         hot_pixels=hot_pixels)
    return _build_result(rows, DETECTOR_THRESHOLD, {}, None, curves, dilation)


def rescore(
    result: EvaluationResult,
    pairs: Iterable[tuple[str | os.PathLike, str | os.PathLike]],
    threshold: float,
    progress: ProgressCallback | None = None,
    predictions_dir: str | os.PathLike | None = None,
) -> EvaluationResult:
    """Score the kept probability maps of an evaluation at another threshold.

    Parameters
    ----------
    result : an evaluation made with ``keep_probabilities=True``.
    pairs : (image path, mask path) pairs; every image must have a kept map.
    threshold, progress, predictions_dir : as in :func:`evaluate_pairs`.

    Returns
    -------
    EvaluationResult carrying the same probability maps and dilation (the maps were
    kept grown).

    Notes
    -----
    The maps are stored as float16, so a pixel whose probability lies within
    float16 rounding (about 5e-4 near 0.5) of the threshold may fall on the
    other side of it than in a fresh evaluation.
    """
    threshold = check_threshold(threshold)
    pairs = _check_pairs(pairs, predictions_dir)
    missing = [io.frame_name(image) for image, _ in pairs if io.frame_name(image) not in result.probabilities]
    if missing:
        raise ValueError(
            "no kept probabilities for " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            + "; evaluate with keep_probabilities=True"
        )
    rows = []
    curves = SplitCurves()
    for done, (image, mask_path) in enumerate(pairs, start=1):
        probs = result.probabilities[io.frame_name(image)]
        true = io.read_mask(mask_path, shape=probs.shape)
        true = formats.clear_invalid(true, io.read_frame_and_invalid(image)[1])  # as evaluate_pairs scored it
        curves.add(true, probs)
        rows.append(_score_image(image, true, probs > threshold, predictions_dir))
        if progress is not None:
            progress(done, len(pairs))
    return _build_result(rows, threshold, result.probabilities, result.precision, curves, result.dilation)
