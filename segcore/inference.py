"""Full-resolution inference: the model to predict with, overlapping tiles, probabilities.

A frame is normalised as a whole (percentiles over the whole frame, as in
training), padded by reflection to a multiple of 16, cut into equal tiles that
overlap, and run through the network in batches. Each tile writes only its
interior: the boundary between two neighbouring tiles lies in the middle of
their overlap, so every output pixel comes from exactly one tile, one that saw
at least ``overlap // 2`` pixels of context on every side that is not the frame
border. With a network whose receptive field reaches no further than that, the
stitched result equals whole-frame inference.

Frames up to :data:`DEFAULT_TILE` pixels a side run as one tile; larger ones
are cut into as few equal tiles as fit, so the network sees few pixels twice.
:func:`inference_model` gives the fastest form of a trained model for this
machine (its logits computed before the last upsampling, batch norms folded
into the convolutions, and bfloat16 or float16 arithmetic where the hardware
has it); see ``bench/RESULTS.md`` for what each costs and changes.
"""

from __future__ import annotations

import math
import os
import weakref
from dataclasses import dataclass

import numpy as np

from .precision import resolve_precision
from .preprocess import network_input

#: Tile sizes, overlaps and padded frames are multiples of this (the network's output stride).
TILE_MULTIPLE = 16
#: Largest tile side by default: a 2048x2048 frame runs as one tile (about 2 GiB
#: of memory in float32), larger frames in as few tiles as fit.
DEFAULT_TILE = 2048
DEFAULT_OVERLAP = 64
#: Without a batch size, each network call gets as many tiles as fit in this many pixels.
BATCH_PIXELS = 2048 * 2048



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


def _axis_spans(length: int, largest: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(start, stop, interior start, interior stop) of the tiles along one axis.

    As few tiles as cover ``length`` with tiles of at most ``largest`` pixels
    overlapping by ``overlap``, each made as small as that count allows.
    """
    if largest >= length:
        return [(0, length, 0, length)]
    count = math.ceil((length - overlap) / (largest - overlap))
    size = min(largest, -(-math.ceil((length + (count - 1) * overlap) / count) // TILE_MULTIPLE) * TILE_MULTIPLE)
    stride = size - overlap
    # The last tile is moved back to end at the border, so it may overlap more.
    starts = list(range(0, length - size, stride)) + [length - size]
    bounds = [0] + [(a + b + size) // 2 for a, b in zip(starts[:-1], starts[1:])] + [length]
    return [(s, s + size, bounds[i], bounds[i + 1]) for i, s in enumerate(starts)]


def tile_layout(shape: tuple[int, int], tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP) -> list[Tile]:
    """The tiles that cover a padded frame.

    Parameters
    ----------
    shape : (height, width) of the padded frame, multiples of 16.
    tile : largest tile side. Along each axis the frame is cut into as few
        tiles as fit, each as small as that number allows (a multiple of 16):
        a side of 2048 with tile 512 and overlap 64 gives 5 tiles of 464.
        A frame side no longer than ``tile`` is one tile.
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


def default_batch_size(tile_shape: tuple[int, int]) -> int:
    """Tiles per network call when none is given: as many as fit in :data:`BATCH_PIXELS` pixels, at least one."""
    return max(1, BATCH_PIXELS // (int(tile_shape[0]) * int(tile_shape[1])))


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


def predict_probabilities(
    model, frame, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, batch_size: int | None = None
) -> np.ndarray:
    """Cosmic probability of every pixel of a frame of any size.

    ``model`` runs as it is; pass a trained model through :func:`inference_model`
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
        :data:`BATCH_PIXELS` pixels (at least one).

    Returns
    -------
    ndarray of shape (H, W), float32, values in [0, 1]: the softmax
    probability of class 1.
    """
    frame = _check_frame(frame)
    _check_tiling(tile, overlap)
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    height, width = frame.shape
    padded_h, padded_w = padded_shape(frame.shape)
    # The input recipe sees the frame alone, before padding, as in training.
    recipe = frame_recipe(model)
    channels = network_input(frame, recipe)
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
# The model to predict with
# --------------------------------------------------------------------------- #


def deeplab_architecture(model) -> dict | None:
    """build_deeplabv3plus arguments of a segcore DeepLabV3+ model, or None for another network."""
    names = {layer.name: layer for layer in model.layers}
    block = names.get("decoder_block1_sepconv") or names.get("decoder_block1_conv")
    if block is None or "logits_conv" not in names:
        return None
    return {
        "num_classes": int(names["logits_conv"].filters),
        "decoder_kernel": int(block.kernel_size[0]),
        "separable": block.name.endswith("_sepconv"),
        "full_resolution": "refine_block1_conv" in names,
        "backbone": "tiny" if "tiny1_conv" in names else "resnet50",
    }


def frame_recipe(model) -> str:
    """The input recipe a model was trained with (see :func:`segcore.model.model_card`)."""
    from .model import model_card

    return model_card(model)["input_recipe"]


def model_threshold(model, default: float = 0.5) -> float:
    """The decision threshold chosen for a model on validation frames, else ``default``."""
    from .model import model_card

    threshold = model_card(model)["threshold"]
    return default if threshold is None else float(threshold)


def model_precision(model) -> str:
    """The Keras dtype policy ``model`` computes in (that of its logits convolution when it has one)."""
    try:
        return model.get_layer("logits_conv").dtype_policy.name
    except ValueError:
        weighted = [layer for layer in model.layers if layer.weights]
        return (weighted[0] if weighted else model).dtype_policy.name


def inference_model(model, precision: str = "auto"):
    """The fastest form of a trained segcore DeepLabV3+ for prediction on this machine.

    The model is rebuilt with its 1x1 logits convolution before the last
    upsampling (the layout of models built since; the same function, with 128x
    less data to upsample) and under the precision policy, its weights are
    copied layer by layer, and its batch norms are folded into the
    convolutions (:func:`fold_batch_norms`). Other networks are returned unchanged.

    Parameters
    ----------
    model : keras.Model, usually from :func:`segcore.model.load_model`.
    precision : "auto" (see :mod:`segcore.precision`: bfloat16 on CPUs with
        bfloat16 instructions, float16 on GPUs, else float32), "float32",
        "mixed_bfloat16" or "mixed_float16". Reduced precision changes a few
        probabilities near the threshold (see ``bench/RESULTS.md``).

    Returns
    -------
    keras.Model: ``model`` itself when it already has that form, else a new
    model. A copy does not follow later changes to ``model``'s weights.
    """
    import keras

    from .model import build_deeplabv3plus, model_card

    policy = resolve_precision(precision)
    architecture = deeplab_architecture(model)
    if architecture is None:
        return model
    # Models built before logits came first upsample 256 channels: rebuilt, they upsample 2.
    fast_layout = architecture["full_resolution"] or any(layer.name == "logits_upsample" for layer in model.layers)
    if fast_layout and not _folds(model) and model_precision(model) == policy:
        return model
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        rebuilt, _ = build_deeplabv3plus(backbone_weights="none", dropout=0.0, **architecture, **model_card(model))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    for layer in rebuilt.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return fold_batch_norms(rebuilt)


def _folds(model) -> dict:
    """Convolution name -> the batch norm that normalises its output (``<block>_conv`` -> ``<block>_bn``).

    Both segcore's blocks and Keras' ResNet50 name each convolution's batch
    norm after it, and the convolution feeds nothing else.
    """
    from keras import layers

    norms = {layer.name: layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)}
    folds = {}
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.SeparableConv2D)):
            norm = norms.get(layer.name.rsplit("_", 1)[0] + "_bn")
            if norm is not None:
                folds[layer.name] = norm
    return folds


def fold_batch_norms(model):
    """A copy of ``model`` for inference with each batch norm merged into the convolution before it.

    y = gamma (conv(x) + b - mean) / sqrt(var + eps) + beta is a convolution with
    kernel k s and bias (b - mean) s + beta, s = gamma / sqrt(var + eps). Under
    mixed precision this also saves the float32 round trip Keras makes in every
    batch norm. Inference only: the moving statistics become constants.
    """
    import keras

    folds = _folds(model)
    folded_norms = {norm.name for norm in folds.values()}

    def clone(layer):
        config = layer.get_config()
        if layer.name in folds:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    def call(layer, *args, **kwargs):
        # A folded batch norm passes its input on (it stays in the model, unused).
        return args[0] if layer.name in folded_norms else layer(*args, **kwargs)

    folded = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for layer in folded.layers:
        source = model.get_layer(layer.name)
        if layer.name in folds:
            norm = folds[layer.name]
            weights = source.get_weights()
            kernels = weights[:-1] if source.use_bias else weights
            bias = weights[-1] if source.use_bias else 0.0
            scale = np.asarray(norm.gamma) if norm.scale else 1.0
            scale = scale / np.sqrt(np.asarray(norm.moving_variance) + norm.epsilon)
            shift = (np.asarray(norm.beta) if norm.center else 0.0) - np.asarray(norm.moving_mean) * scale
            # The last kernel (the pointwise one of a separable convolution) makes the output channels.
            kernels[-1] = kernels[-1] * scale
            layer.set_weights([*kernels, (bias * scale + shift).astype(np.float32)])
        elif layer.weights and layer.name not in folded_norms:
            layer.set_weights(source.get_weights())
    return folded


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
