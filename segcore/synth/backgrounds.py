"""Expected X-ray signal of a frame: powder rings, Bragg spots, beam halo or a near-empty dark frame.

The kinds (``BACKGROUND_KINDS``) produce an intensity on a reference ADU scale
(what a camera of several ADU per photon would read); :func:`expected_signal`
turns it into the detector's own units: photons times the detector's ADU per
photon on integrating and scintillator cameras (blurred by the phosphor's PSF on
the latter), counts on photon-counting detectors.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_filter1d

from .render import add_patch, loguniform, render_points

BACKGROUND_KINDS = ("powder", "bragg", "halo", "dark")
BACKGROUND_PROBABILITIES = (0.35, 0.25, 0.25, 0.15)


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
    signal = loguniform(rng, 2.0, 400.0) / (1.0 + (r / r0) ** 2)
    if rng.random() < 0.5:
        centre, width = rng.uniform(0.1, 0.8) * scale, rng.uniform(0.05, 0.2) * scale
        signal += loguniform(rng, 2.0, 300.0) * np.exp(-0.5 * ((r - centre) / width) ** 2)
    return signal


def _ring_texture(rng, radius, n_bins=2048):
    """Intensity along a powder ring: crystallite graininess and preferred orientation."""
    shape = loguniform(rng, 0.4, 60.0)  # small: few large grains, a spotty ring
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
        width = loguniform(rng, 0.7, 6.0)
        peak = loguniform(rng, 10.0, 30000.0)
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
    peak = loguniform(rng, 30.0, 60000.0, y.size) * falloff
    add_patch(signal, render_points(y, x, peak * 2 * np.pi * sigma**2, sigma, shape))
    spots = [(round(float(a), 2), round(float(b), 2)) for a, b in zip(y, x)]
    info["bragg_spots"] = info.get("bragg_spots", []) + spots


def _bragg(rng, shape, centre, r, phi, info):
    signal = _diffuse(rng, r, float(np.hypot(*shape)))
    _bragg_spots(rng, shape, centre, signal, info)
    return signal


def _halo(rng, shape, centre, r, phi, info):
    scale = float(np.hypot(*shape))
    width = rng.uniform(0.03, 0.5) * scale
    signal = loguniform(rng, 50.0, 40000.0) * np.exp(-0.5 * (r / width) ** 2)
    return signal + _diffuse(rng, r, scale)


def _dark(rng, shape, centre, r, phi, info):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    slope = rng.normal(0.0, 0.5, 2) / max(shape)
    signal = rng.uniform(0.0, 4.0) + np.abs(slope[0] * yy + slope[1] * xx).astype(np.float32)
    if rng.random() < 0.4:  # amplifier glow from one corner
        corner = rng.integers(0, 2, 2) * (np.array(shape) - 1)
        distance = np.hypot(yy - corner[0], xx - corner[1])
        signal = signal + loguniform(rng, 5.0, 300.0) * np.exp(-distance / (rng.uniform(0.05, 0.3) * max(shape)))
    return signal


_BACKGROUNDS = {"powder": _powder, "bragg": _bragg, "halo": _halo, "dark": _dark}


def _beam_stop(rng, shape, centre, r, phi, signal):
    """Shadow of a round beam stop and its holding arm."""
    radius = rng.uniform(0.02, 0.07) * max(shape)
    arm = rng.uniform(-np.pi, np.pi)
    across = np.abs(np.sin(phi - arm)) * r
    shadow = (r < radius) | ((across < 0.4 * radius) & (np.cos(phi - arm) > 0))
    signal[shadow] *= 0.01


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


def module_gaps(rng, shape):
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




def expected_signal(rng, shape, kind, det, info):
    """Expected signal in the detector's units (ADU without bias, or counts) and its quanta per pixel.

    The quanta are X-ray photons, except on dark frames of integrating and
    scintillator cameras, where they are dark-current electrons made in the sensor
    itself (not blurred by a PSF). Sets ``det["quantum"]``, ``det["adu_per_quantum"]``,
    ``det["signal_psf_px"]`` and the flux drawn.

    Returns ``(signal, quanta, centre)``: ``signal`` is the noise-free value a pixel
    reads on average; ``quanta`` the expected quanta per pixel (the Poisson means),
    so ``signal`` is ``quanta x adu_per_quantum``, blurred by ``signal_psf_px``.
    """
    reference, centre = _signal(rng, shape, kind, info)
    flux_scale = float(loguniform(rng, 1.0, 20.0))  # reference ADU per photon: exposure x beam
    det.update(quantum="photon", adu_per_quantum=det["adu_per_photon"], signal_psf_px=det["psf_sigma_px"])
    if det["family"] == "photon_counting":
        flux_scale *= float(loguniform(rng, 1.0, 30.0))
        if kind == "dark":
            flux_scale *= float(loguniform(rng, 10.0, 1000.0))  # no dark current: counts only from stray X-rays
        quanta = reference / flux_scale
    elif kind == "dark":
        per_adu = det["electrons_per_adu"]
        det.update(quantum="electron", adu_per_quantum=1.0 / per_adu, signal_psf_px=0.0)
        quanta = reference * per_adu
    else:
        # exposure set so that the bulk of the pattern stays below saturation (bright peaks may saturate)
        quanta = reference / flux_scale
        bulk = float(np.quantile(quanta, 0.995)) * det["adu_per_photon"]
        limit = float(rng.uniform(0.1, 1.2)) * (det["saturation_adu"] - det["bias_adu"])
        if bulk > limit:
            flux_scale *= bulk / limit
            quanta = reference / flux_scale
    det["reference_adu_per_quantum"] = float(flux_scale) if det["quantum"] == "photon" else 1.0
    signal = quanta * det["adu_per_quantum"]
    if det["signal_psf_px"] > 0:
        signal = psf_blur(signal, det["signal_psf_px"])
    return signal, quanta, centre


def psf_pad(sigma_px: float) -> int:
    """Border (px) of the field beyond the frame whose light the PSF brings in."""
    return int(np.ceil(4.0 * sigma_px)) + 1


def psf_blur(image, sigma_px, padded=False):
    """Blur by a Gaussian PSF as if the X-ray field went on beyond the frame's edges.

    ``image`` is the frame-sized field (extended by repeating its edge) or, with
    ``padded=True``, already the field with a ``psf_pad`` border; returns the frame.
    """
    pad = psf_pad(sigma_px)
    field = image if padded else np.pad(image, pad, mode="edge")
    return gaussian_filter(field, sigma_px, mode="constant")[pad:-pad, pad:-pad]


def photon_variance(photons, det):
    """Variance (detector units squared) of the shot noise of ``photons`` (quanta) read by ``det``.

    A quantum lands in one pixel on direct and counting detectors; on a scintillator
    camera an X-ray photon's light is spread by a Gaussian PSF of width s, so the
    variance is the photons blurred by s / sqrt(2), times gain^2 / (4 pi s^2).
    """
    gain = det["adu_per_quantum"]
    s = det["signal_psf_px"]
    if s > 0:
        pad = psf_pad(s)
        blurred = gaussian_filter(np.pad(photons, pad, mode="edge"), s / np.sqrt(2.0), mode="constant")
        return gain**2 * blurred[pad:-pad, pad:-pad] / (4.0 * np.pi * s**2)
    return gain**2 * photons
