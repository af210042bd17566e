"""Simulated X-ray detector frames with cosmic-ray hits and exact masks.

A frame is an expected X-ray signal (powder rings, Bragg spots, beam halo or a
near-empty dark frame) read out by an integrating detector: bias, Poisson photon
noise at a gain of several ADU per photon, Gaussian read noise, hot pixels,
module gaps and saturation at 65535. Cosmic hits (short spots, straight muon
tracks, curly electron worms, alpha blobs) are deposited as noise-free charge.
A pixel belongs to the mask when that charge exceeds ``MASK_SIGMAS`` standard
deviations of the local noise ``sqrt(read_noise**2 + gain * signal)``, so the
mask marks what stands out of the noise and nothing else: Bragg spots and hot
pixels, however cosmic-like, are never in it.

Cosmic brightness is drawn relative to the local noise, so every dataset holds
faint hits near the threshold as well as saturated ones.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import erf

from .io import write_frame, write_mask

BACKGROUND_KINDS = ("powder", "bragg", "halo", "dark")
BACKGROUND_PROBABILITIES = (0.35, 0.25, 0.25, 0.15)
COSMIC_KINDS = ("spot", "track", "worm", "blob")
COSMIC_PROBABILITIES = (0.3, 0.35, 0.22, 0.13)
MASK_SIGMAS = 3.0
SATURATION = 65535
MIN_SIZE = 32
MAX_COSMICS = 15
SPLIT_FOLDERS = (("Train", "TrainAnnotation"), ("Validation", "ValidationAnnotation"), ("Test", "TestAnnotation"))
REAL_FOLDER = "Real"

_STEP = 0.5  # px between charge deposits along a track or worm


@dataclass
class SimulatedFrame:
    """One simulated frame.

    Attributes
    ----------
    frame : uint16 (H, W) detector values in ADU.
    mask : bool (H, W), True where a cosmic's charge stands above the noise.
    info : what was simulated: ``background`` kind, detector ``bias``,
        ``read_noise``, ``gain``, ``beam_centre``, ``rings``, ``bragg_spots``,
        ``hot_pixels``, ``gaps``, ``cosmics`` (one dict per hit: ``type``,
        ``centre``, ``peak_adu``, ``pixels``, ``bbox``, ``saturated``), and the
        noise-free images ``cosmic_charge``, ``noise_sigma``, ``signal`` (float32
        ADU) and ``gap_mask`` (bool).
    """

    frame: np.ndarray
    mask: np.ndarray
    info: dict = field(default_factory=dict)


def _loguniform(rng: np.random.Generator, low: float, high: float, size=None):
    return 10.0 ** rng.uniform(np.log10(low), np.log10(high), size)


def _pixel_gauss(offset: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Fraction of a unit Gaussian falling in the pixel at ``offset`` from its centre."""
    scale = 1.0 / (np.sqrt(2.0) * sigma)
    return 0.5 * (erf((offset + 0.5) * scale) - erf((offset - 0.5) * scale))


def _render_points(y, x, q, s, shape):
    """Spread point charges ``q`` at (y, x) with Gaussian widths ``s`` over pixels.

    Returns ``(row0, col0, patch)``: the summed charge on the frame-clipped
    bounding box, or ``patch`` of size 0 when nothing lands on the frame.
    """
    y, x, q, s = (np.atleast_1d(np.asarray(a, np.float64)) for a in (y, x, q, s))
    radius = int(np.ceil(3.5 * s.max())) + 1
    offsets = np.arange(-radius, radius + 1)
    rows = np.rint(y).astype(np.int64)[:, None] + offsets
    cols = np.rint(x).astype(np.int64)[:, None] + offsets
    row0, row1 = max(int(rows.min()), 0), min(int(rows.max()) + 1, shape[0])
    col0, col1 = max(int(cols.min()), 0), min(int(cols.max()) + 1, shape[1])
    if row0 >= row1 or col0 >= col1:
        return 0, 0, np.zeros((0, 0))
    wy = _pixel_gauss(rows - y[:, None], s[:, None]) * q[:, None]
    wx = _pixel_gauss(cols - x[:, None], s[:, None])
    rr = np.broadcast_to((rows - row0)[:, :, None], (len(y), rows.shape[1], cols.shape[1]))
    cc = np.broadcast_to((cols - col0)[:, None, :], rr.shape)
    valid = (rr >= 0) & (rr < row1 - row0) & (cc >= 0) & (cc < col1 - col0)
    weights = (wy[:, :, None] * wx[:, None, :])[valid]
    flat = rr[valid] * (col1 - col0) + cc[valid]
    patch = np.bincount(flat, weights=weights, minlength=(row1 - row0) * (col1 - col0))
    return row0, col0, patch.reshape(row1 - row0, col1 - col0)


def _add_patch(image: np.ndarray, rendered) -> None:
    row0, col0, patch = rendered
    image[row0 : row0 + patch.shape[0], col0 : col0 + patch.shape[1]] += patch


# --- backgrounds: expected X-ray signal in ADU, without bias ---------------------------


def _polar(shape, centre):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    dy, dx = (yy - centre[0]).astype(np.float32), (xx - centre[1]).astype(np.float32)
    return np.sqrt(dy * dy + dx * dx), np.arctan2(dy, dx)


def _beam_centre(rng, shape, inside_probability):
    h, w = shape
    if rng.random() < inside_probability:
        return float(rng.uniform(0.2, 0.8) * h), float(rng.uniform(0.2, 0.8) * w)
    return float(rng.uniform(-0.6, 1.6) * h), float(rng.uniform(-0.6, 1.6) * w)


def _diffuse(rng, r, scale):
    """Air and sample scattering falling off from the beam, plus a broad amorphous hump."""
    r0 = rng.uniform(0.05, 0.5) * scale
    signal = _loguniform(rng, 2.0, 400.0) / (1.0 + (r / r0) ** 2)
    if rng.random() < 0.5:
        centre, width = rng.uniform(0.1, 0.8) * scale, rng.uniform(0.05, 0.2) * scale
        signal += _loguniform(rng, 2.0, 300.0) * np.exp(-0.5 * ((r - centre) / width) ** 2)
    return signal


def _ring_texture(rng, radius, n_bins=2048):
    """Intensity along a powder ring: crystallite graininess and preferred orientation."""
    shape = _loguniform(rng, 0.4, 60.0)  # small: few large grains, a spotty ring
    grains = rng.gamma(shape, 1.0 / shape, n_bins)
    grain_px = rng.uniform(0.7, 3.0)
    grains = gaussian_filter1d(grains, max(grain_px * n_bins / (2 * np.pi * radius), 0.5), mode="wrap")
    angle = np.linspace(-np.pi, np.pi, n_bins, endpoint=False)
    orientation = 1.0 + rng.uniform(0.0, 0.7) * np.cos(2.0 * (angle - rng.uniform(0, np.pi)))
    texture = grains * orientation
    return texture / texture.mean()


def _powder(rng, shape, centre, r, phi, info):
    scale = float(np.hypot(*shape))
    signal = _diffuse(rng, r, scale)
    bins = 2048
    phi_index = ((phi + np.pi) * (bins / (2 * np.pi))).astype(np.int32) % bins
    r_low, r_high = float(r.min()), float(r.max())
    radii = np.sort(rng.uniform(max(r_low - 5.0, 4.0), r_high, rng.integers(2, 13)))
    for radius in radii:
        width = _loguniform(rng, 0.7, 6.0)
        peak = _loguniform(rng, 10.0, 30000.0)
        band = np.abs(r - radius) < 4.0 * width
        texture = _ring_texture(rng, radius, bins)
        signal[band] += peak * np.exp(-0.5 * ((r[band] - radius) / width) ** 2) * texture[phi_index[band]]
    info["rings"] = [round(float(v), 2) for v in radii]
    if rng.random() < 0.2:
        _bragg_spots(rng, shape, centre, signal, info, n_max=20)
    return signal


def _bragg_spots(rng, shape, centre, signal, info, n_max=150):
    """Single-crystal reflections on a 2-D lattice about the beam, kept with their Friedel mates."""
    length = rng.uniform(12.0, 60.0, 2)
    angle = rng.uniform(0, np.pi) + np.array([0.0, rng.uniform(np.pi / 3, 2 * np.pi / 3)])
    basis = np.stack([length * np.sin(angle), length * np.cos(angle)])  # columns: a, b as (dy, dx)
    reach = np.hypot(*shape) + np.hypot(centre[0] - shape[0] / 2, centre[1] - shape[1] / 2)
    n = int(np.ceil(reach / (length.min() * np.sin(abs(angle[1] - angle[0])))))
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    half = (i > 0) | ((i == 0) & (j > 0))  # one of each Friedel pair
    i, j = i[half], j[half]
    vec = basis @ np.stack([i, j]).astype(np.float64)
    keep = rng.random(i.size) < rng.uniform(0.03, 0.25)
    pairs = np.concatenate([vec[:, keep], -vec[:, keep & (rng.random(i.size) < 0.8)]], axis=1)
    y, x = centre[0] + pairs[0], centre[1] + pairs[1]
    inside = (y > -2) & (y < shape[0] + 1) & (x > -2) & (x < shape[1] + 1)
    order = rng.permutation(int(inside.sum()))[:n_max]
    y, x = y[inside][order], x[inside][order]
    if y.size == 0:
        info.setdefault("bragg_spots", [])
        return
    sigma = rng.uniform(0.5, 1.6, y.size)
    falloff = np.exp(-(np.hypot(y - centre[0], x - centre[1]) / (0.7 * reach)) ** 2)
    peak = _loguniform(rng, 30.0, 60000.0, y.size) * falloff
    _add_patch(signal, _render_points(y, x, peak * 2 * np.pi * sigma**2, sigma, shape))
    spots = [(round(float(a), 2), round(float(b), 2)) for a, b in zip(y, x)]
    info["bragg_spots"] = info.get("bragg_spots", []) + spots


def _bragg(rng, shape, centre, r, phi, info):
    signal = _diffuse(rng, r, float(np.hypot(*shape)))
    _bragg_spots(rng, shape, centre, signal, info)
    return signal


def _halo(rng, shape, centre, r, phi, info):
    scale = float(np.hypot(*shape))
    width = rng.uniform(0.03, 0.5) * scale
    signal = _loguniform(rng, 50.0, 40000.0) * np.exp(-0.5 * (r / width) ** 2)
    return signal + _diffuse(rng, r, scale)


def _dark(rng, shape, centre, r, phi, info):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    slope = rng.normal(0.0, 0.5, 2) / max(shape)
    signal = rng.uniform(0.0, 4.0) + np.abs(slope[0] * yy + slope[1] * xx).astype(np.float32)
    if rng.random() < 0.4:  # amplifier glow from one corner
        corner = rng.integers(0, 2, 2) * (np.array(shape) - 1)
        distance = np.hypot(yy - corner[0], xx - corner[1])
        signal = signal + _loguniform(rng, 5.0, 300.0) * np.exp(-distance / (rng.uniform(0.05, 0.3) * max(shape)))
    return signal


_BACKGROUNDS = {"powder": _powder, "bragg": _bragg, "halo": _halo, "dark": _dark}


def _beam_stop(rng, shape, centre, r, phi, signal):
    """Shadow of a round beam stop and its holding arm."""
    radius = rng.uniform(0.02, 0.07) * max(shape)
    arm = rng.uniform(-np.pi, np.pi)
    across = np.abs(np.sin(phi - arm)) * r
    shadow = (r < radius) | ((across < 0.4 * radius) & (np.cos(phi - arm) > 0))
    signal[shadow] *= 0.01


# --- cosmics: noise-free deposited charge in ADU -----------------------------------------


def _draw_snr(rng):
    """Peak charge over local noise: some faint near threshold, most clear, some saturating."""
    u = rng.random()
    if u < 0.2:
        return rng.uniform(2.5, 6.0)
    if u < 0.88:
        return _loguniform(rng, 6.0, 300.0)
    return _loguniform(rng, 300.0, 4000.0)


def _line_density(peak, sigma):
    """Charge per px of track length that gives roughly ``peak`` ADU in the central pixel."""
    return peak * np.sqrt(2 * np.pi) * max(float(sigma), 0.4)


def _walk(rng, start, heading, n_steps, curl):
    """Electron path: a random walk whose scattering grows as the electron slows."""
    t = np.arange(n_steps) / max(n_steps - 1, 1)
    turns = rng.normal(0.0, 1.0, n_steps) * curl * (1.0 + 4.0 * t**2)
    direction = heading + np.cumsum(turns)
    y = start[0] + np.cumsum(_STEP * np.sin(direction))
    x = start[1] + np.cumsum(_STEP * np.cos(direction))
    return y, x, direction, t


def _worm_points(rng, start, density, sigma, n_steps, curl, heading=None):
    heading = rng.uniform(-np.pi, np.pi) if heading is None else heading
    y, x, direction, t = _walk(rng, start, heading, n_steps, curl)
    # energy loss rises towards the end of the range, ending in a bright stopping blob
    q = _STEP * density * (1.0 - 0.9 * t) ** -0.6 * rng.lognormal(0.0, 0.3, n_steps)
    s = np.full(n_steps, sigma)
    y, x = np.append(y, y[-1]), np.append(x, x[-1])
    q, s = np.append(q, rng.uniform(3.0, 8.0) * density), np.append(s, sigma * rng.uniform(1.3, 2.0))
    return y, x, q, s, direction


def _join(points, more):
    """Concatenate two (y, x, q, s) point sets."""
    return tuple(np.concatenate([a, b]) for a, b in zip(points, more))


def _muon_projection(rng, ratio, vertical):
    """Projected length (px) and image angle of a muon track.

    Muons arrive with intensity ~cos^2(zenith) per solid angle; the flux through
    the sensor weighs each direction by its cosine to the sensor normal. A
    vertical sensor (common at beamlines) sees long, mostly up-down tracks.
    """
    while True:
        cos_zenith = rng.random() ** (1.0 / 3.0)
        sin_zenith = np.sqrt(1.0 - cos_zenith**2)
        azimuth = rng.uniform(-np.pi, np.pi)
        d = np.array([sin_zenith * np.cos(azimuth), sin_zenith * np.sin(azimuth), cos_zenith])  # x, y, up
        normal = abs(d[0]) if vertical else d[2]
        if rng.random() < normal:
            break
    in_plane = (-d[2], d[1]) if vertical else (d[0], d[1])  # (row, column) components
    tan_incidence = np.sqrt(max(1.0 - normal**2, 0.0)) / max(normal, 1e-6)
    return ratio * tan_incidence, float(np.arctan2(*in_plane))


def _cosmic(rng, kind, anchor, sigma_at, ratio, vertical, shape):
    """Point deposits (y, x, charge, width) and a description of one cosmic hit."""
    ay, ax = anchor
    noise = sigma_at(ay, ax)
    desc = {"type": kind, "centre": (round(ay, 2), round(ax, 2))}
    if kind == "spot":
        # a near-vertical muon or a low-energy deposit: one to four pixels, a 3x3 patch when bright
        peak = min(_draw_snr(rng), 200.0) * noise  # a small deposit: no wide bright wings
        n = 1 if rng.random() < 0.7 else 2
        y = ay + np.arange(n) * rng.uniform(-1.0, 1.0)
        x = ax + np.arange(n) * rng.uniform(-1.0, 1.0)
        s = rng.uniform(0.25, 0.55, n)
        q = peak * 2 * np.pi * np.maximum(s, 0.4) ** 2 * rng.uniform(0.6, 1.0, n)
        return (y, x, q, s), desc
    if kind == "track":
        length, angle = _muon_projection(rng, ratio, vertical)
        length = float(np.clip(length, 3.0, 1.2 * np.hypot(*shape)))
        n = int(np.ceil(length / _STEP)) + 1
        t = np.linspace(-0.5, 0.5, n)
        y, x = ay + t * length * np.sin(angle), ax + t * length * np.cos(angle)
        # diffusion widens the end where the charge drifted farther
        s_near, s_far = rng.uniform(0.35, 0.6), rng.uniform(0.6, 1.4)
        s = np.linspace(s_near, s_far, n) if rng.random() < 0.5 else np.linspace(s_far, s_near, n)
        density = _line_density(_draw_snr(rng) * noise, s.mean())
        landau = -np.log(rng.standard_normal(n) ** 2)  # Moyal approximation of the Landau law
        q = _STEP * density * np.clip(1.0 + 0.3 * landau, 0.15, None)
        desc["length"] = round(length, 2)
        if rng.random() < 0.15:  # a delta-ray electron knocked out along the track
            k = rng.integers(0, n)
            delta = _worm_points(rng, (y[k], x[k]), 0.5 * density, s[k], int(rng.integers(6, 30)), 0.3)[:4]
            y, x, q, s = _join((y, x, q, s), delta)
            desc["delta_ray"] = True
        return (y, x, q, s), desc
    if kind == "worm":
        n = int(_loguniform(rng, 16, 300))
        sigma = rng.uniform(0.4, 0.8)
        density = _line_density(_draw_snr(rng) * noise, sigma)
        y, x, q, s, direction = _worm_points(rng, (ay, ax), density, sigma, n, rng.uniform(0.05, 0.25))
        desc["length"] = round(n * _STEP, 2)
        desc["branched"] = bool(rng.random() < 0.3)
        if desc["branched"]:
            k = int(rng.integers(0, max(int(0.7 * n), 1)))
            heading = direction[k] + rng.choice([-1, 1]) * rng.uniform(0.5, 1.5)
            branch = _worm_points(rng, (y[k], x[k]), 0.6 * density, sigma, max(n // 3, 4), 0.2, heading)[:4]
            y, x, q, s = _join((y, x, q, s), branch)
        return (y, x, q, s), desc
    # alpha: ~1e6 electrons (4e5-4e6 ADU) in a round, usually saturated core with a halo
    total = _loguniform(rng, 4e5, 4e6)
    core_sigma = rng.uniform(0.6, 1.3)
    n = int(rng.integers(1, 6))
    angle, extent = rng.uniform(0, np.pi), rng.uniform(0.0, 2.5)
    t = np.linspace(-0.5, 0.5, n) * extent
    y = np.concatenate([ay + t * np.sin(angle), [ay, ay]])
    x = np.concatenate([ax + t * np.cos(angle), [ax, ax]])
    q = np.concatenate([np.full(n, 0.81 * total / n), [0.15 * total, 0.04 * total]])
    halo = core_sigma * np.array([rng.uniform(2.0, 3.0), rng.uniform(4.0, 6.0)])
    s = np.concatenate([np.full(n, core_sigma), halo])
    return (y, x, q, s), desc


def _anchor(rng, shape, placed, rings, centre):
    """Where a cosmic sits: anywhere, across an earlier hit, or across a powder ring."""
    u = rng.random()
    if placed and u < 0.2:
        y, x = np.array(placed[rng.integers(len(placed))]) + rng.normal(0, 3, 2)
        return float(np.clip(y, 0, shape[0] - 1)), float(np.clip(x, 0, shape[1] - 1))
    if rings and u < 0.5:
        radius = rings[rng.integers(len(rings))]
        for angle in rng.uniform(-np.pi, np.pi, 16):
            y, x = centre[0] + radius * np.sin(angle), centre[1] + radius * np.cos(angle)
            if 0 <= y < shape[0] and 0 <= x < shape[1]:
                return float(y), float(x)
    return float(rng.uniform(0, shape[0] - 1)), float(rng.uniform(0, shape[1] - 1))


def _gaps(rng, shape):
    """Rows and columns between detector modules, where no pixel exists."""
    gap = np.zeros(shape, bool)
    spans = []
    if rng.random() < 0.35:
        for axis in (0, 1):
            if rng.random() < 0.6:
                size = shape[axis]
                width = int(rng.integers(1, 9))
                start = int(size * rng.choice([0.25, 1 / 3, 0.5, 2 / 3, 0.75])) - width // 2
                (gap[start : start + width] if axis == 0 else gap[:, start : start + width])[...] = True
                spans.append(("row" if axis == 0 else "column", start, start + width))
    return gap, spans


def _check_size(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < MIN_SIZE:
        raise ValueError(f"{name} must be at least {MIN_SIZE} pixels, got {value}")


def _is_count(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= 0


def _signal(rng, shape, kind, info):
    """Expected X-ray signal (ADU, no bias) of one background kind, with beam stop and pixel response."""
    centre = _beam_centre(rng, shape, 0.7 if kind == "bragg" else 0.5)
    info["beam_centre"] = (round(centre[0], 2), round(centre[1], 2))
    r, phi = _polar(shape, centre)
    signal = np.asarray(_BACKGROUNDS[kind](rng, shape, centre, r, phi, info), np.float64)
    signal = np.broadcast_to(signal, shape).copy()
    inside = 0 <= centre[0] < shape[0] and 0 <= centre[1] < shape[1]
    if kind != "dark" and inside and rng.random() < 0.6:
        _beam_stop(rng, shape, centre, r, phi, signal)
    signal *= 1.0 + 0.01 * rng.standard_normal(shape)  # pixel response non-uniformity
    return np.maximum(signal, 0.0), centre


def _deposit_cosmics(rng, count, sigma, gap, rings, centre):
    """Noise-free charge of ``count`` cosmic hits; returns the image and each hit's patch and description."""
    shape = sigma.shape
    ratio = _loguniform(rng, 1.0, 40.0)  # sensor thickness over pixel pitch
    vertical = bool(rng.random() < 0.5)  # sensor plane vertical, as at many beamlines

    def sigma_at(y, x):
        return float(sigma[int(np.clip(round(y), 0, shape[0] - 1)), int(np.clip(round(x), 0, shape[1] - 1))])

    charge = np.zeros(shape)
    hits, placed = [], []
    for _ in range(count):
        kind = str(rng.choice(COSMIC_KINDS, p=COSMIC_PROBABILITIES))
        anchor = _anchor(rng, shape, placed, rings, centre)
        points, desc = _cosmic(rng, kind, anchor, sigma_at, ratio, vertical, shape)
        row0, col0, patch = _render_points(*points, shape)
        patch = patch * ~gap[row0 : row0 + patch.shape[0], col0 : col0 + patch.shape[1]]  # no pixels in gaps
        _add_patch(charge, (row0, col0, patch))
        placed.append(anchor)
        hits.append(((row0, col0, patch), desc))
    detector = {"sensor_vertical": vertical, "thickness_over_pitch": round(ratio, 3)}
    return charge, hits, detector


def _describe_hit(rendered, desc, sigma, frame):
    """Add the hit's own above-threshold area, bounding box, peak and saturation to ``desc``."""
    row0, col0, patch = rendered
    window = (slice(row0, row0 + patch.shape[0]), slice(col0, col0 + patch.shape[1]))
    own = patch.astype(np.float32) > MASK_SIGMAS * sigma[window]
    rows, cols = np.nonzero(own)
    desc["peak_adu"] = round(float(patch.max()), 2) if patch.size else 0.0
    desc["pixels"] = int(own.sum())
    desc["bbox"] = None
    if rows.size:
        desc["bbox"] = (int(rows.min()) + row0, int(cols.min()) + col0,
                        int(rows.max()) + row0 + 1, int(cols.max()) + col0 + 1)
    desc["saturated"] = bool(np.any(frame[window][own] >= SATURATION))
    return desc


def simulate_frame(
    rng: np.random.Generator,
    height: int,
    width: int | None = None,
    kind: str | None = None,
    *,
    n_cosmics: int | None = None,
) -> SimulatedFrame:
    """Simulate one detector frame with cosmic hits and its ground-truth mask.

    Parameters
    ----------
    rng : source of randomness; the same generator state gives the same frame.
    height, width : frame size in pixels (at least 32); ``width`` defaults to ``height``.
    kind : background, one of ``BACKGROUND_KINDS``; drawn at random when None.
    n_cosmics : number of cosmic hits; drawn at random (0 to 15) when None.

    Returns
    -------
    SimulatedFrame with ``frame`` (uint16), ``mask`` (bool) and ``info``.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    width = height if width is None else width
    _check_size("height", height)
    _check_size("width", width)
    if kind is not None and kind not in BACKGROUND_KINDS:
        raise ValueError(f"unknown background kind {kind!r}; expected one of {BACKGROUND_KINDS}")
    if n_cosmics is not None and not _is_count(n_cosmics):
        raise ValueError(f"n_cosmics must be a non-negative integer, got {n_cosmics!r}")
    shape = (int(height), int(width))
    kind = kind if kind is not None else str(rng.choice(BACKGROUND_KINDS, p=BACKGROUND_PROBABILITIES))

    bias, read_noise, gain = rng.uniform(20.0, 400.0), rng.uniform(2.0, 15.0), _loguniform(rng, 1.0, 20.0)
    info: dict = {"background": kind, "bias": float(bias), "read_noise": float(read_noise), "gain": float(gain),
                  "rings": [], "bragg_spots": []}
    signal, centre = _signal(rng, shape, kind, info)
    sigma = np.sqrt(read_noise**2 + gain * signal).astype(np.float32)
    gap, spans = _gaps(rng, shape)

    if n_cosmics is None:
        n_cosmics = min(int(rng.poisson(_loguniform(rng, 1.0, 8.0))), MAX_COSMICS)
    charge, hits, detector = _deposit_cosmics(rng, int(n_cosmics), sigma, gap, info["rings"], centre)
    charge32 = charge.astype(np.float32)
    mask = charge32 > MASK_SIGMAS * sigma

    # readout: photon noise at the gain, hot pixels, read noise, bias, gaps, saturation
    frame = gain * rng.poisson(signal / gain) + charge + bias
    if rng.random() < 0.4:  # column-wise offset pattern of the readout
        frame += rng.normal(0.0, 0.15 * read_noise, shape[1])
    hot = []
    if rng.random() < 0.6:
        n_hot = int(rng.integers(1, 16))
        hy, hx = rng.integers(0, shape[0], n_hot), rng.integers(0, shape[1], n_hot)
        hy, hx = hy[~gap[hy, hx]], hx[~gap[hy, hx]]
        frame[hy, hx] += _loguniform(rng, 300.0, 70000.0, hy.size)
        hot = [(int(a), int(b)) for a, b in zip(hy, hx)]
    frame += rng.normal(0.0, read_noise, shape)
    frame[gap] = 0.0
    frame = np.clip(np.rint(frame), 0, SATURATION).astype(np.uint16)

    info.update(
        detector,
        hot_pixels=hot,
        gaps=spans,
        cosmics=[_describe_hit(rendered, desc, sigma, frame) for rendered, desc in hits],
        n_cosmics=len(hits),
        cosmic_charge=charge32,
        noise_sigma=sigma,
        signal=signal.astype(np.float32),
        gap_mask=gap,
    )
    return SimulatedFrame(frame=frame, mask=mask, info=info)


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

    Returns
    -------
    dict with ``counts`` (frames per split), ``cosmics`` (total hits),
    ``cosmics_per_split``, ``visible_cosmics`` (hits with at least one masked
    pixel), ``background_kinds``, ``cosmic_kinds``, ``frames``,
    ``size``, ``seed`` and ``out_dir``.
    """
    counts = {"Train": n_train, "Validation": n_validation, "Test": n_test, REAL_FOLDER: n_real}
    for name, value in counts.items():
        if not _is_count(value):
            raise ValueError(f"number of {name} frames must be a non-negative integer, got {value!r}")
    _check_size("size", size)
    if not _is_count(seed):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if progress is not None and not callable(progress):
        raise TypeError("progress must be callable or None")

    out_dir = Path(out_dir)
    folders = {split: (out_dir / split, out_dir / annotation) for split, annotation in SPLIT_FOLDERS}
    folders[REAL_FOLDER] = (out_dir / REAL_FOLDER, None)
    targets = [d for pair in folders.values() for d in pair if d is not None]
    stale = [p for d in targets if d.is_dir() for p in sorted(d.glob("frame_*.png"))]
    if stale and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds frames (e.g. {stale[0]}); write to an empty folder or pass overwrite=True"
        )
    for path in stale:
        path.unlink()
    for split, (image_dir, mask_dir) in folders.items():
        if split != REAL_FOLDER or counts[split]:
            image_dir.mkdir(parents=True, exist_ok=True)
            if mask_dir is not None:
                mask_dir.mkdir(parents=True, exist_ok=True)

    total = sum(int(v) for v in counts.values())
    digits = max(5, len(str(max(total - 1, 0))))
    summary_cosmics = {split: 0 for split in counts}
    backgrounds, kinds = Counter(), Counter()
    index = visible = 0
    for split, n in counts.items():
        image_dir, mask_dir = folders[split]
        for _ in range(int(n)):
            sim = simulate_frame(np.random.default_rng([int(seed), index]), int(size))
            name = f"frame_{index:0{digits}d}.png"
            write_frame(image_dir / name, sim.frame)
            if mask_dir is not None:
                write_mask(mask_dir / name, sim.mask)
            summary_cosmics[split] += sim.info["n_cosmics"]
            visible += sum(1 for c in sim.info["cosmics"] if c["pixels"])
            backgrounds[sim.info["background"]] += 1
            kinds.update(c["type"] for c in sim.info["cosmics"])
            index += 1
            if progress is not None:
                progress(index, total)
    return {
        "out_dir": str(out_dir),
        "seed": int(seed),
        "size": int(size),
        "frames": total,
        "counts": {split: int(n) for split, n in counts.items()},
        "cosmics": sum(summary_cosmics.values()),
        "cosmics_per_split": summary_cosmics,
        "visible_cosmics": visible,
        "background_kinds": dict(backgrounds),
        "cosmic_kinds": dict(kinds),
    }
