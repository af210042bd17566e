"""Small Keras networks and reference computations shared by the inference and evaluation tests."""

import keras
import numpy as np

from segcore.inference import frame_recipe
from segcore.preprocess import network_input




def conv_model(seed, layers=2, dilation=1):
    """Random 3x3 conv net, (None, None, 3) -> (None, None, 2) logits.

    Its receptive field reaches ``layers * dilation`` pixels from the centre.
    """
    init = keras.initializers.GlorotUniform
    inputs = keras.Input((None, None, 3))
    x = inputs
    for i in range(layers - 1):
        x = keras.layers.Conv2D(
            4, 3, padding="same", dilation_rate=dilation, activation="tanh", kernel_initializer=init(seed + i)
        )(x)
    outputs = keras.layers.Conv2D(
        2, 3, padding="same", dilation_rate=dilation, kernel_initializer=init(seed + layers)
    )(x)
    return keras.Model(inputs, outputs)


def intensity_model(k, b):
    """1x1 conv with logit0 = 0 and logit1 = k * x - b: probability sigmoid(k * x - b)."""
    inputs = keras.Input((None, None, 3))
    layer = keras.layers.Conv2D(2, 1)
    outputs = layer(inputs)
    kernel = np.zeros((1, 1, 3, 2), np.float32)
    kernel[0, 0, 0, 1] = k
    layer.set_weights([kernel, np.array([0.0, -b], np.float32)])
    return keras.Model(inputs, outputs)


def softmax_cosmic(logits):
    logits = np.asarray(logits, np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (shifted[..., 1] / shifted.sum(axis=-1)).astype(np.float32)


def whole_frame_probabilities(model, frame):
    """The model run once on the whole frame (prepared by its input recipe), reflect-padded to multiples of 16."""
    h, w = frame.shape
    channels = network_input(frame, frame_recipe(model))
    padded = np.pad(channels, ((0, -h % 16), (0, -w % 16), (0, 0)), mode="reflect")
    logits = model(padded[None], training=False).numpy()[0]
    return softmax_cosmic(logits)[:h, :w]


def random_frame(shape, seed=0):
    rng = np.random.default_rng(seed)
    frame = rng.normal(1000.0, 50.0, shape)
    hits = rng.random(shape) < 0.01
    frame[hits] += rng.uniform(500, 5000, hits.sum())
    return frame.astype(np.float32)
