"""Training speed: seconds per step by crop, frozen backbone, precision; and time to reach F1 0.85.

    python bench/training_speed.py                         # seconds per step, the recorded configuration
    python bench/training_speed.py --crops 64 --steps 1 --no-record      # a quick look
    python bench/training_speed.py --time-to-f1 --minutes 45              # train until test F1 >= 0.85

Seconds per step: DeepLabV3+ built and compiled as ``segcore.trainer`` does
(backbone_weights "none": the weights do not change the speed), one fixed batch
of 6 crops, ``train_on_batch`` timed for ``--steps`` steps after 2 untimed ones;
crops 256 and 512, backbone frozen (``freeze_backbone=True``) or not, float32
and mixed_bfloat16, and XLA (``jit_compile=True``, which Keras leaves off on CPUs).

``--time-to-f1``: trains with bench/quality.py's configuration and, after every
epoch, evaluates the epoch's checkpoint on the simulated test split; reports the
training time (evaluation excluded) when the pooled pixel F1 first reaches 0.85.

Appends a section to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import common
from common import append_results, load_average, load_line, section_header, table, versions_line, wait_for_quiet

TARGET_F1 = 0.85


# --------------------------------------------------------------------------- #
# Seconds per step
# --------------------------------------------------------------------------- #


def seconds_per_step(crop: int, batch: int, frozen: bool, policy: str, jit: bool, steps: int,
                     logits_first: bool = False) -> tuple[float, float, int]:
    """(seconds per step, seconds of the first step incl. tracing, trainable parameters)."""
    import keras

    from segcore.model import build_deeplabv3plus, count_parameters
    from segcore.trainer import _compile

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model, _ = build_deeplabv3plus(backbone_weights="none", freeze_backbone=frozen)
        if logits_first:
            from variants import logits_before_upsampling

            model = logits_before_upsampling(model)
        _compile(model, 1e-4)
        if jit:
            model.jit_compile = True
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (batch, crop, crop, 3)).astype(np.float32)
        y = (rng.random((batch, crop, crop, 1)) > 0.995).astype(np.uint8)
        started = time.perf_counter()
        model.train_on_batch(x, y)
        first = time.perf_counter() - started
        model.train_on_batch(x, y)
        started = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        return (time.perf_counter() - started) / steps, first, count_parameters(model, trainable_only=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def step_grid(args) -> list[str]:
    configs = []
    graphs = {"default": (False,), "logits-first": (True,), "both": (False, True)}[args.graph]
    for crop in args.crops:
        for logits_first in graphs:
            for frozen in (False, True):
                for policy in ("float32", "mixed_bfloat16"):
                    configs.append((crop, frozen, policy, False, logits_first))
        if not args.no_xla and crop in args.xla_crops and False in graphs:
            configs.append((crop, False, "float32", True, False))
    load_before = wait_for_quiet(args.wait_quiet) if args.wait_quiet else load_average()
    results = {}
    for crop, frozen, policy, jit, logits_first in configs:
        key = (crop, frozen, policy, jit, logits_first)
        try:
            sec, first, params = seconds_per_step(crop, args.batch, frozen, policy, jit, args.steps, logits_first)
        except Exception as exc:  # e.g. XLA running out of memory
            message = str(exc).strip().splitlines()[0][:160]
            results[key] = (float("nan"), float("nan"), 0, f"{type(exc).__name__}: {message}")
            print(f"crop {crop}, {policy}{', XLA' if jit else ''}: failed ({message})", flush=True)
            continue
        results[key] = (sec, first, params, "")
        print(f"crop {crop}, {'frozen' if frozen else 'trainable'} backbone, {policy}{', XLA' if jit else ''}"
              f"{', logits first' if logits_first else ''}: "
              f"{sec:.2f} s/step (first step {first:.1f} s)", flush=True)
    load_after = load_average()

    lines = section_header("Training speed on the CPU", "training_speed.py")
    lines += [
        versions_line("numpy", "tensorflow", "keras"),
        load_line(load_before, load_after),
        "",
        f"DeepLabV3+ (ResNet50, random backbone weights) compiled as `segcore.trainer` does; one fixed batch of "
        f"{args.batch} crops; seconds per `train_on_batch` step, mean of {args.steps} steps after 2 untimed ones "
        "(the first includes tracing). Speed-up against segcore's graph in float32 with the backbone trainable at the same "
        "crop (n/a when that was not in this run). 'logits before upsampling': the same layers with the 1x1 logits "
        "convolution applied at stride 4 and its 2 channels upsampled (bench/variants.py; same function).",
        "",
    ]
    rows = []
    for (crop, frozen, policy, jit, logits_first), (sec, first, params, error) in results.items():
        base_key = (crop, False, "float32", False, False)
        base = results[base_key][0] if base_key in results else float("nan")
        graph = "logits before upsampling" if logits_first else "segcore's"
        if error:
            rows.append([crop, graph, "frozen" if frozen else "trainable", policy + (" + XLA" if jit else ""),
                         f"failed: {error}", "", "", "", ""])
            continue
        rows.append([crop, graph, "frozen" if frozen else "trainable", policy + (" + XLA" if jit else ""),
                     f"{sec:.2f}", f"{base / sec:.2f}x" if base == base else "n/a", f"{first:.0f}",
                     f"{params / 1e6:.1f} M", f"{args.batch / sec:.2f}"])
    lines += table(["crop", "graph", "backbone", "precision", "s per step", "speed-up", "first step (s)",
                    "trainable parameters", "crops per second"], rows)
    lines.append("")
    skipped = [c for c in args.crops if c not in args.xla_crops and not args.no_xla]
    if skipped:
        lines += [f"XLA is not timed at crop {', '.join(map(str, skipped))}: in an earlier run on this machine its "
                  "compiled training step asked for 18 GiB at crop 512 and ran out of memory (23 GiB RAM).", ""]
    return lines


# --------------------------------------------------------------------------- #
# Time to F1 0.85
# --------------------------------------------------------------------------- #


def time_to_f1(args) -> list[str]:
    from segcore.data import pair_split
    from segcore.evaluator import evaluate_pairs
    from segcore.listeners import CancelToken, ConsoleProgress, TrainingListener
    from segcore.model import load_model
    from segcore.synth import generate_dataset
    from segcore.trainer import TrainConfig, train

    out = Path(args.out)
    data_dir = out / "data"
    out.mkdir(parents=True, exist_ok=True)
    wanted = dict(n_train=300, n_validation=20, n_test=60, size=512, seed=0)
    marker = data_dir / "synth.json"
    if not (marker.exists() and json.loads(marker.read_text()) == wanted):
        print("simulating the quality benchmark's dataset ...", flush=True)
        generate_dataset(data_dir, overwrite=True, **wanted)
        marker.write_text(json.dumps(wanted))
    test_pairs = pair_split(data_dir, "Test").pairs[: args.n_eval]
    config = TrainConfig(
        data_dir=str(data_dir), out=str(out / "model.keras"), crop_size=args.f1_crop, batch_size=args.batch,
        epochs=100, learning_rate=5e-4, steps_per_epoch=args.steps_per_epoch, backbone_weights=args.backbone_weights, seed=0,
        mixed_precision=args.precision, time_limit_minutes=args.minutes,
        # As bench/quality.py: with cross-entropy alone the network predicts no cosmic for many epochs.
        loss="dice_cross_entropy", cosmic_crop_fraction=0.5, separable=args.separable,
    )
    cancel = CancelToken()

    class F1Watch(TrainingListener):
        def __init__(self):
            self.started = time.perf_counter()
            self.evaluating = 0.0
            self.history = []
            self.reached = None

        def on_epoch_end(self, epoch, logs):
            begun = time.perf_counter()
            train_seconds = begun - self.started - self.evaluating
            model = load_model(config.checkpoints / "last.keras", compile=False)
            f1 = evaluate_pairs(model, test_pairs).pooled["f1"]
            self.history.append((epoch + 1, train_seconds, f1))
            print(f"epoch {epoch + 1}: {train_seconds / 60:.1f} min of training, test pooled F1 {f1:.4f}", flush=True)
            if f1 >= TARGET_F1 and self.reached is None:
                self.reached = (epoch + 1, train_seconds, f1)
                cancel.cancel()
            self.evaluating += time.perf_counter() - begun

    watch = F1Watch()
    load_before = load_average()
    end = train(config, listeners=[ConsoleProgress(), watch], cancel=cancel)
    load_after = load_average()

    lines = section_header("Training time to pooled pixel F1 0.85", "training_speed.py")
    lines += [
        versions_line("numpy", "tensorflow", "keras"),
        load_line(load_before, load_after),
        "",
        f"Training as bench/quality.py records it: 300 simulated 512x512 training frames (seed 0), crop "
        f"{args.f1_crop}, batch {args.batch}, learning rate 5e-4, {args.steps_per_epoch} steps per epoch, backbone weights "
        f"`{end.backbone_weights}`, loss dice_cross_entropy, half the crops around a cosmic, "
        f"{'separable' if args.separable else 'standard'} convolutions, precision {args.precision} ({end.precision}), "
        f"limit {args.minutes} min. After each epoch the "
        f"checkpoint is evaluated on the first {len(test_pairs)} test frames (threshold 0.5); the time is training "
        "wall time with the evaluations taken out.",
        "",
    ]
    lines += table(["epoch", "training minutes", "test pooled F1"],
                   [[e, f"{s / 60:.1f}", f"{f:.4f}"] for e, s, f in watch.history])
    lines.append("")
    if watch.reached:
        e, s, f = watch.reached
        lines.append(f"Reached F1 {f:.4f} >= {TARGET_F1} after epoch {e}: **{s / 60:.1f} min** of training.")
    else:
        best = max((f for _, _, f in watch.history), default=float("nan"))
        lines.append(f"F1 {TARGET_F1} NOT reached within {args.minutes} min ({end.stop_reason}); best test F1 {best:.4f}.")
    lines.append("")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crops", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--no-xla", action="store_true")
    parser.add_argument("--graph", choices=["default", "logits-first", "both"], default="both",
                        help="segcore's decoder, the logits convolution moved before the last upsampling, or both")
    parser.add_argument("--xla-crops", type=int, nargs="*", default=[256],
                        help="crops also timed with XLA (at 512 XLA asked for 18 GiB and ran out of memory here)")
    parser.add_argument("--time-to-f1", action="store_true", help="train until the test F1 reaches 0.85 instead")
    parser.add_argument("--minutes", type=float, default=45.0, help="time limit of --time-to-f1")
    parser.add_argument("--f1-crop", type=int, default=128)
    parser.add_argument("--steps-per-epoch", type=int, default=150)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--separable", action="store_true", help="time to F1 of the separable-convolution model")
    parser.add_argument("--backbone-weights", default="imagenet")
    parser.add_argument("--n-eval", type=int, default=30, help="test frames evaluated after each epoch")
    parser.add_argument("--out", default=str(common.ROOT / "bench" / "out" / "time_to_f1"))
    parser.add_argument("--wait-quiet", type=float, default=0)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--results", default=str(common.RESULTS))
    args = parser.parse_args()

    lines = time_to_f1(args) if args.time_to_f1 else step_grid(args)
    if args.no_record:
        print("\n".join(lines))
    else:
        append_results(lines, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
