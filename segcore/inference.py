"""Full-resolution prediction: the model to predict with, and the cosmic probability of every pixel.

A frame is prepared as a whole by the input recipe its model was trained with
(percentiles over the whole frame, as in training), padded and cut into
overlapping tiles (:mod:`segcore.tiles`), and run through the network in
batches; each tile writes only its interior. With a network whose receptive
field reaches no further than half the overlap, the stitched result equals
whole-frame inference. :func:`load_inference_model` gives a model file in its
fastest form for this machine (:mod:`segcore.inference_graph`).
"""

from __future__ import annotations

import os
import weakref

import numpy as np

from .inference_graph import inference_model
from .preprocess import network_input
from .tiles import DEFAULT_OVERLAP, DEFAULT_TILE, check_tiling, default_batch_size, padded_shape, tile_layout


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


def check_frame(frame) -> np.ndarray:
    """The frame as an array; ValueError unless it is 2-D, not empty, numeric and finite."""
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


#: Numbers of views :func:`predict_probabilities` can average: the frame itself, then flipped left-right, then
#: up-down and transposed, then the other four of the square's eight symmetries.
VIEWS = (1, 2, 4, 8)


def _view(array: np.ndarray, view: int) -> np.ndarray:
    """One of the eight symmetries of the square applied to the first two axes (0 is the identity)."""
    if view >= 4:
        array = np.swapaxes(array, 0, 1)
    if view % 4 in (1, 3):
        array = array[:, ::-1]
    if view % 4 in (2, 3):
        array = array[::-1]
    return np.ascontiguousarray(array)


def _unview(array: np.ndarray, view: int) -> np.ndarray:
    """The inverse of :func:`_view`."""
    if view % 4 in (2, 3):
        array = array[::-1]
    if view % 4 in (1, 3):
        array = array[:, ::-1]
    if view >= 4:
        array = np.swapaxes(array, 0, 1)
    return array


#: The views in the order they are added: identity, left-right, transposed, up-down, ...
_VIEW_ORDER = (0, 1, 4, 2, 3, 5, 6, 7)


def check_views(views) -> int:
    if isinstance(views, bool) or not isinstance(views, (int, np.integer)) or int(views) not in VIEWS:
        raise ValueError(f"views must be one of {', '.join(map(str, VIEWS))}, got {views!r}")
    return int(views)


def predict_probabilities(
    model, frame, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, batch_size: int | None = None,
    views: int = 1,
) -> np.ndarray:
    """Cosmic probability of every pixel of a frame of any size.

    ``model`` runs as it is; pass a trained model through :func:`segcore.inference_graph.inference_model`
    once first for the fastest form on this machine.

    Parameters
    ----------
    model : keras.Model mapping (B, H, W, 3) float32 to (B, H, W, 2) logits
        (class 1 = cosmic). Frames are prepared by the input recipe its card
        records (the original stretch for models without a card).
    frame : 2-D array of detector values.
    tile : largest tile side in pixels, a multiple of 16 (see :func:`tile_layout`).
    overlap : overlap of neighbouring tiles, a multiple of 16 smaller than tile.
    batch_size : tiles per network call; by default as many as fit in
        :data:`segcore.tiles.BATCH_PIXELS` pixels (at least one).
    views : 1, 2, 4 or 8: the mean probability over the frame seen flipped,
        transposed and rotated (test-time augmentation; training sees all
        eight, a cosmic looks alike in each, the network's errors do not).
        The input recipe commutes with these, so it runs once. Costs ``views``
        times the network's time.

    Returns
    -------
    ndarray of shape (H, W), float32, values in [0, 1]: the softmax
    probability of class 1.
    """
    frame = check_frame(frame)
    check_tiling(tile, overlap)
    views = check_views(views)
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    # The input recipe sees the frame alone, before padding, as in training.
    channels = network_input(frame, frame_recipe(model))
    if views == 1:
        return _tiled_probabilities(model, channels, tile, overlap, batch_size)
    total = np.zeros(frame.shape, np.float32)
    for view in _VIEW_ORDER[:views]:
        total += _unview(_tiled_probabilities(model, _view(channels, view), tile, overlap, batch_size), view)
    return total / views


def _tiled_probabilities(model, channels: np.ndarray, tile: int, overlap: int, batch_size: int | None) -> np.ndarray:
    """The network's cosmic probability over (H, W, 3) input channels, tile by tile."""
    height, width = channels.shape[:2]
    padded_h, padded_w = padded_shape((height, width))
    channels = np.pad(channels, ((0, padded_h - height), (0, padded_w - width), (0, 0)), mode="reflect")

    tiles = tile_layout((padded_h, padded_w), tile, overlap)
    window = tiles[0].window
    tile_shape = (window[0].stop - window[0].start, window[1].stop - window[1].start)
    step = _predict_step(model, tile_shape)
    if batch_size is None:
        batch_size = default_batch_size(tile_shape)
    out = np.empty((padded_h, padded_w), np.float32)
    for first in range(0, len(tiles), batch_size):
        batch = tiles[first : first + batch_size]
        x = np.stack([channels[t.window] for t in batch])
        probs = step(x).numpy()
        if probs.shape != x.shape[:3]:
            raise ValueError(
                f"model gives {probs.shape[1]}x{probs.shape[2]} logits for {x.shape[1]}x{x.shape[2]} "
                "tiles; expected logits at input resolution"
            )
        for t, p in zip(batch, probs):
            out[t.interior] = p[t.local_interior]
    return out[:height, :width]


def check_threshold(threshold) -> float:
    """The threshold as a float; ValueError outside [0, 1]."""
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    return threshold


def predict_mask(model, frame, threshold: float = 0.5, **tile_kw) -> np.ndarray:
    """Boolean cosmic mask of a frame: probability strictly above ``threshold``.

    ``tile_kw`` (tile, overlap, batch_size) go to :func:`predict_probabilities`.
    """
    threshold = check_threshold(threshold)
    return predict_probabilities(model, frame, **tile_kw) > threshold


def frame_recipe(model) -> str:
    """The input recipe a model was trained with (see :func:`segcore.model.model_card`)."""
    from .model import model_card

    return model_card(model)["input_recipe"]


def model_threshold(model, default: float = 0.5) -> float:
    """The decision threshold chosen for a model on validation frames, else ``default``."""
    from .model import model_card

    threshold = model_card(model)["threshold"]
    return default if threshold is None else float(threshold)


def load_inference_model(path: str | os.PathLike, precision: str = "auto"):
    """:func:`segcore.model.load_model` (uncompiled), then :func:`inference_model`.

    Raises
    ------
    InputFileError
        When the file is missing, is not a readable Keras model, or is not a cosmic
        segmentation model (:func:`segcore.model.check_cosmic_model`).
    """
    from .model import check_cosmic_model, load_model

    model = load_model(path, compile=False)
    check_cosmic_model(model, path)
    return inference_model(model, precision)
