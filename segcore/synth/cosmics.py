"""Cosmic hits from the geometry and physics of the sensor, as deposited electrons.

Kinds (``COSMIC_KINDS``):

- ``"track"``: a minimum-ionising muon crossing the sensor. Projected length =
  thickness x tan(zenith) / pitch, the direction drawn from the cos^2 zenith law
  weighted by the flux through the sensor plane; ~80 e-/um most probable energy
  loss (mean ~110, Moyal approximation of the Landau law) fluctuating along the
  track; width from diffusion (narrow where the charge was made next to the
  collecting side, wide at the far side); now and then a delta-ray electron.
- ``"spot"``: a low-energy deposit (Compton electron, fluorescence, radioactivity)
  of a few keV, one point of the sensor's diffusion width: 1-4 px on small pixels.
- ``"worm"``: an electron of 5-500 keV: a curly walk of range ~70 um x (E/100 keV)^1.7
  over the pitch, ending in a bright stop: long worms on small pixels, one or two
  pixels on hybrid pixels.
- ``"blob"``: an alpha of 4-8 MeV (1-2 million e-) stopping within 20-40 um: compact.

Everything is rendered with its physical width over the pixel, so bright deposits
do not grow wide Gaussian halos. Blooming (CCDs) is :func:`bloom`.
"""

from __future__ import annotations

import numpy as np

from .detectors import EV_PER_ELECTRON
from .render import loguniform, render_points

COSMIC_KINDS = ("spot", "track", "worm", "blob")
MIP_MPV_E_PER_UM = 80.0
LANDAU_WIDTH = 0.3  # Moyal scale: mean = MPV x (1 + 0.3 x 1.27) ~ 110 e-/um
_STEP = 0.25  # px between point deposits along a track or worm


def muon_direction(rng: np.random.Generator, vertical: bool) -> tuple[float, float]:
    """tan(incidence to the sensor normal) and image angle (rad) of one muon.

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
    return float(tan_incidence), float(np.arctan2(*in_plane))


def electron_range_um(kev):
    """CSDA range of an electron in silicon, ~70 um at 100 keV (power-law fit)."""
    return 70.0 * (np.asarray(kev, np.float64) / 100.0) ** 1.7


def _landau(rng, n):
    """Energy loss over its most probable value: Moyal approximation of the Landau law."""
    z = rng.standard_normal(n)
    return np.clip(1.0 + LANDAU_WIDTH * -np.log(z * z + 1e-12), 0.15, 40.0)


def _walk(rng, start, heading, n_steps, curl):
    """Electron path: a random walk whose scattering grows as the electron slows."""
    t = np.arange(n_steps) / max(n_steps - 1, 1)
    turns = rng.normal(0.0, 1.0, n_steps) * curl * (1.0 + 4.0 * t**2)
    direction = heading + np.cumsum(turns)
    y = start[0] + np.cumsum(_STEP * np.sin(direction))
    x = start[1] + np.cumsum(_STEP * np.cos(direction))
    return y, x, direction, t


def _electron(rng, start, kev, det, heading=None):
    """Points (y, x, electrons, width px) of an electron of ``kev`` stopping in the sensor, and its path length in px."""
    pitch = det["pitch_um"]
    electrons = kev * 1000.0 / EV_PER_ELECTRON
    length = float(electron_range_um(kev)) * rng.uniform(0.3, 1.0) / pitch  # projected on the pixel plane
    n = max(int(np.ceil(length / _STEP)), 2)
    curl = min(rng.uniform(0.5, 1.5) * np.sqrt(_STEP / max(length / 3.0, _STEP)), 1.0)
    heading = rng.uniform(-np.pi, np.pi) if heading is None else heading
    y, x, direction, t = _walk(rng, start, heading, n, curl)
    # energy loss rises towards the end of the range, ending in a bright stop
    dq = (1.0 - 0.9 * t) ** -0.6 * rng.lognormal(0.0, 0.3, n)
    dq = np.append(dq, dq.sum() * rng.uniform(0.15, 0.4))
    q = electrons * dq / dq.sum()
    width = rng.uniform(det["diffusion_near_um"], det["diffusion_far_um"]) / pitch
    s = np.full(n + 1, width)
    s[-1] = width + rng.uniform(0.5, 1.5) / pitch  # the stopping end: a slightly wider cloud
    return (np.append(y, y[-1]), np.append(x, x[-1]), q, s), direction, length


def _join(points, more):
    """Concatenate two (y, x, q, s) point sets."""
    return tuple(np.concatenate([a, b]) for a, b in zip(points, more))


def _track(rng, anchor, det, shape, desc):
    pitch, thickness = det["pitch_um"], det["thickness_um"]
    tan_incidence, angle = muon_direction(rng, det["sensor_vertical"])
    length = min(thickness * tan_incidence / pitch, 1.2 * float(np.hypot(*shape)))
    path_um = thickness * np.sqrt(1.0 + (length * pitch / thickness) ** 2)
    n = max(int(np.ceil(length / _STEP)), 1) + 1
    t = np.linspace(-0.5, 0.5, n)
    y, x = anchor[0] + t * length * np.sin(angle), anchor[1] + t * length * np.cos(angle)
    depth = np.linspace(0.0, 1.0, n) if rng.random() < 0.5 else np.linspace(1.0, 0.0, n)
    near, far = det["diffusion_near_um"], det["diffusion_far_um"]
    s = (near + (far - near) * np.sqrt(depth)) / pitch  # diffusion grows with the square root of the drift
    q = MIP_MPV_E_PER_UM * path_um / n * _landau(rng, n)
    desc.update(length=round(float(length), 2), angle=round(angle, 3), tan_incidence=round(tan_incidence, 3))
    points = (y, x, q, s)
    if rng.random() < 0.2:  # a delta-ray electron knocked out along the track
        k = int(rng.integers(0, n))
        delta, _, _ = _electron(rng, (y[k], x[k]), float(loguniform(rng, 5.0, 200.0)), det)
        points = _join(points, delta)
        desc["delta_ray"] = True
    return points


def _spot(rng, anchor, det, desc):
    kev = float(loguniform(rng, 1.5, 30.0))
    pitch = det["pitch_um"]
    n = 1 if rng.random() < 0.7 else 2
    reach = float(electron_range_um(kev)) / pitch
    y = anchor[0] + np.arange(n) * rng.uniform(-1.0, 1.0) * reach
    x = anchor[1] + np.arange(n) * rng.uniform(-1.0, 1.0) * reach
    s = rng.uniform(det["diffusion_near_um"], det["diffusion_far_um"], n) / pitch
    q = kev * 1000.0 / EV_PER_ELECTRON * rng.dirichlet(np.ones(n))
    desc["kev"] = round(kev, 2)
    return (y, x, q, s)


def _worm(rng, anchor, det, desc):
    kev = float(loguniform(rng, 5.0, 500.0))
    points, direction, length = _electron(rng, anchor, kev, det)
    desc.update(kev=round(kev, 1), length=round(length, 2), branched=bool(rng.random() < 0.25 and length > 4))
    if desc["branched"]:  # a secondary electron: part of the energy goes into a side branch
        k = int(rng.integers(0, max(int(0.7 * len(direction)), 1)))
        heading = direction[k] + rng.choice([-1, 1]) * rng.uniform(0.5, 1.5)
        branch, _, _ = _electron(rng, (points[0][k], points[1][k]), kev * rng.uniform(0.1, 0.4), det, heading)
        points = _join(points, branch)
    return points


def _alpha(rng, anchor, det, desc):
    pitch = det["pitch_um"]
    electrons = rng.uniform(4.0, 8.0) * 1e6 / EV_PER_ELECTRON
    range_um = rng.uniform(20.0, 40.0) * np.sqrt(1.0 - rng.random() ** 2)  # projected on the pixel plane
    length = range_um / pitch
    n = max(int(np.ceil(length / _STEP)), 1) + 1
    angle = rng.uniform(-np.pi, np.pi)
    t = np.linspace(0.0, 1.0, n)
    y, x = anchor[0] + t * length * np.sin(angle), anchor[1] + t * length * np.cos(angle)
    dq = 1.0 + 3.0 * t**4  # Bragg peak at the stopping end
    q = electrons * dq / dq.sum()
    plasma = rng.uniform(2.0, 6.0)  # the dense charge column spreads wider than a muon's
    s = np.full(n, (det["diffusion_far_um"] + plasma) / pitch)
    desc.update(electrons=round(float(electrons)), length=round(float(length), 2))
    return (y, x, q, s)


def cosmic_points(rng, kind, anchor, det, shape):
    """Point deposits (y, x, electrons, width px) and a description of one cosmic hit."""
    desc = {"type": kind, "centre": (round(anchor[0], 2), round(anchor[1], 2))}
    if kind == "track":
        return _track(rng, anchor, det, shape, desc), desc
    if kind == "spot":
        return _spot(rng, anchor, det, desc), desc
    if kind == "worm":
        return _worm(rng, anchor, det, desc), desc
    return _alpha(rng, anchor, det, desc), desc


def anchor_point(rng, shape, placed, rings, centre):
    """Where a cosmic sits: anywhere, across an earlier hit, or across a powder ring."""
    u = rng.random()
    if placed and u < 0.1:
        y, x = np.array(placed[rng.integers(len(placed))]) + rng.normal(0, 3, 2)
        return float(np.clip(y, 0, shape[0] - 1)), float(np.clip(x, 0, shape[1] - 1))
    if rings and u < 0.3:
        radius = rings[rng.integers(len(rings))]
        for angle in rng.uniform(-np.pi, np.pi, 16):
            y, x = centre[0] + radius * np.sin(angle), centre[1] + radius * np.cos(angle)
            if 0 <= y < shape[0] and 0 <= x < shape[1]:
                return float(y), float(x)
    return float(rng.uniform(0, shape[0] - 1)), float(rng.uniform(0, shape[1] - 1))


def render_hit(rng, kind, anchor, det, shape):
    """One hit as ``((row0, col0, electrons patch), description)``."""
    points, desc = cosmic_points(rng, kind, anchor, det, shape)
    rendered = render_points(*points, shape)
    desc["electrons"] = round(float(rendered[2].sum()), 1)
    return rendered, desc


def bloom(column: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Spill charge above ``capacity`` along a CCD column, half up and half down.

    Each pixel holds at most its ``capacity`` (full well minus what the X-ray
    signal already put there); the excess fills the neighbours in turn, so a
    saturated hit grows a vertical streak. Charge spilling off the column ends is
    lost. Returns the new column.
    """
    c = np.asarray(column, np.float64).copy()
    cap = np.maximum(np.asarray(capacity, np.float64), 0.0)
    for _ in range(8):
        over = np.flatnonzero(c > cap * (1 + 1e-9) + 1e-6)
        if over.size == 0:
            break
        for i in over[np.argsort(-c[over])]:
            excess = c[i] - cap[i]
            if excess <= 0:
                continue
            c[i] = cap[i]
            for side in (slice(i - 1, None, -1) if i > 0 else slice(0, 0), slice(i + 1, None)):
                room = np.maximum(cap[side] - c[side], 0.0)
                filled = np.cumsum(room)
                k = int(np.searchsorted(filled, excess / 2.0))
                view = c[side]
                view[:k] += room[:k]
                if k < view.size:
                    view[k] += excess / 2.0 - (filled[k - 1] if k else 0.0)
                c[side] = view
    return c
