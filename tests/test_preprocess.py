import numpy as np
import pytest
from skimage import exposure

from segcore.preprocess import (
    display_image,
    normalize_frame,
    tf_histogram_percentiles,
    tf_normalize_frame,
    tf_percentiles,
    to_network_input,
)


@pytest.fixture
def frame():
    rng = np.random.default_rng(3)
    return rng.gamma(2.0, 300.0, (48, 40)).astype(np.float32)


def test_normalize_matches_skimage_gamma_and_percentile_stretch(frame):
    # The original recipe written with scikit-image: gamma 1.1, stretch 2-98 %, to [-1, 1].
    scale = frame.max()
    adjusted = exposure.adjust_gamma(frame / scale, 1.1)
    low, high = np.percentile(adjusted, (2, 98))
    reference = exposure.rescale_intensity(adjusted, in_range=(low, high), out_range=(0.0, 1.0)) * 2 - 1
    np.testing.assert_allclose(normalize_frame(frame), reference, atol=1e-6)


def test_normalize_range_and_dtype(frame):
    out = normalize_frame(frame)
    assert out.dtype == np.float32 and out.min() == -1.0 and out.max() == 1.0


def test_flat_frame_skips_the_stretch():
    out = normalize_frame(np.full((8, 8), 5.0))
    np.testing.assert_array_equal(out, np.ones((8, 8), np.float32))
    np.testing.assert_array_equal(normalize_frame(np.zeros((8, 8))), -np.ones((8, 8), np.float32))


def test_mostly_flat_frame_with_one_hit_scales_by_peak():
    frame = np.zeros((10, 10))
    frame[4, 4] = 100.0
    out = normalize_frame(frame)
    assert out[4, 4] == 1.0 and out[0, 0] == -1.0


def test_tensorflow_twin_computes_the_same_numbers(frame):
    np.testing.assert_allclose(tf_normalize_frame(frame).numpy(), normalize_frame(frame), atol=1e-5)
    flat = np.full((6, 6), 9.0, np.float32)
    np.testing.assert_allclose(tf_normalize_frame(flat).numpy(), normalize_frame(flat), atol=1e-6)


def test_tf_percentiles_match_numpy_linear_interpolation():
    values = np.random.default_rng(1).normal(size=101).astype(np.float32)
    quantiles = [0.0, 2.0, 37.5, 98.0, 100.0]
    np.testing.assert_allclose(tf_percentiles(values, quantiles).numpy(), np.percentile(values, quantiles), rtol=1e-5)


def test_network_input_repeats_the_channel(frame):
    x = to_network_input(normalize_frame(frame))
    assert x.shape == (48, 40, 3)
    np.testing.assert_array_equal(x[..., 0], x[..., 2])


def test_display_image_maps_percentiles_to_black_and_white(frame):
    image = display_image(frame, low=5, high=95)
    low, high = np.percentile(frame, (5, 95))
    assert image.dtype == np.uint8
    assert (image[frame <= low] == 0).all() and (image[frame >= high] == 255).all()


def test_display_image_rejects_bad_settings(frame):
    with pytest.raises(ValueError, match="low"):
        display_image(frame, low=90, high=10)
    with pytest.raises(ValueError, match="gamma"):
        display_image(frame, gamma=0)


@pytest.mark.parametrize("dtype, top", [(np.uint16, 65535), (np.uint8, 255)])
def test_integer_frames_normalise_through_the_histogram_to_the_same_numbers(dtype, top):
    rng = np.random.default_rng(5)
    frame = rng.gamma(2.0, top / 20, (64, 48)).clip(0, top).astype(dtype)
    frame[0, :4] = [0, top, top, 1]
    np.testing.assert_allclose(tf_normalize_frame(frame).numpy(), normalize_frame(frame), atol=1e-5)


def test_histogram_percentiles_match_numpy_on_integers():
    values = np.random.default_rng(6).integers(0, 65536, 1001)
    quantiles = [0.0, 2.0, 50.0, 98.0, 100.0]
    np.testing.assert_allclose(
        tf_histogram_percentiles(values, quantiles).numpy(), np.percentile(values, quantiles), rtol=1e-6
    )
    gamma = lambda v: v**1.1  # noqa: E731
    np.testing.assert_allclose(
        tf_histogram_percentiles(values, quantiles, transform=gamma).numpy(),
        np.percentile(values.astype(np.float64) ** 1.1, quantiles),
        rtol=1e-5,
    )
