"""Spreading point charges over pixels: a Gaussian of the physical width, integrated over each pixel."""

from __future__ import annotations

import numpy as np
from scipy.special import erf

MIN_SIGMA_PX = 0.02  # a charge cloud narrower than this lands in one pixel anyway


def loguniform(rng: np.random.Generator, low: float, high: float, size=None):
    """Log-uniform draw(s) in [low, high]."""
    return 10.0 ** rng.uniform(np.log10(low), np.log10(high), size)


def pixel_gauss(offset: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Fraction of a unit Gaussian of width ``sigma`` (px) falling in the pixel at ``offset`` from its centre."""
    scale = 1.0 / (np.sqrt(2.0) * np.maximum(sigma, MIN_SIGMA_PX))
    return 0.5 * (erf((offset + 0.5) * scale) - erf((offset - 0.5) * scale))


def render_points(y, x, q, s, shape):
    """Spread point charges ``q`` at (y, x) with Gaussian widths ``s`` (px) over pixels.

    Returns ``(row0, col0, patch)``: the summed charge on the frame-clipped bounding
    box, or a ``patch`` of size 0 when nothing lands on the frame.
    """
    y, x, q, s = (np.atleast_1d(np.asarray(a, np.float64)) for a in (y, x, q, s))
    if y.size == 0:
        return 0, 0, np.zeros((0, 0))
    radius = int(np.ceil(4.0 * s.max())) + 1
    offsets = np.arange(-radius, radius + 1)
    rows = np.rint(y).astype(np.int64)[:, None] + offsets
    cols = np.rint(x).astype(np.int64)[:, None] + offsets
    row0, row1 = max(int(rows.min()), 0), min(int(rows.max()) + 1, shape[0])
    col0, col1 = max(int(cols.min()), 0), min(int(cols.max()) + 1, shape[1])
    if row0 >= row1 or col0 >= col1:
        return 0, 0, np.zeros((0, 0))
    wy = pixel_gauss(rows - y[:, None], s[:, None]) * q[:, None]
    wx = pixel_gauss(cols - x[:, None], s[:, None])
    rr = np.broadcast_to((rows - row0)[:, :, None], (len(y), rows.shape[1], cols.shape[1]))
    cc = np.broadcast_to((cols - col0)[:, None, :], rr.shape)
    valid = (rr >= 0) & (rr < row1 - row0) & (cc >= 0) & (cc < col1 - col0)
    weights = (wy[:, :, None] * wx[:, None, :])[valid]
    flat = rr[valid] * (col1 - col0) + cc[valid]
    patch = np.bincount(flat, weights=weights, minlength=(row1 - row0) * (col1 - col0))
    return row0, col0, patch.reshape(row1 - row0, col1 - col0)


def add_patch(image: np.ndarray, rendered) -> None:
    """Add a ``(row0, col0, patch)`` from :func:`render_points` into ``image`` in place."""
    row0, col0, patch = rendered
    image[row0 : row0 + patch.shape[0], col0 : col0 + patch.shape[1]] += patch
