"""What is done with a predicted mask: grow it by a safety margin, and clean the frame under it.

Growing (:func:`dilate`): every masked pixel also masks the pixels within ``N`` of it in
rows and columns, a (2N + 1) x (2N + 1) square, the neighbourhood of the 8-connectivity
cosmics are counted with. Grey dilation commutes with thresholding (``dilate(p) > t`` is
``dilate(p > t)``), so a probability map is grown the same way and every threshold's mask,
and every curve, sees the grown mask.

Cleaning (:func:`clean_frame`): each masked pixel becomes the median of the unmasked
pixels in a square window around it, 5 x 5 first, then 9 x 9, 17 x 17, ... until the
window holds at least :data:`MIN_NEIGHBOURS` unmasked pixels (LA Cosmic's own
"median of unmasked neighbours" cleaning, grown for long tracks). A median, unlike an
inpainting that carries the border pixels inward, is not pulled up by a faint halo pixel
the mask left out beside a hit, and it keeps the frame's integer levels. Unmasked pixels
are not touched.
"""

from __future__ import annotations

import cv2
import numpy as np

#: A cleaned pixel's median is taken over at least this many unmasked neighbours (when the frame has them).
MIN_NEIGHBOURS = 5
#: Half-width of the first cleaning window (5 x 5).
FIRST_RADIUS = 2
#: The largest margin :func:`dilate` grows by.
MAX_DILATION = 64


def check_dilation(pixels) -> int:
    """``pixels`` as an int in [0, MAX_DILATION], else ValueError."""
    if isinstance(pixels, bool) or not float(pixels).is_integer() or not 0 <= int(pixels) <= MAX_DILATION:
        raise ValueError(f"dilation must be a whole number of pixels from 0 to {MAX_DILATION}, got {pixels}")
    return int(pixels)


def dilate(array, pixels: int) -> np.ndarray:
    """Grow a mask (or a probability map) by ``pixels`` in every direction.

    Parameters
    ----------
    array : 2-D bool mask or numeric map (probabilities).
    pixels : margin N >= 0; each value becomes the maximum over the (2N + 1) x (2N + 1)
        square around it. 0 returns the array unchanged.

    Returns
    -------
    ndarray of the input's shape; bool for a bool mask, float32 for a float16 map,
    else the input's dtype.
    """
    pixels = check_dilation(pixels)
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {array.shape}")
    if pixels == 0:
        return array
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    if array.dtype == bool:
        return cv2.dilate(array.view(np.uint8), kernel).astype(bool)
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    return cv2.dilate(np.ascontiguousarray(array), kernel)


def clean_frame(frame, mask, invalid=None) -> np.ndarray:
    """The frame with its masked pixels replaced by the median of unmasked neighbours.

    Parameters
    ----------
    frame : 2-D array of detector values, any numeric dtype.
    mask : 2-D mask of the frame's shape; non-zero = replace.
    invalid : optional 2-D mask of pixels that hold no measurement (a detector's gaps and
        bad pixels): never used to fill, and kept as they are even where ``mask`` is set.

    Returns
    -------
    ndarray of the frame's dtype and shape: unmasked pixels bit for bit the frame's,
    masked ones the median of the unmasked pixels in the smallest window (5 x 5, 9 x 9,
    17 x 17, ...) that holds at least :data:`MIN_NEIGHBOURS` of them, rounded to the
    nearest value an integer frame can hold.

    Raises
    ------
    ValueError
        If the shapes differ, or the mask covers the whole frame (nothing to fill from).
    """
    frame = np.asarray(frame)
    mask = np.asarray(mask)
    if frame.ndim != 2 or mask.shape != frame.shape:
        raise ValueError(f"frame {frame.shape} and mask {mask.shape} must be 2-D and of the same shape")
    mask = mask if mask.dtype == bool else mask != 0
    unusable = mask
    if invalid is not None:
        invalid = np.asarray(invalid, dtype=bool)
        mask = mask & ~invalid
        unusable = mask | invalid
    cleaned = frame.copy()
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return cleaned
    usable = mask.size - int(np.count_nonzero(unusable))
    if usable == 0:
        raise ValueError("the mask covers the whole frame; there is nothing to clean it from")
    values = np.where(unusable, np.nan, frame.astype(np.float64))
    need = min(MIN_NEIGHBOURS, usable)
    filled = np.full(rows.size, np.nan)
    todo = np.arange(rows.size)
    radius = FIRST_RADIUS
    while todo.size:
        padded = np.pad(values, radius, constant_values=np.nan)
        side = 2 * radius + 1
        windows = np.lib.stride_tricks.sliding_window_view(padded, (side, side))[rows[todo], cols[todo]]
        windows = windows.reshape(todo.size, -1)
        enough = np.count_nonzero(~np.isnan(windows), axis=1) >= need
        if enough.any():
            filled[todo[enough]] = np.nanmedian(windows[enough], axis=1)
        todo = todo[~enough]
        radius = 2 * radius
    cleaned[rows, cols] = _as_dtype(filled, frame.dtype)
    return cleaned


def _as_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    if np.issubdtype(dtype, np.bool_):
        return values >= 0.5
    return values.astype(dtype)
