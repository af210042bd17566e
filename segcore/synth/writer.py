"""Writing a simulated dataset in the original Train/Validation/Test folder layout."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from ..data import REAL_SPLIT, SPLITS, annotation_dir
from ..io import write_frame, write_mask
from .readout import check_size, draw_camera, is_count, simulate_frame


def generate_dataset(
    out_dir,
    n_train: int,
    n_validation: int,
    n_test: int,
    n_real: int = 0,
    size: int = 512,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    *,
    overwrite: bool = False,
    frames_per_camera: int = 1,
) -> dict:
    """Write a simulated dataset in the original folder layout.

    Frames go to ``Train/``, ``Validation/``, ``Test/`` (masks with the same file
    name in ``TrainAnnotation/`` etc.) and ``Real/`` (no masks), named
    ``frame_00000.png`` onwards across the whole dataset. Frame ``i`` is drawn from
    ``np.random.default_rng([seed, i])``, so it does not depend on the split sizes.

    Parameters
    ----------
    out_dir : dataset folder (created if missing).
    n_train, n_validation, n_test, n_real : frames per split.
    size : frame height and width in pixels (at least 32).
    seed : non-negative integer.
    progress : called as ``progress(done, total)`` after each frame.
    overwrite : remove earlier ``frame_*.png`` files from the target folders
        instead of refusing to write into them.
    frames_per_camera : frames ``k * n .. k * n + n - 1`` share one detector (its parameters,
        module gaps and hot pixels, drawn from ``np.random.default_rng([seed, k, 1])``), as a
        series from one camera does; 1 (the default) draws a detector for every frame.

    Returns
    -------
    dict with ``counts`` (frames per split), ``cosmics`` (total hits),
    ``cosmics_per_split``, ``visible_cosmics`` (hits with at least one masked
    pixel), ``background_kinds``, ``cosmic_kinds``, ``detector_families``, ``frames``,
    ``size``, ``seed``, ``frames_per_camera`` and ``out_dir``.
    """
    counts = dict(zip((*SPLITS, REAL_SPLIT), (n_train, n_validation, n_test, n_real)))
    for name, value in counts.items():
        if not is_count(value):
            raise ValueError(f"number of {name} frames must be a non-negative integer, got {value!r}")
    check_size("size", size)
    if not is_count(seed):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not is_count(frames_per_camera) or frames_per_camera < 1:
        raise ValueError(f"frames_per_camera must be a positive integer, got {frames_per_camera!r}")
    if progress is not None and not callable(progress):
        raise TypeError("progress must be callable or None")

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: is a file, not a folder to write the dataset into")
    folders = {split: (out_dir / split, out_dir / annotation_dir(split)) for split in SPLITS}
    folders[REAL_SPLIT] = (out_dir / REAL_SPLIT, None)
    targets = [d for pair in folders.values() for d in pair if d is not None]
    stale = [p for d in targets if d.is_dir() for p in sorted(d.glob("frame_*.png"))]
    if stale and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds frames (e.g. {stale[0]}); write to an empty folder or pass overwrite=True"
        )
    for path in stale:
        path.unlink()
    for split, (image_dir, mask_dir) in folders.items():
        if split != REAL_SPLIT or counts[split]:
            image_dir.mkdir(parents=True, exist_ok=True)
            if mask_dir is not None:
                mask_dir.mkdir(parents=True, exist_ok=True)

    total = sum(int(v) for v in counts.values())
    digits = max(5, len(str(max(total - 1, 0))))
    summary_cosmics = {split: 0 for split in counts}
    backgrounds, kinds, families = Counter(), Counter(), Counter()
    index = visible = 0
    camera = None  # one detector per frame unless frames_per_camera > 1
    for split, n in counts.items():
        image_dir, mask_dir = folders[split]
        for _ in range(int(n)):
            if frames_per_camera > 1 and index % frames_per_camera == 0:
                camera = draw_camera(np.random.default_rng([int(seed), index // frames_per_camera, 1]), int(size))
            sim = simulate_frame(np.random.default_rng([int(seed), index]), int(size), camera=camera)
            name = f"frame_{index:0{digits}d}.png"
            write_frame(image_dir / name, sim.frame)
            if mask_dir is not None:
                write_mask(mask_dir / name, sim.mask)
            summary_cosmics[split] += sim.info["n_cosmics"]
            visible += sum(1 for c in sim.info["cosmics"] if c["pixels"])
            backgrounds[sim.info["background"]] += 1
            families[sim.info["detector"]["family"]] += 1
            kinds.update(c["type"] for c in sim.info["cosmics"])
            index += 1
            if progress is not None:
                progress(index, total)
    return {
        "out_dir": str(out_dir),
        "seed": int(seed),
        "size": int(size),
        "frames_per_camera": int(frames_per_camera),
        "frames": total,
        "counts": {split: int(n) for split, n in counts.items()},
        "cosmics": sum(summary_cosmics.values()),
        "cosmics_per_split": summary_cosmics,
        "visible_cosmics": visible,
        "background_kinds": dict(backgrounds),
        "cosmic_kinds": dict(kinds),
        "detector_families": dict(families),
    }
