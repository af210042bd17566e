"""Cutting a frame into overlapping tiles whose interiors partition it.

A frame is padded by reflection to a multiple of :data:`TILE_MULTIPLE` and cut into
equal tiles that overlap. Each tile writes only its interior: the boundary between
two neighbouring tiles lies in the middle of their overlap, so every output pixel
comes from exactly one tile, one that saw at least ``overlap // 2`` pixels of
context on every side that is not the frame border. Frames up to
:data:`DEFAULT_TILE` pixels a side are one tile; larger ones are cut into as few
equal tiles as fit, so the network sees few pixels twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Tile sizes, overlaps and padded frames are multiples of this (the network's output stride).
TILE_MULTIPLE = 16
#: Largest tile side by default: a 2048x2048 frame runs as one tile (about 2 GiB
#: of memory in float32), larger frames in as few tiles as fit.
DEFAULT_TILE = 2048
DEFAULT_OVERLAP = 64
#: Without a batch size, each network call gets as many tiles as fit in this many pixels.
BATCH_PIXELS = 2048 * 2048


@dataclass(frozen=True)
class Tile:
    """One tile of a padded frame.

    ``window`` is the region fed to the network, ``interior`` the region this
    tile writes to the output; both are (row slice, column slice) in padded
    frame coordinates.
    """

    window: tuple[slice, slice]
    interior: tuple[slice, slice]

    @property
    def local_interior(self) -> tuple[slice, slice]:
        """The interior in the tile's own coordinates."""
        return tuple(
            slice(inner.start - outer.start, inner.stop - outer.start)
            for inner, outer in zip(self.interior, self.window)
        )


def check_tiling(tile: int, overlap: int) -> None:
    """ValueError (TypeError for a non-integer) unless tile and overlap are multiples of 16 with 0 <= overlap < tile."""
    for name, value in (("tile", tile), ("overlap", overlap)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        if value % TILE_MULTIPLE:
            raise ValueError(f"{name} must be a multiple of {TILE_MULTIPLE}, got {value}")
    if tile <= 0:
        raise ValueError(f"tile must be positive, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be at least 0 and smaller than tile ({tile}), got {overlap}")


def _axis_spans(length: int, largest: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(start, stop, interior start, interior stop) of the tiles along one axis.

    As few tiles as cover ``length`` with tiles of at most ``largest`` pixels
    overlapping by ``overlap``, each made as small as that count allows.
    """
    if largest >= length:
        return [(0, length, 0, length)]
    count = math.ceil((length - overlap) / (largest - overlap))
    size = min(largest, -(-math.ceil((length + (count - 1) * overlap) / count) // TILE_MULTIPLE) * TILE_MULTIPLE)
    stride = size - overlap
    # The last tile is moved back to end at the border, so it may overlap more.
    starts = list(range(0, length - size, stride)) + [length - size]
    bounds = [0] + [(a + b + size) // 2 for a, b in zip(starts[:-1], starts[1:])] + [length]
    return [(s, s + size, bounds[i], bounds[i + 1]) for i, s in enumerate(starts)]


def tile_layout(shape: tuple[int, int], tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP) -> list[Tile]:
    """The tiles that cover a padded frame.

    Parameters
    ----------
    shape : (height, width) of the padded frame, multiples of 16.
    tile : largest tile side. Along each axis the frame is cut into as few
        tiles as fit, each as small as that number allows (a multiple of 16):
        a side of 2048 with tile 512 and overlap 64 gives 5 tiles of 464.
        A frame side no longer than ``tile`` is one tile.
    overlap : how much neighbouring tiles overlap (at least; the last tile on
        each axis is moved back to end at the border and may overlap more).

    Returns
    -------
    list of Tile, all with the same window shape, in raster order. The
    interiors partition the frame; each interior edge that is not on the frame
    border lies at least ``overlap // 2`` pixels inside its window.
    """
    check_tiling(tile, overlap)
    if len(shape) != 2 or any(int(s) <= 0 or int(s) % TILE_MULTIPLE for s in shape):
        raise ValueError(f"shape must be 2 positive multiples of {TILE_MULTIPLE}, got {tuple(shape)}")
    rows = _axis_spans(int(shape[0]), tile, overlap)
    cols = _axis_spans(int(shape[1]), tile, overlap)
    return [
        Tile((slice(r0, r1), slice(c0, c1)), (slice(ri0, ri1), slice(ci0, ci1)))
        for r0, r1, ri0, ri1 in rows
        for c0, c1, ci0, ci1 in cols
    ]


def padded_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """Frame shape rounded up to multiples of 16."""
    return tuple(-(-int(s) // TILE_MULTIPLE) * TILE_MULTIPLE for s in shape)


def default_batch_size(tile_shape: tuple[int, int]) -> int:
    """Tiles per network call when none is given: as many as fit in :data:`BATCH_PIXELS` pixels, at least one."""
    return max(1, BATCH_PIXELS // (int(tile_shape[0]) * int(tile_shape[1])))
