"""Model and inference variants the speed benchmarks compare (prototypes, outside segcore).

- ``rebuild``: the same architecture under another Keras dtype policy (e.g.
  mixed_bfloat16) or with separable convolutions, weights copied when they fit.
- ``logits_before_upsampling``: the 1x1 logits convolution moved before the last
  upsampling, for models built before segcore's decoder did that itself. Folding
  batch norms is segcore's own ``segcore.inference_graph.fold_batch_norms``.
- ``make_step`` / ``tiled_probabilities``: ``segcore.inference.predict_probabilities``
  re-implemented step by step, with an optional XLA-compiled network step and
  a timer per stage (normalise, tile assembly, network, stitching).
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from segcore.tiles import padded_shape, tile_layout
from segcore.preprocess import normalize_frame, to_network_input


def architecture(model) -> dict:
    """build_deeplabv3plus arguments that rebuild ``model``'s architecture, dropout included."""
    from segcore.inference_graph import deeplab_architecture

    names = {layer.name: layer for layer in model.layers}
    dropout = float(names["decoder_dropout"].rate) if "decoder_dropout" in names else 0.0
    return {**deeplab_architecture(model), "dropout": dropout}


def rebuild(model=None, policy: str = "float32", **overrides):
    """Build DeepLabV3+ under ``policy`` with ``model``'s architecture (or ``overrides``), weights copied.

    With ``model=None`` or an architecture change the weights stay random.
    """
    import keras

    from segcore.model import build_deeplabv3plus

    args = architecture(model) if model is not None else {}
    args.update(overrides)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        new, _ = build_deeplabv3plus(backbone_weights="none", **args)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    if model is not None and architecture(new) == architecture(model):
        new.set_weights(model.get_weights())
    return new


def logits_before_upsampling(model):
    """The same model (same layer objects and weights) with the 1x1 logits convolution before the last upsampling.

    Models of the published layout built before segcore's decoder computed its logits
    first upsample their 256-channel stride-4 features (``decoder_block2_relu``) to the
    input size and then apply the 1x1 logits convolution; bilinear resizing (weights
    summing to 1) and a per-pixel affine map commute, so computing the 2 logits at
    stride 4 and upsampling those gives the same output with 128x less data upsampled,
    as the DeepLab reference implementation does. Published-layout models built since
    already have this graph (``logits_conv`` then ``logits_upsample``; this gives it
    again), and ``segcore.inference_graph.inference_model`` rebuilds older ones this way. A
    model with the full-resolution head (segcore's default) computes its logits at full
    size from ``refine_block2``: there is no upsampling after them to move, and this
    function does not apply to it.
    """
    import keras
    from keras import layers

    from segcore.model import ResizeLike

    features = model.get_layer("decoder_block2_relu").output
    logits = model.get_layer("logits_conv")(features)
    logits = ResizeLike(name="logits_upsample")([logits, model.input])
    output = layers.Activation("linear", dtype="float32", name="logits_at_input_size")(logits)
    return keras.Model(model.input, output, name=f"{model.name}_logits_first")


def make_step(model, tile_shape, jit: bool = False):
    """(B, h, w, 3) float32 tiles -> (B, h, w) probabilities, as segcore's predict step; XLA with ``jit``."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, *tile_shape, 3], tf.float32)], jit_compile=jit)
    def step(tiles):
        logits = tf.cast(model(tiles, training=False), tf.float32)
        return tf.nn.softmax(logits, axis=-1)[..., 1]

    return step


class StepCache:
    """One traced step per (model, tile shape), as segcore keeps them."""

    def __init__(self, model, jit: bool = False):
        self.model, self.jit, self.steps = model, jit, {}

    def __call__(self, tile_shape):
        if tile_shape not in self.steps:
            self.steps[tile_shape] = make_step(self.model, tile_shape, self.jit)
        return self.steps[tile_shape]


def default_layout(shape) -> dict:
    """segcore's default tile, overlap and tiles per batch for a frame of this shape."""
    from segcore.tiles import DEFAULT_OVERLAP, DEFAULT_TILE, default_batch_size

    window = tile_layout(padded_shape(shape), DEFAULT_TILE, DEFAULT_OVERLAP)[0].window
    tile_shape = (window[0].stop - window[0].start, window[1].stop - window[1].start)
    return {"tile": DEFAULT_TILE, "overlap": DEFAULT_OVERLAP, "batch_size": default_batch_size(tile_shape)}


def tiled_probabilities(frame, steps: StepCache, tile=512, overlap=64, batch_size=4, timings=None) -> np.ndarray:
    """``predict_probabilities`` step by step; adds seconds per stage to ``timings`` (a dict) when given."""
    clock = time.perf_counter
    t = timings if timings is not None else defaultdict(float)
    started = clock()
    height, width = frame.shape
    padded_h, padded_w = padded_shape(frame.shape)
    normalized = normalize_frame(frame)
    normalized = np.pad(normalized, ((0, padded_h - height), (0, padded_w - width)), mode="reflect")
    t["normalise"] += clock() - started
    tiles = tile_layout((padded_h, padded_w), tile, overlap)
    window = tiles[0].window
    step = steps((window[0].stop - window[0].start, window[1].stop - window[1].start))
    out = np.empty((padded_h, padded_w), np.float32)
    for first in range(0, len(tiles), batch_size):
        batch = tiles[first : first + batch_size]
        started = clock()
        x = to_network_input(np.stack([normalized[tl.window] for tl in batch]))
        t["tile assembly"] += clock() - started
        started = clock()
        probs = step(x).numpy()
        t["network"] += clock() - started
        started = clock()
        for tl, p in zip(batch, probs):
            out[tl.interior] = p[tl.local_interior]
        t["stitching"] += clock() - started
    t["tiles"] = len(tiles)
    return out[:height, :width]


def warm_up(frame, steps: StepCache, tile=512, overlap=64, batch_size=4) -> None:
    """Trace the step and run each batch size it will see once, without a whole frame."""
    padded = padded_shape(frame.shape)
    tiles = tile_layout(padded, tile, overlap)
    window = tiles[0].window
    shape = (window[0].stop - window[0].start, window[1].stop - window[1].start)
    step = steps(shape)
    sizes = {min(batch_size, len(tiles))}
    if len(tiles) % batch_size:
        sizes.add(len(tiles) % batch_size)
    for size in sizes:
        step(np.zeros((size, *shape, 3), np.float32)).numpy()


def tiling_cost(shape, tile: int, overlap: int) -> tuple[int, float]:
    """Number of tiles and pixels fed to the network per frame pixel for a layout."""
    padded = padded_shape(shape)
    tiles = tile_layout(padded, tile, overlap)
    window = tiles[0].window
    pixels = len(tiles) * (window[0].stop - window[0].start) * (window[1].stop - window[1].start)
    return len(tiles), pixels / float(shape[0] * shape[1])


def part_of(layer_name: str) -> str:
    """Which part of DeepLabV3+ a layer belongs to (ResNet50 stages by their Keras names)."""
    if layer_name.startswith(("conv1", "pool1", "conv2_")):
        return "stem + conv2"
    if layer_name.startswith("conv3_"):
        return "conv3"
    if layer_name.startswith("conv4_"):
        return "conv4"
    if layer_name.startswith("aspp"):
        return "ASPP"
    return "decoder"


def conv_macs(model, tile: int = 512) -> dict[str, float]:
    """Multiply-accumulates of the convolutions per part for one tile x tile input (the model's architecture)."""
    from keras import layers

    from segcore.model import build_deeplabv3plus

    sized, _ = build_deeplabv3plus(input_shape=(tile, tile, 3), backbone_weights="none", **architecture(model))
    macs: dict[str, float] = {}
    for layer in sized.layers:
        if not isinstance(layer, (layers.Conv2D, layers.SeparableConv2D)):
            continue
        out, inp = layer.output.shape, layer.input.shape
        kernel = layer.kernel_size[0] * layer.kernel_size[1]
        if isinstance(layer, layers.SeparableConv2D):
            count = out[1] * out[2] * (kernel * inp[-1] + inp[-1] * out[-1])
        else:
            count = out[1] * out[2] * kernel * inp[-1] * out[-1]
        macs[part_of(layer.name)] = macs.get(part_of(layer.name), 0.0) + float(count)
    return macs
