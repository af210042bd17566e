"""The network's input recipes, and display scaling for 16-bit frames.

Four recipes turn a frame of detector values into the network's 3 channels:

``stretch`` (the original script's, kept for models trained before recipes)
    gamma 1.1, a contrast stretch between the 2nd and 98th percentiles of the
    whole frame, scaled to [-1, 1] and repeated over the 3 channels. Everything
    above the 98th percentile (cosmics, Bragg spots, rings) is clipped flat.

``stretch_log_excess`` (the default before counting frames got their own rule)
    channel 0 is the original stretch; channel 1 the counts above the frame's
    2nd percentile on a log scale, which keeps the profile of bright features;
    channel 2 the local excess over a 5x5 median background in units of the
    noise expected at that background level (the quantity LA Cosmic thresholds),
    compressed with asinh. The noise is measured on the frame itself: pixels are
    binned by background level, each bin's spread is the scaled median absolute
    residual, and the spread is interpolated between bins, so no gain or read
    noise has to be known.

``stretch_log_count_excess``
    as above, but on sparse photon-counting frames (noise below one count)
    channel 2 is the Poisson significance of each counted pixel's 3x3
    neighbourhood (:func:`count_significance`).

``stretch_log_count_excess_full_range``
    as above, with the noise measured up to the brightest pixels: the 16 bins
    of equal size put everything above the 97th percentile in one bin, so Bragg
    spots, ring peaks and a beam's halo took the noise of much darker pixels
    and their own photon noise read as excess of tens to hundreds of sigma.
    The brightest bin is now halved down to a few hundred pixels, and above
    the brightest level the variance grows linearly with level (photon noise).

The NumPy and TensorFlow versions of the stretch compute the same numbers; the
other channels exist once, in TensorFlow, and run inside ``tf.data`` graphs
during training and eagerly at inference, so both see identical inputs.
"""

from __future__ import annotations

import numpy as np

GAMMA = 1.1
LOW_PERCENTILE = 2.0
HIGH_PERCENTILE = 98.0

LEGACY_RECIPE = "stretch"
EXCESS_RECIPE = "stretch_log_excess"
COUNT_EXCESS_RECIPE = "stretch_log_count_excess"
FULL_RANGE_RECIPE = "stretch_log_count_excess_full_range"
DEFAULT_RECIPE = COUNT_EXCESS_RECIPE
INPUT_RECIPES = (LEGACY_RECIPE, EXCESS_RECIPE, COUNT_EXCESS_RECIPE, FULL_RANGE_RECIPE)
#: Side of the median filter that estimates the local background.
BACKGROUND_WINDOW = 5
#: Background levels at which the noise is measured.
NOISE_BINS = 16
#: With the full range measured, the brightest bin is halved while each half keeps this many pixels.
TAIL_MIN_PIXELS = 256
#: Scaled median absolute deviation -> standard deviation for Gaussian noise.
MAD_TO_SIGMA = 1.4826
#: Smallest noise of an integer-valued frame: one count cannot be resolved further.
INTEGER_NOISE_FLOOR = 0.5
#: Measured noise below this (in counts) marks a sparse counting frame.
COUNTING_NOISE = 1.0
#: Side of the window over which a counting frame's expected counts per pixel are averaged.
COUNT_RATE_WINDOW = 31
#: Clusters at least this significant (in Gaussian sigmas) are left out of the expected counts.
CLUSTER_SIGMAS = 3.0
#: Significances are clipped to +-SIGNIFICANCE_LIMIT (a Poisson tail can underflow to 0).
SIGNIFICANCE_LIMIT = 40.0
#: Excess z (in noise units) enters as asinh(z / EXCESS_SOFTENING) / EXCESS_SPAN.
EXCESS_SOFTENING = 2.0
EXCESS_SPAN = 3.0
#: Counts enter as log1p(counts above the 2nd percentile) / log(2**16), mapped to [-1, 1].
LOG_SPAN = float(np.log(65536.0))


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
    bounds = tf.cond(
        _is_integral(frame),
        lambda: tf_histogram_percentiles(frame, [low, high], transform=adjust),
        lambda: tf_percentiles(adjusted, [low, high]),
    )
    p_low, p_high = bounds[0], bounds[1]
    peak = tf.reduce_max(adjusted)
    stretched = tf.clip_by_value((adjusted - p_low) / tf.maximum(p_high - p_low, 1e-30), 0.0, 1.0)
    by_peak = tf.math.divide_no_nan(adjusted, peak)
    unit = tf.where(p_high > p_low, stretched, by_peak)
    return unit * 2.0 - 1.0


def _is_integral(frame):
    """True (as a tensor) when every value is a whole number in [0, HISTOGRAM_LEVELS)."""
    import tensorflow as tf

    return tf.reduce_all(
        [tf.reduce_all(frame == tf.round(frame)), tf.reduce_min(frame) >= 0.0, tf.reduce_max(frame) < HISTOGRAM_LEVELS]
    )


def median_background(frame: np.ndarray, size: int = BACKGROUND_WINDOW) -> np.ndarray:
    """Median over a size x size window (size 3 or 5), the border pixels repeated.

    Equals ``scipy.ndimage.median_filter(frame, size, mode="nearest")``; OpenCV
    computes it about 200x faster than a median in TensorFlow.
    """
    import cv2

    return cv2.medianBlur(np.ascontiguousarray(frame, np.float32), size)


def noise_profile(background: np.ndarray, residual: np.ndarray, bins: int = NOISE_BINS, max_samples: int = 2**20,
                  full_range: bool = False):
    """Noise against background level, measured on the frame.

    Frames of more than ``max_samples`` pixels are measured on a regular
    sub-grid of about that many. Pixels are sorted by background and cut into
    ``bins`` groups of equal size (the fewer than ``bins`` left over at the top
    are left out); each group gives a level (its middle background value) and a
    spread (MAD_TO_SIGMA times the middle of its sorted absolute residuals).
    The spread is made non-decreasing with level, as photon noise is.

    With ``full_range`` the brightest group is halved again and again (its
    brighter half becoming a group of its own) while each half keeps
    TAIL_MIN_PIXELS pixels, so Bragg spots, ring peaks and a beam's halo, a few
    percent of a frame, get their own noise instead of that of the 97th
    percentile.

    Returns
    -------
    (levels, sigmas): two float64 arrays of equal length, levels sorted.
    """
    stride = max(1, int(np.ceil(np.sqrt(background.size / max_samples))))
    levels = np.asarray(background, np.float64)[::stride, ::stride].ravel()
    spreads = np.abs(np.asarray(residual, np.float64)[::stride, ::stride].ravel())
    per_bin = levels.size // bins
    if per_bin == 0:
        raise ValueError(f"need at least {bins} pixels to measure the noise, got {levels.size}")
    order = np.argsort(levels, kind="stable")
    levels, spreads = levels[order], spreads[order]
    starts = list(range(0, per_bin * bins, per_bin))
    end = levels.size if full_range else per_bin * bins
    while full_range and (end - starts[-1]) // 2 >= TAIL_MIN_PIXELS:
        starts.append(starts[-1] + (end - starts[-1]) // 2)
    groups = list(zip(starts, starts[1:] + [end]))
    middles = [(b - a) // 2 for a, b in groups]
    sigmas = [np.partition(spreads[a:b], m)[m] for (a, b), m in zip(groups, middles)]
    return levels[[a + m for (a, _), m in zip(groups, middles)]], np.maximum.accumulate(MAD_TO_SIGMA * np.array(sigmas))


def noise_at(background: np.ndarray, levels: np.ndarray, sigmas: np.ndarray, extrapolate: bool = False) -> np.ndarray:
    """The noise profile at each background value: interpolated between levels.

    Above the top level it stays at the top spread, or with ``extrapolate`` its
    variance grows on linearly with level (photon noise: the photon transfer
    curve), at the slope of the variance over the upper half of the profile.
    """
    noise = np.interp(background, levels, sigmas)
    if extrapolate and levels.size >= 2:
        upper = slice(levels.size // 2, None)
        span = levels[upper][-1] - levels[upper][0]
        slope = max(0.0, np.polyfit(levels[upper], sigmas[upper] ** 2, 1)[0]) if span > 0 else 0.0
        above = background > levels[-1]
        if slope > 0 and above.any():
            noise = np.where(above, np.sqrt(sigmas[-1] ** 2 + slope * np.maximum(background - levels[-1], 0.0)), noise)
    return noise


def _noise_model(frame: np.ndarray, full_range: bool = False):
    """(frame as float32, 5x5 median background, noise at each pixel before any floor, integral?)."""
    frame = np.asarray(frame, np.float32)
    background = median_background(frame)
    levels, sigmas = noise_profile(background, frame - background, full_range=full_range)
    integral = bool(np.all(frame == np.round(frame)))
    return frame, background, noise_at(background, levels, sigmas, extrapolate=full_range), integral


def excess_significance(frame: np.ndarray, counting: bool = False, full_range: bool = False) -> np.ndarray:
    """Local excess of a 2-D frame over its 5x5 median background, in noise units.

    The noise at each pixel is :func:`noise_profile` (``full_range`` as given)
    at its background level (:func:`noise_at`, extrapolated with ``full_range``),
    at least INTEGER_NOISE_FLOOR for integer-valued frames.
    With ``counting``, pixels of an integer frame whose noise is below
    COUNTING_NOISE take :func:`count_significance` instead (clipped at 0).

    Returns
    -------
    (H, W) float32: (frame - background) / noise(background).
    """
    frame, background, noise, integral = _noise_model(frame, full_range)
    floor = INTEGER_NOISE_FLOOR if integral else 1e-6 * float(np.abs(frame).max()) + 1e-12
    excess = (frame - background) / np.maximum(noise, floor)
    if counting and integral:
        sparse = noise < COUNTING_NOISE
        if sparse.any():
            excess = np.where(sparse, np.maximum(count_significance(frame), 0.0), excess)
    return excess.astype(np.float32)


def poisson_significance(counts: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """P(Poisson(expected) >= counts) as a one-sided Gaussian z, for counts >= 1; clipped to +-SIGNIFICANCE_LIMIT."""
    from scipy.special import gammainc, ndtri

    chance = gammainc(np.asarray(counts, np.float64), np.asarray(expected, np.float64))
    return np.clip(-ndtri(chance), -SIGNIFICANCE_LIMIT, SIGNIFICANCE_LIMIT)


def count_significance(frame: np.ndarray, window: int = COUNT_RATE_WINDOW) -> np.ndarray:
    """Significance of the counts around each counted pixel of a photon-counting frame.

    For a pixel holding counts, S is the sum of counts in its 3x3 neighbourhood
    and the returned z is :func:`poisson_significance` of S against 9 lambda,
    lambda being the counts expected per pixel: the mean over the in-frame
    pixels of a window x window box, with half a count of prior, leaving out the 3x3 neighbourhoods
    of clusters at least CLUSTER_SIGMAS significant on a first pass, so a cosmic
    does not raise its own expectation. Pixels without counts get 0.
    """
    import cv2

    counts = np.asarray(frame, np.float64)
    counted = counts > 0
    z = np.zeros(counts.shape, np.float64)
    if not counted.any():
        return z.astype(np.float32)

    def box_sum(values, side):
        # nothing is counted beyond the edges: sums over in-frame pixels only
        return cv2.boxFilter(values, -1, (side, side), normalize=False, borderType=cv2.BORDER_CONSTANT)

    neighbourhood = box_sum(counts, 3)[counted]

    def significance(keep):
        expected = (box_sum(counts * keep, window) + 0.5) / (box_sum(keep, window) + 1.0)
        z[counted] = poisson_significance(neighbourhood, 9.0 * expected[counted])

    significance(np.ones_like(counts))
    # Second pass: the clusters the first one found, with their neighbours, leave the expectation.
    clusters = (z >= CLUSTER_SIGMAS).astype(np.uint8)
    significance(1.0 - cv2.dilate(clusters, np.ones((3, 3), np.uint8)).astype(np.float64))
    return z.astype(np.float32)


def _excess_channel(frame: np.ndarray) -> np.ndarray:
    return _compress(excess_significance(frame))


def _count_excess_channel(frame: np.ndarray) -> np.ndarray:
    return _compress(excess_significance(frame, counting=True))


def _full_range_channel(frame: np.ndarray) -> np.ndarray:
    return _compress(excess_significance(frame, counting=True, full_range=True))


#: The excess channel of each recipe that has one.
EXCESS_CHANNELS = {
    EXCESS_RECIPE: _excess_channel,
    COUNT_EXCESS_RECIPE: _count_excess_channel,
    FULL_RANGE_RECIPE: _full_range_channel,
}


def _compress(z: np.ndarray) -> np.ndarray:
    return (np.arcsinh(z / EXCESS_SOFTENING) / EXCESS_SPAN).astype(np.float32)


def tf_log_counts(frame):
    """Counts above the frame's 2nd percentile on a log scale: 0 counts -> -1, 65535 counts -> 1."""
    import tensorflow as tf

    frame = tf.cast(frame, tf.float32)
    floor = tf.cond(
        _is_integral(frame),
        lambda: tf_histogram_percentiles(frame, [LOW_PERCENTILE])[0],
        lambda: tf_percentiles(frame, [LOW_PERCENTILE])[0],
    )
    return tf.math.log1p(tf.maximum(frame - floor, 0.0)) / LOG_SPAN * 2.0 - 1.0


def tf_network_input(frame, recipe: str = DEFAULT_RECIPE):
    """(H, W) frame of detector values -> (H, W, 3) float32 network input under ``recipe``."""
    import tensorflow as tf

    check_recipe(recipe)
    frame = tf.cast(frame, tf.float32)
    stretched = tf_normalize_frame(frame)
    if recipe == LEGACY_RECIPE:
        return tf.repeat(stretched[..., None], 3, axis=-1)
    # One implementation (OpenCV) for training and inference, called from the graph.
    channel = EXCESS_CHANNELS[recipe]
    excess = tf.ensure_shape(tf.numpy_function(channel, [frame], tf.float32), frame.shape)
    excess = tf.reshape(excess, tf.shape(frame))
    return tf.stack([stretched, tf_log_counts(frame), excess], axis=-1)


def network_input(frame: np.ndarray, recipe: str = DEFAULT_RECIPE) -> np.ndarray:
    """NumPy in, NumPy out: the (H, W, 3) float32 network input of a 2-D frame.

    ``stretch`` runs in NumPy, exactly as models trained before recipes saw it;
    the other recipes run :func:`tf_network_input`, as training does.
    """
    check_recipe(recipe)
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise ValueError(f"frame must be 2-D, got shape {frame.shape}")
    if recipe == LEGACY_RECIPE:
        return to_network_input(normalize_frame(frame))
    return tf_network_input(np.asarray(frame, np.float32), recipe).numpy()


def check_recipe(recipe: str) -> str:
    if recipe not in INPUT_RECIPES:
        raise ValueError(f"unknown input recipe {recipe!r}; expected one of {', '.join(INPUT_RECIPES)}")
    return recipe


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
