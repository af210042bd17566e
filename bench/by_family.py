"""Pooled pixel scores, cosmics found and count scores of a model per detector family, kind of quanta and background.

    python bench/by_family.py MODEL DATA [--split Test] [--seed 0]
    python bench/by_family.py lacosmic DATA --sigclip 6 --objlim 2 --sigfrac 0.3   # LA Cosmic with these parameters

DATA must come from ``python -m segcore synth DATA --seed SEED`` (or ``generate_dataset``):
frame ``frame_<i>.png`` is ``simulate_frame(default_rng([seed, i]), size)``, so each
frame's detector family and background are re-simulated from its index. The threshold
is the model's own (chosen on validation), else 0.5. MODEL ``lacosmic`` scores LA Cosmic
(``segcore.classical``) with the given parameters (e.g. those ``bench/race.py`` tuned).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from segcore import io  # noqa: E402  (after the TensorFlow log level)
from segcore.classical import LACosmicParams, lacosmic_mask  # noqa: E402
from segcore.data import pair_split  # noqa: E402
from segcore.inference import load_inference_model, model_threshold, predict_probabilities  # noqa: E402
from segcore.metrics import confusion_counts, count_score, label_cosmics, n_cosmics, scores_from_counts  # noqa: E402
from segcore.synth import simulate_frame  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a .keras file, or 'lacosmic'")
    parser.add_argument("data")
    parser.add_argument("--split", default="Test")
    parser.add_argument("--seed", type=int, default=0, help="the seed DATA was simulated with")
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--sigclip", type=float, default=LACosmicParams.sigclip)
    parser.add_argument("--objlim", type=float, default=LACosmicParams.objlim)
    parser.add_argument("--sigfrac", type=float, default=LACosmicParams.sigfrac)
    args = parser.parse_args()

    if args.model == "lacosmic":
        params = LACosmicParams(sigclip=args.sigclip, objlim=args.objlim, sigfrac=args.sigfrac)
        threshold = f"none (LA Cosmic, {params})"

        def detect(frame):
            return lacosmic_mask(frame, params)
    else:
        model = load_inference_model(args.model)
        threshold = model_threshold(model) if args.threshold is None else args.threshold

        def detect(frame):
            return predict_probabilities(model, frame) > threshold

    counts = defaultdict(lambda: np.zeros(4, np.int64))
    frames = defaultdict(int)
    cosmics = defaultdict(lambda: np.zeros(2, np.int64))  # true, touched by the prediction
    count_scores = defaultdict(list)
    for image, mask in pair_split(args.data, args.split).pairs:
        frame, true = io.read_frame(image), io.read_mask(mask)
        index = int(Path(image).stem.split("_")[-1])
        sim = simulate_frame(np.random.default_rng([args.seed, index]), frame.shape[0], frame.shape[1])
        if not np.array_equal(sim.frame, frame):
            raise SystemExit(f"{image}: not frame {index} of seed {args.seed}; pass the seed DATA was made with")
        pred = detect(frame)
        found = np.array(confusion_counts(true, pred))
        n_true, labels = label_cosmics(true)
        touched = np.unique(labels[(labels > 0) & (pred > 0)]).size
        detector = sim.info["detector"]
        # "photon": the X-ray image is made of discrete photons (sharp spikes on an integrating sensor)
        quanta = f"family {detector['family']}, {detector.get('quantum', 'electron')} quanta"
        for group in ("all", f"family {detector['family']}", quanta, f"background {sim.info['background']}"):
            counts[group] += found
            frames[group] += 1
            cosmics[group] += (n_true, touched)
            count_scores[group].append(count_score(n_true, n_cosmics(pred)))
    print(f"{args.model} on {args.data} {args.split}, threshold {threshold}")
    print("| frames | group | cosmic px | pixel F1 | precision | recall | cosmics found / true | mean count score |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for group in sorted(counts, key=lambda g: (g != "all", g)):
        tp, fp, fn, tn = (int(c) for c in counts[group])
        scores = scores_from_counts(tp, fp, fn, tn)
        print(f"| {frames[group]} | {group} | {tp + fn} | {scores['f1']:.3f} | {scores['precision']:.3f} | "
              f"{scores['recall']:.3f} | {cosmics[group][1]} / {cosmics[group][0]} | {np.mean(count_scores[group]):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
