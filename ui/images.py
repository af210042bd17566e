"""Pictures for the pages: 16-bit frames made visible, masks drawn over them, zoom windows.

Everything here takes and returns NumPy arrays (or PIL images for the canvas), so it
can be tested without Streamlit. Frames are detector values of any bit depth; they are
made visible with a percentile stretch (``segcore.preprocess.display_image``) because a
plain 16-bit to 8-bit cast shows most frames as black.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from segcore.preprocess import display_image

#: Colour of the cosmic mask drawn over a frame (RGB).
MASK_COLOR = (255, 40, 40)
#: Brush colours on the canvas: strokes that add cosmic pixels, and strokes that remove them.
ADD_COLOR = "rgba(255, 230, 0, 0.75)"
ERASE_COLOR = "rgba(0, 200, 255, 0.75)"
#: Canvas alpha from which a pixel counts as painted. Strokes are drawn at alpha 0.75 (191);
#: the browser's anti-aliased fringe of a stroke, less than half covered, stays below this.
MIN_ALPHA = 96
#: Difference view: pixels only in the first mask, only in the second, in both.
ONLY_A_COLOR = (255, 60, 60)
ONLY_B_COLOR = (60, 160, 255)
BOTH_COLOR = (235, 235, 235)


def render_frame(frame: np.ndarray, low: float = 1.0, high: float = 99.5, gamma: float = 1.0) -> np.ndarray:
    """The frame as 8-bit grayscale, ``low``/``high`` percentiles mapped to black/white."""
    return display_image(frame, low=low, high=high, gamma=gamma)


def to_rgb(gray: np.ndarray) -> np.ndarray:
    """(H, W) uint8 -> (H, W, 3) uint8."""
    gray = np.asarray(gray, np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)


def overlay_mask(
    gray: np.ndarray,
    mask: np.ndarray | None,
    color: tuple[int, int, int] = MASK_COLOR,
    opacity: float = 0.5,
) -> np.ndarray:
    """RGB image of ``gray`` with the mask's pixels blended towards ``color``.

    Parameters
    ----------
    gray : (H, W) uint8 rendering of a frame.
    mask : (H, W) bool (non-zero = cosmic), or None for no mask.
    opacity : 0 (mask invisible) to 1 (mask pixels fully coloured).
    """
    rgb = to_rgb(gray)
    if mask is None or opacity <= 0:
        return rgb
    mask = np.asarray(mask).astype(bool)
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask is {mask.shape[0]}x{mask.shape[1]} but the frame is {rgb.shape[0]}x{rgb.shape[1]}")
    opacity = float(min(max(opacity, 0.0), 1.0))
    blended = rgb[mask].astype(np.float32) * (1.0 - opacity) + np.asarray(color, np.float32) * opacity
    rgb[mask] = np.round(blended).astype(np.uint8)
    return rgb


def mask_image(mask: np.ndarray) -> np.ndarray:
    """A mask as a black-and-white uint8 image (cosmic = white)."""
    return np.where(np.asarray(mask).astype(bool), 255, 0).astype(np.uint8)


def difference_image(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RGB picture of two masks: pixels only in ``a`` red, only in ``b`` blue, in both light grey."""
    a = np.asarray(a).astype(bool)
    b = np.asarray(b).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in size: {a.shape} and {b.shape}")
    rgb = np.zeros(a.shape + (3,), np.uint8)
    rgb[a & b] = BOTH_COLOR
    rgb[a & ~b] = ONLY_A_COLOR
    rgb[~a & b] = ONLY_B_COLOR
    return rgb


def enlarge(image, at_least: int = 512):
    """Repeat pixels by a whole factor so small frames show sharp, one-pixel cosmics included
    (the browser would blur them when it scales the image up)."""
    factor = max(1, -(-at_least // max(image.shape[:2])))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1) if factor > 1 else image


def thumbnail(image: np.ndarray, size: int = 160) -> np.ndarray:
    """Shrink an 8-bit image so its longer side is at most ``size`` pixels.

    Shrinking takes the maximum over each block, not the mean, so that bright
    one-pixel hits stay visible in a small picture.
    """
    image = np.asarray(image)
    height, width = image.shape[:2]
    factor = max(1, math.ceil(max(height, width) / size))
    if factor == 1:
        return image
    pad_h, pad_w = (-height) % factor, (-width) % factor
    pad = ((0, pad_h), (0, pad_w)) + ((0, 0),) * (image.ndim - 2)
    padded = np.pad(image, pad, mode="edge")
    shape = (padded.shape[0] // factor, factor, padded.shape[1] // factor, factor) + image.shape[2:]
    return padded.reshape(shape).max(axis=(1, 3))


# --- zoom windows --------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A rectangle of a frame: rows ``top:top+height``, columns ``left:left+width``."""

    top: int
    left: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)

    @property
    def center(self) -> tuple[int, int]:
        return self.top + self.height // 2, self.left + self.width // 2

    def describe(self) -> str:
        return (
            f"rows {self.top}-{self.top + self.height - 1}, "
            f"columns {self.left}-{self.left + self.width - 1} ({self.height}x{self.width} pixels)"
        )


def zoom_window(shape: tuple[int, int], center_row: int, center_col: int, zoom: float) -> Window:
    """The window showing 1/``zoom`` of the frame in each direction, centred as near as possible.

    The window is moved (not shrunk) to stay inside the frame.
    """
    height, width = int(shape[0]), int(shape[1])
    if height < 1 or width < 1:
        raise ValueError(f"frame shape must be positive, got {shape}")
    if zoom < 1:
        raise ValueError(f"zoom must be at least 1, got {zoom}")
    win_h = max(1, min(height, math.ceil(height / zoom)))
    win_w = max(1, min(width, math.ceil(width / zoom)))
    top = int(np.clip(int(center_row) - win_h // 2, 0, height - win_h))
    left = int(np.clip(int(center_col) - win_w // 2, 0, width - win_w))
    return Window(top, left, win_h, win_w)


def canvas_size(window: Window, max_side: int = 640) -> tuple[int, int]:
    """Canvas (height, width) for a window: a whole-number enlargement when it fits.

    Whole-number factors keep every frame pixel a square of equal size on screen;
    windows wider than ``max_side`` are shrunk to fit instead.
    """
    longest = max(window.height, window.width)
    if longest <= max_side:
        factor = max_side // longest
        return window.height * factor, window.width * factor
    scale = max_side / longest
    return max(1, round(window.height * scale)), max(1, round(window.width * scale))


def resize_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a (H, W) or (H, W, C) array: pixels stay crisp squares."""
    image = np.asarray(image)
    rows = _nearest_index(image.shape[0], height)
    cols = _nearest_index(image.shape[1], width)
    return image[rows[:, None], cols[None, :]]


def _nearest_index(source: int, target: int) -> np.ndarray:
    """For each of ``target`` output positions, the source index whose centre is nearest."""
    index = np.floor((np.arange(target) + 0.5) * source / target).astype(np.int64)
    return np.clip(index, 0, source - 1)


def canvas_background(
    gray: np.ndarray,
    mask: np.ndarray | None,
    window: Window,
    canvas_hw: tuple[int, int],
    opacity: float = 0.5,
    color: tuple[int, int, int] = MASK_COLOR,
) -> Image.Image:
    """The window of the frame with the mask over it, enlarged to the canvas size (PIL RGB)."""
    rows, cols = window.slices
    crop = overlay_mask(gray[rows, cols], None if mask is None else np.asarray(mask)[rows, cols], color, opacity)
    return Image.fromarray(resize_nearest(crop, *canvas_hw), mode="RGB")


# --- edits drawn on the canvas ---------------------------------------------------------


def painted_pixels(image_data: np.ndarray | None, window_hw: tuple[int, int], min_alpha: int = MIN_ALPHA) -> np.ndarray:
    """Which frame pixels of a window the user painted on the canvas.

    Parameters
    ----------
    image_data : (canvas_h, canvas_w, 4) RGBA array of the strokes (the background
        frame is not part of it).
    window_hw : (height, width) of the zoom window the canvas shows.
    min_alpha : a canvas pixel is painted where its alpha is at least this (1 counts
        any trace of paint; the default ignores the anti-aliased edge of a stroke).

    Returns
    -------
    bool (height, width): each frame pixel takes the canvas pixel at its centre
    (nearest-neighbour shrink of the canvas back to frame resolution).
    """
    height, width = int(window_hw[0]), int(window_hw[1])
    if image_data is None:
        return np.zeros((height, width), bool)
    data = np.asarray(image_data)
    if data.ndim != 3 or data.shape[2] != 4:
        raise ValueError(f"canvas image must be (H, W, 4) RGBA, got shape {data.shape}")
    alpha = data[..., 3] >= max(int(min_alpha), 1)
    return resize_nearest(alpha, height, width)


def apply_edit(mask: np.ndarray, painted: np.ndarray, window: Window, erase: bool = False) -> np.ndarray:
    """A copy of the full-resolution ``mask`` with the window's painted pixels added (or removed)."""
    result = np.asarray(mask).astype(bool).copy()
    painted = np.asarray(painted).astype(bool)
    if painted.shape != (window.height, window.width):
        raise ValueError(f"painted area is {painted.shape} but the window is {window.height}x{window.width}")
    rows, cols = window.slices
    if erase:
        result[rows, cols] &= ~painted
    else:
        result[rows, cols] |= painted
    return result


def edited_mask(
    mask: np.ndarray,
    image_data: np.ndarray | None,
    window: Window,
    erase: bool = False,
) -> np.ndarray:
    """The mask after the strokes of one canvas: paint mapped back to full resolution."""
    painted = painted_pixels(image_data, (window.height, window.width))
    return apply_edit(mask, painted, window, erase=erase)


def outline(
    rgb: np.ndarray, window: Window, color: tuple[int, int, int] = (255, 215, 0), thickness: int = 1
) -> np.ndarray:
    """A copy of an RGB image with the window's border drawn on it (to show where the zoom is)."""
    out = np.array(rgb, np.uint8, copy=True)
    t = max(1, int(thickness))
    r0, c0 = window.top, window.left
    r1, c1 = window.top + window.height, window.left + window.width
    out[r0 : min(r0 + t, r1), c0:c1] = color
    out[max(r1 - t, r0) : r1, c0:c1] = color
    out[r0:r1, c0 : min(c0 + t, c1)] = color
    out[r0:r1, max(c1 - t, c0) : c1] = color
    return out


def overview(
    gray: np.ndarray,
    mask: np.ndarray | None,
    window: Window,
    color: tuple[int, int, int] = MASK_COLOR,
    opacity: float = 0.6,
    size: int = 320,
    box_color: tuple[int, int, int] = (255, 215, 0),
) -> np.ndarray:
    """The whole frame at most ``size`` pixels a side with its mask and the zoom window's box: what
    ``thumbnail(outline(overlay_mask(gray, mask, ...), window), size)`` shows, made from the shrunk frame
    and mask (block maximum: one-pixel hits stay visible), so a 16-megapixel frame costs a 320 px picture's
    work on every rerun, not a full-size RGB blend."""
    gray = np.asarray(gray)
    height, width = gray.shape[:2]
    factor = max(1, math.ceil(max(height, width) / size))
    small_mask = None if mask is None else thumbnail(np.asarray(mask).astype(np.uint8), size).astype(bool)
    picture = overlay_mask(thumbnail(gray, size), small_mask, color, opacity)
    top, left = window.top // factor, window.left // factor
    bottom = max(top + 1, math.ceil((window.top + window.height) / factor))
    right = max(left + 1, math.ceil((window.left + window.width) / factor))
    return outline(picture, Window(top, left, bottom - top, right - left), box_color, thickness=max(1, size // 128))


def difference_overlay(gray: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The frame with two masks compared on it: only in ``a`` red, only in ``b`` blue, in both white."""
    a = np.asarray(a).astype(bool)
    b = np.asarray(b).astype(bool)
    rgb = (to_rgb(gray).astype(np.float32) * 0.6).astype(np.uint8)  # dimmed so the colours stand out
    if a.shape != rgb.shape[:2] or b.shape != rgb.shape[:2]:
        raise ValueError("masks and frame differ in size")
    rgb[a & b] = BOTH_COLOR
    rgb[a & ~b] = ONLY_A_COLOR
    rgb[~a & b] = ONLY_B_COLOR
    return rgb


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    """'#ff2828' -> (255, 40, 40)."""
    color = color.lstrip("#")
    if len(color) != 6:
        raise ValueError(f"expected a colour like #ff2828, got {color!r}")
    return tuple(int(color[i : i + 2], 16) for i in (0, 2, 4))
