"""The numbers the cosmic-ray literature compares detectors by, for our models and LA Cosmic.

    python bench/detection_metrics.py --model bench/out/quality/model.keras   # a model and LA Cosmic
    python bench/detection_metrics.py --no-record                             # LA Cosmic alone, printed

On the Test split of a dataset folder (``--data``; by default a simulated one written to
``bench/out/detection/data``: ``segcore.synth.generate_dataset``, seed 20261201, 512 px), every
detector is scored by ``segcore.evaluator`` as the app scores it:

- pixel precision at 95 % recall and true-positive rate at 0.01 % and 0.1 % false-positive
  rate, average precision and ROC AUC, from the split's probability histogram
  (``segcore.curves``; Cosmic-CoNN reports precision at 95 % recall, deepCR the detection
  rate at a fixed false-positive rate);
- object F1: cosmics matched one to one (``segcore.metrics.object_scores``), pooled over the split;
- mean absolute count error, ``|predicted - true| / max(true, 1)`` per frame, and the original
  count score beside it for continuity.

A model is scored at its own threshold (chosen on validation frames after training).
LA Cosmic is tuned on the Validation split (``segcore.classical.tune_lacosmic``, pooled pixel
F1) unless ``--no-tune``; it gives masks, not probabilities, so its curves are one operating
point joined to "nothing marked" and "everything marked": its precision at 95 % recall is the
share of cosmic pixels in the split unless its mask itself reaches 95 % recall. The row
"LA Cosmic, sigclip swept" gives it a curve as papers do, by sweeping its detection
threshold: a pixel's score is the highest of ``--sweep`` sigclips (the tuned objlim and
sigfrac) at which it is marked; only the curve numbers apply to that row.
Appends a section to ``bench/RESULTS.md`` unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import common
from common import append_results, load_average, load_line, section_header, table, versions_line

from segcore.data import pair_split  # noqa: E402

SEED = 20261201
DEFAULT_DATA = common.ROOT / "bench" / "out" / "detection" / "data"
COLUMNS = (
    ("precision_at_95_recall", "precision at 95 % recall"),
    ("tpr_at_0.01%_fpr", "TPR at 0.01 % FPR"),
    ("tpr_at_0.1%_fpr", "TPR at 0.1 % FPR"),
    ("average_precision", "AP"),
    ("roc_auc", "ROC AUC"),
    ("f1", "pixel F1"),
    ("object_f1", "object F1"),
)


def simulated_data(folder: Path, n_validation: int, n_test: int, size: int) -> Path:
    from segcore.synth import generate_dataset

    if pair_split(folder, "Test").pairs:
        return folder
    generate_dataset(folder, n_train=1, n_validation=n_validation, n_test=n_test, size=size, seed=SEED)
    return folder


def score_model(path: str, pairs):
    from segcore.evaluator import evaluate_pairs
    from segcore.model import load_model

    return evaluate_pairs(load_model(path, compile=False), pairs)


def score_lacosmic(data: Path, pairs, tune: bool):
    from segcore.classical import LACosmicParams, lacosmic_mask, tune_lacosmic, tuning_grid
    from segcore.data import read_pairs
    from segcore.evaluator import evaluate_detector

    params, note = LACosmicParams(), "default parameters"
    validation = pair_split(data, "Validation").pairs
    if tune and validation:
        params, ranking = tune_lacosmic(read_pairs(validation), tuning_grid())
        note = (f"tuned on {len(validation)} validation frames: sigclip {params.sigclip}, objlim {params.objlim}, "
                f"sigfrac {params.sigfrac} (validation pooled F1 {ranking[0][1]['f1']:.3f})")
    return evaluate_detector(lambda frame: lacosmic_mask(frame, params), pairs), note, params


def sweep_lacosmic(pairs, sigclips, base) -> tuple:
    """The pixel histogram of LA Cosmic's score: the highest sigclip at which each pixel is marked."""
    import dataclasses

    import numpy as np

    from segcore.classical import lacosmic_mask
    from segcore.curves import ProbabilityHistogram
    from segcore.data import read_pairs

    ordered = sorted(sigclips, reverse=True)
    histogram = ProbabilityHistogram()
    for frame, true in read_pairs(pairs):
        score = np.zeros(frame.shape, np.float32)
        for rank, sigclip in enumerate(ordered):
            marked = lacosmic_mask(frame, dataclasses.replace(base, sigclip=sigclip)) & (score == 0)
            score[marked] = 1.0 - (rank + 1) / (len(ordered) + 1)  # higher sigclip, higher score
        histogram.add(true, score)
    return histogram


def row(name: str, result, seconds: float) -> list:
    pooled, table_ = result.pooled, result.per_image
    numbers = [_fmt(pooled.get(key)) for key, _ in COLUMNS]
    return [
        name, *numbers,
        _fmt(table_["abs_count_error"].mean()), _fmt(table_["count_score"].mean()),
        f"{int(table_['pred_count'].sum())} / {int(table_['true_count'].sum())}",
        f"{seconds:.0f} s",
    ]


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{float(value):.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", nargs="*", default=[], help="trained .keras models to score")
    parser.add_argument("--data", help=f"dataset folder with Test (and Validation) splits (default: {DEFAULT_DATA})")
    parser.add_argument("--n-validation", type=int, default=6, help="simulated validation frames (LA Cosmic tuning)")
    parser.add_argument("--n-test", type=int, default=15, help="simulated test frames")
    parser.add_argument("--size", type=int, default=512, help="simulated frame side")
    parser.add_argument("--no-lacosmic", action="store_true")
    parser.add_argument("--no-tune", action="store_true", help="LA Cosmic with its default parameters")
    parser.add_argument("--sweep", type=float, nargs="*", default=[2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 8, 10, 15, 20],
                        help="sigclips of LA Cosmic's curve (none: no sweep)")
    parser.add_argument("--no-record", action="store_true", help="print, do not append to RESULTS.md")
    parser.add_argument("--results", default=str(common.RESULTS))
    args = parser.parse_args()

    data = Path(args.data) if args.data else simulated_data(DEFAULT_DATA, args.n_validation, args.n_test, args.size)
    pairs = pair_split(data, "Test").pairs
    if not pairs:
        print(f"error: {data / 'Test'}: no frames with masks", file=sys.stderr)
        return 2
    load_before = load_average()
    rows, notes = [], []
    for path in args.model:
        started = time.perf_counter()
        result = score_model(path, pairs)
        rows.append(row(f"model {Path(path).name} (threshold {result.threshold:g})", result, time.perf_counter() - started))
    if not args.no_lacosmic:
        started = time.perf_counter()
        result, note, params = score_lacosmic(data, pairs, tune=not args.no_tune)
        rows.append(row("LA Cosmic", result, time.perf_counter() - started))
        recall = result.pooled["recall"]
        notes.append(f"LA Cosmic: {note}; its mask's own pixel recall is {recall:.3f}.")
        if args.sweep:
            started = time.perf_counter()
            numbers = sweep_lacosmic(pairs, args.sweep, params).headline()
            rows.append([f"LA Cosmic, sigclip swept {min(args.sweep):g}..{max(args.sweep):g}",
                         *(_fmt(numbers[key]) if key in numbers else "–" for key, _ in COLUMNS),
                         "–", "–", "–", f"{time.perf_counter() - started:.0f} s"])
    header = ["detector", *(label for _, label in COLUMNS), "mean abs count error", "count score",
              "predicted / true cosmics", "time (incl. tuning)"]
    lines = section_header("Detection metrics the literature reports", "detection_metrics.py")
    lines += [
        versions_line("numpy", "tensorflow", "astroscrappy"),
        load_line(load_before),
        "",
        f"Test split: {len(pairs)} frames of {data}.",
        "",
        *table(header, rows),
        "",
        *notes,
    ]
    if args.no_record:
        print("\n".join(lines))
    else:
        append_results(lines, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
