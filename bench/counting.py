"""Counting benchmark: milliseconds per mask for cosmic counting, against scikit-image and SciPy.

    python bench/counting.py                 # the recorded configuration
    python bench/counting.py --masks 2 --repeats 3 --no-record   # a quick look

Masks are simulated (segcore.synth) at 512x512 with the simulator's own cosmic
density ("typical": 0 to 15 hits per frame as drawn) and with 15 hits per frame
("dense"); 4096x4096 masks are 8x8 mosaics of such 512x512 masks. Each function
is timed on every mask (median of blocks of calls) and the mean over the masks
is reported. Appends a section to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import common
from common import append_results, load_average, load_line, section_header, table, versions_line, wait_for_quiet

from segcore import metrics
from segcore.synth import simulate_frame

TARGET_MS_512 = 1.0
SEED = 424242


def simulated_masks(n: int, n_cosmics, seed: int) -> list[np.ndarray]:
    return [
        simulate_frame(np.random.default_rng([seed, i]), 512, n_cosmics=n_cosmics).mask for i in range(n)
    ]


def mosaic(masks: list[np.ndarray], side: int, rng: np.random.Generator) -> np.ndarray:
    """A side x side mosaic of 512 masks (drawn with replacement, randomly rotated)."""
    tiles = side // 512
    rows = []
    for _ in range(tiles):
        row = [np.rot90(masks[rng.integers(len(masks))], k=int(rng.integers(4))) for _ in range(tiles)]
        rows.append(np.concatenate(row, axis=1))
    return np.ascontiguousarray(np.concatenate(rows, axis=0))


def per_call_seconds(fn, mask, min_block_s: float, repeats: int) -> float:
    """Median over ``repeats`` blocks of the mean time of one call; a block lasts about ``min_block_s``."""
    fn(mask)  # warm-up
    started = time.perf_counter()
    fn(mask)
    once = max(time.perf_counter() - started, 1e-7)
    calls = max(1, int(min_block_s / once))
    blocks = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            fn(mask)
        blocks.append((time.perf_counter() - started) / calls)
    return float(np.median(blocks))


def find_cosmics_bincount(mask) -> list:
    """Prototype of a faster ``find_cosmics``: the same Cosmic list from the labels by bincount.

    OpenCV's statistics pass costs far more than its labelling; area and centroid
    are sums over the few cosmic pixels, the bounding box their minimum/maximum.
    """
    n, labels = metrics.label_cosmics(mask)
    if n == 0:
        return []
    rows, cols = np.nonzero(labels)
    lab = labels[rows, cols]
    area = np.bincount(lab, minlength=n + 1)[1:]
    cy = np.bincount(lab, rows, n + 1)[1:] / area
    cx = np.bincount(lab, cols, n + 1)[1:] / area
    r0 = np.full(n + 1, np.iinfo(np.int64).max)
    c0 = np.full(n + 1, np.iinfo(np.int64).max)
    r1 = np.zeros(n + 1, np.int64)
    c1 = np.zeros(n + 1, np.int64)
    np.minimum.at(r0, lab, rows)
    np.minimum.at(c0, lab, cols)
    np.maximum.at(r1, lab, rows)
    np.maximum.at(c1, lab, cols)
    return [
        metrics.Cosmic(label, a, (top, left, bottom + 1, right + 1), (y, x))
        for label, (a, top, left, bottom, right, y, x) in enumerate(
            zip(area.tolist(), r0[1:].tolist(), c0[1:].tolist(), r1[1:].tolist(), c1[1:].tolist(), cy.tolist(), cx.tolist()),
            start=1,
        )
    ]


def contenders():
    from scipy import ndimage
    from skimage import measure

    eight = np.ones((3, 3), bool)
    return {
        "segcore.metrics.n_cosmics": metrics.n_cosmics,
        "segcore.metrics.label_cosmics": metrics.label_cosmics,
        "segcore.metrics.find_cosmics (area, bbox, centroid)": metrics.find_cosmics,
        "prototype: find_cosmics by bincount (same output)": find_cosmics_bincount,
        "skimage.measure.label(connectivity=2)": lambda m: measure.label(m, connectivity=2, return_num=True),
        "skimage label + regionprops (area, bbox, centroid)": lambda m: [
            (r.area, r.bbox, r.centroid) for r in measure.regionprops(measure.label(m, connectivity=2))
        ],
        "scipy.ndimage.label (8-connected)": lambda m: ndimage.label(m, structure=eight),
    }


def check_agreement(masks) -> None:
    """All contenders count the same cosmics (guards against timing a wrong answer)."""
    from scipy import ndimage
    from skimage import measure

    for mask in masks:
        n = metrics.n_cosmics(mask)
        assert n == measure.label(mask, connectivity=2, return_num=True)[1]
        assert n == ndimage.label(mask, structure=np.ones((3, 3)))[1]
        reference = metrics.find_cosmics(mask)
        assert n == len(reference)
        fast = find_cosmics_bincount(mask)
        assert [(c.label, c.area, c.bbox) for c in fast] == [(c.label, c.area, c.bbox) for c in reference]
        assert np.allclose([c.centroid for c in fast], [c.centroid for c in reference]) or not fast


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--masks", type=int, default=8, help="simulated 512x512 masks per density")
    parser.add_argument("--repeats", type=int, default=7, help="timing blocks per mask and function")
    parser.add_argument("--block-seconds", type=float, default=0.05)
    parser.add_argument("--wait-quiet", type=float, default=0, help="seconds to wait for a quiet machine first")
    parser.add_argument("--no-record", action="store_true", help="print, do not append to RESULTS.md")
    parser.add_argument("--results", default=str(common.RESULTS))
    args = parser.parse_args()

    print("simulating masks ...", flush=True)
    densities = {
        "typical": simulated_masks(args.masks, None, SEED),
        "dense": simulated_masks(args.masks, 15, SEED + 1),
    }
    rng = np.random.default_rng(SEED)
    cases = []
    for density, masks in densities.items():
        cases.append((f"512x512, {density}", masks))
        cases.append((f"4096x4096, {density}", [mosaic(masks, 4096, rng) for _ in range(max(2, args.masks // 4))]))
    for _, masks in cases:
        check_agreement(masks)

    load_before = wait_for_quiet(args.wait_quiet) if args.wait_quiet else load_average()
    funcs = contenders()
    rows = []
    results = {}
    for case, masks in cases:
        cosmics = np.mean([metrics.n_cosmics(m) for m in masks])
        fill = np.mean([m.mean() for m in masks]) * 100
        row = [case, f"{cosmics:.1f}", f"{fill:.3f} %"]
        for name, fn in funcs.items():
            ms = 1000 * float(np.mean([per_call_seconds(fn, m, args.block_seconds, args.repeats) for m in masks]))
            results[(case, name)] = ms
            row.append(f"{ms:.3f}")
            print(f"{case:22s} {name:55s} {ms:8.3f} ms", flush=True)
        rows.append(row)
    load_after = load_average()

    worst_512 = max(results[(c, "segcore.metrics.n_cosmics")] for c, _ in cases if c.startswith("512"))
    worst_512_props = max(results[(c, "segcore.metrics.find_cosmics (area, bbox, centroid)")] for c, _ in cases if c.startswith("512"))
    met = worst_512 < TARGET_MS_512
    header = ["masks", "cosmics per mask", "mask pixels"] + [f"{name} (ms)" for name in funcs]
    lines = section_header("Cosmic counting speed", "counting.py")
    lines += [
        versions_line("numpy", "cv2", "skimage", "scipy"),
        load_line(load_before, load_after),
        "",
        f"Milliseconds per mask (mean over {args.masks} simulated 512x512 masks per density, "
        f"{max(2, args.masks // 4)} 4096x4096 mosaics of them; each the median of {args.repeats} timing blocks). "
        "All functions return the same number of 8-connected cosmics on every mask (checked).",
        "",
        *table(header, rows),
        "",
        f"Target: counting under {TARGET_MS_512} ms for a 512x512 mask: "
        f"{'met' if met else 'MISSED'} (n_cosmics {worst_512:.3f} ms in the slower density; "
        f"find_cosmics with area, bounding box and centroid {worst_512_props:.3f} ms).",
        "",
    ]
    if args.no_record:
        print("\n".join(lines))
    else:
        append_results(lines, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
