"""The best pixel F1 any detector could reach on the simulator's frames: an oracle that knows the X-ray signal.

    python bench/noise_ceiling.py [--frames 120] [--size 512] [--seed 123]

A simulated frame's mask holds the pixels where a cosmic's charge exceeds
MASK_SIGMAS (3) x the local noise, in hits significant as a whole at DETECT_SIGMAS (5);
near 3 sigma a pixel's charge is as large as the noise it is read with, so no
detector can tell every masked pixel. The
oracle here knows everything but the noise: the expected X-ray signal, the bias,
the hot pixels. It sees each pixel's cosmic charge plus a fresh draw of the
frame's noise, in noise units, and keeps

- every pixel above t sigma (the best t for the pooled F1), or
- with hysteresis, the components above a low t that hold a pixel above a high one
  (and the mean count score, min(1, predicted / true cosmics) per frame, of the best).

Its F1 is what a perfect background model would buy; a network, which must also
learn the background, stays below it. Integrating and scintillator frames only
(photon-counting masks follow a whole-hit Poisson rule, not a per-pixel one).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from scipy import ndimage

from segcore.metrics import count_score, n_cosmics
from segcore.synth import simulate_frame

PER_PIXEL = np.arange(1.0, 6.01, 0.25)
HYSTERESIS = [(high, low) for high in (4.0, 5.0, 6.0) for low in (2.0, 2.5, 3.0, 3.5)]
EIGHT_CONNECTED = np.ones((3, 3), bool)


def oracle_significance(rng: np.random.Generator, size: int):
    """(family, mask, cosmic charge plus noise in noise units) of one simulated frame."""
    sample = simulate_frame(rng, size)
    sigma = sample.info["noise_sigma"]
    observed = sample.info["cosmic_charge"] + rng.normal(0.0, 1.0, sigma.shape) * sigma
    return sample.info["detector"]["family"], sample.mask, observed / sigma


def f1(tp: int, predicted: int, true: int) -> float:
    return 2.0 * tp / max(predicted + true, 1)


def hysteresis(z: np.ndarray, high: float, low: float) -> np.ndarray:
    labels, n = ndimage.label(z > low, EIGHT_CONNECTED)
    keep = np.zeros(n + 1, bool)
    keep[np.unique(labels[z > high])] = True
    keep[0] = False
    return keep[labels]


def ceilings(frames) -> dict:
    """Best per-pixel and hysteresis F1 over ``frames`` [(mask, z)], with their thresholds."""
    true = sum(int(mask.sum()) for mask, _ in frames)
    per_pixel = []
    for t in PER_PIXEL:
        tp = sum(int(((z > t) & mask).sum()) for mask, z in frames)
        per_pixel.append((f1(tp, sum(int((z > t).sum()) for _, z in frames), true), t))
    grown = []
    for high, low in HYSTERESIS:
        predicted = [(mask, hysteresis(z, high, low)) for mask, z in frames]
        tp = sum(int((p & mask).sum()) for mask, p in predicted)
        counts = np.mean([count_score(n_cosmics(mask), n_cosmics(p)) for mask, p in predicted])
        grown.append((f1(tp, sum(int(p.sum()) for _, p in predicted), true), high, low, float(counts)))
    return {"pixels": true, "per_pixel": max(per_pixel), "hysteresis": max(grown)}



def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120, help="frames simulated (photon-counting ones are left out)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    by_family: dict[str, list] = {}
    for _ in range(args.frames):
        family, mask, z = oracle_significance(rng, args.size)
        if family != "photon_counting":
            by_family.setdefault(family, []).append((mask, z))
    groups = {"integrating and scintillator": [f for frames in by_family.values() for f in frames], **by_family}
    print("| frames | group | cosmic px | per-pixel F1 (at t sigma) | hysteresis F1 (high, low sigma) "
          "| its mean count score |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, frames in groups.items():
        c = ceilings(frames)
        (pf, t), (hf, high, low, counts) = c["per_pixel"], c["hysteresis"]
        print(f"| {len(frames)} | {name} | {c['pixels']} | {pf:.3f} ({t:g}) | {hf:.3f} ({high:g}, {low:g}) "
              f"| {counts:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
