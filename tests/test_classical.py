"""LA Cosmic, the detector that needs no training: noise measured on the frame, detection, tuning."""

import numpy as np
import pytest

from segcore.classical import (
    LACosmicParams,
    lacosmic_mask,
    measure_noise,
    tune_lacosmic,
    tuning_grid,
)
from segcore.metrics import pooled_scores


def gaussian_frame(shape=(128, 128), offset=300.0, read_noise=6.0, seed=0):
    rng = np.random.default_rng(seed)
    return np.rint(rng.normal(offset, read_noise, shape)).astype(np.float32)


def with_hits(frame, seed=1, n=12, amplitude=600.0):
    """Single-pixel and 2-pixel hits well apart from each other; returns the frame and its true mask."""
    rng = np.random.default_rng(seed)
    frame, mask = frame.copy(), np.zeros(frame.shape, bool)
    for k in range(n):
        row, col = 8 + (k // 4) * 30 + int(rng.integers(0, 6)), 8 + (k % 4) * 30 + int(rng.integers(0, 6))
        frame[row, col] += amplitude
        mask[row, col] = True
        if k % 2:
            frame[row, col + 1] += amplitude
            mask[row, col + 1] = True
    return frame, mask


def test_read_noise_offset_and_gain_are_measured_on_the_frame():
    # Read noise only: the noise of every background level is the read noise, no photon term.
    flat = measure_noise(gaussian_frame(read_noise=6.0))
    assert flat.read_noise == pytest.approx(6.0, rel=0.1)
    assert flat.offset == pytest.approx(300.0 - 2.58 * 6.0, abs=2.0)  # 0.5th percentile of N(300, 6)
    # Photon noise: 4 ADU per photon, so variance = read noise^2 + 4 x level above the offset.
    rng = np.random.default_rng(3)
    photons = np.repeat(np.linspace(5.0, 200.0, 256)[None, :], 256, axis=0)
    frame = 100.0 + 4.0 * rng.poisson(photons) + rng.normal(0.0, 3.0, photons.shape)
    measured = measure_noise(np.rint(frame).astype(np.float32))
    assert measured.gain == pytest.approx(1 / 4.0, rel=0.2)


def test_module_gap_zeros_do_not_set_the_offset():
    frame = gaussian_frame(offset=300.0, read_noise=6.0)
    frame[:, 60:64] = 0.0
    assert measure_noise(frame).offset > 250.0


def test_isolated_sharp_hits_are_found_and_flat_noise_is_left_alone():
    frame, truth = with_hits(gaussian_frame(seed=4))
    found = lacosmic_mask(frame, LACosmicParams(sigclip=6.0))
    assert found.dtype == bool and found.shape == frame.shape
    scores = pooled_scores([(truth, found)])
    assert scores["recall"] == 1.0 and scores["precision"] >= 0.8
    assert not lacosmic_mask(gaussian_frame(seed=5), LACosmicParams(sigclip=6.0)).any()


def test_given_noise_parameters_are_used_instead_of_measured_ones():
    frame, truth = with_hits(gaussian_frame(seed=6), amplitude=80.0)
    # Told the read noise is 100 ADU, hits of 80 ADU are no longer significant.
    assert not lacosmic_mask(frame, LACosmicParams(sigclip=6.0, read_noise=100.0, gain=1e4, offset=300.0)).any()
    assert lacosmic_mask(frame, LACosmicParams(sigclip=6.0, read_noise=6.0, gain=1e4, offset=300.0))[truth].mean() > 0.9


def test_tuning_picks_the_grid_entry_with_the_best_pooled_f1_as_a_brute_force_search():
    pairs = [with_hits(gaussian_frame(seed=s), seed=s, amplitude=a) for s, a in ((7, 60.0), (8, 90.0))]
    grid = [LACosmicParams(sigclip=s, objlim=1.0) for s in (3.0, 6.0, 12.0, 40.0)]
    best, ranking = tune_lacosmic(pairs, grid)
    brute = [pooled_scores((t, lacosmic_mask(f, p)) for f, t in pairs)["f1"] for p in grid]
    assert best == grid[int(np.argmax(brute))]
    assert [round(scores["f1"], 12) for _, scores in ranking] == sorted((round(f, 12) for f in brute), reverse=True)


def test_default_grid_spans_every_combination():
    grid = tuning_grid(LACosmicParams(niter=2))
    assert len(grid) == len({(p.sigclip, p.objlim, p.sigfrac) for p in grid}) == 45
    assert {p.niter for p in grid} == {2}


def test_grid_values_can_be_chosen_per_parameter():
    grid = tuning_grid(LACosmicParams(niter=2), sigclip=(5.0, 7.0), objlim=(2.0,), sigfrac=(0.2, 0.4))
    assert [(p.sigclip, p.objlim, p.sigfrac, p.niter) for p in grid] == [
        (5.0, 2.0, 0.2, 2), (5.0, 2.0, 0.4, 2), (7.0, 2.0, 0.2, 2), (7.0, 2.0, 0.4, 2)
    ]
    with pytest.raises(ValueError, match="objlim"):
        tuning_grid(objlim=())


@pytest.mark.parametrize("bad", [dict(sigclip=0.0), dict(niter=0), dict(gain=-1.0), dict(read_noise=-2.0)])
def test_bad_parameters_are_refused_with_their_names(bad):
    with pytest.raises(ValueError, match=next(iter(bad)).replace("_", " ")):
        LACosmicParams(**bad)


def test_tuning_without_frames_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        tune_lacosmic([])
