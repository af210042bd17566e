"""One simulated frame: detector, X-ray signal, cosmic hits, readout and the exact mask.

The expected X-ray signal (:mod:`.backgrounds`) and the cosmics' deposited
electrons (:mod:`.cosmics`) are read out by a detector drawn per frame
(:mod:`.detectors`):

- integrating and scintillator cameras: Poisson photons times the ADU per photon
  (blurred by the PSF on scintillator cameras), cosmic electrons over the
  electrons per ADU (blooming along columns on CCDs when a pixel's well fills),
  column offsets, hot pixels, Gaussian read noise, bias, rounding, and clipping at
  the ADC's or the full well's level (``info["detector"]["saturation_adu"]``);
- photon-counting detectors: integer Poisson counts, no bias and no read noise; a
  cosmic adds 1 (for large deposits sometimes 2-3) counts to each pixel where its
  deposit exceeds the energy threshold.

The mask holds the cosmics a detector could find at all: those that noise alone
would make with a chance below the one-sided Gaussian tail beyond ``DETECT_SIGMAS``
(5 sigma, 2.9e-7; a 512x512 frame then holds ~0.08 noise-made look-alikes where a
3-sigma rule admits ~350 noise pixels, so a hit at 3-5 sigma could never be counted
by any detector without counting noise too).

On integrating and scintillator cameras a pixel is a cosmic's when its charge
(``info["cosmic_charge"]``) exceeds ``MASK_SIGMAS`` x the local noise
``info["noise_sigma"]`` (sqrt(read noise^2 + rounding + photon noise of the
expected signal)), and such a pixel is in the mask when its 8-connected group of
them is significant as a whole: noise alone would make the group's summed charge
with a chance below that tail (:func:`noise_tail`: the photon noise as Poisson
quanta, plus Gaussian read noise). Where photons are many this is the Gaussian
rule: a lone pixel needs 5 sigma, a 10-pixel track of 3.5-sigma pixels (11 sigma
together) is kept, a 2-pixel hit at 3.2 sigma is not. Where few photons carry
~100 ADU each (direct detection), a hit as bright as two photons is not kept,
however many "sigma" it reads. On photon-counting detectors a cosmic adds whole counts, one per
pixel it crosses, and there is no read noise: a count is either an X-ray photon or
the cosmic, so a hit is in the mask (all its counted pixels) when the Poisson
chance of at least as many counts from the X-rays expected in those pixels is
below the same tail. So a 10-pixel track on 0.2 counts per pixel is masked, a
lone count is masked only on a detector that sees almost nothing else (where it
cannot be an X-ray), and a track on hundreds of counts is not. Bragg spots, rings
and hot pixels are never in the mask; module gaps hold zeros and no mask.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammainc
from scipy.stats import norm, poisson

from ..metrics import label_cosmics
from .backgrounds import (
    BACKGROUND_KINDS, BACKGROUND_PROBABILITIES, expected_signal, module_gaps, photon_variance, psf_blur, psf_pad,
)
from .cosmics import COSMIC_KINDS, anchor_point, bloom, render_hit
from .detectors import FAMILIES, draw_detector, exposure_for_hits, frame_area_cm2, hit_rates
from .render import add_patch, loguniform

MASK_SIGMAS = 3.0  # a pixel's charge against its noise, for the pixels of a hit
DETECT_SIGMAS = 5.0  # a whole hit's significance, for the hit to be in the mask
DETECT_CHANCE = float(norm.sf(DETECT_SIGMAS))  # 2.9e-7: a Gaussian's one-sided tail beyond DETECT_SIGMAS
MIN_SIZE = 32
MAX_SIZE = 8192  # twice the side of the largest detectors; a frame's working arrays then take ~4 GB
MAX_COSMICS = 300
COUNT_NOISE_FLOOR = 0.3  # counts: the least noise_sigma of a photon-counting pixel (its mask uses Poisson chances)


@dataclass
class SimulatedFrame:
    """One simulated frame.

    Attributes
    ----------
    frame : uint16 (H, W) detector values (ADU, or counts on photon-counting detectors).
    mask : bool (H, W), True where a cosmic's charge stands above the noise.
    info : what was simulated: ``background`` kind, ``detector`` (every drawn
        detector parameter, see :func:`draw_detector`), ``bias``, ``read_noise``
        (ADU), ``gain`` (ADU per quantum of the signal: an X-ray photon, or a
        dark-current electron on dark frames of integrating cameras), ``exposure_s``, ``hit_rates``,
        ``beam_centre``, ``rings``, ``bragg_spots``, ``hot_pixels``, ``gaps``,
        ``cosmics`` (one dict per hit: ``type``, ``centre``, ``electrons``,
        ``peak_adu``, ``pixels``, ``bbox``, ``saturated`` and kind-specific
        geometry), ``n_cosmics``, and the noise-free images ``cosmic_charge``,
        ``noise_sigma``, ``signal`` (float32, frame units) and ``gap_mask`` (bool).
    """

    frame: np.ndarray
    mask: np.ndarray
    info: dict = field(default_factory=dict)


def check_size(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < MIN_SIZE:
        raise ValueError(f"{name} must be at least {MIN_SIZE} pixels, got {value}")
    if value > MAX_SIZE:
        raise ValueError(f"{name} must be at most {MAX_SIZE} pixels, got {value}")


def is_count(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= 0


def _hit_kinds(rng, rates, area, exposure, n_cosmics):
    """Kinds of this frame's hits: Poisson(rate x area x exposure), capped, unless ``n_cosmics`` forces the count."""
    total = sum(rates.values())
    if n_cosmics is None:
        n_cosmics = min(int(rng.poisson(total * area * exposure)), MAX_COSMICS)
    p = np.array([rates[k] for k in COSMIC_KINDS]) / total
    return [str(k) for k in rng.choice(COSMIC_KINDS, size=int(n_cosmics), p=p)]


def _to_frame_units(rng, rendered, det, signal, gap):
    """A hit's electrons in frame units: ADU (with blooming on CCDs) or threshold counts."""
    row0, col0, patch = rendered
    if det["family"] == "photon_counting":
        hits = patch > det["threshold_e"]
        extra = (patch > 30 * det["threshold_e"]) & (rng.random(patch.shape) < 0.3)
        counts = hits.astype(np.float64) + extra * rng.integers(1, 3, patch.shape)
        patch = counts
    else:
        if det["blooming"] and patch.size:
            cols = slice(col0, col0 + patch.shape[1])
            capacity = det["full_well_e"] - signal[:, cols] * det["electrons_per_adu"]
            strip = np.zeros((signal.shape[0], patch.shape[1]))
            strip[row0 : row0 + patch.shape[0]] = patch
            over = np.flatnonzero((strip > capacity).any(axis=0))
            if over.size:
                for j in over:
                    strip[:, j] = bloom(strip[:, j], capacity[:, j])
                rows = np.flatnonzero(strip.any(axis=1))
                row0, patch = int(rows[0]), strip[rows[0] : rows[-1] + 1]
        patch = patch / det["electrons_per_adu"]
    patch = patch * ~gap[row0 : row0 + patch.shape[0], col0 : col0 + patch.shape[1]]  # no pixels in gaps
    return row0, col0, patch


def hit_window(rendered):
    row0, col0, patch = rendered
    return slice(row0, row0 + patch.shape[0]), slice(col0, col0 + patch.shape[1])


def counted_hit_mask(rendered, expected_counts):
    """A photon-counting hit's counted pixels within its window, or none when the X-rays expected there could
    plausibly have made as many counts (see the module docstring)."""
    window = hit_window(rendered)
    counted = rendered[2] > 0
    if not counted.any():
        return counted
    background = float(expected_counts[window][counted].sum())
    # P(Poisson(background) >= counts) is the regularised lower incomplete gamma function.
    chance = float(gammainc(float(rendered[2][counted].sum()), background)) if background > 0 else 0.0
    return counted if chance < DETECT_CHANCE else np.zeros_like(counted)


def significant_groups(charge, sigma, signal, photon_variance):
    """Pixels whose charge exceeds ``MASK_SIGMAS`` x ``sigma``, kept where noise alone would make their
    8-connected group's summed charge with a chance below ``DETECT_CHANCE`` (:func:`noise_tail`; the group's
    expected signal and photon variance give its photon noise, the rest of ``sigma`` is Gaussian)."""
    above = charge > MASK_SIGMAS * sigma
    n, labels = label_cosmics(above)
    if n == 0:
        return above
    flat = labels.ravel()

    def summed(values):
        return np.bincount(flat, weights=np.asarray(values, np.float64).ravel(), minlength=n + 1)

    photon = summed(photon_variance)
    other = np.maximum(summed(np.square(sigma.astype(np.float64))) - photon, 0.0)
    tails = [noise_tail(*group) for group in zip(summed(charge)[1:], summed(signal)[1:], photon[1:], other[1:])]
    keep = np.concatenate([[False], np.array(tails) < DETECT_CHANCE])
    return keep[labels]


def noise_tail(charge, signal, photon_variance, other_variance) -> float:
    """P(noise >= ``charge``) for a group of pixels: photon noise as a Poisson count of quanta scaled to the
    group's expected ``signal`` and ``photon_variance`` (exact for photons that land in one pixel; a scintillator's
    blurred light matched in mean and variance), plus Gaussian noise of ``other_variance`` (read noise, rounding).

    Poisson tails are much heavier than Gaussian ones where few photons carry many ADU each (direct detection of
    sparse X-rays: two 114-ADU photons in a pixel expecting 0.05 are "9 sigma" but happen ~1e-3 of the time).
    """
    spread = float(np.sqrt(other_variance))
    if photon_variance <= 0 or signal <= 0:
        return float(norm.sf(charge / spread)) if spread > 0 else float(charge <= 0)
    scale = photon_variance / signal  # detector units per quantum
    quanta = signal / scale  # the Poisson mean
    width = 40.0 * np.sqrt(quanta) + 10.0  # beyond quanta +- width a Poisson probability is below e^-800
    low = max(0, int(quanta - width))
    high = int(quanta + width) + 1
    beyond = float(poisson.sf(high, quanta))  # counts above ``high``: bounded by their Poisson probability
    if charge - scale * (high - quanta) > 10.0 * spread:  # no count in the window reaches it: ~0
        return beyond + float(norm.sf(10.0))
    step = max(1, int(np.sqrt(quanta) / 100.0))  # the Poisson curve is smooth over many counts: sample it
    k = np.arange(low, high + 1, step, dtype=np.float64)
    excess = charge - scale * (k - quanta)  # what the Gaussian part must still make
    tails = norm.sf(excess / spread) if spread > 0 else (excess <= 0).astype(np.float64)
    return float(step * np.sum(poisson.pmf(k, quanta) * tails) + beyond)


def _describe_hit(rendered, desc, own, frame, saturation):
    """Add the hit's own masked area, bounding box, peak and saturation to ``desc``."""
    row0, col0, patch = rendered
    window = hit_window(rendered)
    rows, cols = np.nonzero(own)
    desc["peak_adu"] = round(float(patch.max()), 2) if patch.size else 0.0
    desc["pixels"] = int(own.sum())
    desc["bbox"] = None
    if rows.size:
        desc["bbox"] = (int(rows.min()) + row0, int(cols.min()) + col0,
                        int(rows.max()) + row0 + 1, int(cols.max()) + col0 + 1)
    desc["saturated"] = bool(np.any(frame[window][own] >= saturation))
    return desc


def draw_hot_pixels(rng, det, gap, shape) -> list[tuple[int, int, float]]:
    """(row, column, extra ADU or counts) of the detector's hot pixels; none on 40 % of detectors."""
    if rng.random() >= 0.6:
        return []
    n_hot = int(rng.integers(1, 16))
    hy, hx = rng.integers(0, shape[0], n_hot), rng.integers(0, shape[1], n_hot)
    hy, hx = hy[~gap[hy, hx]], hx[~gap[hy, hx]]
    if det["family"] == "photon_counting":
        extra = np.rint(loguniform(rng, 20.0, 5000.0, hy.size))
    else:
        extra = loguniform(rng, 300.0, 70000.0, hy.size)
    return [(int(a), int(b), float(v)) for a, b, v in zip(hy, hx, np.atleast_1d(extra))]


def _read_out(rng, det, photons, charge, gap, shape, hot_pixels=None):
    """Noisy frame (float, before clipping) and the hot pixels.

    ``hot_pixels`` (row, column, extra) are the detector's own when it is shared by a set of
    frames; None draws them for this frame alone."""
    family = det["family"]
    if det["signal_psf_px"] > 0:  # each photon's light spread by the PSF, light from beyond the edges included
        field = np.pad(photons, psf_pad(det["signal_psf_px"]), mode="edge")
        counts = psf_blur(rng.poisson(field).astype(np.float64), det["signal_psf_px"], padded=True)
    else:
        counts = rng.poisson(photons).astype(np.float64)
    frame = det["adu_per_quantum"] * counts + charge + det["bias_adu"]
    if family != "photon_counting" and rng.random() < 0.4:  # column-wise offset pattern of the readout
        frame += rng.normal(0.0, 0.15 * det["read_noise_adu"], shape[1])
    if hot_pixels is None:
        hot_pixels = draw_hot_pixels(rng, det, gap, shape)
    if hot_pixels:
        ys, xs, extras = (np.array(values) for values in zip(*hot_pixels))
        frame[ys, xs] += extras
    hot = [(y, x) for y, x, _ in hot_pixels]
    if family != "photon_counting":
        frame += rng.normal(0.0, det["read_noise_adu"], shape)
    frame[gap] = 0.0
    return frame, hot


def _checked_shape(rng, height, width, family) -> tuple[int, int]:
    """(height, width) of a frame to simulate, once the generator, sizes and family are checked."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    width = height if width is None else width
    check_size("height", height)
    check_size("width", width)
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown detector family {family!r}; expected one of {FAMILIES}")
    return int(height), int(width)


def _draw_detector(rng, family):
    det = draw_detector(rng, family)
    det["read_noise_adu"] = 0.0 if det["family"] == "photon_counting" else det["read_noise_e"] / det["electrons_per_adu"]
    return det


@dataclass(frozen=True)
class Camera:
    """One detector that takes a set of frames: its parameters (:func:`draw_detector`), module gaps and hot pixels."""

    shape: tuple[int, int]
    detector: dict
    gap: np.ndarray
    gap_spans: list
    hot_pixels: list  # (row, column, extra ADU or counts)


def draw_camera(rng: np.random.Generator, height: int, width: int | None = None, family: str | None = None) -> Camera:
    """A detector for a set of frames (see ``camera`` of :func:`simulate_frame`)."""
    shape = _checked_shape(rng, height, width, family)
    det = _draw_detector(rng, family)
    gap, spans = module_gaps(rng, shape)
    return Camera(shape, det, gap, spans, draw_hot_pixels(rng, det, gap, shape))


def simulate_frame(
    rng: np.random.Generator,
    height: int,
    width: int | None = None,
    kind: str | None = None,
    *,
    n_cosmics: int | None = None,
    family: str | None = None,
    camera: Camera | None = None,
) -> SimulatedFrame:
    """Simulate one detector frame with cosmic hits and its ground-truth mask.

    Parameters
    ----------
    rng : source of randomness; the same generator state gives the same frame.
    height, width : frame size in pixels (at least 32); ``width`` defaults to ``height``.
    kind : background, one of ``BACKGROUND_KINDS``; drawn at random when None.
    n_cosmics : number of cosmic hits; when None, Poisson(hit rate x frame area x
        exposure), at most ``MAX_COSMICS``, with the exposure drawn so that the
        expected number is log-uniform in ``EXPECTED_HITS_RANGE``.
    family : detector family, one of ``FAMILIES``; drawn at random when None.
    camera : a detector shared by a set of frames (:func:`draw_camera`: the same parameters,
        module gaps and hot pixels in every frame of the set); None draws one for this frame.

    Returns
    -------
    SimulatedFrame with ``frame`` (uint16), ``mask`` (bool) and ``info``.
    """
    shape = _checked_shape(rng, height, width, family)
    if kind is not None and kind not in BACKGROUND_KINDS:
        raise ValueError(f"unknown background kind {kind!r}; expected one of {BACKGROUND_KINDS}")
    if n_cosmics is not None and not is_count(n_cosmics):
        raise ValueError(f"n_cosmics must be a non-negative integer, got {n_cosmics!r}")
    kind = kind if kind is not None else str(rng.choice(BACKGROUND_KINDS, p=BACKGROUND_PROBABILITIES))

    if camera is not None:
        if camera.shape != shape:
            raise ValueError(f"the camera's frames are {camera.shape[0]}x{camera.shape[1]}, not {shape[0]}x{shape[1]}")
        if family is not None and family != camera.detector["family"]:
            raise ValueError(f"the camera is a {camera.detector['family']} detector, not {family}")
        det = copy.deepcopy(camera.detector)
    else:
        det = _draw_detector(rng, family)
    counting = det["family"] == "photon_counting"
    info: dict = {"background": kind, "detector": det, "bias": det["bias_adu"], "read_noise": det["read_noise_adu"],
                  "rings": [], "bragg_spots": []}
    signal, photons, centre = expected_signal(rng, shape, kind, det, info)
    info["gain"] = det["adu_per_quantum"]
    variance = photon_variance(photons, det)
    if counting:
        sigma = np.maximum(np.sqrt(variance), COUNT_NOISE_FLOOR)
    else:
        sigma = np.sqrt(det["read_noise_adu"] ** 2 + 1.0 / 12.0 + variance)  # 1/12: rounding to integer ADU
    sigma = sigma.astype(np.float32)
    gap, spans = (camera.gap, camera.gap_spans) if camera is not None else module_gaps(rng, shape)

    rates = hit_rates(rng, det)
    area = frame_area_cm2(det, shape)
    det["exposure_s"] = exposure_for_hits(rng, rates, area)
    charge = np.zeros(shape)
    hits, placed = [], []
    for hit_kind in _hit_kinds(rng, rates, area, det["exposure_s"], n_cosmics):
        anchor = anchor_point(rng, shape, placed, info["rings"], centre)
        rendered, desc = render_hit(rng, hit_kind, anchor, det, shape)
        rendered = _to_frame_units(rng, rendered, det, signal, gap)
        add_patch(charge, rendered)
        placed.append(anchor)
        hits.append((rendered, desc))
    charge32 = charge.astype(np.float32)
    if counting:
        own_masks = [counted_hit_mask(rendered, variance) for rendered, _ in hits]
        mask = np.zeros(shape, bool)
        for (rendered, _), own in zip(hits, own_masks):
            mask[hit_window(rendered)] |= own
    else:  # overlapping hits are one group: significance is judged on the summed charge
        mask = significant_groups(charge32, sigma, signal, variance)
        own_masks = []
        for rendered, _ in hits:
            window = hit_window(rendered)
            own_masks.append((rendered[2].astype(np.float32) > MASK_SIGMAS * sigma[window]) & mask[window])

    frame, hot = _read_out(rng, det, photons, charge, gap, shape, None if camera is None else camera.hot_pixels)
    frame = np.clip(np.rint(frame), 0, det["saturation_adu"]).astype(np.uint16)

    info.update(
        exposure_s=det["exposure_s"],
        sensor_vertical=det["sensor_vertical"],
        thickness_over_pitch=round(det["thickness_um"] / det["pitch_um"], 3),
        frame_area_cm2=area,
        hit_rates=rates,
        hot_pixels=hot,
        gaps=spans,
        cosmics=[_describe_hit(r, d, own, frame, det["saturation_adu"]) for (r, d), own in zip(hits, own_masks)],
        n_cosmics=len(hits),
        cosmic_charge=charge32,
        noise_sigma=sigma,
        signal=signal.astype(np.float32),
        gap_mask=gap,
    )
    return SimulatedFrame(frame=frame, mask=mask, info=info)
