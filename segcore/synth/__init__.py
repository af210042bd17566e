"""Simulated X-ray detector frames with cosmic-ray hits and exact masks.

Each frame draws a detector (:mod:`.detectors`: integrating CCD/CMOS,
hybrid photon-counting, or scintillator-coupled camera, with its pitch,
thickness, noise, gain, full well, exposure and orientation), an expected X-ray
signal (:mod:`.backgrounds`: powder rings, Bragg spots, beam halo or a dark
frame), cosmic hits whose number, length, width and charge follow from that
detector's geometry and the physics (:mod:`.cosmics`), and reads them out
(:mod:`.readout`). The mask marks the pixels where a cosmic's charge exceeds
``MASK_SIGMAS`` x the local noise, in hits significant as a whole at ``DETECT_SIGMAS``; :func:`generate_dataset` (:mod:`.writer`)
writes datasets in the original layout.
"""

from .backgrounds import BACKGROUND_KINDS, BACKGROUND_PROBABILITIES
from .cosmics import COSMIC_KINDS
from .detectors import FAMILIES, SATURATION, draw_detector
from .readout import (
    COUNT_NOISE_FLOOR, DETECT_SIGMAS, MASK_SIGMAS, MAX_COSMICS, MIN_SIZE, Camera, SimulatedFrame, draw_camera, simulate_frame,
)
from .writer import generate_dataset

__all__ = [
    "BACKGROUND_KINDS", "BACKGROUND_PROBABILITIES", "COSMIC_KINDS", "Camera", "COUNT_NOISE_FLOOR", "DETECT_SIGMAS", "FAMILIES", "MASK_SIGMAS",
    "MAX_COSMICS", "MIN_SIZE", "SATURATION", "SimulatedFrame", "draw_camera", "draw_detector",
    "generate_dataset", "simulate_frame",
]
