"""A trained segcore DeepLabV3+ rewritten for prediction: the same function, computed faster.

:func:`inference_model` rebuilds a model with its logits computed before the last
upsampling (models built before that layout upsample 256 channels instead of 2),
under the precision policy this machine runs fastest (bfloat16 or float16
arithmetic where the hardware has it), and folds its batch norms into the
convolutions before them (:func:`fold_batch_norms`). :func:`deeplab_architecture`
reads the builder arguments back from a model, :func:`model_precision` its dtype
policy. See ``bench/RESULTS.md`` for what each step costs and changes.
"""

from __future__ import annotations

import numpy as np

from .precision import resolve_precision


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
        AMX bfloat16 matrix units, float16 on GPUs, else float32), "float32",
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
