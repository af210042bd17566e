"""The input recipes: the extra channels against NumPy/SciPy references and known noise."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import scipy.ndimage
from scipy.ndimage import median_filter
from scipy.stats import norm, poisson

from segcore.inference import frame_recipe, model_threshold
from segcore.inference_graph import inference_model
from segcore.model import build_deeplabv3plus, load_model, model_card, save_model, set_model_threshold
from segcore.preprocess import (
    COUNT_EXCESS_RECIPE,
    DEFAULT_RECIPE,
    EXCESS_RECIPE,
    FULL_RANGE_RECIPE,
    LEGACY_RECIPE,
    TAIL_MIN_PIXELS,
    count_significance,
    excess_significance,
    median_background,
    network_input,
    noise_at,
    noise_profile,
    normalize_frame,
    poisson_significance,
    tf_network_input,
    to_network_input,
)


def poisson_ramp(shape=(96, 128), seed=0, low=20.0, high=2000.0):
    """Poisson counts whose expected value rises from left to right; returns (frame, expected)."""
    rng = np.random.default_rng(seed)
    expected = np.broadcast_to(np.linspace(low, high, shape[1]), shape)
    return rng.poisson(expected).astype(np.float32), expected


def test_background_is_scipy_median_filter_with_repeated_border():
    frame = np.random.default_rng(1).gamma(2.0, 100.0, (40, 52)).astype(np.float32)
    np.testing.assert_array_equal(median_background(frame), median_filter(frame, size=5, mode="nearest"))


def test_noise_profile_follows_the_poisson_noise_of_the_background():
    frame, _ = poisson_ramp()
    background = median_background(frame)
    levels, sigmas = noise_profile(background, frame - background)
    # Poisson noise: sigma = sqrt(level); the residual against a 5x5 median is a little wider.
    np.testing.assert_allclose(sigmas, np.sqrt(levels), rtol=0.2)
    assert np.all(np.diff(levels) >= 0) and np.all(np.diff(sigmas) >= 0)


def test_noise_profile_bins_by_hand():
    # 32 pixels, 2 bins of 16: levels 0..15 and 16..31, residuals +-(level % 4)
    background = np.arange(32, dtype=np.float64).reshape(4, 8)
    residual = np.where(np.arange(32) % 2, 1, -1).reshape(4, 8) * (np.arange(32) % 4).reshape(4, 8)
    levels, sigmas = noise_profile(background, residual, bins=2)
    # middle (index 8) of each sorted group of 16
    np.testing.assert_array_equal(levels, [8.0, 24.0])
    np.testing.assert_allclose(sigmas, [1.4826 * 2.0, 1.4826 * 2.0])


def test_full_range_profile_halves_the_brightest_bin_by_hand():
    # 1024 levels 0..1023 in 2 bins of 512; the top bin is halved while each half keeps TAIL_MIN_PIXELS (256):
    # groups [0, 512), [512, 768), [768, 1024), whose middles are 256, 640 and 896
    assert TAIL_MIN_PIXELS == 256
    background = np.arange(1024, dtype=np.float64).reshape(32, 32)
    residual = (background % 3) - 1.0  # |residual| is 1 for two thirds of the pixels, 0 for the rest
    levels, sigmas = noise_profile(background, residual, bins=2, full_range=True)
    np.testing.assert_array_equal(levels, [256.0, 640.0, 896.0])
    np.testing.assert_allclose(sigmas, 1.4826)
    # without it, the two bins of before
    np.testing.assert_array_equal(noise_profile(background, residual, bins=2)[0], [256.0, 768.0])


def test_noise_above_the_profile_grows_as_photon_noise():
    levels = np.array([0.0, 100.0, 200.0, 300.0])
    sigmas = np.sqrt(levels + 4.0)  # read noise 2, Poisson gain 1: variance = 4 + level
    background = np.array([50.0, 300.0, 1300.0])
    noise = noise_at(background, levels, sigmas, extrapolate=True)
    np.testing.assert_allclose(noise[0], (np.sqrt(4.0) + np.sqrt(104.0)) / 2)  # between levels: interpolated
    np.testing.assert_allclose(noise[1:], np.sqrt(background[1:] + 4.0))
    # without extrapolation the top spread is held
    np.testing.assert_allclose(noise_at(background, levels, sigmas)[2], np.sqrt(304.0))


def test_full_range_noise_follows_bright_spots_that_cover_a_few_percent_of_the_frame():
    """A dark Poisson frame with 2 % of its pixels in bright plateaus (Bragg spots): the noise measured there is
    the spots' own Poisson noise, where the 16-bin profile gives them the dark pixels' noise."""
    rng = np.random.default_rng(7)
    expected = np.full((256, 256), 50.0)
    for row, col in rng.integers(10, 240, (20, 2)):
        expected[row - 4:row + 4, col - 4:col + 4] = 20000.0
    assert 0.01 < np.mean(expected > 50) < 0.03
    frame = rng.poisson(expected).astype(np.float32)
    background = median_background(frame)
    inner = scipy.ndimage.binary_erosion(expected > 50, np.ones((5, 5)))  # spot pixels whose 5x5 window is all spot
    full = noise_at(background, *noise_profile(background, frame - background, full_range=True), extrapolate=True)
    # within a factor 1.5 (the spots' edges, where a 5x5 median cannot follow, widen the brightest bins' spread)
    assert 0.8 * np.sqrt(20000.0) < np.median(full[inner]) < 1.5 * np.sqrt(20000.0)
    old = noise_at(background, *noise_profile(background, frame - background))
    assert np.median(old[inner]) < 0.2 * np.sqrt(20000.0)
    # so the spots' own noise no longer reads as a huge excess; below the top bin of before, nothing changes
    z_full = excess_significance(frame, full_range=True)
    assert 0.6 < 1.4826 * np.median(np.abs(z_full[inner])) < 1.3
    dark = background <= noise_profile(background, frame - background)[0][-2]
    np.testing.assert_array_equal(z_full[dark], excess_significance(frame)[dark])


def test_excess_of_a_single_hit_is_its_height_in_noise_units():
    rng = np.random.default_rng(2)
    frame = rng.normal(1000.0, 10.0, (64, 64)).astype(np.float32)
    frame[30, 40] += 500.0
    excess = excess_significance(frame)
    assert excess[30, 40] == pytest.approx(50.0, rel=0.15)
    others = np.delete(excess.ravel(), 30 * 64 + 40)
    assert np.abs(np.median(others)) < 0.1 and 0.8 < np.std(others) < 1.3


def test_integer_frames_have_a_noise_floor_of_half_a_count():
    frame = np.zeros((40, 40), np.float32)
    frame[10, 10] = 1.0  # one count on an empty photon-counting frame
    assert excess_significance(frame)[10, 10] == pytest.approx(2.0)


def test_poisson_significance_is_the_gaussian_z_of_the_poisson_tail():
    counts = np.array([1, 2, 3, 5, 8, 20])
    expected = np.array([0.01, 0.3, 2.0, 1.0, 4.0, 15.0])
    reference = norm.isf(poisson.sf(counts - 1, expected))  # sf(k - 1) = P(N >= k)
    np.testing.assert_allclose(poisson_significance(counts, expected), reference, rtol=1e-6)
    # a tail beyond float precision is clipped, not infinite
    assert poisson_significance(np.array([500]), np.array([0.001]))[0] == 40.0


def test_count_significance_of_a_track_on_an_empty_counting_frame():
    frame = np.zeros((61, 61), np.float32)
    frame[30, 29:32] = 1.0  # a 3-pixel track of single counts
    frame[0, 0] = 1.0  # a lone count in the corner
    z = count_significance(frame)
    # nothing counts beyond the edges: the corner's 16x16 in-frame window holds its one count
    np.testing.assert_allclose(z[0, 0], norm.isf(poisson.sf(0, 9 * 1.5 / (16 * 16 + 1))), rtol=1e-5)
    # The track's 3x3 neighbourhoods (a 3x5 block) are left out of the expected counts:
    # 0.5 counts of prior over the 31x31 window's other 946 pixels, plus one.
    expected = 9 * 0.5 / (31 * 31 - 15 + 1)
    np.testing.assert_allclose(z[30, 30], norm.isf(poisson.sf(2, expected)), rtol=1e-5)  # 3 counts around it
    np.testing.assert_allclose(z[30, [29, 31]], norm.isf(poisson.sf(1, expected)), rtol=1e-5)  # 2 around each end
    assert np.count_nonzero(z) == 4  # pixels without counts get 0


def test_a_lone_count_is_less_significant_than_a_track():
    rng = np.random.default_rng(3)
    frame = (rng.random((96, 96)) < 0.002).astype(np.float32)  # sparse X-ray photons
    frame[40, 20:28] = 1.0
    z = count_significance(frame)
    lone = (frame > 0) & (scipy.ndimage.uniform_filter(frame, 3, mode="constant") * 9 < 1.5)
    assert lone.sum() > 10
    assert z[40, 21:27].min() > 4.0 > 3.0 > z[lone].max()


def test_counting_rule_applies_only_where_the_noise_is_below_one_count():
    gaussian = np.random.default_rng(4).normal(500.0, 10.0, (64, 64)).astype(np.float32)
    np.testing.assert_array_equal(excess_significance(gaussian, counting=True), excess_significance(gaussian))
    bright, _ = poisson_ramp(seed=7, low=50.0, high=500.0)
    np.testing.assert_array_equal(excess_significance(bright, counting=True), excess_significance(bright))
    sparse = np.zeros((64, 64), np.float32)
    sparse[10, 10:13] = 1.0
    counted = excess_significance(sparse, counting=True)
    np.testing.assert_allclose(counted, np.maximum(count_significance(sparse), 0.0))
    assert counted[10, 11] > 5.0 and excess_significance(sparse)[10, 11] == pytest.approx(2.0)


@pytest.mark.parametrize("recipe", [EXCESS_RECIPE, COUNT_EXCESS_RECIPE, FULL_RANGE_RECIPE])
def test_recipe_channels(recipe):
    frame, _ = poisson_ramp(seed=4)
    frame[20, 30] = 60000.0
    x = network_input(frame, recipe)
    assert x.shape == frame.shape + (3,) and x.dtype == np.float32
    np.testing.assert_allclose(x[..., 0], normalize_frame(frame), atol=1e-6)
    floor = np.percentile(frame, 2)
    np.testing.assert_allclose(x[..., 1], np.log1p(np.maximum(frame - floor, 0)) / np.log(65536) * 2 - 1, atol=1e-6)
    excess = excess_significance(frame, counting=True, full_range=recipe == FULL_RANGE_RECIPE)
    np.testing.assert_allclose(x[..., 2], np.arcsinh(excess / 2.0) / 3.0, atol=1e-6)
    # the bright pixel keeps its height where the stretch clips it flat
    assert x[20, 30, 0] == x[..., 0].max() == 1.0
    assert x[20, 30, 1] > np.sort(x[..., 1].ravel())[-2] and x[20, 30, 2] > 2.0


def test_recipes_differ_on_sparse_counting_frames_only_in_the_excess_channel():
    frame = np.zeros((64, 64), np.float32)
    frame[20, 10:16] = 1.0
    frame[50, 50] = 1.0
    before, now = network_input(frame, EXCESS_RECIPE), network_input(frame, COUNT_EXCESS_RECIPE)
    np.testing.assert_array_equal(before[..., :2], now[..., :2])
    # models trained on stretch_log_excess keep seeing a count as 2 sigma
    np.testing.assert_allclose(before[20, 10:16, 2], np.arcsinh(1.0) / 3.0, rtol=1e-6)
    np.testing.assert_allclose(now[..., 2], np.arcsinh(np.maximum(count_significance(frame), 0) / 2) / 3, atol=1e-6)
    assert DEFAULT_RECIPE == COUNT_EXCESS_RECIPE


@pytest.mark.parametrize("sparse", [False, True])
def test_graph_and_eager_recipes_give_the_same_input(sparse):
    frame, _ = poisson_ramp(seed=5, low=0.01 if sparse else 20.0, high=0.2 if sparse else 2000.0)
    in_graph = tf.function(lambda f: tf_network_input(f, DEFAULT_RECIPE))(tf.constant(frame)).numpy()
    np.testing.assert_allclose(in_graph, network_input(frame), atol=1e-6)


def test_legacy_recipe_is_the_original_stretch_repeated():
    frame, _ = poisson_ramp(seed=6)
    np.testing.assert_array_equal(network_input(frame, LEGACY_RECIPE), to_network_input(normalize_frame(frame)))


def test_unknown_recipe_is_refused():
    with pytest.raises(ValueError, match="unknown input recipe"):
        network_input(np.zeros((8, 8)), "fancy")


# --- the model card ------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_deeplab():
    keras.utils.set_random_seed(0)
    model, _ = build_deeplabv3plus(backbone_weights="none", input_recipe=DEFAULT_RECIPE)
    return model


@pytest.mark.slow
def test_card_travels_with_the_saved_model_and_the_inference_model(small_deeplab, tmp_path):
    set_model_threshold(small_deeplab, 0.37)
    save_model(small_deeplab, tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras", compile=False)
    assert model_card(loaded) == {"input_recipe": DEFAULT_RECIPE, "threshold": 0.37}
    prepared = inference_model(loaded, "float32")
    assert frame_recipe(prepared) == DEFAULT_RECIPE and model_threshold(prepared) == 0.37


def test_models_without_a_card_use_the_original_recipe_and_threshold_half():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    assert frame_recipe(model) == LEGACY_RECIPE and model_threshold(model) == 0.5
    with pytest.raises(ValueError, match="no model_card"):
        set_model_threshold(model, 0.3)
