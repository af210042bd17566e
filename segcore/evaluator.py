"""Full-resolution inference on overlapping tiles, per-image result tables, overlays.

A frame is normalised as a whole (percentiles over the whole frame, as in
training), padded by reflection to a multiple of 16, cut into equal tiles that
overlap, and run through the network in batches. Each tile writes only its
interior: the boundary between two neighbouring tiles lies in the middle of
their overlap, so every output pixel comes from exactly one tile, one that saw
at least ``overlap // 2`` pixels of context on every side that is not the frame
border. With a network whose receptive field reaches no further than that, the
stitched result equals whole-frame inference.

Progress callbacks take ``(done, total)`` and are called after each image.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np
import pandas as pd

from . import io, metrics
from .preprocess import display_image, normalize_frame, to_network_input

#: ``progress(done, total)``, called after each image.
ProgressCallback = Callable[[int, int], None]

#: Tile sizes, overlaps and padded frames are multiples of this (the network's output stride).
TILE_MULTIPLE = 16

#: Columns of the per-image table that hold scores, in order.
SCORE_COLUMNS = (
    "iou",
    "dice",
    "pixel_accuracy",
    "precision",
    "recall",
    "f1",
    "specificity",
    "count_score",
    "true_count",
    "pred_count",
    "object_recall",
    "object_precision",
)
#: Pixel confusion counts kept per image, so pooled scores can be recomputed.
COUNT_COLUMNS = ("tp", "fp", "fn", "tn")
#: Means reported at the top level of :meth:`EvaluationResult.to_json_dict`.
JSON_MEAN_KEYS = ("iou", "dice", "pixel_accuracy", "precision", "recall", "f1", "count_score")

# Overlay colours, RGB.
TRUE_POSITIVE_COLOR = (0, 255, 0)  # green: cosmic found
FALSE_POSITIVE_COLOR = (255, 0, 0)  # red: predicted, not in the true mask
FALSE_NEGATIVE_COLOR = (30, 144, 255)  # blue: in the true mask, missed
PREDICTED_COLOR = (255, 140, 0)  # orange: predicted cosmic on a frame without a true mask
LABEL_COLOR = (255, 255, 0)  # yellow numbers, drawn over a black outline
LABEL_OUTLINE_COLOR = (0, 0, 0)
#: Weight of the colour over the gray frame on marked pixels.
OVERLAY_ALPHA = 0.6


# --------------------------------------------------------------------------- #
# Tiled inference
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Tile:
    """One tile of a padded frame.

    ``window`` is the region fed to the network, ``interior`` the region this
    tile writes to the output; both are (row slice, column slice) in padded
    frame coordinates.
    """

    window: tuple[slice, slice]
    interior: tuple[slice, slice]

    @property
    def local_interior(self) -> tuple[slice, slice]:
        """The interior in the tile's own coordinates."""
        return tuple(
            slice(inner.start - outer.start, inner.stop - outer.start)
            for inner, outer in zip(self.interior, self.window)
        )


def _check_tiling(tile: int, overlap: int) -> None:
    for name, value in (("tile", tile), ("overlap", overlap)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        if value % TILE_MULTIPLE:
            raise ValueError(f"{name} must be a multiple of {TILE_MULTIPLE}, got {value}")
    if tile <= 0:
        raise ValueError(f"tile must be positive, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be at least 0 and smaller than tile ({tile}), got {overlap}")


def _axis_spans(length: int, size: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(start, stop, interior start, interior stop) of the tiles along one axis."""
    size = min(size, length)
    if size == length:
        return [(0, length, 0, length)]
    stride = size - overlap
    # The last tile is moved back to end at the border, so it may overlap more.
    starts = list(range(0, length - size, stride)) + [length - size]
    bounds = [0] + [(a + b + size) // 2 for a, b in zip(starts[:-1], starts[1:])] + [length]
    return [(s, s + size, bounds[i], bounds[i + 1]) for i, s in enumerate(starts)]


def tile_layout(shape: tuple[int, int], tile: int = 512, overlap: int = 64) -> list[Tile]:
    """The tiles that cover a padded frame.

    Parameters
    ----------
    shape : (height, width) of the padded frame, multiples of 16.
    tile : tile side; clipped to the frame side where the frame is smaller.
    overlap : how much neighbouring tiles overlap (at least; the last tile on
        each axis is moved back to end at the border and may overlap more).

    Returns
    -------
    list of Tile, all with the same window shape, in raster order. The
    interiors partition the frame; each interior edge that is not on the frame
    border lies at least ``overlap // 2`` pixels inside its window.
    """
    _check_tiling(tile, overlap)
    if len(shape) != 2 or any(int(s) <= 0 or int(s) % TILE_MULTIPLE for s in shape):
        raise ValueError(f"shape must be 2 positive multiples of {TILE_MULTIPLE}, got {tuple(shape)}")
    rows = _axis_spans(int(shape[0]), tile, overlap)
    cols = _axis_spans(int(shape[1]), tile, overlap)
    return [
        Tile((slice(r0, r1), slice(c0, c1)), (slice(ri0, ri1), slice(ci0, ci1)))
        for r0, r1, ri0, ri1 in rows
        for c0, c1, ci0, ci1 in cols
    ]


def padded_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """Frame shape rounded up to multiples of 16."""
    return tuple(-(-int(s) // TILE_MULTIPLE) * TILE_MULTIPLE for s in shape)


# Compiled steps by model, then by tile shape; a step holds its model weakly so
# the cache never keeps a model alive.
_PREDICT_STEPS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _predict_step(model, tile_shape: tuple[int, int]):
    """A tf.function mapping (B, h, w, 3) float32 tiles to (B, h, w) cosmic probabilities.

    The tile shape is fixed in its signature (networks that resize to their
    input's size need it known when traced); the batch size is free. So it is
    traced once per model and tile shape, however many tiles and batches.
    """
    steps = _PREDICT_STEPS.setdefault(model, {})
    tile_shape = (int(tile_shape[0]), int(tile_shape[1]))
    step = steps.get(tile_shape)
    if step is not None:
        return step
    import tensorflow as tf

    model_ref = weakref.ref(model)

    @tf.function(input_signature=[tf.TensorSpec([None, *tile_shape, 3], tf.float32)])
    def step(tiles):
        logits = model_ref()(tiles, training=False)
        if logits.shape.rank != 4 or logits.shape[-1] != 2:
            raise ValueError(f"model must give (B, H, W, 2) logits, got shape {tuple(logits.shape)}")
        logits = tf.cast(logits, tf.float32)  # mixed-precision models give float16
        return tf.nn.softmax(logits, axis=-1)[..., 1]

    steps[tile_shape] = step
    return step


def _check_frame(frame) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise ValueError(f"frame must be 2-D, got shape {frame.shape}")
    if frame.size == 0:
        raise ValueError("frame is empty")
    if not np.issubdtype(frame.dtype, np.number) and frame.dtype != bool:
        raise ValueError(f"frame must be numeric, got dtype {frame.dtype}")
    if not np.all(np.isfinite(frame)):
        raise ValueError("frame contains NaN or infinite values")
    return frame


def predict_probabilities(model, frame, tile: int = 512, overlap: int = 64, batch_size: int = 4) -> np.ndarray:
    """Cosmic probability of every pixel of a frame of any size.

    Parameters
    ----------
    model : keras.Model mapping (B, H, W, 3) float32 to (B, H, W, 2) logits
        (class 1 = cosmic).
    frame : 2-D array of detector values.
    tile : tile side in pixels, a multiple of 16; clipped to the padded frame.
    overlap : overlap of neighbouring tiles, a multiple of 16 smaller than tile.
    batch_size : tiles per network call.

    Returns
    -------
    ndarray of shape (H, W), float32, values in [0, 1]: the softmax
    probability of class 1.
    """
    frame = _check_frame(frame)
    _check_tiling(tile, overlap)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    height, width = frame.shape
    padded_h, padded_w = padded_shape(frame.shape)
    # Normalise before padding so the percentiles are those of the frame alone.
    normalized = normalize_frame(frame)
    normalized = np.pad(normalized, ((0, padded_h - height), (0, padded_w - width)), mode="reflect")

    tiles = tile_layout((padded_h, padded_w), tile, overlap)
    window = tiles[0].window
    step = _predict_step(model, (window[0].stop - window[0].start, window[1].stop - window[1].start))
    out = np.empty((padded_h, padded_w), np.float32)
    for first in range(0, len(tiles), batch_size):
        batch = tiles[first : first + batch_size]
        # Channels are repeated per batch, not for the whole frame, to save memory.
        x = to_network_input(np.stack([normalized[t.window] for t in batch]))
        probs = step(x).numpy()
        if probs.shape != x.shape[:3]:
            raise ValueError(
                f"model gives {probs.shape[1]}x{probs.shape[2]} logits for {x.shape[1]}x{x.shape[2]} "
                "tiles; expected logits at input resolution"
            )
        for t, p in zip(batch, probs):
            out[t.interior] = p[t.local_interior]
    return out[:height, :width]


def _check_threshold(threshold) -> float:
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    return threshold


def predict_mask(model, frame, threshold: float = 0.5, **tile_kw) -> np.ndarray:
    """Boolean cosmic mask of a frame: probability strictly above ``threshold``.

    ``tile_kw`` (tile, overlap, batch_size) go to :func:`predict_probabilities`.
    """
    threshold = _check_threshold(threshold)
    return predict_probabilities(model, frame, **tile_kw) > threshold


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
    threshold : probability threshold of the masks.
    pooled : pixel iou, precision, recall and f1 from the confusion counts
        summed over all images (every pixel weighs the same).
    probabilities : float16 probability maps by image name, when kept.
    """

    per_image: pd.DataFrame
    threshold: float
    pooled: dict[str, float]
    probabilities: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

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
        threshold and number of images."""
        means = self.per_image[list(JSON_MEAN_KEYS)].astype(float).mean()
        result = {key: _json_number(means[key]) for key in JSON_MEAN_KEYS}
        result["pooled"] = {key: _json_number(self.pooled[key]) for key in ("precision", "recall", "f1")}
        result["threshold"] = float(self.threshold)
        result["n_images"] = int(len(self.per_image))
        return result


def _check_pairs(pairs) -> list[tuple[Path, Path]]:
    pairs = [(Path(image), Path(mask)) for image, mask in pairs]
    if not pairs:
        raise ValueError("no image/mask pairs to evaluate")
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
    row["count_score"] = metrics.count_score(row["true_count"], row["pred_count"])
    row["object_recall"] = objects["object_recall"]
    row["object_precision"] = objects["object_precision"]
    row.update(tp=tp, fp=fp, fn=fn, tn=tn)
    return row


def _build_result(rows: list[dict], threshold: float, probabilities: dict) -> EvaluationResult:
    columns = ["image", "image_path", *SCORE_COLUMNS, *COUNT_COLUMNS]
    if rows and "prediction" in rows[0]:
        columns.append("prediction")
    table = pd.DataFrame(rows, columns=columns)
    totals = [int(table[c].sum()) for c in COUNT_COLUMNS]
    scores = metrics.scores_from_counts(*totals)
    pooled = {key: scores[key] for key in ("precision", "recall", "f1", "iou")}
    return EvaluationResult(table, threshold, pooled, probabilities)


def _score_image(image: Path, true: np.ndarray, probs: np.ndarray, threshold: float, predictions_dir) -> dict:
    pred = probs > threshold
    row = {"image": image.name, "image_path": str(image), **_score_row(true, pred)}
    if predictions_dir is not None:
        path = Path(predictions_dir) / f"{image.stem}.png"
        io.write_mask(path, pred)
        row["prediction"] = str(path)
    return row


def evaluate_pairs(
    model,
    pairs: Iterable[tuple[str | os.PathLike, str | os.PathLike]],
    threshold: float = 0.5,
    progress: ProgressCallback | None = None,
    predictions_dir: str | os.PathLike | None = None,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    keep_probabilities: bool = False,
) -> EvaluationResult:
    """Run a model on image/mask pairs and score every image.

    Parameters
    ----------
    model : keras.Model giving 2-class logits (see :func:`predict_probabilities`).
    pairs : (image path, mask path) pairs; each mask must match its frame's size.
    threshold : a pixel is cosmic where its probability is strictly above this.
    progress : ``progress(done, total)``, called after each image.
    predictions_dir : if given, each predicted mask is written there as
        ``<image stem>.png`` and its path recorded in a ``prediction`` column.
    tile, overlap, batch_size : tiling, as in :func:`predict_probabilities`.
    keep_probabilities : keep each probability map (float16) in
        ``result.probabilities`` under the image's file name, so that
        :func:`rescore` can apply another threshold without the network.

    Returns
    -------
    EvaluationResult

    Raises
    ------
    InputFileError
        If a frame or mask cannot be read, or a mask's size differs from its frame's.
    """
    threshold = _check_threshold(threshold)
    _check_tiling(tile, overlap)
    pairs = _check_pairs(pairs)
    if predictions_dir is not None:
        _check_unique([image.stem for image, _ in pairs], "file stem")
    if keep_probabilities:
        _check_unique([image.name for image, _ in pairs], "file name")
    rows: list[dict] = []
    kept: dict[str, np.ndarray] = {}
    for done, (image, mask_path) in enumerate(pairs, start=1):
        frame = io.read_frame(image)
        # Read the mask before the network runs, so a bad mask fails fast.
        true = io.read_mask(mask_path, shape=frame.shape)
        probs = predict_probabilities(model, frame, tile=tile, overlap=overlap, batch_size=batch_size)
        rows.append(_score_image(image, true, probs, threshold, predictions_dir))
        if keep_probabilities:
            kept[image.name] = probs.astype(np.float16)
        if progress is not None:
            progress(done, len(pairs))
    return _build_result(rows, threshold, kept)


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
    EvaluationResult carrying the same probability maps.

    Notes
    -----
    The maps are stored as float16, so a pixel whose probability lies within
    float16 rounding (about 5e-4 near 0.5) of the threshold may fall on the
    other side of it than in a fresh evaluation.
    """
    threshold = _check_threshold(threshold)
    pairs = _check_pairs(pairs)
    if predictions_dir is not None:
        _check_unique([image.stem for image, _ in pairs], "file stem")
    missing = [image.name for image, _ in pairs if image.name not in result.probabilities]
    if missing:
        raise ValueError(
            "no kept probabilities for " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            + "; evaluate with keep_probabilities=True"
        )
    rows = []
    for done, (image, mask_path) in enumerate(pairs, start=1):
        probs = result.probabilities[image.name]
        true = io.read_mask(mask_path, shape=probs.shape)
        rows.append(_score_image(image, true, probs, threshold, predictions_dir))
        if progress is not None:
            progress(done, len(pairs))
    return _build_result(rows, threshold, result.probabilities)


# --------------------------------------------------------------------------- #
# Overlays
# --------------------------------------------------------------------------- #


def _check_mask(mask, shape, name) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f"{name} has shape {mask.shape} but the frame is {tuple(shape)}")
    return mask if mask.dtype == bool else mask != 0


def _blend(rgb: np.ndarray, where: np.ndarray, color) -> None:
    mixed = (1.0 - OVERLAY_ALPHA) * rgb[where] + OVERLAY_ALPHA * np.asarray(color, np.float64)
    rgb[where] = np.round(mixed).astype(np.uint8)


def _draw_numbers(rgb: np.ndarray, pred: np.ndarray) -> None:
    height, width = pred.shape
    font = cv2.FONT_HERSHEY_SIMPLEX
    # Readable on 64 px thumbnails and on 4k frames alike.
    scale = float(np.clip(min(height, width) / 1000.0, 0.3, 1.5))
    thickness = 1
    for number, cosmic in enumerate(metrics.count_cosmics(pred), start=1):
        text = str(number)
        (text_w, text_h), _ = cv2.getTextSize(text, font, scale, thickness)
        row0, col0, _, col1 = cosmic.bbox
        # Right of the cosmic, top-aligned with it; left of it if no room.
        x = col1 + 1 if col1 + 1 + text_w <= width else col0 - 1 - text_w
        x = int(np.clip(x, 0, max(width - text_w, 0)))
        y = int(np.clip(row0 + text_h, text_h, height - 1))
        cv2.putText(rgb, text, (x, y), font, scale, LABEL_OUTLINE_COLOR, thickness + 2, cv2.LINE_AA)
        cv2.putText(rgb, text, (x, y), font, scale, LABEL_COLOR, thickness, cv2.LINE_AA)


def overlay(frame, true_mask, pred_mask, numbers: bool = True) -> np.ndarray:
    """Render a frame in gray with the prediction compared to the truth.

    Parameters
    ----------
    frame : 2-D array of detector values, shown with
        :func:`segcore.preprocess.display_image`.
    true_mask : 2-D mask of the frame's shape, or None for a frame without one.
    pred_mask : 2-D predicted mask of the frame's shape.
    numbers : write 1..n beside the predicted cosmics, in the order of
        :func:`segcore.metrics.count_cosmics`.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8 RGB. Marked pixels are blended with
    weight :data:`OVERLAY_ALPHA`: true positives :data:`TRUE_POSITIVE_COLOR`,
    false positives :data:`FALSE_POSITIVE_COLOR`, false negatives
    :data:`FALSE_NEGATIVE_COLOR`; without a true mask, predicted pixels
    :data:`PREDICTED_COLOR`.
    """
    frame = _check_frame(frame)
    pred = _check_mask(pred_mask, frame.shape, "pred_mask")
    rgb = np.repeat(display_image(frame)[..., None], 3, axis=-1)
    if true_mask is None:
        _blend(rgb, pred, PREDICTED_COLOR)
    else:
        true = _check_mask(true_mask, frame.shape, "true_mask")
        _blend(rgb, true & pred, TRUE_POSITIVE_COLOR)
        _blend(rgb, ~true & pred, FALSE_POSITIVE_COLOR)
        _blend(rgb, true & ~pred, FALSE_NEGATIVE_COLOR)
    if numbers:
        _draw_numbers(rgb, pred)
    return rgb


def prediction_overlay(frame, pred_mask, numbers: bool = True) -> np.ndarray:
    """The frame with its predicted cosmics marked and numbered (no true mask)."""
    return overlay(frame, None, pred_mask, numbers=numbers)
