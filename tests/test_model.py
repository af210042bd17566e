"""DeepLabV3+ builder, backbone weights, save and load (tests that build ResNet50 are marked slow)."""

from __future__ import annotations

import urllib.error
import warnings

import h5py
import keras
import numpy as np
import pytest

from segcore.errors import InputFileError
from segcore.model import (
    COSMIC_PRIOR,
    FULL_RESOLUTION_FILTERS,
    HIGH_LEVEL_LAYER,
    LOW_LEVEL_LAYER,
    TINY_BACKBONE_FILTERS,
    ResizeLike,
    backbone_layer_names,
    build_deeplabv3plus,
    count_parameters,
    load_model,
    prior_logit_biases,
    save_model,
    set_backbone_trainable,
)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    built, weights_used = build_deeplabv3plus(backbone_weights="none")
    assert weights_used == "random"
    return built


@pytest.fixture(scope="module")
def tiny_model():
    """The tiny backbone's DeepLabV3+, for tests of saving and loading that do not depend on the backbone."""
    keras.utils.set_random_seed(0)
    built, _ = build_deeplabv3plus(backbone="tiny", backbone_weights="none")
    return built


@pytest.fixture(scope="module")
def plain_resnet():
    """A stock Keras ResNet50 (no top) with seeded random weights: the reference backbone."""
    keras.utils.set_random_seed(7)
    return keras.applications.ResNet50(include_top=False, weights=None)


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    return rng.uniform(-1.0, 1.0, (2, 64, 64, 3)).astype(np.float32)


def write_imagenet_h5(resnet, path):
    """Write weights in the layout of Keras' ImageNet "notop" .h5 files."""
    with h5py.File(path, "w") as f:
        with_weights = [layer for layer in resnet.layers if layer.weights]
        f.attrs["layer_names"] = [layer.name.encode() for layer in with_weights]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in with_weights:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0" for w in layer.weights]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, weight in zip(names, layer.weights):
                group.create_dataset(name, data=weight.numpy())


def kernel(model, name):
    return model.get_layer(name).kernel.numpy()


@pytest.mark.slow
def test_logits_keep_the_input_size(model):
    for shape in [(1, 64, 64, 3), (2, 96, 128, 3)]:
        logits = model(np.zeros(shape, np.float32), training=False)
        assert tuple(logits.shape) == shape[:3] + (2,)


@pytest.mark.slow
def test_logits_are_float32_and_not_squashed(model, frames):
    logits = model.predict(frames, verbose=0)
    assert logits.dtype == np.float32
    assert logits.min() < 0.0 and logits.max() > 1.0
    assert not np.allclose(logits.sum(axis=-1), 1.0)


@pytest.mark.slow
def test_pyramid_has_the_published_branches(model):
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    dilations = {layer.dilation_rate[0] for layer in convs}
    assert {6, 12, 18} <= dilations
    assert any(layer.filters == 48 and layer.kernel_size == (1, 1) for layer in convs)
    # conv4_block6_2_relu is the bottleneck's inner 3x3 output: 256 channels.
    assert kernel(model, "aspp_1x1_conv").shape == (1, 1, 256, 256)
    assert kernel(model, "aspp_project_conv").shape == (1, 1, 5 * 256, 256)
    assert not any(model.get_layer(f"aspp_{b}_conv").use_bias for b in ("1x1", "rate6", "rate12", "rate18"))


@pytest.mark.slow
def test_decoder_uses_3x3_blocks_and_two_dropouts(model):
    assert model.get_layer("decoder_block1_conv").kernel_size == (3, 3)
    assert model.get_layer("decoder_block2_conv").kernel_size == (3, 3)
    assert kernel(model, "decoder_block1_conv").shape == (3, 3, 256 + 48, 256)
    rates = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert rates == [0.2, 0.2]
    assert sum(isinstance(layer, ResizeLike) for layer in model.layers) == 3
    assert model.get_layer("logits_conv").filters == 2


def column_second_differences_inside_upsampling_cells(logits, stride=4):
    """Second differences across columns, at the columns where bilinear x``stride`` upsampling is linear.

    With half-pixel centres, output columns 4k+2 .. 4k+5 lie between source columns k and k+1,
    so the differences centred on 4k+3 and 4k+4 vanish for an upsampled map.
    """
    width = logits.shape[2]
    differences = logits[:, :, 2:] - 2 * logits[:, :, 1:-1] + logits[:, :, :-2]
    centres = [c for c in range(3, width - 4) if c % stride in (3, 0)]
    return differences[:, :, [c - 1 for c in centres]]


@pytest.mark.slow
def test_full_resolution_head_decides_each_pixel_the_published_layout_interpolates(model, frames):
    names = {layer.name for layer in model.layers}
    assert {"refine_stem_conv", "refine_block1_conv", "refine_block2_conv"} <= names
    assert "logits_upsample" not in names
    assert kernel(model, "refine_stem_conv").shape == (3, 3, 3, FULL_RESOLUTION_FILTERS)
    full = column_second_differences_inside_upsampling_cells(model.predict(frames, verbose=0))
    published, _ = build_deeplabv3plus(backbone_weights="none", full_resolution=False)
    assert "refine_stem_conv" not in {layer.name for layer in published.layers}
    logits = published.predict(frames, verbose=0)
    coarse = column_second_differences_inside_upsampling_cells(logits)
    assert np.abs(coarse).max() <= 1e-4 * np.abs(logits).max()
    assert np.mean(np.abs(full) > 1e-3) > 0.5


@pytest.mark.slow
def test_backbone_taps_resnet50_at_stride_4_and_16(model, plain_resnet):
    names = backbone_layer_names(model)
    reference = {layer.name for layer in plain_resnet.layers}
    assert set(names) <= reference
    assert {"conv1_conv", "conv1_bn", LOW_LEVEL_LAYER, HIGH_LEVEL_LAYER} <= set(names)
    assert not any(name.startswith("conv5") for name in names)
    assert not any(name.startswith(("aspp", "decoder", "logits")) for name in names)
    # 64 / 4 and 64 / 16: the low- and high-level feature maps.
    probe = keras.Model(model.input, [model.get_layer(LOW_LEVEL_LAYER).output, model.get_layer(HIGH_LEVEL_LAYER).output])
    low, high = probe(np.zeros((1, 64, 64, 3), np.float32))
    assert tuple(low.shape) == (1, 16, 16, 64)
    assert tuple(high.shape) == (1, 4, 4, 256)


@pytest.mark.slow
def test_zero_init_residuals_start_every_residual_block_as_its_shortcut():
    keras.utils.set_random_seed(2)
    built, weights_used = build_deeplabv3plus(backbone_weights="none", zero_init_residuals=True)
    assert weights_used == "random"
    norms = {layer.name: layer.gamma.numpy() for layer in built.layers if isinstance(layer, keras.layers.BatchNormalization)}
    branch_ends = sorted(name for name in norms if name.startswith("conv") and name.endswith("_3_bn"))
    # The blocks the network holds: conv2 1-3, conv3 1-4, conv4 1-5 (its features are read inside block 6).
    assert len(branch_ends) == 3 + 4 + 5
    assert all(not norms[name].any() for name in branch_ends)
    assert all(norms[name].all() for name in ("conv1_bn", "conv2_block1_0_bn", "conv2_block1_1_bn", "aspp_1x1_bn"))
    # A block without a projection adds a zero branch to its non-negative input: its output is its input.
    probe = keras.Model(built.input, [built.get_layer(f"conv3_block{n}_out").output for n in (1, 2, 3, 4)])
    outputs = [o.numpy() for o in probe(np.random.default_rng(2).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32))]
    assert outputs[0].max() > 0
    for later in outputs[1:]:
        np.testing.assert_array_equal(later, outputs[0])


@pytest.mark.parametrize("full_resolution", [True, False])
def test_prior_output_starts_every_pixel_at_the_cosmic_prior(full_resolution):
    keras.utils.set_random_seed(2)
    built, _ = build_deeplabv3plus(backbone="tiny", backbone_weights="none", full_resolution=full_resolution,
                                   prior_output=True)
    output = built.get_layer("logits_conv")
    np.testing.assert_allclose(output.bias.numpy(), [np.log(1 - COSMIC_PRIOR), np.log(COSMIC_PRIOR)], rtol=1e-6)
    assert 0.005 < output.kernel.numpy().std() < 0.015  # normal, sd 0.01 (32 or 512 draws)
    frame = np.random.default_rng(2).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    cosmic = keras.ops.softmax(built(frame, training=True), axis=-1).numpy()[..., 1]
    assert COSMIC_PRIOR / 2 < cosmic.min() and cosmic.max() < COSMIC_PRIOR * 2  # whatever the random features
    keras.utils.set_random_seed(2)
    glorot, _ = build_deeplabv3plus(backbone="tiny", backbone_weights="none", full_resolution=full_resolution)
    assert not glorot.get_layer("logits_conv").bias.numpy().any()  # Keras' zeros
    assert glorot.get_layer("logits_conv").kernel.numpy().std() > 0.05  # Glorot uniform over 2 + 32 or 256 fans


@pytest.mark.parametrize("classes, shares", [(1, [0.01]), (2, [0.99, 0.01]), (3, [0.99, 0.005, 0.005])])
def test_prior_logit_biases_give_the_prior_shares(classes, shares):
    biases = prior_logit_biases(classes)
    if classes == 1:
        np.testing.assert_allclose(1 / (1 + np.exp(-biases)), shares)
    else:
        np.testing.assert_allclose(np.exp(biases) / np.exp(biases).sum(), shares)


def test_tiny_backbone_taps_its_blocks_at_stride_4_and_16():
    keras.utils.set_random_seed(0)
    tiny, weights_used = build_deeplabv3plus(backbone="tiny", backbone_weights="none")
    assert weights_used == "random"
    names = backbone_layer_names(tiny)
    assert names == [f"tiny{i}_{part}" for i in range(1, 5) for part in ("conv", "bn", "relu")]
    assert not any(layer.name.startswith(("conv", "pool")) for layer in tiny.layers)  # no ResNet50 in it
    probe = keras.Model(tiny.input, [tiny.get_layer("tiny2_relu").output, tiny.get_layer("tiny4_relu").output])
    low, high = probe(np.zeros((1, 64, 96, 3), np.float32))
    assert tuple(low.shape) == (1, 16, 24, TINY_BACKBONE_FILTERS[1])
    assert tuple(high.shape) == (1, 4, 6, TINY_BACKBONE_FILTERS[3])
    assert tuple(tiny(np.zeros((1, 64, 96, 3), np.float32)).shape) == (1, 64, 96, 2)


def test_tiny_backbone_freezes_and_unfreezes():
    tiny, _ = build_deeplabv3plus(backbone="tiny", backbone_weights="none", freeze_backbone=True)
    assert not any(tiny.get_layer(name).trainable for name in backbone_layer_names(tiny))
    assert tiny.get_layer("aspp_project_bn").trainable
    set_backbone_trainable(tiny, True)
    assert all(tiny.get_layer(name).trainable for name in backbone_layer_names(tiny))


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(backbone="tiny", backbone_weights="imagenet"), "tiny backbone starts from random weights only"),
        (dict(backbone="vgg16", backbone_weights="none"), "backbone must be 'resnet50' or 'tiny'"),
    ],
)
def test_backbone_choices_that_cannot_be_built_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        build_deeplabv3plus(**arguments)


@pytest.mark.parametrize("shape", [(100, 100, 3), (64, 72, 3), (64, 64, 1)])
def test_fixed_size_not_multiple_of_16_is_refused(shape):
    with pytest.raises(ValueError, match="multiples of 16|\\(H, W, 3\\)"):
        build_deeplabv3plus(input_shape=shape, backbone_weights="none")


@pytest.mark.slow
def test_freeze_backbone_freezes_every_resnet_layer(model):
    frozen, _ = build_deeplabv3plus(backbone_weights="none", freeze_backbone=True)
    names = backbone_layer_names(frozen)
    assert not any(frozen.get_layer(name).trainable for name in names)
    assert not frozen.get_layer("conv3_block1_1_bn").trainable
    assert frozen.get_layer("aspp_project_bn").trainable
    assert count_parameters(frozen, trainable_only=True) < count_parameters(model, trainable_only=True)
    assert count_parameters(frozen) == count_parameters(model)

    set_backbone_trainable(frozen, True)
    assert all(frozen.get_layer(name).trainable for name in names)
    assert count_parameters(frozen, trainable_only=True) == count_parameters(model, trainable_only=True)


@pytest.mark.slow
def test_backbone_loads_from_a_keras_weights_file(tmp_path, plain_resnet):
    path = tmp_path / "resnet50_notop.weights.h5"
    plain_resnet.save_weights(path)
    # Loaded weights are kept as they are, even when residual blocks would start as the identity from random ones.
    loaded, weights_used = build_deeplabv3plus(backbone_weights=str(path), zero_init_residuals=True)
    assert weights_used == f"file:{path}"
    np.testing.assert_array_equal(
        loaded.get_layer("conv3_block2_3_bn").gamma.numpy(), plain_resnet.get_layer("conv3_block2_3_bn").gamma.numpy()
    )
    assert np.all(plain_resnet.get_layer("conv3_block2_3_bn").gamma.numpy() != 0)
    for name in ("conv1_conv", "conv2_block3_2_conv", "conv4_block6_2_conv"):
        np.testing.assert_array_equal(kernel(loaded, name), kernel(plain_resnet, name))
    np.testing.assert_array_equal(
        loaded.get_layer("conv4_block6_2_bn").moving_variance.numpy(),
        plain_resnet.get_layer("conv4_block6_2_bn").moving_variance.numpy(),
    )


@pytest.mark.slow
def test_imagenet_weights_come_from_the_keras_cache_file(tmp_path, plain_resnet, monkeypatch):
    path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    write_imagenet_h5(plain_resnet, path)
    monkeypatch.setattr(keras.utils, "get_file", lambda *args, **kwargs: str(path))
    loaded, weights_used = build_deeplabv3plus(backbone_weights="imagenet")
    assert weights_used == "imagenet"
    np.testing.assert_array_equal(kernel(loaded, "conv3_block4_3_conv"), kernel(plain_resnet, "conv3_block4_3_conv"))

    # The same file given as a path.
    _, weights_used = build_deeplabv3plus(backbone_weights=path)
    assert weights_used == f"file:{path}"


@pytest.mark.slow
def test_imagenet_unreachable_falls_back_to_random_with_a_warning(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.warns(RuntimeWarning, match="ImageNet weights .* could not be loaded.*random initialisation"):
        _, weights_used = build_deeplabv3plus(input_shape=(64, 64, 3), backbone_weights="imagenet")
    assert weights_used.startswith("random: ImageNet weights unavailable (")
    assert "no network" in weights_used


@pytest.mark.slow
def test_corrupt_imagenet_cache_file_falls_back_to_random(tmp_path, monkeypatch):
    path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    path.write_bytes(b"not an hdf5 file")
    monkeypatch.setattr(keras.utils, "get_file", lambda *args, **kwargs: str(path))
    with pytest.warns(RuntimeWarning, match="ImageNet weights"):
        _, weights_used = build_deeplabv3plus(input_shape=(64, 64, 3), backbone_weights="imagenet")
    assert weights_used.startswith("random: ImageNet weights unavailable")


def test_missing_backbone_file_is_an_input_file_error(tmp_path):
    path = tmp_path / "absent.weights.h5"
    with pytest.raises(InputFileError, match="absent.weights.h5") as caught:
        build_deeplabv3plus(backbone_weights=path)
    assert caught.value.path == str(path)


@pytest.mark.slow
def test_backbone_file_of_another_model_is_an_input_file_error(tmp_path):
    other = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)])
    path = tmp_path / "other.weights.h5"
    other.save_weights(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stray Keras warnings either
        with pytest.raises(InputFileError, match="other.weights.h5: not a ResNet50"):
            build_deeplabv3plus(input_shape=(64, 64, 3), backbone_weights=path)


@pytest.mark.slow
def test_separable_variant_is_lighter(model):
    light, _ = build_deeplabv3plus(backbone_weights="none", separable=True, decoder_kernel=7)
    assert count_parameters(light) < count_parameters(model)
    separable = {layer.name: layer for layer in light.layers if isinstance(layer, keras.layers.SeparableConv2D)}
    assert {separable[f"aspp_rate{r}_sepconv"].dilation_rate for r in (6, 12, 18)} == {(6, 6), (12, 12), (18, 18)}
    assert separable["decoder_block1_sepconv"].kernel_size == (7, 7)
    assert tuple(light(np.zeros((1, 64, 64, 3), np.float32)).shape) == (1, 64, 64, 2)


@pytest.mark.slow
def test_save_and_load_give_identical_predictions(tmp_path, model, frames):
    path = tmp_path / "runs" / "model.keras"
    save_model(model, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.keras"]
    restored = load_model(path, compile=False)
    np.testing.assert_array_equal(restored.predict(frames, verbose=0), model.predict(frames, verbose=0))
    assert isinstance(restored.get_layer("decoder_upsample4"), ResizeLike)
    assert backbone_layer_names(restored) == backbone_layer_names(model)


def test_saved_compiled_model_resumes_with_its_optimizer(tmp_path, tiny_model, frames):
    model = keras.models.clone_model(tiny_model)  # training must not change the shared model
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,  # one step: tracing the graph would cost more than the step
    )
    labels = (frames[..., :1] > 0.9).astype(np.uint8)
    model.fit(frames, labels, batch_size=2, epochs=1, verbose=0)
    path = tmp_path / "trained.keras"
    save_model(model, path)
    restored = load_model(path)
    assert int(restored.optimizer.iterations.numpy()) == 1
    np.testing.assert_allclose(float(restored.optimizer.learning_rate.numpy()), 1e-4, rtol=1e-6)


@pytest.mark.slow
def test_save_refuses_other_suffixes(tmp_path, model):
    with pytest.raises(ValueError, match=".keras"):
        save_model(model, tmp_path / "model.h5")


def test_load_missing_or_corrupt_file_is_an_input_file_error(tmp_path):
    missing = tmp_path / "missing.keras"
    with pytest.raises(InputFileError, match="missing.keras"):
        load_model(missing)
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"this is not a zip archive")
    with pytest.raises(InputFileError, match="corrupt.keras: not a Keras model: a .keras file is a ZIP archive"):
        load_model(corrupt)
    import zipfile

    with zipfile.ZipFile(corrupt, "w") as archive:  # a ZIP, but not what Keras writes
        archive.writestr("notes.txt", "hello")
    with pytest.raises(InputFileError, match="corrupt.keras: not a readable Keras model"):
        load_model(corrupt)


class UnregisteredLoss(keras.losses.Loss):
    """A loss Keras cannot find again when loading."""

    def call(self, y_true, y_pred):
        return keras.ops.mean(y_pred)


def test_model_whose_training_setup_cannot_be_restored_loads_uncompiled(tmp_path, tiny_model, frames):
    compiled = keras.models.clone_model(tiny_model)
    compiled.set_weights(tiny_model.get_weights())
    compiled.compile(optimizer="adam", loss=UnregisteredLoss())
    path = tmp_path / "custom_loss.keras"
    save_model(compiled, path)
    with pytest.warns(RuntimeWarning, match="custom_loss.keras: training configuration could not be restored"):
        restored = load_model(path)
    assert not restored.compiled
    np.testing.assert_array_equal(restored.predict(frames, verbose=0), tiny_model.predict(frames, verbose=0))


def test_a_full_disk_while_saving_leaves_the_previous_model_file_whole(tmp_path, monkeypatch):
    import errno

    keras.utils.set_random_seed(0)
    tiny, _ = build_deeplabv3plus(backbone="tiny", backbone_weights="none")
    path = tmp_path / "checkpoint.keras"
    save_model(tiny, path)
    before = path.read_bytes()

    def disk_full(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as handle:
            handle.write(b"half a model")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(tiny), "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_model(tiny, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.keras"]  # no half-written file left
