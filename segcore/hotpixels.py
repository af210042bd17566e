"""Hot pixels of a set of frames: single pixels that stand out in (almost) every frame.

A hot pixel "stays bright frame after frame" (dark current, a defect); in one frame it is a
one-pixel spike no detector can tell from a small cosmic hit. Across frames from one
detector it is plain: a cosmic almost never strikes the same pixel twice, so a pixel that
stands out alone in at least ``fraction`` of the frames is hot, not a cosmic. Such pixels
are treated like a detector's own invalid pixels (:mod:`segcore.formats`): filled from their
neighbours before a detector looks at the frame, and never part of a predicted mask.

A pixel stands out in a frame when its local excess (:func:`segcore.preprocess.excess_significance`,
the input recipe's own noise model) is at least ``sigma`` and at least twice that of each of its
eight neighbours, so that a spot, a track or a Bragg peak (light shared by neighbouring pixels)
is not taken for a hot pixel, while one with an X-ray photon beside it still is. X-ray photons
on direct-detection cameras stand out alone too, but at random
places: on frames of sparse photons of 83 ADU over a read noise of 5 ADU a pixel stands out in
4.5 % of frames at most (at 0.11 photons per pixel; 0.4 % at one photon per pixel), so it stands
out in half of ten frames with a chance of about 4e-5 (some ten pixels of a 512x512 frame in
that worst case, filled harmlessly), of 25 below 1e-11; with six frames it would be 2e-3, which
is why a set needs ten. A hot pixel buried in a bright frame's photon noise does not stand out
there, which is why half the frames are enough.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

#: Local excess (noise units) at which a lone pixel stands out.
HOT_SIGMA = 5.0
#: How much brighter than each neighbour (excess over the background) a pixel that stands out alone is.
ALONE_RATIO = 2.0
#: Share of a set's frames in which a pixel must stand out to be hot.
HOT_FRACTION = 0.5
#: Fewest frames from which hot pixels are found; fewer give no map.
MIN_FRAMES = 10
#: Most frames looked at (evenly spread over the set): enough for the rule, bounded time on long series.
MAX_FRAMES = 25


def check_hot_pixel_rule(sigma: float, fraction: float, min_frames: int) -> None:
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"hot-pixel sigma must be a positive number, got {sigma!r}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"hot-pixel fraction must be above 0 and at most 1, got {fraction!r}")
    if isinstance(min_frames, bool) or not isinstance(min_frames, (int, np.integer)) or min_frames < 2:
        raise ValueError(f"hot-pixel min_frames must be an integer of at least 2, got {min_frames!r}")


def lone_standouts(frame: np.ndarray, sigma: float = HOT_SIGMA) -> np.ndarray:
    """Pixels of a 2-D frame that stand out alone: a local excess of at least ``sigma`` (noise units), and at least
    :data:`ALONE_RATIO` times the excess (over the local background) of each of their eight neighbours."""
    import cv2

    from .preprocess import excess_significance, median_background

    frame = np.asarray(frame, np.float32)
    excess = frame - median_background(frame)
    ring = np.ones((3, 3), np.uint8)
    ring[1, 1] = 0
    brightest_neighbour = cv2.dilate(excess, ring, borderType=cv2.BORDER_CONSTANT, borderValue=float(excess.min()))
    return (excess_significance(frame) >= sigma) & (excess >= ALONE_RATIO * np.maximum(brightest_neighbour, 0.0))


def sample_indices(n: int, most: int = MAX_FRAMES) -> list[int]:
    """At most ``most`` indices of ``range(n)``, evenly spread, first and last included."""
    if n <= most:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, most)})


def find_hot_pixels(
    frames: Iterable[np.ndarray],
    sigma: float = HOT_SIGMA,
    fraction: float = HOT_FRACTION,
    min_frames: int = MIN_FRAMES,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray | None:
    """Hot pixels of frames from one detector (all the same shape), or None when fewer than ``min_frames``.

    A pixel is hot when it stands out alone (:func:`lone_standouts`) in at least ``fraction`` of the
    frames. A frame given as None (one that could not be read) is left out. ``progress(done)`` is
    called after each frame.
    """
    check_hot_pixel_rule(sigma, fraction, min_frames)
    counts, n = None, 0
    for frame in frames:
        if frame is None:
            continue
        frame = np.asarray(frame)
        if frame.ndim != 2:
            raise ValueError(f"frames must be 2-D, got shape {frame.shape}")
        if counts is None:
            counts = np.zeros(frame.shape, np.uint16)
        elif frame.shape != counts.shape:
            raise ValueError(f"frames of one set must share a shape: {frame.shape} after {counts.shape}")
        counts += lone_standouts(frame, sigma)
        n += 1
        if progress is not None:
            progress(n)
    if counts is None or n < min_frames:
        return None
    return counts >= int(np.ceil(fraction * n - 1e-9))


#: Hot pixels of a set: "HxW" (a frame shape) -> [[row, column], ...]; JSON as it stands.
HotPixels = dict


def shape_key(shape) -> str:
    return "x".join(str(int(n)) for n in shape[:2])


def hot_mask(hot_pixels: HotPixels | None, shape) -> np.ndarray | None:
    """The set's hot pixels for frames of ``shape`` as a bool mask (None when it has none for that shape)."""
    coordinates = (hot_pixels or {}).get(shape_key(shape))
    if not coordinates:
        return None
    rows, columns = np.asarray(coordinates, dtype=np.int64).reshape(-1, 2).T
    if rows.min() < 0 or columns.min() < 0 or rows.max() >= shape[0] or columns.max() >= shape[1]:
        raise ValueError(f"hot pixels listed for {shape_key(shape)} frames lie outside them")
    mask = np.zeros(tuple(int(n) for n in shape[:2]), bool)
    mask[rows, columns] = True
    return mask


def count_hot(hot_pixels: HotPixels | None) -> int:
    return sum(len(v) for v in (hot_pixels or {}).values())


def hot_pixels_of_set(
    addresses: Sequence[str],
    read: Callable[[str], np.ndarray],
    shape_of: Callable[[str], tuple[int, ...]],
    progress: Callable[[int, int], None] | None = None,
    **rule,
) -> tuple[HotPixels, int]:
    """(hot pixels, frames looked at) of a set: per frame shape, since frames of one shape come from one detector.

    ``read(address)`` gives a frame (invalid pixels filled), ``shape_of(address)`` its shape without
    reading it; a file either refuses (:class:`segcore.errors.SegcoreError`) is left out here, and
    reported where the frame itself is processed. At most :data:`MAX_FRAMES` frames of each shape
    are read, evenly spread. Shapes with fewer than ``min_frames`` frames, or without hot pixels,
    are left out. ``progress(done, total)`` counts the frames read.
    """
    from .errors import SegcoreError

    def unless_refused(function, address):
        try:
            return function(address)
        except SegcoreError:
            return None

    groups: dict[str, list[str]] = {}
    for address in addresses:
        shape = unless_refused(shape_of, address)
        if shape is not None:
            groups.setdefault(shape_key(shape), []).append(address)
    chosen = {key: [group[i] for i in sample_indices(len(group))] for key, group in groups.items()}
    chosen = {key: group for key, group in chosen.items() if len(group) >= rule.get("min_frames", MIN_FRAMES)}
    total = sum(len(group) for group in chosen.values())
    done = 0

    def frames_of(group):
        nonlocal done
        for address in group:
            frame = unless_refused(read, address)
            done += 1  # counted when tried, so that the count reaches the total though a frame is refused
            if progress is not None:
                progress(done, total)
            yield frame

    found: HotPixels = {}
    for key, group in chosen.items():
        hot = find_hot_pixels(frames_of(group), **rule)
        if hot is not None and hot.any():
            found[key] = np.argwhere(hot).tolist()
    return found, total


def read_hot_pixels(path) -> HotPixels:
    """Hot pixels from a file: a JSON object as :func:`hot_pixels_of_set` gives it, or a mask image (non-zero = hot)."""
    import json
    from pathlib import Path

    from .errors import InputFileError
    from .io import read_mask

    path = Path(path)
    if path.suffix.lower() == ".json":
        try:
            content = json.loads(path.read_text())
            for key, coordinates in content.items():
                hot_mask(content, tuple(int(n) for n in key.split("x")))
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            raise InputFileError(path, f"not a hot-pixel list ({{\"HxW\": [[row, column], ...]}}): {exc}") from exc
        return content
    mask = read_mask(path) > 0
    return {shape_key(mask.shape): np.argwhere(mask).tolist()} if mask.any() else {}
