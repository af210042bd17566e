"""The best pixel F1 a network can reach when it decides on a grid coarser than the frame.

    python bench/resolution_ceiling.py DATA [--split Test] [--strides 1 2 4 8]

Published DeepLabV3+ makes its logits at stride 4 and upsamples them bilinearly.
An oracle that knows the true mask can at best give each coarse cell the share of
cosmic pixels in it (its area average); upsampled bilinearly and thresholded (the
best of thresholds 0.05 .. 0.95 for the pooled F1 of the split), that is the
ceiling of a network deciding on that grid. Stride 1 is the frame itself (F1 1).
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from segcore.data import pair_split
from segcore.io import read_mask

THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)


def coarse_oracle(mask: np.ndarray, stride: int) -> np.ndarray:
    """Share of cosmic pixels per stride x stride cell, upsampled bilinearly to the mask's size."""
    height, width = mask.shape
    cells = cv2.resize(mask.astype(np.float32), (width // stride, height // stride), interpolation=cv2.INTER_AREA)
    return cv2.resize(cells, (width, height), interpolation=cv2.INTER_LINEAR)


def ceiling(masks, stride: int) -> tuple[float, float]:
    """(best pooled F1, its threshold) of the coarse oracle over ``masks``."""
    counts = np.zeros((THRESHOLDS.size, 3), np.int64)
    for mask in masks:
        oracle = coarse_oracle(mask, stride)
        for k, threshold in enumerate(THRESHOLDS):
            predicted = oracle > threshold
            tp = int(np.count_nonzero(predicted & mask))
            counts[k] += (tp, int(np.count_nonzero(predicted)) - tp, int(np.count_nonzero(mask)) - tp)
    tp, fp, fn = counts.T
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    best = int(np.argmax(f1))
    return float(f1[best]), float(THRESHOLDS[best])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--split", default="Test")
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args(argv)
    masks = [read_mask(mask) for _, mask in pair_split(args.data, args.split).pairs]
    print(f"{len(masks)} masks, {sum(int(m.sum()) for m in masks)} cosmic pixels")
    print("| decision grid | best pooled pixel F1 | at threshold |")
    print("| --- | --- | --- |")
    for stride in args.strides:
        f1, threshold = ceiling(masks, stride)
        print(f"| stride {stride} | {f1:.3f} | {threshold:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
