"""LA Cosmic: a cosmic detector that needs no training (van Dokkum 2001, through astroscrappy).

It finds pixels that stand out from their neighbours by more than the noise
(the Laplacian of the frame, in noise units, above ``sigclip``) and sharper than
the blurred light around them (``objlim``), then grows them to neighbours above
``sigfrac`` x ``sigclip``. It needs the frame's noise: the bias offset, the read
noise and the gain. When they are not given they are measured on the frame
(:func:`measure_noise`) from the residual over a 5x5 median against background
level (:func:`segcore.preprocess.noise_profile`).

:func:`tune_lacosmic` picks ``sigclip``, ``objlim`` and ``sigfrac`` for the
best pooled pixel F1 on labelled frames.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, replace
from typing import Callable, Iterable

import numpy as np
from threadpoolctl import threadpool_limits

from .metrics import confusion_counts, scores_from_counts
from .preprocess import median_background, noise_profile

#: Values tried by :func:`tune_lacosmic`.
SIGCLIP_GRID = (3.0, 4.5, 6.0, 8.0, 10.0)
OBJLIM_GRID = (1.0, 2.0, 5.0)
SIGFRAC_GRID = (0.1, 0.3, 0.5)
OFFSET_PERCENTILE = 0.5
MAX_GAIN = 1e4  # quanta per ADU; above it the signal's own (Poisson) noise is negligible


@dataclass(frozen=True)
class LACosmicParams:
    """LA Cosmic's parameters; None means measured on each frame.

    sigclip : Laplacian significance a cosmic pixel must exceed.
    sigfrac : neighbours above sigfrac x sigclip join a detected cosmic.
    objlim : how much sharper than the blurred light a cosmic must be.
    niter : detection passes.
    gain : quanta (electrons or photons) per ADU.
    read_noise : read noise in ADU.
    offset : bias level in ADU, subtracted first.
    saturation : level (ADU, before the offset) where pixels saturate.
    """

    sigclip: float = 4.5
    sigfrac: float = 0.3
    objlim: float = 5.0
    niter: int = 4
    gain: float | None = None
    read_noise: float | None = None
    offset: float | None = None
    saturation: float | None = None

    def __post_init__(self):
        problems = []
        for name in ("sigclip", "sigfrac", "objlim"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be positive (got {getattr(self, name)})")
        if not 1 <= int(self.niter) <= 20:
            problems.append(f"niter must be 1-20 (got {self.niter})")
        if self.gain is not None and not self.gain > 0:
            problems.append(f"gain must be positive (got {self.gain})")
        if self.read_noise is not None and not self.read_noise >= 0:
            problems.append(f"read noise must be at least 0 (got {self.read_noise})")
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class NoiseModel:
    """A frame's noise: variance = read_noise^2 + (value - offset) / gain, in ADU."""

    offset: float
    read_noise: float
    gain: float


def measure_noise(frame: np.ndarray) -> NoiseModel:
    """Offset, read noise and gain of a 2-D frame, measured on the frame itself.

    The offset is the 0.5th percentile (of the non-zero pixels when most are
    non-zero: zeros are then module gaps or dead pixels). The read noise is the
    noise of the darkest background level, and 1 / gain the slope of the
    variance against level above it (least squares through that point).
    """
    frame = np.asarray(frame, np.float32)
    live = frame[frame != 0] if np.count_nonzero(frame) > frame.size // 2 else frame.ravel()
    offset = float(np.percentile(live, OFFSET_PERCENTILE))
    background = median_background(frame)
    levels, sigmas = noise_profile(background, frame - background)
    rise = np.maximum(levels - levels[0], 0.0)
    spread = sigmas**2 - sigmas[0] ** 2
    slope = float(rise @ spread / (rise @ rise)) if rise.any() else 0.0
    floor = 0.5 if bool(np.all(frame == np.round(frame))) else 1e-6 * float(np.abs(frame).max()) + 1e-12
    gain = MAX_GAIN if slope <= 1.0 / MAX_GAIN else 1.0 / slope
    return NoiseModel(offset=offset, read_noise=max(float(sigmas[0]), floor), gain=float(gain))


def lacosmic_mask(frame: np.ndarray, params: LACosmicParams | None = None) -> np.ndarray:
    """Boolean cosmic mask of a 2-D frame by LA Cosmic (``params`` default: :class:`LACosmicParams`)."""
    import astroscrappy

    params = params or LACosmicParams()
    frame = np.asarray(frame, np.float32)
    if frame.ndim != 2:
        raise ValueError(f"frame must be 2-D, got shape {frame.shape}")
    measured = None
    if params.gain is None or params.read_noise is None or params.offset is None:
        measured = measure_noise(frame)
    offset = params.offset if params.offset is not None else measured.offset
    gain = params.gain if params.gain is not None else measured.gain
    read_noise = params.read_noise if params.read_noise is not None else measured.read_noise
    saturation = params.saturation if params.saturation is not None else float(frame.max()) + 1.0
    data = frame - np.float32(offset)
    # astroscrappy's OpenMP threads spin-wait: on a machine busy with training they
    # made a small frame take 50x longer. One thread is fast and predictable.
    with threadpool_limits(limits=1, user_api="openmp"):
        mask, _ = astroscrappy.detect_cosmics(
            data,
            sigclip=float(params.sigclip),
            sigfrac=float(params.sigfrac),
            objlim=float(params.objlim),
            niter=int(params.niter),
            gain=float(gain),
            readnoise=float(read_noise * gain),  # astroscrappy wants electrons
            satlevel=float((saturation - offset) * gain),  # electrons too
            verbose=False,
        )
    return np.asarray(mask, bool)


def tuning_grid(
    base: LACosmicParams | None = None,
    sigclip: Iterable[float] = SIGCLIP_GRID,
    objlim: Iterable[float] = OBJLIM_GRID,
    sigfrac: Iterable[float] = SIGFRAC_GRID,
) -> list[LACosmicParams]:
    """``base`` with every combination of the ``sigclip`` x ``objlim`` x ``sigfrac`` values
    (by default SIGCLIP_GRID x OBJLIM_GRID x SIGFRAC_GRID); ValueError for an empty axis."""
    base = base or LACosmicParams()
    axes = {"sigclip": list(sigclip), "objlim": list(objlim), "sigfrac": list(sigfrac)}
    empty = [name for name, values in axes.items() if not values]
    if empty:
        raise ValueError(f"the tuning grid needs at least one value of {', '.join(empty)}")
    return [
        replace(base, sigclip=s, objlim=o, sigfrac=f)
        for s, o, f in itertools.product(axes["sigclip"], axes["objlim"], axes["sigfrac"])
    ]


def tune_lacosmic(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    grid: list[LACosmicParams] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[LACosmicParams, list[tuple[LACosmicParams, dict]]]:
    """The parameters of ``grid`` with the best pooled pixel F1 on (frame, true mask) pairs.

    Ties go to the earlier grid entry. ``progress(i)`` is called after each frame.

    Returns
    -------
    (best, ranking): the best parameters and every (parameters, pooled scores), best first.
    """
    grid = grid or tuning_grid()
    totals = np.zeros((len(grid), 4), np.int64)
    seen = 0
    for i, (frame, true) in enumerate(pairs):
        for k, params in enumerate(grid):
            totals[k] += confusion_counts(true, lacosmic_mask(frame, params))
        seen += 1
        if progress:
            progress(i + 1)
    if not seen:
        raise ValueError("tuning LA Cosmic needs at least one labelled frame")
    scored = [(params, scores_from_counts(*(int(c) for c in total))) for params, total in zip(grid, totals)]
    ranking = sorted(scored, key=lambda item: -item[1]["f1"])  # stable: ties keep grid order
    return ranking[0][0], ranking
