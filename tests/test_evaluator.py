import json

import keras
import numpy as np
import pytest
from skimage.measure import label as sk_label
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    jaccard_score,
    precision_score,
    recall_score,
)

from segcore import evaluator as ev
from segcore.errors import InputFileError
from segcore.io import read_mask, write_frame, write_mask
from segcore.metrics import count_cosmics, object_scores
from segcore.preprocess import display_image, normalize_frame, to_network_input

# --------------------------------------------------------------------------- #
# Models and references
# --------------------------------------------------------------------------- #


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
    """The model run once on the whole frame, reflect-padded to multiples of 16."""
    h, w = frame.shape
    normalized = normalize_frame(frame)
    padded = np.pad(normalized, ((0, -h % 16), (0, -w % 16)), mode="reflect")
    logits = model(to_network_input(padded)[None], training=False).numpy()[0]
    return softmax_cosmic(logits)[:h, :w]


def random_frame(shape, seed=0):
    rng = np.random.default_rng(seed)
    frame = rng.normal(1000.0, 50.0, shape)
    hits = rng.random(shape) < 0.01
    frame[hits] += rng.uniform(500, 5000, hits.sum())
    return frame.astype(np.float32)


@pytest.fixture(scope="module")
def small_model():
    return conv_model(seed=1)


# --------------------------------------------------------------------------- #
# Tiled inference
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("shape", [(100, 150), (128, 128), (64, 64), (40, 200), (17, 33), (160, 96)])
def test_tiled_inference_equals_whole_frame_when_receptive_field_is_within_half_overlap(small_model, shape):
    frame = random_frame(shape, seed=shape[0])
    tiled = ev.predict_probabilities(small_model, frame, tile=64, overlap=32, batch_size=3)
    assert tiled.shape == shape and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, whole_frame_probabilities(small_model, frame), atol=1e-5, rtol=0)


def test_tiled_inference_matches_whole_frame_in_tile_interiors_for_large_receptive_field():
    # Receptive field radius 24 > overlap // 2 = 16. Frame 128 with tile 64 and
    # overlap 32: tiles start at 0, 32, 64; the seams between the pixels they
    # write lie at 48 and 80. A pixel within 24 - 16 = 8 of a seam may see its
    # tile's edge; every other pixel sees exactly what the whole frame shows it.
    model = conv_model(seed=3, layers=3, dilation=8)
    frame = random_frame((128, 128), seed=5)
    tiled = ev.predict_probabilities(model, frame, tile=64, overlap=32)
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
    tiled = ev.predict_probabilities(model, frame, tile=64, overlap=32)
    assert tiled.shape == (100, 150) and np.all((tiled >= 0) & (tiled <= 1))
    whole = ev.predict_probabilities(model, frame, tile=512)
    np.testing.assert_allclose(whole, whole_frame_probabilities(model, frame), atol=1e-5, rtol=0)


def test_tile_layout_hand_computed_for_frame_of_two_and_a_half_tiles():
    tiles = ev.tile_layout((128, 96), tile=64, overlap=32)
    rows = sorted({(t.window[0].start, t.interior[0].start, t.interior[0].stop) for t in tiles})
    cols = sorted({(t.window[1].start, t.interior[1].start, t.interior[1].stop) for t in tiles})
    assert rows == [(0, 0, 48), (32, 48, 80), (64, 80, 128)]
    assert cols == [(0, 0, 48), (32, 48, 96)]
    assert len(tiles) == 6


@pytest.mark.parametrize("shape", [(112, 160), (512, 208), (48, 1040), (32, 32)])
def test_tile_interiors_cover_every_pixel_once_with_half_overlap_context(shape):
    tile, overlap = 64, 32
    tiles = ev.tile_layout(shape, tile=tile, overlap=overlap)
    cover = np.zeros(shape, int)
    for t in tiles:
        cover[t.interior] += 1
        window_shape = tuple(s.stop - s.start for s in t.window)
        assert window_shape == (min(tile, shape[0]), min(tile, shape[1]))
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
    probs = ev.predict_probabilities(model, frame)
    logits = model(to_network_input(normalize_frame(frame))[None], training=False).numpy()[0]
    expected = np.exp(logits[..., 1]) / (np.exp(logits[..., 0]) + np.exp(logits[..., 1]))
    assert probs.min() >= 0.0 and probs.max() <= 1.0
    np.testing.assert_allclose(probs, expected, atol=1e-6, rtol=0)


def test_probability_is_that_of_class_one():
    # logit1 - logit0 = 20 * x: bright pixels (x = 1) are cosmic, dark ones (x = -1) are not.
    frame = np.zeros((32, 32), np.float32)
    frame[10, 10] = 1000.0
    probs = ev.predict_probabilities(intensity_model(20.0, 0.0), frame)
    assert probs[10, 10] > 0.999
    assert probs[0, 0] < 0.001


def test_predict_mask_is_probability_strictly_above_threshold(small_model):
    frame = random_frame((50, 70), seed=9)
    probs = ev.predict_probabilities(small_model, frame, tile=32, overlap=16)
    threshold = float(np.median(probs))
    mask = ev.predict_mask(small_model, frame, threshold=threshold, tile=32, overlap=16)
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, probs > threshold)
    assert not ev.predict_mask(small_model, frame, threshold=1.0).any()


@pytest.mark.parametrize(
    "tile, overlap", [(60, 16), (64, 20), (64, 64), (64, 80), (0, 0), (64, -16)]
)
def test_tile_and_overlap_must_be_multiples_of_16_with_overlap_below_tile(small_model, tile, overlap):
    with pytest.raises(ValueError):
        ev.predict_probabilities(small_model, np.ones((32, 32)), tile=tile, overlap=overlap)


def test_frame_must_be_two_dimensional(small_model):
    with pytest.raises(ValueError, match="2-D"):
        ev.predict_probabilities(small_model, np.ones((32, 32, 3)))


def test_model_without_two_logits_at_input_resolution_is_refused():
    inputs = keras.Input((None, None, 3))
    one_class = keras.Model(inputs, keras.layers.Conv2D(1, 1)(inputs))
    strided = keras.Model(inputs, keras.layers.Conv2D(2, 1, strides=2)(inputs))
    with pytest.raises(ValueError, match="2\\) logits"):
        ev.predict_probabilities(one_class, np.ones((32, 32)))
    with pytest.raises(ValueError, match="input resolution"):
        ev.predict_probabilities(strided, np.ones((32, 32)))


def test_model_is_traced_once_per_tile_shape():
    model = conv_model(seed=11)
    # 100x150 and 130x200 are cut into 64x64 tiles (6 and 12 of them, batches of
    # 4 and a remainder); 40x40 pads to one 48x48 tile.
    for shape in [(100, 150), (130, 200), (40, 40), (100, 150)]:
        ev.predict_probabilities(model, random_frame(shape), tile=64, overlap=32, batch_size=4)
    assert ev._predict_step(model, (64, 64)).experimental_get_tracing_count() == 1
    assert ev._predict_step(model, (48, 48)).experimental_get_tracing_count() == 1
    assert set(ev._PREDICT_STEPS[model]) == {(64, 64), (48, 48)}


# --------------------------------------------------------------------------- #
# Evaluation
# --------------------------------------------------------------------------- #

# Constant background 100; the few marked pixels stay under 2 % of the frame, so
# normalisation scales by the peak (3000): background x = -0.95, faint 300 -> -0.84,
# hot 2500 -> 0.64, cosmic 3000 -> 1. With k = 4: probabilities 0.022, 0.034, 0.93, 0.98.
K, B = 4.0, 0.0
SHAPES = [(48, 64), (64, 64), (40, 72)]


def make_sample(shape, seed):
    rng = np.random.default_rng(seed)
    frame = np.full(shape, 100, np.uint16)
    mask = np.zeros(shape, bool)
    for _ in range(3):  # bright cosmics: found
        r, c = rng.integers(2, shape[0] - 4), rng.integers(2, shape[1] - 4)
        frame[r : r + 2, c : c + 3] = 3000
        mask[r : r + 2, c : c + 3] = True
    r, c = rng.integers(2, shape[0] - 3), rng.integers(2, shape[1] - 3)
    frame[r, c : c + 2] = 300  # faint cosmic: missed
    mask[r, c : c + 2] = True
    for _ in range(2):  # hot pixels, not cosmic: false positives
        r, c = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        if not mask[r, c]:
            frame[r, c] = 2500
    frame[0, 0] = 3000  # fixes the peak even if a cosmic was overwritten
    mask[0, 0] = True
    return frame, mask


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    pairs, samples = [], []
    for i, shape in enumerate(SHAPES):
        frame, mask = make_sample(shape, seed=i)
        image_path, mask_path = root / "Test" / f"frame_{i:05d}.png", root / "TestAnnotation" / f"frame_{i:05d}.png"
        write_frame(image_path, frame)
        write_mask(mask_path, mask)
        pairs.append((image_path, mask_path))
        samples.append((frame, mask))
    return pairs, samples


@pytest.fixture(scope="module")
def threshold_model():
    return intensity_model(K, B)


def expected_prediction(frame, threshold):
    x = normalize_frame(frame).astype(np.float64)
    return 1.0 / (1.0 + np.exp(-(K * x - B))) > threshold


def test_evaluate_pairs_pixel_scores_match_sklearn_on_predicted_masks(dataset, threshold_model):
    pairs, samples = dataset
    result = ev.evaluate_pairs(threshold_model, pairs, threshold=0.5)
    table = result.per_image
    assert list(table["image"]) == [p[0].name for p in pairs]
    assert list(table["image_path"]) == [str(p[0]) for p in pairs]
    for (_, row), (frame, mask) in zip(table.iterrows(), samples):
        pred = expected_prediction(frame, 0.5)
        t, p = mask.ravel(), pred.ravel()
        tn, fp, fn, tp = confusion_matrix(t, p, labels=[False, True]).ravel()
        assert (row.tp, row.fp, row.fn, row.tn) == (tp, fp, fn, tn)
        assert row.fp > 0 and row.fn > 0 and row.tp > 0  # every kind of pixel occurs
        assert row.precision == pytest.approx(precision_score(t, p))
        assert row.recall == pytest.approx(recall_score(t, p))
        assert row.f1 == pytest.approx(f1_score(t, p))
        assert row.dice == pytest.approx(f1_score(t, p))
        assert row.iou == pytest.approx(jaccard_score(t, p))
        assert row.pixel_accuracy == pytest.approx(accuracy_score(t, p))
        assert row.specificity == pytest.approx(tn / (tn + fp))


def test_evaluate_pairs_counts_cosmics_with_8_connectivity(dataset, threshold_model):
    pairs, samples = dataset
    table = ev.evaluate_pairs(threshold_model, pairs).per_image
    for (_, row), (frame, mask) in zip(table.iterrows(), samples):
        pred = expected_prediction(frame, 0.5)
        true_count = sk_label(mask, connectivity=2).max()
        pred_count = sk_label(pred, connectivity=2).max()
        assert (row.true_count, row.pred_count) == (true_count, pred_count)
        assert row.count_score == pytest.approx(min(1.0, pred_count / true_count))
        objects = object_scores(mask, pred)
        assert row.object_recall == pytest.approx(objects["object_recall"])
        assert row.object_precision == pytest.approx(objects["object_precision"])


def test_pooled_scores_match_sklearn_over_all_pixels(dataset, threshold_model):
    pairs, samples = dataset
    result = ev.evaluate_pairs(threshold_model, pairs)
    t = np.concatenate([mask.ravel() for _, mask in samples])
    p = np.concatenate([expected_prediction(frame, 0.5).ravel() for frame, _ in samples])
    assert result.pooled["precision"] == pytest.approx(precision_score(t, p))
    assert result.pooled["recall"] == pytest.approx(recall_score(t, p))
    assert result.pooled["f1"] == pytest.approx(f1_score(t, p))
    assert result.pooled["iou"] == pytest.approx(jaccard_score(t, p))


def test_summary_is_mean_and_population_std_of_each_score(dataset, threshold_model):
    result = ev.evaluate_pairs(threshold_model, dataset[0])
    summary = result.summary()
    assert list(summary.columns) == ["mean", "std"]
    assert list(summary.index) == list(ev.SCORE_COLUMNS)
    for name in ev.SCORE_COLUMNS:
        values = result.per_image[name].to_numpy(float)
        assert summary.loc[name, "mean"] == pytest.approx(np.mean(values))
        assert summary.loc[name, "std"] == pytest.approx(np.std(values))


def test_to_json_dict_holds_means_pooled_threshold_and_count(dataset, threshold_model):
    result = ev.evaluate_pairs(threshold_model, dataset[0], threshold=0.5)
    report = json.loads(json.dumps(result.to_json_dict()))
    assert set(report) == {
        "iou", "dice", "pixel_accuracy", "precision", "recall", "f1", "count_score",
        "pooled", "threshold", "n_images",
    }
    for key in ("iou", "dice", "pixel_accuracy", "precision", "recall", "f1", "count_score"):
        assert report[key] == pytest.approx(result.per_image[key].mean())
    assert report["pooled"] == pytest.approx({k: result.pooled[k] for k in ("precision", "recall", "f1")})
    assert report["threshold"] == 0.5
    assert report["n_images"] == 3


def test_threshold_zero_marks_every_pixel_as_cosmic(dataset, threshold_model):
    table = ev.evaluate_pairs(threshold_model, dataset[0], threshold=0.0).per_image
    assert list(table["tp"] + table["fp"]) == [h * w for h, w in SHAPES]
    assert list(table["pred_count"]) == [1, 1, 1]


def test_higher_threshold_drops_less_confident_pixels(dataset, threshold_model):
    pairs, samples = dataset
    low = ev.evaluate_pairs(threshold_model, pairs, threshold=0.03).per_image
    mid = ev.evaluate_pairs(threshold_model, pairs, threshold=0.5).per_image
    high = ev.evaluate_pairs(threshold_model, pairs, threshold=0.95).per_image
    assert (low["fn"] == 0).all()  # the faint cosmic (0.034) is found
    assert (mid["fn"] > 0).all()
    assert (high["fp"] == 0).all()  # hot pixels (0.93) are dropped
    assert (mid["fp"] > 0).all()
    for (_, row), (frame, mask) in zip(high.iterrows(), samples):
        assert row.tp + row.fp == expected_prediction(frame, 0.95).sum()


def test_predictions_dir_receives_readable_masks(dataset, threshold_model, tmp_path):
    pairs, samples = dataset
    out = tmp_path / "pred"
    table = ev.evaluate_pairs(threshold_model, pairs, predictions_dir=out).per_image
    for (_, row), (image, _), (frame, _) in zip(table.iterrows(), pairs, samples):
        assert row.prediction == str(out / f"{image.stem}.png")
        np.testing.assert_array_equal(read_mask(row.prediction), expected_prediction(frame, 0.5))


def test_prediction_column_absent_without_predictions_dir(dataset, threshold_model):
    table = ev.evaluate_pairs(threshold_model, dataset[0]).per_image
    assert "prediction" not in table.columns


def test_progress_is_called_after_each_image(dataset, threshold_model):
    calls = []
    ev.evaluate_pairs(threshold_model, dataset[0], progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_mask_of_other_size_raises_input_file_error_naming_mask(dataset, threshold_model, tmp_path):
    pairs, _ = dataset
    bad_mask = tmp_path / "frame_bad.png"
    write_mask(bad_mask, np.zeros((10, 10), bool))
    with pytest.raises(InputFileError, match="frame_bad.png") as info:
        ev.evaluate_pairs(threshold_model, [pairs[0], (pairs[1][0], bad_mask)])
    assert info.value.path == str(bad_mask)


def test_empty_pairs_are_refused(threshold_model):
    with pytest.raises(ValueError, match="no image"):
        ev.evaluate_pairs(threshold_model, [])


def test_rescore_from_kept_probabilities_matches_fresh_evaluation(dataset, threshold_model):
    pairs, samples = dataset
    kept = ev.evaluate_pairs(threshold_model, pairs, threshold=0.5, keep_probabilities=True)
    assert set(kept.probabilities) == {p[0].name for p in pairs}
    assert all(m.dtype == np.float16 for m in kept.probabilities.values())
    rescored = ev.rescore(kept, pairs, threshold=0.95)
    fresh = ev.evaluate_pairs(threshold_model, pairs, threshold=0.95)
    assert rescored.threshold == 0.95
    assert rescored.per_image.equals(fresh.per_image)
    assert rescored.pooled == fresh.pooled


def test_rescore_needs_kept_probabilities(dataset, threshold_model):
    pairs, _ = dataset
    plain = ev.evaluate_pairs(threshold_model, pairs)
    with pytest.raises(ValueError, match="keep_probabilities"):
        ev.rescore(plain, pairs, threshold=0.3)


# --------------------------------------------------------------------------- #
# Overlays
# --------------------------------------------------------------------------- #


def blended(gray, color):
    return np.round(0.4 * gray + 0.6 * np.asarray(color, float)).astype(np.uint8)


@pytest.fixture
def overlay_case():
    frame = random_frame((40, 50), seed=4)
    true = np.zeros((40, 50), bool)
    pred = np.zeros((40, 50), bool)
    true[5, 5] = pred[5, 5] = True  # true positive
    pred[20, 30] = True  # false positive
    true[30, 10] = True  # false negative
    return frame, true, pred


def test_overlay_colours_true_false_positive_and_false_negative_pixels(overlay_case):
    frame, true, pred = overlay_case
    rgb = ev.overlay(frame, true, pred, numbers=False)
    gray = display_image(frame).astype(float)
    assert rgb.shape == (40, 50, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[5, 5], blended(gray[5, 5], ev.TRUE_POSITIVE_COLOR))
    np.testing.assert_array_equal(rgb[20, 30], blended(gray[20, 30], ev.FALSE_POSITIVE_COLOR))
    np.testing.assert_array_equal(rgb[30, 10], blended(gray[30, 10], ev.FALSE_NEGATIVE_COLOR))
    unmarked = ~(true | pred)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel][unmarked], gray[unmarked])


def test_overlay_colours_are_distinct():
    colours = {ev.TRUE_POSITIVE_COLOR, ev.FALSE_POSITIVE_COLOR, ev.FALSE_NEGATIVE_COLOR, ev.PREDICTED_COLOR}
    assert len(colours) == 4


def test_overlay_without_true_mask_marks_predictions(overlay_case):
    frame, _, pred = overlay_case
    rgb = ev.overlay(frame, None, pred, numbers=False)
    gray = display_image(frame).astype(float)
    np.testing.assert_array_equal(rgb[5, 5], blended(gray[5, 5], ev.PREDICTED_COLOR))
    np.testing.assert_array_equal(rgb[20, 30], blended(gray[20, 30], ev.PREDICTED_COLOR))
    np.testing.assert_array_equal(rgb[30, 10], np.repeat(gray[30, 10], 3))  # a true cosmic is not shown


def test_prediction_overlay_is_overlay_without_true_mask(overlay_case):
    frame, _, pred = overlay_case
    np.testing.assert_array_equal(ev.prediction_overlay(frame, pred), ev.overlay(frame, None, pred))


def test_overlay_numbers_are_written_beside_each_predicted_cosmic():
    frame = random_frame((128, 128), seed=6)
    pred = np.zeros((128, 128), bool)
    pred[20:23, 15:18] = True
    pred[90:92, 70:74] = True
    plain = ev.overlay(frame, None, pred, numbers=False)
    numbered = ev.overlay(frame, None, pred, numbers=True)
    changed = np.any(plain != numbered, axis=-1)
    near = np.zeros_like(changed)
    for cosmic in count_cosmics(pred):
        row0, col0, row1, col1 = cosmic.bbox
        box = changed[max(row0 - 3, 0) : row0 + 14, col1 - 2 : col1 + 14]
        assert box.any()  # a label sits right of this cosmic
        near[max(row0 - 3, 0) : row0 + 14, col0 - 14 : col1 + 14] = True
    assert not changed[~near].any()


def test_overlay_rejects_mask_of_other_shape(overlay_case):
    frame, true, _ = overlay_case
    with pytest.raises(ValueError, match="pred_mask"):
        ev.overlay(frame, true, np.zeros((10, 10), bool))
