"""Growing masks by a margin, and cleaning frames under a mask, checked on simulated frames the simulator knows."""

import cv2
import numpy as np
import pytest

from segcore.postprocess import MIN_NEIGHBOURS, clean_frame, dilate
from segcore.synth import simulate_frame

#: (detector family, seed) of simulated 96 px frames that hold visible cosmics.
FRAMES = [("integrating", 0), ("integrating", 2), ("photon_counting", 0), ("scintillator", 0), ("scintillator", 1)]


def simulated(family, seed, size=96):
    sample = simulate_frame(np.random.default_rng(seed), size, n_cosmics=4, family=family)
    # what the simulator would read out without the cosmics' charge
    cosmic_free = np.clip(sample.frame.astype(np.float64) - sample.info["cosmic_charge"], 0, None)
    return sample.frame, sample.mask, cosmic_free


@pytest.mark.parametrize(("family", "seed"), FRAMES)
def test_a_cleaned_frame_is_closer_to_the_cosmic_free_frame_than_the_raw_one(family, seed):
    frame, mask, cosmic_free = simulated(family, seed)
    assert mask.any()
    cleaned = clean_frame(frame, mask)
    raw_error = np.abs(frame[mask] - cosmic_free[mask]).sum()
    cleaned_error = np.abs(cleaned[mask] - cosmic_free[mask]).sum()
    assert cleaned_error < 0.2 * raw_error
    assert np.abs(cleaned - cosmic_free).sum() < np.abs(frame - cosmic_free).sum()


@pytest.mark.parametrize(("family", "seed"), FRAMES)
def test_unmasked_pixels_are_untouched_bit_for_bit(family, seed):
    frame, mask, _ = simulated(family, seed)
    cleaned = clean_frame(frame, mask)
    assert cleaned.dtype == frame.dtype and cleaned.shape == frame.shape
    assert cleaned[~mask].tobytes() == frame[~mask].tobytes()


def test_a_masked_pixel_becomes_the_median_of_its_unmasked_5x5_neighbours():
    frame = np.arange(49, dtype=np.uint16).reshape(7, 7) * 10
    mask = np.zeros((7, 7), bool)
    mask[3, 3] = mask[3, 4] = True
    cleaned = clean_frame(frame, mask)
    window, inside = frame[1:6, 1:6], ~mask[1:6, 1:6]
    assert cleaned[3, 3] == np.rint(np.median(window[inside]))
    window, inside = frame[1:6, 2:7], ~mask[1:6, 2:7]
    assert cleaned[3, 4] == np.rint(np.median(window[inside]))


def test_the_window_grows_inside_a_wide_masked_area():
    frame = np.full((40, 40), 100.0, np.float32)
    frame[10:30, 10:30] = 5000.0
    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:30] = True  # the centre is 10 pixels from any unmasked one
    cleaned = clean_frame(frame, mask)
    assert cleaned.dtype == np.float32
    np.testing.assert_array_equal(cleaned[10:30, 10:30], 100.0)


def test_a_float_frame_keeps_its_values_and_a_median_of_halves():
    frame = np.array([[1.0, 2.0, 9.0, 3.0, 4.0]], np.float64)
    mask = np.array([[0, 0, 1, 0, 0]], bool)
    assert clean_frame(frame, mask)[0, 2] == 2.5  # median of 1, 2, 3, 4
    assert MIN_NEIGHBOURS <= 5


def test_an_empty_mask_returns_a_copy_and_a_full_mask_is_refused():
    frame = np.ones((4, 4), np.uint8)
    cleaned = clean_frame(frame, np.zeros((4, 4)))
    assert cleaned is not frame and np.array_equal(cleaned, frame)
    with pytest.raises(ValueError, match="whole frame"):
        clean_frame(frame, np.ones((4, 4)))
    with pytest.raises(ValueError, match="same shape"):
        clean_frame(frame, np.ones((4, 5)))


def test_dilate_grows_by_a_square_of_side_2n_plus_1():
    mask = np.zeros((9, 9), bool)
    mask[4, 4] = True
    grown = dilate(mask, 2)
    assert grown.dtype == bool
    np.testing.assert_array_equal(np.argwhere(grown).min(axis=0), [2, 2])
    np.testing.assert_array_equal(np.argwhere(grown).max(axis=0), [6, 6])
    assert grown.sum() == 25
    assert dilate(mask, 0) is mask


def test_dilating_probabilities_then_thresholding_is_dilating_the_mask():
    rng = np.random.default_rng(0)
    probabilities = rng.random((32, 32)).astype(np.float16)
    for threshold in (0.3, 0.9, 0.99):
        expected = cv2.dilate((probabilities > threshold).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        np.testing.assert_array_equal(dilate(probabilities, 1) > threshold, expected)


@pytest.mark.parametrize("pixels", [-1, 2.5, 65, True])
def test_a_bad_dilation_is_refused(pixels):
    with pytest.raises(ValueError, match="dilation"):
        dilate(np.zeros((4, 4), bool), pixels)
