import math

import keras
import numpy as np
import pytest
from model_support import conv_model, intensity_model, random_frame, whole_frame_probabilities

from segcore import inference as inf
from segcore import inference_graph as graph
from segcore import tiles as tiling
from segcore.model import ResizeLike, build_deeplabv3plus
from segcore.preprocess import normalize_frame, to_network_input


@pytest.fixture(scope="module")
def small_model():
    return conv_model(seed=1)


# --------------------------------------------------------------------------- #
# Tiled inference
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("shape", [(100, 150), (128, 128), (64, 64), (40, 200), (17, 33), (160, 96)])
def test_tiled_inference_equals_whole_frame_when_receptive_field_is_within_half_overlap(small_model, shape):
    frame = random_frame(shape, seed=shape[0])
    tiled = inf.predict_probabilities(small_model, frame, tile=64, overlap=32, batch_size=3)
    assert tiled.shape == shape and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, whole_frame_probabilities(small_model, frame), atol=1e-5, rtol=0)


def test_tiled_inference_matches_whole_frame_in_tile_interiors_for_large_receptive_field():
    # Receptive field radius 24 > overlap // 2 = 16. Frame 128 with tile 64 and
    # overlap 32: tiles start at 0, 32, 64; the seams between the pixels they
    # write lie at 48 and 80. A pixel within 24 - 16 = 8 of a seam may see its
    # tile's edge; every other pixel sees exactly what the whole frame shows it.
    model = conv_model(seed=3, layers=3, dilation=8)
    frame = random_frame((128, 128), seed=5)
    tiled = inf.predict_probabilities(model, frame, tile=64, overlap=32)
    whole = whole_frame_probabilities(model, frame)
    index = np.arange(128)
    clear = ~(((index >= 40) & (index < 56)) | ((index >= 72) & (index < 88)))
    interior = clear[:, None] & clear[None, :]
    np.testing.assert_allclose(tiled[interior], whole[interior], atol=1e-5, rtol=0)
    assert np.abs(tiled - whole)[~interior].max() > 1e-4  # the model does see past the context


class ResizeToReference(keras.layers.Layer):
    """Resizes its first input to the spatial size of its second, read at run time."""

    def call(self, inputs):
        source, reference = inputs
        return keras.ops.image.resize(source, keras.ops.shape(reference)[1:3])

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], input_shapes[1][1], input_shapes[1][2], input_shapes[0][3])


def test_networks_that_resize_to_their_input_size_run_tiled():
    # DeepLabV3+ upsamples to its input's size, which must be known when traced.
    inputs = keras.Input((None, None, 3))
    coarse = keras.layers.AveragePooling2D(4)(keras.layers.Conv2D(4, 3, padding="same")(inputs))
    outputs = keras.layers.Conv2D(2, 1)(ResizeToReference()([coarse, inputs]))
    model = keras.Model(inputs, outputs)
    frame = random_frame((100, 150), seed=8)
    tiled = inf.predict_probabilities(model, frame, tile=64, overlap=32)
    assert tiled.shape == (100, 150) and np.all((tiled >= 0) & (tiled <= 1))
    whole = inf.predict_probabilities(model, frame, tile=512)
    np.testing.assert_allclose(whole, whole_frame_probabilities(model, frame), atol=1e-5, rtol=0)


def test_tile_layout_hand_computed_for_2048_frame_with_512_tiles():
    # 5 tiles cover 2048 with tiles of at most 512 overlapping by 64: (2048 + 4 * 64) / 5 = 460.8 -> 464.
    tiles = tiling.tile_layout((2048, 2048), tile=512, overlap=64)
    starts = sorted({t.window[0].start for t in tiles})
    assert starts == [0, 400, 800, 1200, 1584]
    assert {t.window[0].stop - t.window[0].start for t in tiles} == {464}
    assert len(tiles) == 25


def test_frame_up_to_the_default_tile_runs_as_one_tile():
    assert tiling.DEFAULT_TILE == 2048
    (whole,) = tiling.tile_layout((2048, 1024))
    assert whole.window == whole.interior == (slice(0, 2048), slice(0, 1024))
    assert len(tiling.tile_layout((2064, 1024))) == 2


def test_tile_layout_hand_computed_for_frame_of_two_and_a_half_tiles():
    tiles = tiling.tile_layout((128, 96), tile=64, overlap=32)
    rows = sorted({(t.window[0].start, t.interior[0].start, t.interior[0].stop) for t in tiles})
    cols = sorted({(t.window[1].start, t.interior[1].start, t.interior[1].stop) for t in tiles})
    assert rows == [(0, 0, 48), (32, 48, 80), (64, 80, 128)]
    assert cols == [(0, 0, 48), (32, 48, 96)]
    assert len(tiles) == 6


@pytest.mark.parametrize("shape", [(112, 160), (512, 208), (48, 1040), (32, 32), (2048, 2048), (4096, 1040)])
@pytest.mark.parametrize("tile, overlap", [(64, 32), (512, 64), (2048, 64)])
def test_tile_interiors_cover_every_pixel_once_with_half_overlap_context(shape, tile, overlap):
    tiles = tiling.tile_layout(shape, tile=tile, overlap=overlap)
    cover = np.zeros(shape, int)
    window_shape = tuple(s.stop - s.start for s in tiles[0].window)
    for axis, side in enumerate(shape):
        # As few tiles as cover the side with tiles of at most `tile` overlapping by `overlap`.
        fewest = 1 if side <= tile else math.ceil((side - overlap) / (tile - overlap))
        assert len({t.window[axis].start for t in tiles}) == fewest
        assert window_shape[axis] <= min(tile, side) and window_shape[axis] % 16 == 0
    for t in tiles:
        cover[t.interior] += 1
        assert tuple(s.stop - s.start for s in t.window) == window_shape
        for axis, (inner, outer) in enumerate(zip(t.interior, t.window)):
            assert outer.start <= inner.start < inner.stop <= outer.stop
            if inner.start > 0:
                assert inner.start - outer.start >= overlap // 2
            if inner.stop < shape[axis]:
                assert outer.stop - inner.stop >= overlap // 2
    assert np.all(cover == 1)


def test_probabilities_are_softmax_of_cosmic_logit():
    model = conv_model(seed=7)
    frame = random_frame((64, 96), seed=2)
    probs = inf.predict_probabilities(model, frame)
    logits = model(to_network_input(normalize_frame(frame))[None], training=False).numpy()[0]
    expected = np.exp(logits[..., 1]) / (np.exp(logits[..., 0]) + np.exp(logits[..., 1]))
    assert probs.min() >= 0.0 and probs.max() <= 1.0
    np.testing.assert_allclose(probs, expected, atol=1e-6, rtol=0)


def test_probability_is_that_of_class_one():
    # logit1 - logit0 = 20 * x: bright pixels (x = 1) are cosmic, dark ones (x = -1) are not.
    frame = np.zeros((32, 32), np.float32)
    frame[10, 10] = 1000.0
    probs = inf.predict_probabilities(intensity_model(20.0, 0.0), frame)
    assert probs[10, 10] > 0.999
    assert probs[0, 0] < 0.001


def test_predict_mask_is_probability_strictly_above_threshold(small_model):
    frame = random_frame((50, 70), seed=9)
    probs = inf.predict_probabilities(small_model, frame, tile=32, overlap=16)
    threshold = float(np.median(probs))
    mask = inf.predict_mask(small_model, frame, threshold=threshold, tile=32, overlap=16)
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, probs > threshold)
    assert not inf.predict_mask(small_model, frame, threshold=1.0).any()


@pytest.mark.parametrize(
    "tile, overlap", [(60, 16), (64, 20), (64, 64), (64, 80), (0, 0), (64, -16)]
)
def test_tile_and_overlap_must_be_multiples_of_16_with_overlap_below_tile(small_model, tile, overlap):
    with pytest.raises(ValueError):
        inf.predict_probabilities(small_model, np.ones((32, 32)), tile=tile, overlap=overlap)


def test_frame_must_be_two_dimensional(small_model):
    with pytest.raises(ValueError, match="2-D"):
        inf.predict_probabilities(small_model, np.ones((32, 32, 3)))


def test_model_without_two_logits_at_input_resolution_is_refused():
    inputs = keras.Input((None, None, 3))
    one_class = keras.Model(inputs, keras.layers.Conv2D(1, 1)(inputs))
    strided = keras.Model(inputs, keras.layers.Conv2D(2, 1, strides=2)(inputs))
    with pytest.raises(ValueError, match="2\\) logits"):
        inf.predict_probabilities(one_class, np.ones((32, 32)))
    with pytest.raises(ValueError, match="input resolution"):
        inf.predict_probabilities(strided, np.ones((32, 32)))


def test_model_is_traced_once_per_tile_shape():
    model = conv_model(seed=11)
    # 100x150 and 130x200 are cut into 64x64 tiles (6 and 12 of them, batches of
    # 4 and a remainder); 40x40 pads to one 48x48 tile.
    for shape in [(100, 150), (130, 200), (40, 40), (100, 150)]:
        inf.predict_probabilities(model, random_frame(shape), tile=64, overlap=32, batch_size=4)
    assert inf._predict_step(model, (64, 64)).experimental_get_tracing_count() == 1
    assert inf._predict_step(model, (48, 48)).experimental_get_tracing_count() == 1
    assert set(inf._PREDICT_STEPS[model]) == {(64, 64), (48, 48)}


# --------------------------------------------------------------------------- #
# The model to predict with
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def deeplab():
    keras.utils.set_random_seed(4)
    model, _ = build_deeplabv3plus(backbone_weights="none")
    return model


@pytest.fixture(scope="module")
def published():
    """The published layout: logits at stride 4, upsampled."""
    keras.utils.set_random_seed(4)
    model, _ = build_deeplabv3plus(backbone_weights="none", full_resolution=False)
    return model


@pytest.fixture(scope="module")
def tiny_layouts():
    """The tiny backbone's DeepLabV3+ in both layouts (full-resolution head, published), for tests that only need
    a DeepLabV3+ of either form."""
    keras.utils.set_random_seed(4)
    return tuple(build_deeplabv3plus(backbone="tiny", backbone_weights="none", full_resolution=full)[0]
                 for full in (True, False))


def legacy_layout(model):
    """``model`` wired as models saved before the logits moved: upsample 256 channels, then the 1x1 logits."""
    features = model.get_layer("decoder_block2_relu").output
    upsampled = ResizeLike(name="decoder_upsample_to_input")([features, model.input])
    logits = model.get_layer("logits_conv")(upsampled)
    output = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model(model.input, output)


@pytest.mark.slow
def test_published_layout_is_built_with_logits_before_the_last_upsampling(published):
    names = [layer.name for layer in published.layers]
    assert names.index("logits_conv") < names.index("logits_upsample") < names.index("logits")
    assert published.get_layer("logits_conv").output.shape[-1] == 2


@pytest.mark.slow
def test_legacy_layout_model_is_rebuilt_logits_first_with_its_weights_and_the_same_output(published):
    legacy = legacy_layout(published)
    prepared = graph.inference_model(legacy, "float32")
    assert prepared is not legacy
    assert "logits_upsample" in [layer.name for layer in prepared.layers]
    frame = random_frame((64, 96), seed=21)
    expected = whole_frame_probabilities(legacy, frame)
    np.testing.assert_allclose(inf.predict_probabilities(prepared, frame), expected, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_bfloat16_inference_model_computes_in_bfloat16_close_to_float32(deeplab):
    prepared = graph.inference_model(deeplab, "mixed_bfloat16")
    assert graph.model_precision(prepared) == "mixed_bfloat16"
    assert graph.model_precision(deeplab) == "float32"
    frame = random_frame((64, 64), seed=22)
    low = inf.predict_probabilities(prepared, frame)
    full = inf.predict_probabilities(deeplab, frame)
    assert low.dtype == np.float32
    assert np.abs(low - full).mean() < 0.01 and np.abs(low - full).max() < 0.2


@pytest.mark.slow
def test_inference_model_folds_every_batch_norm_into_its_convolution(deeplab):
    from keras import layers

    prepared = graph.inference_model(deeplab, "float32")
    norms = [layer.name for layer in deeplab.layers if isinstance(layer, layers.BatchNormalization)]
    assert len(norms) > 50  # ResNet50's and the head's
    assert not any(isinstance(layer, layers.BatchNormalization) for layer in prepared.layers)
    assert prepared.get_layer("decoder_block1_conv").use_bias


@pytest.mark.slow
def test_folded_batch_norms_give_the_same_output(deeplab):
    # Non-trivial statistics, so the folding has something to get wrong.
    rng = np.random.default_rng(8)
    model = keras.models.clone_model(deeplab)
    model.set_weights(deeplab.get_weights())
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.2, channels),
                               rng.normal(0, 0.2, channels), rng.uniform(0.5, 2.0, channels)])
    frame = random_frame((48, 80), seed=24)
    folded = graph.fold_batch_norms(model)
    np.testing.assert_allclose(
        inf.predict_probabilities(folded, frame), inf.predict_probabilities(model, frame), atol=1e-4, rtol=0
    )


@pytest.mark.slow
def test_separable_model_folds_and_keeps_its_output():
    keras.utils.set_random_seed(5)
    model, _ = build_deeplabv3plus(backbone_weights="none", separable=True)
    prepared = graph.inference_model(model, "float32")
    assert prepared.get_layer("decoder_block1_sepconv").use_bias
    frame = random_frame((32, 32), seed=25)
    np.testing.assert_allclose(
        inf.predict_probabilities(prepared, frame), inf.predict_probabilities(model, frame), atol=1e-4, rtol=0
    )


@pytest.mark.slow
def test_architecture_of_both_layouts_is_read_back(deeplab, published):
    assert graph.deeplab_architecture(deeplab) == {
        "num_classes": 2, "decoder_kernel": 3, "separable": False, "full_resolution": True, "backbone": "resnet50"
    }
    assert graph.deeplab_architecture(published)["full_resolution"] is False


def test_tiny_backbone_model_is_rebuilt_and_folded_with_its_output():
    keras.utils.set_random_seed(6)
    model, _ = build_deeplabv3plus(backbone="tiny", backbone_weights="none", full_resolution=False)
    rng = np.random.default_rng(6)  # non-trivial statistics, so the folding has something to get wrong
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.2, channels),
                               rng.normal(0, 0.2, channels), rng.uniform(0.5, 2.0, channels)])
    assert graph.deeplab_architecture(model)["backbone"] == "tiny"
    prepared = graph.inference_model(model, "float32")
    assert prepared is not model and prepared.get_layer("tiny1_conv").use_bias  # its batch norm folded in
    frame = random_frame((48, 80), seed=26)
    np.testing.assert_allclose(
        inf.predict_probabilities(prepared, frame), inf.predict_probabilities(model, frame), atol=1e-4, rtol=0
    )


def test_inference_model_returns_the_model_when_it_already_has_that_form(tiny_layouts, small_model):
    for model in tiny_layouts:
        prepared = graph.inference_model(model, "float32")
        assert graph.inference_model(prepared, "float32") is prepared
    assert graph.inference_model(small_model, "mixed_bfloat16") is small_model  # not a DeepLabV3+


def test_load_inference_model_reads_a_saved_model(tiny_layouts, tmp_path):
    from segcore.model import save_model

    deeplab = tiny_layouts[0]
    save_model(deeplab, tmp_path / "m.keras")
    loaded = inf.load_inference_model(tmp_path / "m.keras", "float32")
    frame = random_frame((32, 48), seed=23)
    # Folding the batch norms moves float32 rounding, nothing more.
    np.testing.assert_allclose(
        inf.predict_probabilities(loaded, frame), inf.predict_probabilities(deeplab, frame), atol=1e-4, rtol=0
    )


# --- views: the mean over the frame flipped, transposed and rotated ------------------------------------------


@pytest.mark.parametrize("views", [2, 4, 8])
def test_views_average_the_frame_seen_in_each_symmetry(small_model, views):
    """Hand reference: the network run on the flipped / transposed frame, its answer turned back, averaged."""
    frame = random_frame((48, 80), seed=11)  # not square: a transposed view has the other shape
    turns = [
        lambda f: f, lambda f: f[:, ::-1], lambda f: f.T, lambda f: f[::-1],
        lambda f: f[::-1, ::-1], lambda f: f.T[:, ::-1], lambda f: f.T[::-1], lambda f: f.T[::-1, ::-1],
    ]
    backs = [
        lambda p: p, lambda p: p[:, ::-1], lambda p: p.T, lambda p: p[::-1],
        lambda p: p[::-1, ::-1], lambda p: p[:, ::-1].T, lambda p: p[::-1].T, lambda p: p[::-1, ::-1].T,
    ]
    expected = np.mean(
        [back(inf.predict_probabilities(small_model, np.ascontiguousarray(turn(frame))))
         for turn, back in zip(turns[:views], backs[:views])], axis=0)
    np.testing.assert_allclose(inf.predict_probabilities(small_model, frame, views=views), expected, atol=1e-6)
    # the network is not symmetric, so the views really differ
    assert not np.allclose(expected, inf.predict_probabilities(small_model, frame), atol=1e-4)


def test_a_symmetric_network_gives_the_same_answer_in_every_view():
    model = intensity_model(3.0, 1.0)  # a 1x1 convolution: no direction at all
    frame = random_frame((64, 96), seed=12)
    np.testing.assert_allclose(inf.predict_probabilities(model, frame, views=8), inf.predict_probabilities(model, frame),
                               atol=1e-6)


@pytest.mark.parametrize("views", [0, 3, 16, 2.0, True])
def test_views_must_be_1_2_4_or_8(small_model, views):
    with pytest.raises(ValueError, match="views must be one of 1, 2, 4, 8"):
        inf.predict_probabilities(small_model, random_frame((32, 32)), views=views)
