"""Prototypes of two input-pipeline changes, measured against segcore.data as it was (same outputs).

Both are in segcore since 2026-11-25 (``segcore.data._random_crop_and_augment``,
``segcore.preprocess.tf_histogram_percentiles``); this script is kept as the
record of how they were measured, and now compares segcore with itself.

    python bench/pipeline_prototypes.py
    python bench/pipeline_prototypes.py --frames 6 2 --batches 10 --no-record   # a quick look

1. Crop before stacking: ``segcore.data._random_crop_and_augment`` stacks the
   whole normalised frame with its mask (and ``_crop_origin`` lists every cosmic
   pixel of the frame) for every crop; the prototype slices frame and mask at the
   same origin first and lists cosmic pixels only when a crop around a cosmic is
   drawn. Same random numbers, so the batches must be identical (checked).
2. Histogram percentiles: ``segcore.preprocess.tf_normalize_frame`` sorts every
   pixel to find the 2nd and 98th percentiles; for integer frames of at most 16
   bits the same order statistics come from a 65536-bin histogram. Checked against
   the sort on the same frames.

The prototypes replace the private segcore functions for the duration of a
measurement only. Appends a section to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import common
from common import append_results, load_average, load_line, section_header, table, versions_line, wait_for_quiet

SEED = 5150


# --------------------------------------------------------------------------- #
# 1. Crop before stacking
# --------------------------------------------------------------------------- #


def crop_origin(seeds, mask, crop_size: int, cosmic_crop_fraction: float):
    """``segcore.data._crop_origin`` with the cosmic pixels listed only when they are needed."""
    import tensorflow as tf

    height, width = tf.shape(mask)[0], tf.shape(mask)[1]
    limit = tf.stack([height - crop_size + 1, width - crop_size + 1])
    uniform = tf.random.stateless_uniform([2], seeds[0], minval=0, maxval=tf.int32.max, dtype=tf.int32) % limit
    wants_cosmic = tf.random.stateless_uniform([], seeds[1]) < cosmic_crop_fraction

    def around_cosmic():
        cosmic_pixels = tf.cast(tf.where(mask > 0), tf.int32)
        count = tf.shape(cosmic_pixels)[0]

        def pick():
            index = tf.random.stateless_uniform([], seeds[2], minval=0, maxval=count, dtype=tf.int32)
            offset = tf.random.stateless_uniform([2], seeds[3], minval=0, maxval=crop_size, dtype=tf.int32)
            return tf.clip_by_value(cosmic_pixels[index] - offset, 0, limit - 1)

        return tf.cond(count > 0, pick, lambda: uniform)

    return tf.cond(wants_cosmic, around_cosmic, lambda: uniform)


def crop_and_augment(seed, frame, mask, crop_size: int, augment: bool, cosmic_crop_fraction: float = 0.0):
    """``segcore.data._random_crop_and_augment`` slicing frame and mask before stacking them."""
    import tensorflow as tf

    from segcore import data

    frame, mask = data._pad_to(frame, mask, crop_size)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=6)
    origin = crop_origin(seeds[:4], mask, crop_size, cosmic_crop_fraction)
    frame = tf.slice(frame, origin, [crop_size, crop_size])
    mask = tf.slice(mask, origin, [crop_size, crop_size])
    stacked = tf.stack([frame, tf.cast(mask, tf.float32)], axis=-1)
    if augment:
        stacked = tf.image.stateless_random_flip_left_right(stacked, seed=seeds[4])
        turns = tf.random.stateless_uniform([], seeds[5], minval=0, maxval=4, dtype=tf.int32)
        stacked = tf.image.rot90(stacked, k=turns)
    return data._to_model_input(stacked[..., 0], tf.cast(stacked[..., 1], tf.uint8))


def cached_rate(pairs, crop: int, fraction: float, batches: int):
    """Batches per second once the frames are cached, and the first batches (for the identity check)."""
    from segcore import data

    iterator = iter(data.train_dataset(pairs, crop_size=crop, batch_size=6, seed=0, cosmic_crop_fraction=fraction))
    first = [next(iterator) for _ in range(2 * -(-len(pairs) // 6))]
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches / (time.perf_counter() - started), first


def crop_rows(pairs, crops, fractions, batches):
    from segcore import data

    original = data._random_crop_and_augment
    rows = []
    for size, frame_pairs in pairs.items():
        for crop in crops:
            for fraction in fractions:
                try:
                    data._random_crop_and_augment = original
                    before, a = cached_rate(frame_pairs, crop, fraction, batches)
                    data._random_crop_and_augment = crop_and_augment
                    after, b = cached_rate(frame_pairs, crop, fraction, batches)
                finally:
                    data._random_crop_and_augment = original
                same = all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b))
                print(f"{size} crop {crop} fraction {fraction}: {before:.1f} -> {after:.1f} batches/s, same: {same}",
                      flush=True)
                rows.append([f"{size}x{size}", crop, fraction, f"{before:.1f}", f"{after:.1f}", f"{after / before:.1f}x",
                             "yes" if same else "NO"])
    return rows


# --------------------------------------------------------------------------- #
# 2. Histogram percentiles
# --------------------------------------------------------------------------- #


def normalize_by_histogram(frame):
    """``tf_normalize_frame`` for integer frames in [0, 65535], percentiles from a histogram."""
    import tensorflow as tf

    from segcore.preprocess import GAMMA, HIGH_PERCENTILE, LOW_PERCENTILE

    frame = tf.cast(frame, tf.float32)
    adjusted = tf.pow(tf.maximum(frame, 0.0), GAMMA)
    flat = tf.reshape(tf.cast(frame, tf.int32), [-1])
    cdf = tf.cumsum(tf.math.bincount(flat, minlength=65536, maxlength=65536))
    n = tf.cast(tf.size(flat), tf.float32)
    positions = tf.constant([LOW_PERCENTILE, HIGH_PERCENTILE], tf.float32) / 100.0 * (n - 1.0)
    lower = tf.floor(positions)
    upper = tf.minimum(lower + 1.0, n - 1.0)

    def order_statistic(k):  # the (k+1)-th smallest value, adjusted like the frame
        value = tf.cast(tf.searchsorted(cdf, tf.cast(k, tf.int32), side="right"), tf.float32)
        return tf.pow(tf.maximum(value, 0.0), GAMMA)

    lo, hi = order_statistic(lower), order_statistic(upper)
    bounds = lo + (hi - lo) * (positions - lower)
    p_low, p_high = bounds[0], bounds[1]
    stretched = tf.clip_by_value((adjusted - p_low) / tf.maximum(p_high - p_low, 1e-30), 0.0, 1.0)
    by_peak = tf.math.divide_no_nan(adjusted, tf.reduce_max(adjusted))
    return tf.where(p_high > p_low, stretched, by_peak) * 2.0 - 1.0


def percentile_rows(pairs, repeats: int):
    import tensorflow as tf

    from segcore.preprocess import tf_normalize_frame

    sort_fn, hist_fn = tf.function(tf_normalize_frame), tf.function(normalize_by_histogram)
    decode = tf.function(lambda path: tf.cast(
        tf.io.decode_png(tf.io.read_file(path), channels=1, dtype=tf.uint16)[..., 0], tf.float32))
    rows = []
    for size, frame_pairs in pairs.items():
        times = {"decode": [], "sort": [], "hist": []}
        worst = 0.0
        for image, _ in frame_pairs[:4]:
            path = tf.constant(str(image))
            frame = decode(path)
            worst = max(worst, float(tf.reduce_max(tf.abs(sort_fn(frame) - hist_fn(frame)))))
            for key, fn, arg in (("decode", decode, path), ("sort", sort_fn, frame), ("hist", hist_fn, frame)):
                fn(arg)
                runs = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    fn(arg).numpy()
                    runs.append(time.perf_counter() - started)
                times[key].append(float(np.median(runs)))
        decode_ms, sort_ms, hist_ms = (1000 * float(np.mean(times[k])) for k in ("decode", "sort", "hist"))
        print(f"{size}: decode {decode_ms:.1f} ms, sort {sort_ms:.1f} ms, histogram {hist_ms:.1f} ms, max diff {worst:.2g}",
              flush=True)
        rows.append([f"{size}x{size}", f"{decode_ms:.1f}", f"{sort_ms:.1f}", f"{hist_ms:.1f}", f"{sort_ms / hist_ms:.1f}x",
                     f"{(decode_ms + sort_ms) / (decode_ms + hist_ms):.1f}x", f"{worst:.2g}"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--frames", type=int, nargs="+", default=[30, 8])
    parser.add_argument("--crops", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.5], help="cosmic crop fractions")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--wait-quiet", type=float, default=0)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--results", default=str(common.RESULTS))
    args = parser.parse_args()

    from pipeline import make_dataset

    counts = args.frames if len(args.frames) > 1 else args.frames * len(args.sizes)
    root = Path(tempfile.mkdtemp(prefix="pipeline-prototypes-"))
    pairs = {size: make_dataset(root, size, n) for size, n in zip(args.sizes, counts)}
    load_before = wait_for_quiet(args.wait_quiet) if args.wait_quiet else load_average()
    crops = crop_rows(pairs, args.crops, args.fractions, args.batches)
    percentiles = percentile_rows(pairs, args.repeats)
    load_after = load_average()

    lines = section_header("Input pipeline prototypes: crop before stacking, histogram percentiles", "pipeline_prototypes.py")
    lines += [
        versions_line("numpy", "tensorflow"),
        load_line(load_before, load_after),
        "",
        f"Simulated 16-bit PNG frames (segcore.synth, seed {SEED}): "
        + ", ".join(f"{len(p)} of {s}x{s}" for s, p in pairs.items()) + ".",
        "",
        f"Crop before stacking (`segcore.data._random_crop_and_augment` / `_crop_origin`): batches of 6 per second "
        f"once the frames are cached, {args.batches} batches; 'same batches' compares the first two passes bit for bit.",
        "",
        *table(["frames", "crop", "cosmic crop fraction", "segcore (batches/s)", "prototype (batches/s)", "speed-up",
                "same batches"], crops),
        "",
        "Histogram percentiles (`segcore.preprocess.tf_normalize_frame`), ms per frame on the first 4 frames of each "
        "size; the first pass over uncached frames costs about decode + normalise per frame:",
        "",
        *table(["frames", "decode PNG (ms)", "normalise, sort (ms)", "normalise, histogram (ms)", "normalise speed-up",
                "decode + normalise speed-up", "max abs difference"], percentiles),
        "",
    ]
    if args.no_record:
        print("\n".join(lines))
    else:
        append_results(lines, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
