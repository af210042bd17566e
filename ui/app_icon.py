"""The browser tab's icon, drawn here and sent inside the page: nothing is fetched from an outside
server (a ``:material/...:`` page icon makes the browser load it from Google's font server, which
fails on an offline beamline network)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def app_icon():
    """A 64x64 RGBA picture: a bright cosmic-ray track and a spot on a dark detector frame."""
    from PIL import Image

    size = 64
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., :3] = (24, 32, 48)
    rgba[..., 3] = 255
    rows, cols = np.mgrid[:size, :size]
    # A straight track from top left to bottom right, with a soft halo.
    distance = np.abs(rows - cols * 0.7 - 8) / np.hypot(1, 0.7)
    track = np.clip(1.5 - distance / 2.0, 0, 1) * ((cols > 6) & (cols < 58))
    spot = np.clip(1.2 - np.hypot(rows - 46, cols - 18) / 4.0, 0, 1)
    glow = np.maximum(track, spot)[..., None]
    colour = np.array([255, 200, 40], np.float32)
    rgba[..., :3] = np.round(rgba[..., :3] * (1 - glow) + colour * glow).astype(np.uint8)
    return Image.fromarray(rgba, mode="RGBA")
