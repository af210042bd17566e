"""Statistics of the simulator's frames, per detector family, and LA Cosmic tuned on them.

    python bench/sim_stats.py                      # 200 frames of 512x512, seed 0; LA Cosmic on 20 + 40 more
    python bench/sim_stats.py --n 50 --no-lacosmic # a quick look
    python bench/sim_stats.py --n 0 --lacosmic-n-cosmics 20   # LA Cosmic on hit-rich frames

Frames are ``simulate_frame(default_rng([seed, i]), size)``, i = 0 .. n-1, as
``generate_dataset`` draws them. A hit is a connected component (8-connectivity)
of the mask, as the project counts cosmics; "simulated hits" counts every hit the
simulator deposited, visible or not.

LA Cosmic (astroscrappy): the bias-subtracted frame, gain = photons per ADU, read
noise in photons, saturation level, module gaps as ``inmask``, as
bench/compare_detectors.py calls it; sigclip is tuned for pooled pixel F1 on frames
n .. n+n_tune-1 and scored on the next ``n_test`` frames.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

import numpy as np
from skimage.measure import label

from segcore.synth import FAMILIES, simulate_frame

SIGCLIPS = (4.5, 8.0, 12.0, 20.0, 40.0)


def frame_stats(sims):
    """Per family (and "all"): hits per frame, empty frames, component areas."""
    groups = defaultdict(list)
    for s in sims:
        groups[s.info["detector"]["family"]].append(s)
        groups["all"].append(s)
    rows = {}
    for name in (*FAMILIES, "all"):
        frames = groups.get(name, [])
        if not frames:
            continue
        simulated = np.array([s.info["n_cosmics"] for s in frames])
        areas, components = [], []
        for s in frames:
            labels = label(s.mask, connectivity=2)
            sizes = np.bincount(labels.ravel())[1:]
            areas.extend(sizes.tolist())
            components.append(len(sizes))
        areas, components = np.array(areas), np.array(components)
        big = areas > 50
        rows[name] = {
            "frames": len(frames),
            "simulated hits median/p90/max": (float(np.median(simulated)), float(np.percentile(simulated, 90)), int(simulated.max())),
            "mask hits median/p90/max": (float(np.median(components)), float(np.percentile(components, 90)), int(components.max())),
            "frames without hits": float(np.mean(components == 0)),
            "median hit area px": float(np.median(areas)) if areas.size else float("nan"),
            "hits over 50 px": float(big.mean()) if areas.size else float("nan"),
            "their share of cosmic px": float(areas[big].sum() / areas.sum()) if areas.size else float("nan"),
        }
    return rows


def lacosmic_mask(sim, sigclip):
    import astroscrappy

    info, det = sim.info, sim.info["detector"]
    data = sim.frame.astype(np.float32) - np.float32(info["bias"])
    gain = 1.0 / info["gain"]  # photons per ADU
    mask, _ = astroscrappy.detect_cosmics(
        data, inmask=info["gap_mask"], sigclip=sigclip, gain=gain, readnoise=info["read_noise"] * gain,
        satlevel=(det["saturation_adu"] - info["bias"]) * gain, verbose=False,
    )
    return np.asarray(mask, bool)


def pooled_f1(sims, masks):
    tp = sum(int((m & s.mask).sum()) for s, m in zip(sims, masks))
    fp = sum(int((m & ~s.mask).sum()) for s, m in zip(sims, masks))
    fn = sum(int((~m & s.mask).sum()) for s, m in zip(sims, masks))
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    return 2 * precision * recall / max(precision + recall, 1e-12), precision, recall


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-tune", type=int, default=20)
    parser.add_argument("--n-test", type=int, default=40)
    parser.add_argument("--no-lacosmic", action="store_true")
    parser.add_argument("--lacosmic-n-cosmics", type=int, default=None,
                        help="force this many hits in LA Cosmic's frames (default: the simulator's own rate)")
    args = parser.parse_args(argv)

    if args.n:
        sims = [simulate_frame(np.random.default_rng([args.seed, i]), args.size) for i in range(args.n)]
        for name, row in frame_stats(sims).items():
            print(name, row)
    if args.no_lacosmic:
        return 0
    start, forced = args.n, args.lacosmic_n_cosmics
    tune = [simulate_frame(np.random.default_rng([args.seed, i]), args.size, n_cosmics=forced)
            for i in range(start, start + args.n_tune)]
    test = [simulate_frame(np.random.default_rng([args.seed, i]), args.size, n_cosmics=forced)
            for i in range(start + args.n_tune, start + args.n_tune + args.n_test)]
    scores = {clip: pooled_f1(tune, [lacosmic_mask(s, clip) for s in tune])[0] for clip in SIGCLIPS}
    best = max(scores, key=scores.get)
    print("tuning F1 by sigclip", {k: round(v, 3) for k, v in scores.items()}, "best", best)
    masks = [lacosmic_mask(s, best) for s in test]
    f1, precision, recall = pooled_f1(test, masks)
    print(f"LA Cosmic test: F1 {f1:.3f} precision {precision:.3f} recall {recall:.3f}")
    by_family = defaultdict(list)
    for s, m in zip(test, masks):
        by_family[s.info["detector"]["family"]].append((s, m))
    with_hits = [(s, m) for s, m in zip(test, masks) if s.mask.any()]
    if with_hits:
        f, p, r = pooled_f1(*zip(*with_hits))
        print(f"  frames with masked hits only ({len(with_hits)}): F1 {f:.3f} precision {p:.3f} recall {r:.3f}")
    for name, pairs in by_family.items():
        f, p, r = pooled_f1(*zip(*pairs))
        print(f"  {name} ({len(pairs)} frames): F1 {f:.3f} precision {p:.3f} recall {r:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
