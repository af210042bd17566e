"""The network's input normalisation, and display scaling for 16-bit frames.

The network sees each frame as the original script prepared it: gamma 1.1, a
contrast stretch between the 2nd and 98th percentiles of the whole frame, scaled
to [-1, 1] and repeated over 3 channels. The NumPy and TensorFlow versions
compute the same numbers; the TensorFlow one runs inside ``tf.data`` graphs
without a Python callback.
"""

from __future__ import annotations

import numpy as np

GAMMA = 1.1
LOW_PERCENTILE = 2.0
HIGH_PERCENTILE = 98.0


def normalize_frame(
    frame: np.ndarray,
    gamma: float = GAMMA,
    low: float = LOW_PERCENTILE,
    high: float = HIGH_PERCENTILE,
) -> np.ndarray:
    """Map a 2-D frame of detector values to float32 in [-1, 1].

    Negative values (bias-subtracted frames) are clipped to 0 before the gamma.
    When the two percentiles are equal (a flat frame) the stretch is skipped
    and the frame is scaled by its maximum instead.

    Returns
    -------
    ndarray of shape (H, W), float32, values in [-1, 1].
    """
    frame = np.asarray(frame, dtype=np.float64)
    if frame.ndim != 2:
        raise ValueError(f"frame must be 2-D, got shape {frame.shape}")
    adjusted = np.maximum(frame, 0.0) ** gamma
    p_low, p_high = np.percentile(adjusted, [low, high])
    if p_high > p_low:
        unit = np.clip((adjusted - p_low) / (p_high - p_low), 0.0, 1.0)
    else:
        peak = adjusted.max()
        unit = adjusted / peak if peak > 0 else np.zeros_like(adjusted)
    return (unit * 2.0 - 1.0).astype(np.float32)


#: Integer frames in [0, HISTOGRAM_LEVELS) (8- and 16-bit detectors) take their
#: percentiles from a histogram, 8-15x faster than sorting every pixel.
HISTOGRAM_LEVELS = 65536


def _interpolation(count, quantiles):
    """Order-statistic indices below and above each percentile, and the weight of the upper one."""
    import tensorflow as tf

    positions = tf.constant(quantiles, tf.float32) / 100.0 * (count - 1.0)
    lower = tf.floor(positions)
    upper = tf.minimum(lower + 1.0, count - 1.0)
    return lower, upper, positions - lower


def tf_percentiles(values, quantiles):
    """Percentiles of a tensor with NumPy's default ('linear') interpolation."""
    import tensorflow as tf

    flat = tf.sort(tf.reshape(tf.cast(values, tf.float32), [-1]))
    lower, upper, weight = _interpolation(tf.cast(tf.size(flat), tf.float32), quantiles)
    lo = tf.gather(flat, tf.cast(lower, tf.int32))
    hi = tf.gather(flat, tf.cast(upper, tf.int32))
    return lo + (hi - lo) * weight


def tf_histogram_percentiles(values, quantiles, transform=None, levels: int = HISTOGRAM_LEVELS):
    """:func:`tf_percentiles` of ``transform(values)`` for integer values in [0, levels), without a sort.

    The order statistics come from the cumulative histogram of the values; a
    non-decreasing ``transform`` (such as the gamma) keeps their order, so it
    is applied to them alone before interpolating.
    """
    import tensorflow as tf

    flat = tf.reshape(tf.cast(values, tf.int32), [-1])
    cumulative = tf.cumsum(tf.math.bincount(flat, minlength=levels, maxlength=levels))
    lower, upper, weight = _interpolation(tf.cast(tf.size(flat), tf.float32), quantiles)

    def order_statistic(index):  # the (index + 1)-th smallest value
        value = tf.cast(tf.searchsorted(cumulative, tf.cast(index, tf.int32), side="right"), tf.float32)
        return value if transform is None else transform(value)

    lo, hi = order_statistic(lower), order_statistic(upper)
    return lo + (hi - lo) * weight


def tf_normalize_frame(frame, gamma: float = GAMMA, low: float = LOW_PERCENTILE, high: float = HIGH_PERCENTILE):
    """TensorFlow twin of :func:`normalize_frame` for an (H, W) or (H, W, 1) tensor."""
    import tensorflow as tf

    frame = tf.cast(frame, tf.float32)

    def adjust(values):
        return tf.pow(tf.maximum(values, 0.0), gamma)

    adjusted = adjust(frame)
    integral = tf.reduce_all(
        [tf.reduce_all(frame == tf.round(frame)), tf.reduce_min(frame) >= 0.0, tf.reduce_max(frame) < HISTOGRAM_LEVELS]
    )
    bounds = tf.cond(
        integral,
        lambda: tf_histogram_percentiles(frame, [low, high], transform=adjust),
        lambda: tf_percentiles(adjusted, [low, high]),
    )
    p_low, p_high = bounds[0], bounds[1]
    peak = tf.reduce_max(adjusted)
    stretched = tf.clip_by_value((adjusted - p_low) / tf.maximum(p_high - p_low, 1e-30), 0.0, 1.0)
    by_peak = tf.math.divide_no_nan(adjusted, peak)
    unit = tf.where(p_high > p_low, stretched, by_peak)
    return unit * 2.0 - 1.0


def to_network_input(normalized: np.ndarray) -> np.ndarray:
    """(H, W) normalised frame -> (H, W, 3) float32, the channel repeated as the network expects."""
    return np.repeat(np.asarray(normalized, np.float32)[..., None], 3, axis=-1)


def display_image(
    frame: np.ndarray,
    low: float = 1.0,
    high: float = 99.5,
    gamma: float = 1.0,
) -> np.ndarray:
    """8-bit grayscale rendering of a frame for the eye, with adjustable contrast.

    Parameters
    ----------
    frame : 2-D array of detector values.
    low, high : percentiles mapped to black and white.
    gamma : applied after the stretch; below 1 brightens faint signal.

    Returns
    -------
    ndarray of shape (H, W), uint8.
    """
    frame = np.asarray(frame, dtype=np.float64)
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"need 0 <= low < high <= 100, got low={low}, high={high}")
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    p_low, p_high = np.percentile(frame, [low, high])
    if p_high <= p_low:
        p_low, p_high = float(frame.min()), float(frame.max())
    if p_high <= p_low:
        return np.zeros(frame.shape, np.uint8)
    unit = np.clip((frame - p_low) / (p_high - p_low), 0.0, 1.0) ** gamma
    return np.round(unit * 255.0).astype(np.uint8)
