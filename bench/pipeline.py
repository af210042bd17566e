"""Input pipeline: training batches per second from segcore.data.train_dataset alone, against the training step rate.

    python bench/pipeline.py                                  # the recorded configuration
    python bench/pipeline.py --frames 6 2 --batches 10 --steps 1 --no-fit --no-record   # a quick look

For simulated datasets of 512x512 and 2048x2048 16-bit PNG frames, and crops of
256 and 512 (batch 6, augmentation on, as in training):

- the pipeline alone: batches per second on the first pass over the frames
  (PNG decoding, normalising, filling the in-memory cache) and afterwards
  (cached frames: random crop, flip, rotation, batching);
- the training step alone: steps per second of ``train_on_batch`` on one fixed
  batch, the model built and compiled as the trainer does (backbone_weights
  "none", the precision the trainer's "auto" picks here, Adam, the training metrics);
- ``model.fit`` fed by the real pipeline against ``model.fit`` fed by one batch
  repeated from memory: if the two step rates match, the model never waits for data.

Appends a section to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import common
from common import append_results, load_average, load_line, section_header, table, versions_line, wait_for_quiet

TARGET_FACTOR = 3.0
SEED = 5150


def make_dataset(root: Path, size: int, n: int) -> list:
    from segcore.data import pair_split
    from segcore.synth import generate_dataset

    folder = root / f"sim{size}"
    generate_dataset(folder, n_train=n, n_validation=0, n_test=0, size=size, seed=SEED, overwrite=True)
    return pair_split(folder, "Train").pairs


def pipeline_rate(pairs, crop: int, batch: int, batches: int) -> tuple[float, float]:
    """(batches/s on the first pass over the frames, batches/s once they are cached)."""
    from segcore.data import train_dataset

    dataset = train_dataset(pairs, crop_size=crop, batch_size=batch, seed=0)
    iterator = iter(dataset)
    first_pass = max(1, -(-len(pairs) // batch))
    started = time.perf_counter()
    for _ in range(first_pass):
        next(iterator)
    cold = first_pass / (time.perf_counter() - started)
    for _ in range(first_pass):  # the cache holds every frame once a whole pass has gone through
        next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    warm = batches / (time.perf_counter() - started)
    return cold, warm


def build_model():
    """DeepLabV3+ compiled as segcore.trainer does, under the precision its "auto" picks here."""
    import keras

    from segcore.model import build_deeplabv3plus
    from segcore.precision import resolve_precision
    from segcore.trainer import _compile

    keras.mixed_precision.set_global_policy(resolve_precision("auto"))
    model, _ = build_deeplabv3plus(backbone_weights="none")
    _compile(model, 1e-4)
    keras.mixed_precision.set_global_policy("float32")
    return model


def step_rate(model, crop: int, batch: int, steps: int) -> float:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch, crop, crop, 3)).astype(np.float32)
    y = (rng.random((batch, crop, crop, 1)) > 0.995).astype(np.uint8)
    model.train_on_batch(x, y)  # trace
    model.train_on_batch(x, y)
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps / (time.perf_counter() - started)


def fit_rates(model, pairs, crop: int, batch: int, steps: int) -> tuple[float, float]:
    """Steps per second of model.fit on the real pipeline and on one batch repeated from memory.

    Timed between the ends of the first and the last step of one fit call, so
    the call's own set-up does not count.
    """
    import keras
    import tensorflow as tf

    from segcore.data import train_dataset

    class StepClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    real = train_dataset(pairs, crop_size=crop, batch_size=batch, seed=0)
    one = next(iter(real))
    constant = tf.data.Dataset.from_tensors(one).repeat()
    rates = []
    for dataset in (real, constant):
        model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)  # trace, fill the cache
        clock = StepClock()
        model.fit(dataset, steps_per_epoch=steps + 1, epochs=1, verbose=0, callbacks=[clock])
        rates.append(steps / (clock.ends[-1] - clock.ends[0]))
    return rates[0], rates[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--frames", type=int, nargs="+", default=[60, 8], help="frames per size (one number or one per size)")
    parser.add_argument("--crops", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--batches", type=int, default=100, help="batches timed once the cache is full")
    parser.add_argument("--steps", type=int, default=3, help="training steps timed per crop")
    parser.add_argument("--no-fit", action="store_true", help="skip the model.fit comparison")
    parser.add_argument("--data-dir", help="where to write the simulated frames (default: a temporary folder)")
    parser.add_argument("--wait-quiet", type=float, default=0)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--results", default=str(common.RESULTS))
    args = parser.parse_args()

    warnings.filterwarnings("ignore", message=".*shuffle.*")
    counts = args.frames if len(args.frames) > 1 else args.frames * len(args.sizes)
    root = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="pipeline-"))
    print(f"simulating frames in {root} ...", flush=True)
    pairs = {size: make_dataset(root, size, n) for size, n in zip(args.sizes, counts)}

    load_before = wait_for_quiet(args.wait_quiet) if args.wait_quiet else load_average()
    data_rates = {}
    for size in args.sizes:
        for crop in args.crops:
            data_rates[(size, crop)] = pipeline_rate(pairs[size], crop, args.batch, args.batches)
            print(f"pipeline {size} frames, crop {crop}: first pass {data_rates[(size, crop)][0]:.2f} batches/s, "
                  f"cached {data_rates[(size, crop)][1]:.2f} batches/s", flush=True)
    from segcore.precision import resolve_precision

    precision = resolve_precision("auto")
    model = build_model()
    steps = {}
    for crop in args.crops:
        steps[crop] = step_rate(model, crop, args.batch, args.steps)
        print(f"train_on_batch crop {crop}: {steps[crop]:.3f} steps/s ({1 / steps[crop]:.2f} s/step)", flush=True)
    fits = {}
    if not args.no_fit:
        for crop in args.crops:
            size = args.sizes[0]
            fits[(size, crop)] = fit_rates(model, pairs[size], crop, args.batch, args.steps)
            print(f"fit crop {crop} on {size} frames: real pipeline {fits[(size, crop)][0]:.3f} steps/s, "
                  f"batch from memory {fits[(size, crop)][1]:.3f} steps/s", flush=True)
    load_after = load_average()

    lines = section_header("Training input pipeline against the training step", "pipeline.py")
    lines += [
        versions_line("numpy", "tensorflow", "keras"),
        load_line(load_before, load_after),
        "",
        "Simulated 16-bit PNG frames (segcore.synth, seed %d): %s. `segcore.data.train_dataset` with batch %d, "
        "augmentation on, frames cached in memory after the first pass. Training step: DeepLabV3+ built and compiled "
        "as `segcore.trainer` does (backbone weights none, %s: the trainer's 'auto' here), `train_on_batch` on one fixed batch, %d steps "
        "timed after 2 untimed ones."
        % (SEED, ", ".join(f"{len(p)} of {s}x{s}" for s, p in pairs.items()), args.batch, precision, args.steps),
        "",
    ]
    rows, verdicts = [], []
    for (size, crop), (cold, warm) in data_rates.items():
        need = steps[crop]
        factor = warm / need
        ok = factor >= TARGET_FACTOR
        rows.append([f"{size}x{size}", crop, f"{cold:.2f}", f"{warm:.2f}", f"{need:.3f} ({1 / need:.2f} s/step)",
                     f"{factor:.0f}x" if factor >= 10 else f"{factor:.1f}x",
                     f"{cold / need:.0f}x" if cold / need >= 10 else f"{cold / need:.1f}x"])
        verdicts.append((size, crop, factor, cold / need, ok))
    lines += table(["frames", "crop", "pipeline alone, first pass (batches/s)", "pipeline alone, cached (batches/s)",
                    "training steps/s", "pipeline / step rate (cached)", "pipeline / step rate (first pass)"], rows)
    lines.append("")
    if fits:
        lines += ["`model.fit` step rate fed by the real pipeline against one batch repeated from memory "
                  f"({args.steps} steps timed inside one fit call, after a first fit call of 2 steps):", ""]
        lines += table(["frames", "crop", "real pipeline (steps/s)", "batch from memory (steps/s)", "ratio"],
                       [[f"{s}x{s}", c, f"{r:.3f}", f"{m:.3f}", f"{r / m:.2f}"] for (s, c), (r, m) in fits.items()])
        lines.append("")
    worst = min(verdicts, key=lambda v: v[2])
    lines.append(
        f"Target: pipeline at least {TARGET_FACTOR:.0f}x faster than the training step consumes: "
        f"{'met' if all(v[4] for v in verdicts) else 'MISSED'} (smallest margin {worst[2]:.1f}x, "
        f"{worst[0]}x{worst[0]} frames with crop {worst[1]}, cached frames; first pass over uncached frames at least "
        f"{min(v[3] for v in verdicts):.1f}x)."
    )
    lines.append("")
    if args.no_record:
        print("\n".join(lines))
    else:
        append_results(lines, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
