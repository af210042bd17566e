"""Detector families and their per-frame parameters, drawn from the physics.

Three families (``FAMILIES``):

- ``"integrating"``: a CCD or CMOS camera with the X-rays absorbed in the silicon
  itself: pitch 6-30 um, sensitive thickness 5-50 um (deep-depletion CCDs to
  ~100 um), read noise 2-15 e-, 0.5-10 e- per ADU, bias tens to hundreds of ADU,
  full well near the 16-bit range, blooming along columns on CCDs.
- ``"photon_counting"``: a hybrid pixel detector (Pilatus/Eiger/Medipix-like):
  pitch 55-172 um, 320-1000 um silicon or 750-1000 um CdTe, no read noise and no
  bias; pixels count hits above a threshold of about half the X-ray energy.
- ``"scintillator"``: a phosphor imaged (fibre optic or lens) onto a CCD/CMOS: the
  X-ray signal is blurred by a PSF of 1-4 px, cosmics hitting the sensor behind are
  as sharp as on a direct sensor of that pitch.

Every drawn number goes into the returned dict, which the frame keeps as
``info["detector"]``.
"""

from __future__ import annotations

import numpy as np

from .render import loguniform

FAMILIES = ("integrating", "photon_counting", "scintillator")
#: Most X-ray cameras that integrate long enough to collect cosmics are phosphor-coupled.
FAMILY_PROBABILITIES = (0.3, 0.3, 0.4)
SATURATION = 65535
EV_PER_ELECTRON = 3.65  # silicon; CdTe needs ~4.4 eV but we keep one number
MUON_RATE_PER_CM2_S = 1.0 / 60.0  # horizontal sensor at sea level
EXPOSURE_RANGE_S = (0.1, 3600.0)
#: Hits expected in a frame (rate x area x exposure) when the exposure is chosen for the frame.
EXPECTED_HITS_RANGE = (0.5, 300.0)


def diffusion_sigma_um(rng: np.random.Generator, thickness_um: float) -> tuple[float, float]:
    """Charge-cloud width (um) for charge made next to the collecting side and at the far side.

    The cloud grows with the drift distance, roughly as the square root of the
    thickness: ~1-3 um for 10-20 um sensors, ~5-10 um for 300 um fully depleted ones.
    """
    far = rng.uniform(0.3, 0.6) * np.sqrt(thickness_um)
    near = far * rng.uniform(0.1, 0.3)
    return float(near), float(far)


def _sensor(rng, family):
    """Pitch, thickness, material and CCD/CMOS kind of the sensor that cosmics hit."""
    if family == "photon_counting":
        pitch = float(rng.choice([55.0, 75.0, 100.0, 110.0, 150.0, 172.0]))
        if rng.random() < 0.2:
            return {"sensor": "hybrid", "material": "CdTe", "pitch_um": pitch, "thickness_um": float(rng.uniform(750, 1000))}
        return {"sensor": "hybrid", "material": "Si", "pitch_um": pitch, "thickness_um": float(rng.uniform(320, 1000))}
    sensor = "ccd" if rng.random() < 0.55 else "cmos"
    pitch = float(loguniform(rng, 6.0, 30.0)) if sensor == "ccd" else float(loguniform(rng, 4.5, 16.0))
    if sensor == "ccd" and rng.random() < 0.25:
        thickness = float(rng.uniform(40.0, 100.0))  # deep depletion
    else:
        thickness = float(loguniform(rng, 5.0, 50.0)) if sensor == "ccd" else float(loguniform(rng, 3.0, 15.0))
    return {"sensor": sensor, "material": "Si", "pitch_um": pitch, "thickness_um": thickness}


def draw_detector(rng: np.random.Generator, family: str | None = None) -> dict:
    """All per-frame detector parameters of one frame.

    Returns
    -------
    dict with ``family``, ``sensor`` ("ccd", "cmos", "hybrid"), ``material``,
    ``pitch_um``, ``thickness_um``, ``diffusion_near_um``/``diffusion_far_um``,
    ``read_noise_e``, ``electrons_per_adu``, ``bias_adu``, ``full_well_e``,
    ``saturation_adu``, ``blooming``, ``adu_per_photon``, ``xray_kev``,
    ``threshold_e`` (photon counting), ``psf_sigma_px`` (scintillator, else 0),
    ``sensor_vertical``, ``exposure_s``.
    """
    family = family if family is not None else str(rng.choice(FAMILIES, p=FAMILY_PROBABILITIES))
    det = {"family": family, **_sensor(rng, family)}
    near, far = diffusion_sigma_um(rng, det["thickness_um"])
    det.update(diffusion_near_um=near, diffusion_far_um=far)
    if family == "photon_counting":
        kev = float(rng.uniform(6.0, 25.0))
        det.update(read_noise_e=0.0, electrons_per_adu=0.0, bias_adu=0.0, full_well_e=float("inf"),
                   saturation_adu=SATURATION, blooming=False, adu_per_photon=1.0, xray_kev=kev,
                   threshold_e=float(rng.uniform(0.4, 0.6) * kev * 1000.0 / EV_PER_ELECTRON), psf_sigma_px=0.0)
    else:
        read_noise = float(rng.uniform(2.0, 15.0))
        # the ADC samples the read noise: makers keep it at >= ~1 ADU, so at most read-noise electrons per ADU
        per_adu = float(loguniform(rng, 0.5, min(10.0, read_noise)))
        bias = float(rng.uniform(20.0, 400.0))
        full_well = float(per_adu * SATURATION * rng.uniform(0.6, 1.4))
        if family == "integrating":
            # direct detection: one X-ray photon makes E / 3.65 eV electrons; soft to hard X-rays
            kev = float(loguniform(rng, 0.5, 12.0))
            adu_per_photon = kev * 1000.0 / EV_PER_ELECTRON / per_adu
            psf = 0.0
        else:
            kev = float(rng.uniform(8.0, 60.0))
            adu_per_photon = float(loguniform(rng, 0.5, 30.0))  # phosphor light yield x optics x sensor gain
            psf = float(rng.uniform(1.0, 4.0))
        det.update(read_noise_e=read_noise, electrons_per_adu=per_adu, bias_adu=bias, full_well_e=full_well,
                   saturation_adu=int(min(SATURATION, np.floor(bias + full_well / per_adu))),
                   blooming=det["sensor"] == "ccd", adu_per_photon=float(adu_per_photon), xray_kev=kev,
                   threshold_e=0.0, psf_sigma_px=psf)
    det["sensor_vertical"] = bool(rng.random() < 0.5)
    det["exposure_s"] = float(loguniform(rng, *EXPOSURE_RANGE_S))
    return det


def hit_rates(rng: np.random.Generator, det: dict) -> dict:
    """Mean hits per second per cm^2 of sensor, by kind (muon ``track``, ``worm``, ``spot``, alpha ``blob``)."""
    muon = MUON_RATE_PER_CM2_S * (0.5 if det["sensor_vertical"] else 1.0) * rng.uniform(0.8, 1.2)
    radio = muon * loguniform(rng, 0.1, 1.0)  # natural radioactivity of the camera and its surroundings
    return {
        "track": float(muon),
        "worm": float(0.5 * radio),
        "spot": float(0.5 * radio),
        "blob": float(muon * loguniform(rng, 0.005, 0.05)),
    }


def exposure_for_hits(rng: np.random.Generator, rates: dict, area_cm2: float) -> float:
    """An exposure (s) giving a log-uniform number of expected hits in ``EXPECTED_HITS_RANGE``.

    Cosmics matter in exposures long enough to collect them; drawing the exposure
    for the frame's area makes hit densities span three orders of magnitude on
    every detector, from 6 um cameras to 172 um hybrid pixels.
    """
    return float(loguniform(rng, *EXPECTED_HITS_RANGE)) / (sum(rates.values()) * area_cm2)


def frame_area_cm2(det: dict, shape) -> float:
    """Sensor area covered by a frame of ``shape`` pixels."""
    return float(shape[0] * shape[1] * (det["pitch_um"] * 1e-4) ** 2)
