"""DeepLabV3+ on a ResNet50 (or tiny) backbone: builder, backbone weights, save and load.

The network takes the frame as its input recipe makes it (3 channels of values
around [-1, 1], see :mod:`segcore.preprocess`) and returns 2-class logits at the
input resolution. A pass-through "model card" layer after the input records the
recipe and the decision threshold, so both travel with the model file. It is fully convolutional: any height and width that are multiples
of 16 work, so training on crops and inference on tiles use the same model.

ImageNet weights were trained on "caffe" inputs (0..255, BGR mean subtracted).
A fixed, weightless first layer maps [-1, 1] onto that range, so ImageNet
features (and the moving statistics of a frozen backbone) see inputs on the
scale they were learnt for. Callers feed [-1, 1] and nothing else.

The "tiny" backbone (four small strided blocks, random weights only) gives the
same decoder the same strides in a network that builds and trains in seconds:
for trying a pipeline end to end, not for finding cosmics well.
"""

from __future__ import annotations

import os
import re
import warnings
import zipfile

import keras
import numpy as np
from keras import layers

from segcore.errors import InputFileError
from segcore.io import temporary_file

HIGH_LEVEL_LAYER = "conv4_block6_2_relu"  # stride 16
LOW_LEVEL_LAYER = "conv2_block3_2_relu"  # stride 4
OUTPUT_STRIDE = 16
PYRAMID_DILATIONS = (6, 12, 18)
#: Channels of the full-resolution head (cheap at full size, enough for 1-pixel hits).
FULL_RESOLUTION_FILTERS = 16

#: Channels of the tiny backbone's four stride-2 blocks (features at strides 2, 4, 8, 16).
TINY_BACKBONE_FILTERS = (8, 16, 32, 64)

# ResNet50 layer names are kept (conv1_*, pool1_*, conv2_block1_* ...) and the tiny
# backbone's start with tiny1_ .. tiny4_; the head's layers never start with "conv",
# "pool" or "tiny", so the backbone is findable by name.
BACKBONE_LAYER_PATTERN = re.compile(r"^(conv[1-5]_|pool1_|tiny[1-4]_)")

# The Keras ImageNet "notop" ResNet50 weights, as keras.applications fetches them.
IMAGENET_NOTOP_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_NOTOP_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + IMAGENET_NOTOP_FILE
IMAGENET_NOTOP_MD5 = "4d473c1dd8becc155b73f8504c6f6626"
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)

WEIGHTS_SUFFIXES = (".weights.h5", ".h5", ".hdf5")


@keras.saving.register_keras_serializable(package="segcore")
class ResizeLike(layers.Layer):
    """Resize the first input to the spatial size of the second.

    Sizes are read at run time, so the model works for any input size.

    Parameters
    ----------
    interpolation : str
        ``keras.ops.image.resize`` interpolation, "bilinear" by default.
    """

    def __init__(self, interpolation: str = "bilinear", **kwargs):
        super().__init__(**kwargs)
        self.interpolation = interpolation

    def call(self, inputs):
        source, reference = inputs
        import tensorflow as tf

        # tf.image.resize takes a size tensor; keras.ops.image.resize checks the
        # size in Python, which fails in a graph where height and width are unknown.
        size = tf.shape(reference)[1:3]
        resized = tf.image.resize(source, size, method=self.interpolation)
        return tf.cast(resized, source.dtype)

    def compute_output_shape(self, input_shapes):
        source, reference = input_shapes
        return (source[0], reference[1], reference[2], source[3])

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation}


#: Name of the layer that carries a model's input recipe and decision threshold.
CARD_LAYER = "model_card"


@keras.saving.register_keras_serializable(package="segcore")
class ModelCard(layers.Layer):
    """A pass-through layer whose configuration travels with the model file.

    It records what a model needs to be used as it was trained: the input
    recipe (see :mod:`segcore.preprocess`) and the probability threshold chosen
    on validation frames (None until one is chosen). Models saved before cards
    existed have none; :func:`model_card` reads them as the original recipe.
    """

    def __init__(self, input_recipe: str = "stretch", threshold: float | None = None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # a pass-through must not cast the frame
        super().__init__(**kwargs)
        from .preprocess import check_recipe

        self.input_recipe = check_recipe(input_recipe)
        self.threshold = None if threshold is None else float(threshold)

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "input_recipe": self.input_recipe, "threshold": self.threshold}


def model_card(model) -> dict:
    """``{"input_recipe": ..., "threshold": ...}`` of a model; the original recipe and no threshold without a card."""
    from .preprocess import LEGACY_RECIPE

    for layer in model.layers:
        if isinstance(layer, ModelCard):
            return {"input_recipe": layer.input_recipe, "threshold": layer.threshold}
    return {"input_recipe": LEGACY_RECIPE, "threshold": None}


def set_model_threshold(model, threshold: float) -> None:
    """Record the decision threshold in the model's card (saved with the model from then on)."""
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    for layer in model.layers:
        if isinstance(layer, ModelCard):
            layer.threshold = threshold
            return
    raise ValueError(f"model {model.name!r} has no {CARD_LAYER} layer to record a threshold in")


def conv_block(x, name, filters=256, kernel_size=3, dilation_rate=1, separable=False, strides=1):
    """Convolution (no bias, He-normal) -> batch norm -> ReLU.

    ``separable=True`` uses an atrous depthwise-separable convolution, as in the
    DeepLabV3+ paper; 1x1 convolutions are never separable.
    """
    if separable and kernel_size > 1:
        x = layers.SeparableConv2D(
            filters,
            kernel_size,
            strides=strides,
            dilation_rate=dilation_rate,
            padding="same",
            use_bias=False,
            depthwise_initializer="he_normal",
            pointwise_initializer="he_normal",
            name=f"{name}_sepconv",
        )(x)
    else:
        x = layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            dilation_rate=dilation_rate,
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            name=f"{name}_conv",
        )(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def imagenet_input_scaling(frame):
    """[-1, 1] -> 0..255 with the ImageNet BGR mean subtracted, as one fixed affine map."""
    # Normalization computes (x - mean) / sqrt(variance) = 127.5 x + 127.5 - bgr_mean.
    mean = [(m - 127.5) / 127.5 for m in IMAGENET_BGR_MEAN]
    variance = [(1.0 / 127.5) ** 2] * 3
    return layers.Normalization(mean=mean, variance=variance, name="imagenet_input_scale")(frame)


def resnet50_backbone(frame):
    """ResNet50 (no top, random weights) on ``frame``; returns the Keras ResNet50 model."""
    scaled = imagenet_input_scaling(frame)
    return keras.applications.ResNet50(include_top=False, weights=None, input_tensor=scaled)


def resnet50_features(frame, backbone_weights, zero_init_residuals=False):
    """ResNet50 on ``frame`` with ``backbone_weights`` loaded: (stride-4, stride-16 features, weights_used)."""
    resnet = resnet50_backbone(frame)
    weights_used = load_backbone_weights(resnet, backbone_weights)
    if zero_init_residuals and weights_used.startswith("random"):
        zero_residual_gammas(resnet)
    return resnet.get_layer(LOW_LEVEL_LAYER).output, resnet.get_layer(HIGH_LEVEL_LAYER).output, weights_used


#: The batch norm that ends each ResNet50 residual branch (not the projection shortcut's ``_0_bn``).
RESIDUAL_BRANCH_END = re.compile(r"^conv[2-5]_block\d+_3_bn$")


#: The cosmic share of pixels the output layer starts at with ``prior_output`` (Lin et al. 2017 use 0.01).
COSMIC_PRIOR = 0.01


def prior_logit_biases(num_classes: int, prior: float = COSMIC_PRIOR) -> np.ndarray:
    """Output biases whose softmax is ``1 - prior`` for background and ``prior`` shared by the other classes."""
    if num_classes == 1:
        return np.array([np.log(prior / (1.0 - prior))])
    return np.log(np.array([1.0 - prior] + [prior / (num_classes - 1)] * (num_classes - 1)))


def logits_convolution(x, num_classes: int, prior_output: bool):
    """The 1x1 convolution that makes the logits.

    With ``prior_output`` its weights start small (normal, sd 0.01) and its biases at the class prior, so every
    pixel starts as "cosmic with probability :data:`COSMIC_PRIOR`" whatever the random features below say. A
    random network otherwise starts at a seed-dependent guess, sometimes "every pixel is a cosmic", and spends
    hundreds of steps unlearning it (Lin et al. 2017, "Focal loss for dense object detection", section 4.1).
    """
    convolution = layers.Conv2D(num_classes, 1, name="logits_conv")
    logits = convolution(x)
    if prior_output:
        kernel = keras.random.normal(convolution.kernel.shape, stddev=0.01, seed=keras.random.SeedGenerator())
        convolution.kernel.assign(keras.ops.cast(kernel, convolution.kernel.dtype))
        convolution.bias.assign(prior_logit_biases(num_classes).astype(convolution.bias.dtype))
    return logits


def zero_residual_gammas(resnet) -> int:
    """Set the scale (gamma) of the last batch norm of every residual branch to 0; return how many.

    Each block then starts as the identity (its shortcut), so a ResNet trained from random weights starts as a
    shallow network and its signal does not grow with depth (Goyal et al. 2017, "Accurate, large minibatch SGD";
    He et al. 2019, "Bag of tricks"). Only for random weights: loaded weights are kept as they are.
    """
    norms = [layer for layer in resnet.layers if RESIDUAL_BRANCH_END.match(layer.name)]
    for layer in norms:
        layer.gamma.assign(np.zeros(layer.gamma.shape, dtype=layer.gamma.dtype))
    return len(norms)


def tiny_features(frame):
    """Four 3x3 blocks of stride 2 (:data:`TINY_BACKBONE_FILTERS` channels): (stride-4, stride-16 features)."""
    x = frame
    features = []
    for index, filters in enumerate(TINY_BACKBONE_FILTERS, start=1):
        x = conv_block(x, f"tiny{index}", filters=filters, strides=2)
        features.append(x)
    return features[1], features[3]


def dilated_spatial_pyramid_pooling(x, separable=False):
    """Image pooling, a 1x1 branch and 3x3 branches at dilations 6, 12, 18 -> 256 channels."""
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(x)
    pooled = conv_block(pooled, "aspp_pool_block", kernel_size=1)
    pooled = ResizeLike(name="aspp_pool_upsample")([pooled, x])
    branches = [pooled, conv_block(x, "aspp_1x1", kernel_size=1)]
    for rate in PYRAMID_DILATIONS:
        branches.append(conv_block(x, f"aspp_rate{rate}", dilation_rate=rate, separable=separable))
    x = layers.Concatenate(name="aspp_concat")(branches)
    return conv_block(x, "aspp_project", kernel_size=1)


def decoder(pyramid, low_level, frame, num_classes, dropout, kernel_size, separable, full_resolution,
            prior_output=False):
    """Merge the stride-16 pyramid with stride-4 features, refine, and make logits at the input size.

    Published DeepLabV3+ makes logits at stride 4 and upsamples them; a 1-4 pixel
    cosmic then cannot be outlined (a 4x4 cell is the smallest shape it can draw).
    ``full_resolution`` adds a head that merges the upsampled decoder features with
    features of the input frame at full size (:func:`full_resolution_head`).
    """
    x = ResizeLike(name="decoder_upsample4")([pyramid, low_level])
    if dropout > 0:
        x = layers.Dropout(dropout, name="decoder_dropout")(x)
    low_level = conv_block(low_level, "decoder_low_level", filters=48, kernel_size=1)
    x = layers.Concatenate(name="decoder_concat")([x, low_level])
    x = conv_block(x, "decoder_block1", kernel_size=kernel_size, separable=separable)
    x = conv_block(x, "decoder_block2", kernel_size=kernel_size, separable=separable)
    if full_resolution:
        x = full_resolution_head(x, frame)
        x = logits_convolution(x, num_classes, prior_output)
        return layers.Activation("linear", dtype="float32", name="logits")(x)
    # Logits at stride 4, then upsampled: bilinear resizing (weights summing to 1)
    # commutes with the 1x1 convolution, so this equals convolving the upsampled
    # features while resizing 2 channels instead of 256 (as DeepLab's reference code).
    x = logits_convolution(x, num_classes, prior_output)
    # Upsampled, and returned, in float32 so the loss stays stable under mixed precision.
    x = ResizeLike(name="logits_upsample", dtype="float32")([x, frame])
    return layers.Activation("linear", dtype="float32", name="logits")(x)


def full_resolution_head(decoded, frame, filters=FULL_RESOLUTION_FILTERS):
    """Stride-4 decoder features and the input frame -> features at the input size.

    The decoder's 256 channels are squeezed to ``filters`` before upsampling (16x
    the pixels), a 3x3 block reads the frame itself, and two 3x3 blocks on both
    decide each pixel with the network's context and the frame's own detail.
    """
    x = conv_block(decoded, "refine_reduce", filters=filters, kernel_size=1)
    x = ResizeLike(name="refine_upsample")([x, frame])
    stem = conv_block(frame, "refine_stem", filters=filters)
    x = layers.Concatenate(name="refine_concat")([x, stem])
    x = conv_block(x, "refine_block1", filters=filters)
    return conv_block(x, "refine_block2", filters=filters)


def build_deeplabv3plus(
    input_shape=(None, None, 3),
    num_classes: int = 2,
    backbone_weights="imagenet",
    freeze_backbone: bool = False,
    dropout: float = 0.2,
    decoder_kernel: int = 3,
    separable: bool = False,
    full_resolution: bool = True,
    input_recipe: str | None = None,
    threshold: float | None = None,
    backbone: str = "resnet50",
    zero_init_residuals: bool = False,
    prior_output: bool = False,
):
    """Build DeepLabV3+ with a ResNet50 (or tiny) backbone.

    Parameters
    ----------
    input_shape : tuple
        (H, W, 3); H and W may be None (any size). Fixed sizes must be multiples of 16.
        The input is the normalised frame in [-1, 1] repeated over 3 channels.
    num_classes : int
        Number of output logits per pixel; class 1 is "cosmic".
    backbone_weights : str, path or None
        "imagenet" (Keras cache or download; falls back to random initialisation
        with a RuntimeWarning), "none"/None (random), or the path of a ResNet50
        no-top weights file: the Keras ImageNet ``.h5`` format or a ``.weights.h5``
        saved from ``keras.applications.ResNet50(include_top=False)``.
    freeze_backbone : bool
        Make every backbone layer non-trainable (batch norm included).
    dropout : float
        Dropout rate after the pyramid pooling and after upsampling by 4; 0 disables it.
    decoder_kernel : int
        Kernel size of the two decoder blocks: 3 as published, 7 as in the original script.
    separable : bool
        Atrous depthwise-separable convolutions in the pyramid's 3x3 branches and
        the decoder blocks (a lighter model).
    full_resolution : bool
        Decide each pixel at the input size with a light head that also reads the
        frame (:func:`full_resolution_head`); False gives the published layout,
        logits at stride 4 upsampled bilinearly.
    input_recipe : str
        How frames become the 3 input channels (:data:`segcore.preprocess.INPUT_RECIPES`),
        recorded in the model's card; the default recipe when None.
    threshold : float or None
        Decision threshold to record in the card (normally chosen after training).
    backbone : str
        "resnet50" (the published network) or "tiny": four 3x3 blocks of stride 2
        (:data:`TINY_BACKBONE_FILTERS` channels) under the same decoder, which builds
        and trains in seconds; it has random weights only (``backbone_weights`` "none").
    zero_init_residuals : bool
        When ResNet50 starts from random weights, start each residual block as the identity
        (:func:`zero_residual_gammas`); loaded weights are never changed.
    prior_output : bool
        Start the output layer at the class prior (:func:`logits_convolution`): every pixel starts as a cosmic
        with probability :data:`COSMIC_PRIOR`.

    Returns
    -------
    model : keras.Model
        (B, H, W, 3) float -> (B, H, W, num_classes) float32 logits.
    weights_used : str
        "imagenet", "random", "random: ImageNet weights unavailable (<reason>)" or "file:<path>".

    Raises
    ------
    ValueError
        For a bad shape or argument.
    InputFileError
        When a backbone weights file is missing or does not fit ResNet50.
    """
    if backbone not in ("resnet50", "tiny"):
        raise ValueError(f"backbone must be 'resnet50' or 'tiny', got {backbone!r}")
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[2] != 3:
        raise ValueError(f"input_shape must be (H, W, 3), got {input_shape}")
    for size in input_shape[:2]:
        if size is not None and (int(size) <= 0 or int(size) % OUTPUT_STRIDE):
            raise ValueError(
                f"input height and width must be multiples of {OUTPUT_STRIDE} (or None), got {input_shape[:2]}"
            )
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if int(decoder_kernel) < 1:
        raise ValueError(f"decoder_kernel must be a positive integer, got {decoder_kernel}")

    weights_source = backbone_weights_source(backbone_weights)  # a missing file fails before the slow build
    if backbone == "tiny" and weights_source != "random":
        raise ValueError(
            f"the tiny backbone starts from random weights only (backbone_weights 'none'), got {backbone_weights!r}"
        )

    from .preprocess import DEFAULT_RECIPE

    frame = keras.Input(shape=input_shape, name="frame")
    card = ModelCard(input_recipe or DEFAULT_RECIPE, threshold, name=CARD_LAYER)(frame)
    if backbone == "tiny":
        low_level, high_level = tiny_features(card)
        weights_used = "random"
    else:
        low_level, high_level, weights_used = resnet50_features(card, backbone_weights, zero_init_residuals)
    x = dilated_spatial_pyramid_pooling(high_level, separable=separable)
    if dropout > 0:
        x = layers.Dropout(dropout, name="aspp_dropout")(x)
    logits = decoder(
        x, low_level, card, int(num_classes), float(dropout), int(decoder_kernel), separable, bool(full_resolution),
        bool(prior_output),
    )
    model = keras.Model(frame, logits, name="deeplabv3plus")
    if freeze_backbone:
        set_backbone_trainable(model, False)
    return model, weights_used


def backbone_weights_source(backbone_weights) -> str:
    """Check ``backbone_weights`` up front: "random", "imagenet" or an existing file path.

    Raises
    ------
    InputFileError
        For a missing file or one whose name says it is no weights file.
    """
    if backbone_weights is None or str(backbone_weights).lower() in ("none", "random"):
        return "random"
    if str(backbone_weights).lower() == "imagenet":
        return "imagenet"
    path = os.fspath(backbone_weights)
    if not os.path.isfile(path):
        raise InputFileError(path, "no such backbone weights file")
    if not path.lower().endswith(WEIGHTS_SUFFIXES):
        raise InputFileError(path, "backbone weights must be a .h5 (Keras ImageNet format) or .weights.h5 file")
    return path


def load_backbone_weights(resnet, backbone_weights) -> str:
    """Load ``backbone_weights`` into a Keras ResNet50 (no top); return what was loaded.

    See :func:`build_deeplabv3plus` for the accepted values and the returned text.
    """
    source = backbone_weights_source(backbone_weights)
    if source in ("random", "imagenet"):
        return "random" if source == "random" else _load_imagenet(resnet)
    try:
        _load_or_restore(resnet, source)
    except Exception as exc:
        raise InputFileError(source, f"not a ResNet50 (no top) weights file: {_short(exc)}") from exc
    return f"file:{source}"


def _load_imagenet(resnet) -> str:
    try:
        # Keras' cache (~/.keras/models or $KERAS_HOME/models) first, else download.
        path = keras.utils.get_file(
            IMAGENET_NOTOP_FILE, IMAGENET_NOTOP_URL, cache_subdir="models", file_hash=IMAGENET_NOTOP_MD5
        )
        _load_or_restore(resnet, path)
    except Exception as exc:
        reason = _short(exc).replace(IMAGENET_NOTOP_URL, IMAGENET_NOTOP_FILE)
        warnings.warn(
            f"ImageNet weights for the ResNet50 backbone could not be loaded ({reason}); "
            "the backbone starts from random initialisation. To use them offline, put "
            f"{IMAGENET_NOTOP_FILE} in ~/.keras/models (or $KERAS_HOME/models).",
            RuntimeWarning,
            stacklevel=4,
        )
        return f"random: ImageNet weights unavailable ({reason})"
    return "imagenet"


def _load_or_restore(resnet, path):
    """Load weights; on failure put the previous ones back so nothing is half-loaded."""
    before = resnet.get_weights()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            resnet.load_weights(path)
        # Keras only warns when parts of a .weights.h5 file do not match the model.
        skipped = [w for w in caught if "freshly-initialized" in str(w.message)]
        if skipped:
            raise ValueError(f"{len(skipped)} parts of the backbone are not in the file")
    except Exception:
        resnet.set_weights(before)
        raise
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=2)


def check_cosmic_model(model, path) -> None:
    """Refuse, naming ``path``, a model that is not a cosmic segmentation model.

    A cosmic model maps (batch, H, W, 3) network inputs to (batch, H, W, 2) logits
    or probabilities (background, cosmic).
    """
    inputs, outputs = model.inputs[0].shape, model.outputs[0].shape
    if len(inputs) != 4 or inputs[-1] != 3 or len(outputs) != 4 or outputs[-1] != 2:
        raise InputFileError(
            path, f"not a cosmic segmentation model: it maps {tuple(inputs)[1:]} to {tuple(outputs)[1:]}; a cosmic "
            "model maps a frame's 3 input channels to 2 classes (background, cosmic) per pixel"
        )


def _short(exc: BaseException, limit: int = 200) -> str:
    """First line of an exception's message, with its type unless that says nothing."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    kind = type(exc).__name__
    text = message if kind == "Exception" and message else f"{kind}: {message}" if message else kind
    return text if len(text) <= limit else text[: limit - 3] + "..."


def backbone_layer_names(model) -> list[str]:
    """Names of the backbone's layers (ResNet50 or tiny) in ``model``, in model order."""
    return [layer.name for layer in model.layers if BACKBONE_LAYER_PATTERN.match(layer.name)]


def set_backbone_trainable(model, trainable: bool) -> None:
    """Make every backbone layer (batch norm included) trainable or not.

    Compile the model again afterwards for the change to take effect in training.
    """
    names = set(backbone_layer_names(model))
    if not names:
        raise ValueError(f"model {model.name!r} has no backbone layers")
    for layer in model.layers:
        if layer.name in names:
            layer.trainable = bool(trainable)


def save_model(model, path) -> None:
    """Save ``model`` (with its optimizer state, if compiled) to a ``.keras`` file, atomically."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"model path must end with .keras, got {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = temporary_file(folder, "saving", suffix=".keras")
    os.close(fd)
    try:
        model.save(tmp, overwrite=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_model(path, compile: bool = True):
    """Load a model saved by :func:`save_model`.

    With ``compile=True`` the optimizer, loss and metrics are restored so training
    can resume; when they cannot be, the model loads uncompiled with a RuntimeWarning.

    Raises
    ------
    InputFileError
        When the file is missing or is not a readable Keras model.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputFileError(path, "no such model file")
    if not path.endswith(".keras"):
        raise InputFileError(path, "model files must end with .keras")
    if not zipfile.is_zipfile(path):
        raise InputFileError(
            path, "not a Keras model: a .keras file is a ZIP archive and this one is not (damaged, cut short or another format)"
        )
    try:
        # Registers the training metrics and losses for deserialisation.
        import segcore.losses  # noqa: F401
        import segcore.training_metrics  # noqa: F401
    except ImportError:
        pass
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as exc:
        if not compile:
            raise InputFileError(path, f"not a readable Keras model: {_short(exc)}") from exc
        first = exc
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise InputFileError(path, f"not a readable Keras model: {_short(exc)}") from exc
    warnings.warn(
        f"{path}: training configuration could not be restored ({_short(first)}); loaded uncompiled.",
        RuntimeWarning,
        stacklevel=2,
    )
    return model


def count_parameters(model, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters in ``model``."""
    weights = model.trainable_weights if trainable_only else model.weights
    return int(sum(np.prod(w.shape) for w in weights))
