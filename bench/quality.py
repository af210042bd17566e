"""Quality benchmark: simulate a dataset, train on the CPU under a time limit, evaluate.

    python bench/quality.py                      # the recorded configuration
    python bench/quality.py --minutes 5 --n-train 40 --n-test 10   # a quick look

Writes ``<out>/result.json`` and appends a section to ``bench/RESULTS.md`` with the
command that produced it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import cpu_flags, cpu_name  # noqa: E402
from segcore.data import pair_split  # noqa: E402
from segcore.listeners import ConsoleProgress  # noqa: E402
from segcore.synth import generate_dataset  # noqa: E402
from segcore.trainer import TrainConfig, train  # noqa: E402

TARGETS = {"pooled_f1": 0.90, "count_score": 0.9}
#: CPU flags that decide the arithmetic (see segcore.precision), recorded with every figure.
ARITHMETIC_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


class StepTimer(ConsoleProgress):
    """Console progress that also counts training steps, for the speed the run actually got."""

    def __init__(self):
        super().__init__()
        self.steps = 0

    def on_batch_end(self, epoch, step, steps, logs):
        super().on_batch_end(epoch, step, steps, logs)
        self.steps += 1


def simulate(args, data_dir: Path) -> None:
    marker = data_dir / "synth.json"
    wanted = dict(
        n_train=args.n_train, n_validation=args.n_validation, n_test=args.n_test, size=args.size, seed=args.data_seed
    )
    if marker.exists():
        if json.loads(marker.read_text()) != wanted:
            sys.exit(f"{data_dir} holds other simulated frames ({marker.read_text().strip()}); "
                     f"ask for those (--data-seed, --n-*) or give another --data folder")
        print(f"reusing simulated data in {data_dir}")
        return
    if data_dir.exists() and any(data_dir.iterdir()):
        sys.exit(f"{data_dir} is not empty and was not simulated by this benchmark; give an empty or new --data folder")
    from tqdm import tqdm

    total = args.n_train + args.n_validation + args.n_test
    with tqdm(total=total, desc="simulating", unit="frame") as bar:
        generate_dataset(data_dir, progress=lambda done, _: bar.update(done - bar.n), overwrite=True, **wanted)
    marker.write_text(json.dumps(wanted))


def evaluate(model_path: Path, data_dir: Path, threshold: float | None) -> dict:
    from tqdm import tqdm

    from segcore.evaluator import evaluate_pairs
    from segcore.inference import load_inference_model, predict_probabilities

    from segcore.io import read_frame

    # segcore's defaults: the model prepared for this machine's precision, default tiles.
    model = load_inference_model(model_path)
    pairs = pair_split(data_dir, "Test").pairs
    frame = read_frame(pairs[0][0])
    predict_probabilities(model, frame)  # trace the graph once before timing
    started = time.perf_counter()
    repeats = 5
    for _ in range(repeats):
        predict_probabilities(model, frame)
    seconds_per_frame = (time.perf_counter() - started) / repeats
    with tqdm(total=len(pairs), desc="evaluating", unit="frame") as bar:
        result = evaluate_pairs(model, pairs, threshold=threshold, progress=lambda done, _: bar.update(done - bar.n))
    summary = result.to_json_dict()
    summary["threshold"] = result.threshold
    summary["seconds_per_frame"] = seconds_per_frame
    summary["frame_shape"] = list(frame.shape)
    summary["object_recall"] = float(result.per_image["object_recall"].mean())
    summary["object_precision"] = float(result.per_image["object_precision"].mean())
    summary["true_count_total"] = int(result.per_image["true_count"].sum())
    summary["pred_count_total"] = int(result.per_image["pred_count"].sum())
    return summary


def record(args, config, end, scores: dict, train_seconds: float, steps: int, out: Path) -> None:
    command = "python bench/quality.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    pooled = scores["pooled"]
    met_f1 = pooled["f1"] >= TARGETS["pooled_f1"]
    met_count = scores["count_score"] >= TARGETS["count_score"]
    lines = [
        f"\n## Quality on simulated frames ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)\n",
        f"Command: `{command}`\n",
        f"Machine: {os.cpu_count()} CPU cores, {cpu_name()}, arithmetic flags "
        f"{', '.join(f for f in ARITHMETIC_FLAGS if f in cpu_flags()) or 'none of ' + '/'.join(ARITHMETIC_FLAGS)}, no GPU. "
        f"Data: {args.n_train} train / {args.n_validation} validation / {args.n_test} test frames of "
        f"{args.size}x{args.size}, simulation seed {args.data_seed}, training seed {args.seed}. Training: crop {config.crop_size}, batch {config.batch_size}, "
        f"learning rate {config.learning_rate} ("
        + (f"cosine to {config.final_rate_fraction} of it over the run" if config.schedule == "cosine" else f"decay per {config.decay_frames} frames seen")
        + f"), loss {config.loss}, "
        f"cosmic crop fraction {config.cosmic_crop_fraction} (picking by {config.cosmic_crop_choice}), input recipe {config.input_recipe}, "
        f"{args.steps_per_epoch} steps per epoch, backbone weights "
        f"`{end.backbone_weights}`, precision {args.precision} ({end.precision}), "
        f"{'separable' if config.separable else 'standard'} convolutions in the pyramid and decoder, "
        f"{'a full-resolution head' if config.full_resolution else 'logits at stride 4 upsampled'}, "
        f"residual blocks starting as {'the identity (zero-init)' if config.zero_init_residuals else 'He-normal'}, "
        f"output layer starting {'at the class prior' if config.prior_output else 'Glorot-uniform'}, "
        f"{args.threads or 'all'} CPU thread(s), time limit {args.minutes} min. "
        f"Evaluation in {scores['precision_policy']}, default tiles.\n",
        f"Training ran {train_seconds / 60:.1f} min, {end.epochs_run} epochs ({end.stop_reason}), "
        f"{steps} steps ({train_seconds / max(steps, 1):.2f} s per step including validation and the "
        f"threshold search); best epoch {None if end.best_epoch is None else end.best_epoch + 1}; threshold "
        f"{end.threshold} chosen on validation.\n",
        "| metric (Test split, threshold %.2f) | value | target |" % scores["threshold"],
        "| --- | --- | --- |",
        f"| pooled pixel F1 | {pooled['f1']:.4f} | >= {TARGETS['pooled_f1']} {'met' if met_f1 else 'MISSED'} |",
        f"| pooled pixel precision / recall | {pooled['precision']:.4f} / {pooled['recall']:.4f} | |",
        f"| mean count score | {scores['count_score']:.4f} | >= {TARGETS['count_score']} {'met' if met_count else 'MISSED'} |",
        f"| mean IoU / Dice / F1 per image | {scores['iou']:.4f} / {scores['dice']:.4f} / {scores['f1']:.4f} | |",
        f"| mean object recall / precision | {scores['object_recall']:.4f} / {scores['object_precision']:.4f} | |",
        f"| cosmics true / predicted (all test frames) | {scores['true_count_total']} / {scores['pred_count_total']} | |",
        f"| evaluation speed | {scores['seconds_per_frame']:.3f} s per {scores['frame_shape'][0]}x{scores['frame_shape'][1]} frame | |",
        "",
    ]
    results = Path(args.results)
    if not results.exists():
        results.write_text("# Benchmark results\n\nEach section says the command that produced it.\n")
    with results.open("a") as handle:
        handle.write("\n".join(lines))
    (out / "result.json").write_text(
        json.dumps({"scores": scores, "train_seconds": train_seconds, "end": {k: v for k, v in vars(end).items()}}, indent=2, default=str)
    )
    print("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "quality"))
    parser.add_argument("--data", help="simulated dataset folder (default: <out>/data)")
    parser.add_argument("--n-train", type=int, default=300)
    parser.add_argument("--n-validation", type=int, default=20)
    parser.add_argument("--n-test", type=int, default=60)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0, help="training seed (weights, crops)")
    parser.add_argument("--data-seed", type=int, default=0, help="simulation seed of the frames")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--steps-per-epoch", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=45.0, help="training time limit")
    parser.add_argument("--precision", default="auto")
    parser.add_argument(
        "--separable", action=argparse.BooleanOptionalAction, default=None,
        help="atrous separable convolutions in the pyramid and decoder (default: TrainConfig's)",
    )
    parser.add_argument(
        "--full-resolution", action=argparse.BooleanOptionalAction, default=None, help="default: TrainConfig's"
    )
    parser.add_argument(
        "--zero-init-residuals", action=argparse.BooleanOptionalAction, default=None, help="default: TrainConfig's"
    )
    parser.add_argument(
        "--prior-output", action=argparse.BooleanOptionalAction, default=None, help="default: TrainConfig's"
    )
    parser.add_argument("--threads", type=int, help="TensorFlow intra-op threads (default: all cores)")
    parser.add_argument("--loss", help="default: TrainConfig's")
    parser.add_argument("--cosmic-crop-fraction", type=float, help="default: TrainConfig's")
    parser.add_argument("--input-recipe", help="default: TrainConfig's")
    parser.add_argument("--schedule", help="learning-rate schedule (default: TrainConfig's)")
    parser.add_argument("--cosmic-crop-choice", help="pixel or cosmic (default: TrainConfig's)")
    parser.add_argument("--validation-steps", type=int, help="validation batches per epoch (default: all tiles)")
    parser.add_argument("--backbone-weights", default="imagenet")
    parser.add_argument("--threshold", type=float, help="default: the model's own, chosen on validation")
    parser.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"), help="Markdown file to append to")
    args = parser.parse_args()

    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    out = Path(args.out)
    data_dir = Path(args.data) if args.data else out / "data"
    out.mkdir(parents=True, exist_ok=True)
    simulate(args, data_dir)
    chosen = {
        name: getattr(args, name)
        for name in ("loss", "cosmic_crop_fraction", "input_recipe", "full_resolution", "schedule", "cosmic_crop_choice", "separable",
                     "zero_init_residuals", "prior_output")
        if getattr(args, name) is not None
    }
    config = TrainConfig(
        **chosen,
        validation_steps=args.validation_steps,
        data_dir=str(data_dir),
        out=str(out / "model.keras"),
        crop_size=args.crop,
        batch_size=args.batch,
        epochs=args.epochs,
        learning_rate=args.lr,
        steps_per_epoch=args.steps_per_epoch,
        backbone_weights=args.backbone_weights,
        seed=args.seed,
        mixed_precision=args.precision,
        time_limit_minutes=args.minutes,
    )
    timer = StepTimer()
    started = time.perf_counter()
    end = train(config, listeners=[timer])
    train_seconds = time.perf_counter() - started
    scores = evaluate(Path(config.out), data_dir, args.threshold)
    record(args, config, end, scores, train_seconds, timer.steps, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
