import numpy as np
import pytest
from skimage.measure import label, regionprops

from segcore.io import read_mask, read_raw
from segcore.synth import (
    BACKGROUND_KINDS,
    COSMIC_KINDS,
    COUNT_NOISE_FLOOR,
    DETECT_SIGMAS,
    FAMILIES,
    MASK_SIGMAS,
    MAX_COSMICS,
    SATURATION,
    draw_detector,
    generate_dataset,
    simulate_frame,
)
from segcore.synth.cosmics import bloom, render_hit


def sim(seed, size=96, **kwargs):
    return simulate_frame(np.random.default_rng(seed), size, **kwargs)


def first(predicate, seeds=range(200), **kwargs):
    """First simulated frame (over seeds) for which predicate holds."""
    for seed in seeds:
        s = sim(seed, **kwargs)
        if predicate(s):
            return s
    raise AssertionError("no frame matched")


def expected_noise(info):
    """Local noise recomputed from the recorded detector and expected signal (direct or counting detectors)."""
    det, signal = info["detector"], info["signal"].astype(np.float64)
    if det["family"] == "photon_counting":
        return np.maximum(np.sqrt(signal), COUNT_NOISE_FLOOR)
    return np.sqrt((det["read_noise_e"] / det["electrons_per_adu"]) ** 2 + 1 / 12 + det["adu_per_quantum"] * signal)


def second_difference_energy(image):
    """Energy of the discrete Laplacian over the energy of the image (about its mean): high when sharp."""
    a = image.astype(np.float64) - image.mean()
    lap = a[2:, 1:-1] + a[:-2, 1:-1] + a[1:-1, 2:] + a[1:-1, :-2] - 4 * a[1:-1, 1:-1]
    return (lap**2).sum() / max((a**2).sum(), 1e-12)


def detector(family, seed=0, **override):
    det = draw_detector(np.random.default_rng(seed), family)
    det.update(override)
    return det


# --- simulate_frame --------------------------------------------------------------------


def test_same_generator_state_gives_identical_frame():
    a, b = sim(5, n_cosmics=5), sim(5, n_cosmics=5)
    np.testing.assert_array_equal(a.frame, b.frame)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.info["cosmics"] == b.info["cosmics"] and a.info["detector"] == b.info["detector"]


def test_different_seeds_give_different_frames():
    assert not np.array_equal(sim(5).frame, sim(6).frame)


def test_frame_is_uint16_and_mask_bool_of_requested_shape():
    s = simulate_frame(np.random.default_rng(0), 64, 96)
    assert s.frame.dtype == np.uint16 and s.frame.shape == (64, 96)
    assert s.mask.dtype == bool and s.mask.shape == (64, 96)


def test_width_defaults_to_height():
    assert sim(0, size=48).frame.shape == (48, 48)


@pytest.mark.parametrize("kind", BACKGROUND_KINDS)
def test_requested_background_kind_is_used(kind):
    assert sim(1, kind=kind).info["background"] == kind


@pytest.mark.parametrize("family", FAMILIES)
def test_requested_detector_family_is_used_and_recorded(family):
    det = sim(1, family=family).info["detector"]
    assert det["family"] == family
    assert {"pitch_um", "thickness_um", "exposure_s", "read_noise_e", "adu_per_photon"} <= set(det)


@pytest.mark.parametrize("family", ["integrating", "photon_counting"])
def test_noise_sigma_is_read_noise_plus_photon_noise(family):
    for seed in range(3):
        info = sim(seed, family=family).info
        np.testing.assert_allclose(info["noise_sigma"], expected_noise(info), rtol=1e-3)


@pytest.mark.parametrize("family", ["integrating", "scintillator"])
def test_frame_noise_matches_noise_sigma(family):
    checked = 0
    for seed in range(8):
        s = sim(seed, size=128, kind="halo", n_cosmics=0, family=family)
        info = s.info
        det = info["detector"]
        residual = (s.frame - info["bias"] - info["signal"]) / info["noise_sigma"]
        headroom = det["saturation_adu"] - info["bias"] - info["signal"] - 6 * info["noise_sigma"]
        # where the noise is near Gaussian: many photons per pixel, or read noise dominating sparse photons
        photons = info["signal"] / info["gain"]
        gaussian = (photons > 5) | (info["gain"] ** 2 * photons < 0.05 * info["read_noise"] ** 2)
        live = ~info["gap_mask"] & (headroom > 0) & gaussian
        for row, col in info["hot_pixels"]:
            live[row, col] = False
        if live.sum() < 2000:
            continue
        independent = live.sum() / max(1.0, 4 * np.pi * det["signal_psf_px"] ** 2)  # blurred noise is correlated
        assert abs(residual[live].std() - 1) < 0.05 + 3 / np.sqrt(2 * independent)
        assert abs(residual[live].mean()) < 0.02 + 4 / np.sqrt(independent)
        checked += 1
    assert checked >= 2


def compound_tail(charge, signal, photon_variance, other_variance):
    """P(scale x (Poisson(quanta) - quanta) + Normal(0, other) >= charge), summed count by count over the
    Poisson's whole mass (+-60 of its sigma), the counts above it bounded by their probability."""
    from scipy.stats import norm, poisson

    if photon_variance <= 0:
        return norm.sf(charge / np.sqrt(other_variance))
    scale = photon_variance / signal
    quanta = signal / scale
    top = int(quanta + 60 * np.sqrt(quanta) + 400)
    k = np.arange(max(0, int(quanta - 60 * np.sqrt(quanta) - 50)), top + 1)
    gaussian = norm.sf((charge - scale * (k - quanta)) / np.sqrt(other_variance))
    return np.sum(poisson.pmf(k, quanta) * gaussian) + poisson.sf(top, quanta)


def significant_reference(s):
    """scikit-image's 8-connected groups of pixels above MASK_SIGMAS noise, kept where noise alone (Poisson quanta
    matched to the group's expected signal and photon variance, plus Gaussian read noise and rounding) makes their
    summed charge with a chance below the Gaussian tail beyond DETECT_SIGMAS; also the number of groups dropped."""
    from scipy import ndimage
    from scipy.stats import norm

    info = s.info
    charge, sigma = info["cosmic_charge"], info["noise_sigma"]
    other = info["read_noise"] ** 2 + 1 / 12
    photon = np.maximum(sigma.astype(np.float64) ** 2 - other, 0)
    labels = label(charge > MASK_SIGMAS * sigma, connectivity=2)
    index = np.arange(1, labels.max() + 1)
    sums = [ndimage.sum(np.asarray(values, np.float64), labels, index) for values in (charge, info["signal"], photon)]
    tails = np.array([compound_tail(c, m, v, other * n) for c, m, v, n in
                      zip(*sums, ndimage.sum(np.ones(labels.shape), labels, index))])
    kept = index[tails < norm.sf(DETECT_SIGMAS)]
    return np.isin(labels, kept), index.size - kept.size


@pytest.mark.parametrize("family", ["integrating", "scintillator"])
def test_mask_is_the_significant_groups_of_charge_above_mask_sigmas_noise(family):
    dropped = 0
    for seed in range(8):
        s = sim(seed, n_cosmics=8, family=family)
        want, faint = significant_reference(s)
        np.testing.assert_array_equal(s.mask, want)
        dropped += faint
        # each hit's recorded area is its own pixels above MASK_SIGMAS that made it into the mask
        assert sum(c["pixels"] for c in s.info["cosmics"]) >= s.mask.sum()
    if family == "integrating":  # scintillator cameras' direct hits are bright: these seeds hold no faint group
        assert dropped > 0  # faint groups were met and left out


def test_noise_tail_is_poisson_where_photons_are_few_and_gaussian_where_they_are_many():
    from scipy.stats import norm, poisson

    from segcore.synth.readout import noise_tail

    # many photons: the Gaussian limit (Poisson skew adds 2 % at 5 sigma of a million photons)
    assert noise_tail(5 * np.sqrt(1e6 + 4), 1e6, 1e6, 4.0) == pytest.approx(norm.sf(5), rel=0.05)
    # no photons: read noise alone
    assert noise_tail(10.0, 0.0, 0.0, 4.0) == pytest.approx(norm.sf(5), rel=1e-9)
    # 114-ADU photons, 0.05 expected, no read noise: 227 ADU above the mean needs a third photon
    assert noise_tail(227.0, 0.05 * 114, 0.05 * 114**2, 0.0) == pytest.approx(poisson.sf(2, 0.05), rel=1e-6)
    # compound: against a million draws
    rng = np.random.default_rng(0)
    draws = 50.0 * (rng.poisson(0.3, 1_000_000) - 0.3) + rng.normal(0, 8.0, 1_000_000)
    assert noise_tail(130.0, 0.3 * 50, 0.3 * 50**2, 64.0) == pytest.approx(np.mean(draws >= 130.0), rel=0.06)


def test_a_lone_pixel_needs_detect_sigmas_and_a_faint_track_is_kept_whole():
    from segcore.synth.readout import significant_groups

    sigma = np.full((9, 9), 2.0, np.float32)
    no_photons = np.zeros((9, 9))
    charge = np.zeros((9, 9), np.float32)
    charge[1, 1] = 4.9 * 2  # lone pixel, 4.9 sigma: noise makes such pixels
    charge[1, 7] = 5.1 * 2  # lone pixel, 5.1 sigma
    charge[5, 1:9] = 3.5 * 2  # 8 pixels at 3.5 sigma: 9.9 sigma together
    charge[7, 3:5] = 3.2 * 2  # 2 pixels at 3.2 sigma: 4.5 sigma together
    mask = significant_groups(charge, sigma, no_photons, no_photons)
    assert not mask[1, 1] and mask[1, 7] and mask[5, 1:9].all() and not mask[7].any()
    assert mask.sum() == 9


def test_a_hit_as_bright_as_a_few_sparse_photons_is_not_in_the_mask():
    from segcore.synth.readout import significant_groups

    # direct detection: 114 ADU per photon, 0.05 photons expected per pixel, read noise 2 ADU
    gain, photons, read = 114.0, 0.05, 2.0
    signal = np.full((5, 5), photons * gain)
    variance = np.full((5, 5), photons * gain**2)
    sigma = np.sqrt(read**2 + 1 / 12 + variance).astype(np.float32)  # 25.6 ADU
    charge = np.zeros((5, 5), np.float32)
    charge[1, 1] = 2 * gain  # 8.9 "sigma", yet two photons in a pixel happen every ~800 pixels
    charge[3, 3] = 6 * gain  # six photons' worth: P ~ 2e-11
    mask = significant_groups(charge, sigma, signal, variance)
    assert not mask[1, 1] and mask[3, 3]


def test_photon_counting_hit_is_masked_whole_when_the_xray_background_could_hardly_make_its_counts():
    from scipy.stats import norm, poisson

    # One hit per frame, so its counted pixels are exactly the pixels with cosmic counts.
    masked_faint = unmasked = 0
    for seed in range(40):
        s = sim(seed, size=96, n_cosmics=1, family="photon_counting", kind=("halo", "dark", "powder")[seed % 3])
        charge = s.info["cosmic_charge"].astype(np.float64)
        counted = charge > 0
        if not counted.any():
            continue
        expected = s.info["signal"].astype(np.float64)[counted].sum()  # X-ray counts expected there
        chance = poisson.sf(charge[counted].sum() - 1, expected)  # P(at least that many counts)
        if chance < norm.sf(DETECT_SIGMAS):
            np.testing.assert_array_equal(s.mask, counted)
            masked_faint += bool(np.any(charge[counted] <= MASK_SIGMAS * expected_noise(s.info)[counted]))
        else:
            assert not s.mask.any()
            unmasked += 1
        assert s.info["cosmics"][0]["pixels"] == s.mask.sum()
    assert masked_faint and unmasked  # both cases were met


def test_a_lone_count_is_masked_only_where_the_detector_sees_almost_no_xrays():
    lone = dict(size=64, n_cosmics=1, family="photon_counting", kind="dark")
    for seed in range(60):
        s = sim(seed, **lone)
        counted = s.info["cosmic_charge"] > 0
        if counted.sum() == 1 and s.info["cosmic_charge"][counted][0] == 1:
            expected = float(s.info["signal"][counted][0])
            assert s.mask[counted][0] == (expected < 2.9e-7), expected  # P(Poisson >= 1) ~ expected; 5 sigma
def test_zero_cosmics_gives_empty_mask_for_every_background():
    for kind in BACKGROUND_KINDS:
        s = sim(2, kind=kind, n_cosmics=0)
        assert not s.mask.any() and not s.info["cosmic_charge"].any()


def test_bragg_spots_are_bright_but_not_masked():
    def bright(s):
        if not s.info["bragg_spots"]:
            return False
        rows, cols = np.round(np.array(s.info["bragg_spots"])).astype(int).clip(0, 95).T
        return ((s.frame[rows, cols] - s.info["bias"]) / s.info["noise_sigma"][rows, cols]).max() > 10

    s = first(bright, kind="bragg", n_cosmics=0)
    assert not s.mask.any()


def test_hot_pixels_are_bright_but_not_masked():
    s = first(lambda s: len(s.info["hot_pixels"]) > 0, n_cosmics=0, family="integrating")
    rows, cols = np.array(s.info["hot_pixels"]).T
    assert np.all(s.frame[rows, cols] > s.info["bias"] + s.info["signal"][rows, cols] + 100)
    assert not s.mask.any()


def test_module_gaps_are_zero_and_never_masked():
    s = first(lambda s: len(s.info["gaps"]) > 0 and s.mask.any(), n_cosmics=30)
    gap = s.info["gap_mask"]
    assert gap.any()
    assert np.all(s.frame[gap] == 0)
    assert not s.mask[gap].any() and not s.info["cosmic_charge"][gap].any()


def test_single_cosmic_mask_matches_its_recorded_area_and_bbox():
    checked = 0
    for seed in range(60):
        s = sim(seed, n_cosmics=1)
        cosmic = s.info["cosmics"][0]
        if cosmic["bbox"] is None:
            assert not s.mask.any()
            continue
        (region,) = regionprops(s.mask.astype(np.uint8))
        assert region.area == cosmic["pixels"]
        assert region.bbox == cosmic["bbox"]
        checked += 1
    assert checked > 20


def test_saturated_values_are_clipped_at_the_detectors_saturation():
    flagged = 0
    for seed in range(40):
        s = sim(seed, size=64, n_cosmics=30, family="integrating")
        det = s.info["detector"]
        assert det["saturation_adu"] <= SATURATION
        assert s.frame.max() <= det["saturation_adu"]
        clean = det["bias_adu"] + s.info["signal"] + s.info["cosmic_charge"] - 8 * s.info["noise_sigma"]
        over = (clean > det["saturation_adu"]) & ~s.info["gap_mask"]
        assert np.all(s.frame[over] == det["saturation_adu"])
        for cosmic in s.info["cosmics"]:
            if cosmic["saturated"]:
                r0, c0, r1, c1 = cosmic["bbox"]
                assert s.frame[r0:r1, c0:c1].max() == det["saturation_adu"]
                flagged += 1
    assert flagged > 0


def test_blooming_spills_excess_charge_along_the_column_and_keeps_it():
    column = np.zeros(41)
    column[20] = 10.0
    spilled = bloom(column, np.full(41, 2.0))
    assert spilled.max() == pytest.approx(2.0)
    assert spilled.sum() == pytest.approx(10.0)
    np.testing.assert_allclose(spilled[18:23], 2.0)
    assert not spilled[:18].any() and not spilled[23:].any()


def test_saturated_hits_on_ccds_bloom_into_vertical_streaks():
    streaks = 0
    for seed in range(60):
        s = sim(seed, size=128, n_cosmics=20, family="integrating")
        if not s.info["detector"]["blooming"]:
            continue
        for c in s.info["cosmics"]:
            if c["type"] == "blob" and c["saturated"]:
                r0, c0, r1, c1 = c["bbox"]
                streaks += (r1 - r0) > 2 * (c1 - c0)
    assert streaks > 0


def test_frames_vary_in_background_detector_cosmic_kind_and_count():
    frames = [sim([7, seed], size=128) for seed in range(80)]
    assert len({s.info["background"] for s in frames}) >= 3
    assert {s.info["detector"]["family"] for s in frames} == set(FAMILIES)
    counts = [s.info["n_cosmics"] for s in frames]
    assert 0 in counts and max(counts) >= 30
    forced = [sim(seed, size=64, n_cosmics=40) for seed in range(10)]
    assert {c["type"] for s in forced for c in s.info["cosmics"]} == set(COSMIC_KINDS)
    assert len({label(s.mask, connectivity=2).max() for s in forced}) >= 4


def test_hit_count_scales_with_exposure_times_area():
    observed = expected = 0.0
    means, densities = [], []
    for seed in range(150):
        info = sim([11, seed], size=64).info
        mean = sum(info["hit_rates"].values()) * info["frame_area_cm2"] * info["exposure_s"]
        means.append(mean)
        densities.append(mean / info["frame_area_cm2"])
        if mean < 0.2 * MAX_COSMICS:
            observed += info["n_cosmics"]
            expected += mean
    assert abs(observed - expected) < 4 * np.sqrt(expected) + 1
    # from under one hit to hundreds per frame, and hits per cm^2 over orders of magnitude
    assert min(means) < 1 and max(means) > 100
    assert max(densities) / min(densities) > 1e4


def test_track_length_grows_with_sensor_thickness_at_the_same_angles():
    shape = (400, 400)
    ratios = []
    for seed in range(20):
        thin = detector("integrating", thickness_um=10.0, pitch_um=10.0)
        thick = detector("integrating", thickness_um=40.0, pitch_um=10.0)
        (_, _, a), da = render_hit(np.random.default_rng(seed), "track", (200.0, 200.0), thin, shape)
        (_, _, b), db = render_hit(np.random.default_rng(seed), "track", (200.0, 200.0), thick, shape)
        assert db["angle"] == da["angle"]
        if da["length"] < 60:
            assert db["length"] == pytest.approx(4 * da["length"], rel=1e-3, abs=0.05)
            ratios.append(b.sum() / a.sum())
    assert np.median(ratios) > 2.5  # the longer path deposits more charge


def _hit_pixels(det, kind, n=150):
    """Pixels holding over 1% of each hit's charge, for ``n`` hits of ``kind``."""
    sizes = []
    for seed in range(n):
        (_, _, patch), _ = render_hit(np.random.default_rng(seed), kind, (100.0, 100.0), det, (200, 200))
        sizes.append(int((patch > 0.01 * patch.max()).sum()))
    return np.array(sizes)


def test_thin_small_pitch_sensors_make_small_muon_spots_and_thick_large_pitch_ones_long_thin_tracks():
    thin = detector("integrating", seed=1, thickness_um=10.0, pitch_um=6.5, diffusion_near_um=0.3, diffusion_far_um=1.5)
    hybrid = detector("photon_counting", seed=1, thickness_um=1000.0, pitch_um=75.0)
    thin_sizes, hybrid_sizes = _hit_pixels(thin, "track"), _hit_pixels(hybrid, "track")
    assert np.median(thin_sizes) <= 4 and np.percentile(thin_sizes, 90) < 25
    assert np.median(hybrid_sizes) > 2 * np.median(thin_sizes)
    # on 75 um pixels the few-um charge cloud stays within one pixel across the track
    (_, _, patch), desc = render_hit(np.random.default_rng(3), "spot", (50.3, 50.3), hybrid, (100, 100))
    assert (patch > 0.01 * patch.max()).sum() <= 2


def test_electron_worms_are_long_on_small_pixels_and_a_blob_on_hybrid_pixels():
    small = detector("integrating", seed=2, pitch_um=6.0, thickness_um=20.0)
    hybrid = detector("photon_counting", seed=2, pitch_um=172.0)
    assert np.median(_hit_pixels(small, "worm", 60)) > 3 * np.median(_hit_pixels(hybrid, "worm", 60))
    assert np.median(_hit_pixels(hybrid, "worm", 60)) <= 2


def test_photon_counting_frames_are_integer_counts_without_bias_and_cosmics_add_small_counts():
    for seed in range(6):
        s = sim(seed, n_cosmics=10, kind="dark", family="photon_counting")
        info = s.info
        assert info["bias"] == 0 and info["read_noise"] == 0
        charge = info["cosmic_charge"]
        assert np.all(charge == np.rint(charge)) and set(np.unique(charge)) <= {0.0, 1.0, 2.0, 3.0}
        live = ~info["gap_mask"]
        for row, col in info["hot_pixels"]:
            live[row, col] = False
        x_rays = s.frame[live].astype(np.float64) - charge[live]
        # Poisson counts of the expected signal: no bias, no read noise
        expected = info["signal"][live].astype(np.float64)
        assert abs(x_rays.mean() - expected.mean()) < 5 * np.sqrt(expected.mean() / x_rays.size) + 1e-3
        hit = charge > 0
        assert hit.any() and np.all(s.frame[hit] >= charge[hit])
        assert not np.any(s.mask & ~hit)  # only counted pixels are masked


def test_one_count_on_a_bright_photon_counting_background_is_not_masked():
    s = first(lambda s: (s.info["signal"] > 100).any() and (s.info["cosmic_charge"][s.info["signal"] > 100] > 0).any(),
              n_cosmics=60, family="photon_counting", kind="halo")
    bright = (s.info["signal"] > 100) & (s.info["cosmic_charge"] > 0)
    assert not s.mask[bright].any()


def test_scintillator_frames_have_blurred_xray_signal_but_sharp_cosmics():
    for seed in range(6):
        s = sim(seed, size=128, kind="bragg", n_cosmics=10, family="scintillator")
        assert s.info["detector"]["psf_sigma_px"] >= 1.0
        assert second_difference_energy(s.info["signal"]) < 0.3
        assert second_difference_energy(s.info["cosmic_charge"]) > max(1.0, 10 * second_difference_energy(s.info["signal"]))


def test_bright_deposits_do_not_grow_wide_halos():
    for seed in range(40):
        s = sim(seed, size=128, n_cosmics=5, family="photon_counting")
        for c in s.info["cosmics"]:
            if c["bbox"] and c["type"] == "spot":
                r0, c0, r1, c1 = c["bbox"]
                assert (r1 - r0) <= 3 and (c1 - c0) <= 3
    cmos = detector("integrating", seed=4, sensor="cmos", blooming=False, pitch_um=6.5)
    (_, _, patch), _ = render_hit(np.random.default_rng(0), "blob", (60.0, 60.0), cmos, (120, 120))
    # ~1.5 million electrons within a 40 um range: nothing above 10 e- beyond ~12 pixels of the core
    assert (patch > 10.0).sum() < np.pi * 12**2


def test_invalid_simulation_arguments_raise():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="at least 32"):
        simulate_frame(rng, 16)
    with pytest.raises(ValueError, match="width"):
        simulate_frame(rng, 64, 20)
    with pytest.raises(ValueError, match="background kind"):
        simulate_frame(rng, 64, kind="lunar")
    with pytest.raises(ValueError, match="n_cosmics"):
        simulate_frame(rng, 64, n_cosmics=-1)
    with pytest.raises(ValueError, match="family"):
        simulate_frame(rng, 64, family="film")
    with pytest.raises(TypeError, match="Generator"):
        simulate_frame(0, 64)


# --- generate_dataset ------------------------------------------------------------------


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_dataset_has_original_layout_with_matching_names(tmp_path):
    generate_dataset(tmp_path, 2, 1, 1, n_real=1, size=64, seed=3)
    assert names(tmp_path / "Train") == names(tmp_path / "TrainAnnotation") == ["frame_00000.png", "frame_00001.png"]
    assert names(tmp_path / "Validation") == names(tmp_path / "ValidationAnnotation") == ["frame_00002.png"]
    assert names(tmp_path / "Test") == names(tmp_path / "TestAnnotation") == ["frame_00003.png"]
    assert names(tmp_path / "Real") == ["frame_00004.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["Train", "TrainAnnotation", "Validation", "ValidationAnnotation", "Test", "TestAnnotation", "Real"]
    )


def test_written_frames_and_masks_equal_the_simulation(tmp_path):
    generate_dataset(tmp_path, 2, 1, 0, size=64, seed=4)
    for index, split in enumerate(["Train", "Train", "Validation"]):
        expected = simulate_frame(np.random.default_rng([4, index]), 64)
        name = f"frame_{index:05d}.png"
        frame = read_raw(tmp_path / split / name)
        assert frame.dtype == np.uint16
        np.testing.assert_array_equal(frame, expected.frame)
        np.testing.assert_array_equal(read_mask(tmp_path / f"{split}Annotation" / name, (64, 64)), expected.mask)


def test_frame_index_does_not_depend_on_split_sizes(tmp_path):
    generate_dataset(tmp_path / "a", 3, 1, 0, size=64, seed=1)
    generate_dataset(tmp_path / "b", 1, 1, 2, size=64, seed=1)
    a = tmp_path / "a" / "Train" / "frame_00002.png"
    b = tmp_path / "b" / "Test" / "frame_00002.png"
    assert a.read_bytes() == b.read_bytes()
    assert (a.parent.parent / "TrainAnnotation" / a.name).read_bytes() == (b.parent.parent / "TestAnnotation" / b.name).read_bytes()


def test_same_seed_writes_identical_files_and_other_seed_differs(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        generate_dataset(tmp_path / name, 2, 0, 0, size=64, seed=seed)
    files = ["Train/frame_00000.png", "Train/frame_00001.png", "TrainAnnotation/frame_00000.png"]
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert (tmp_path / "a" / files[0]).read_bytes() != (tmp_path / "c" / files[0]).read_bytes()


def test_progress_is_called_after_each_frame(tmp_path):
    calls = []
    generate_dataset(tmp_path, 2, 1, 1, n_real=1, size=64, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


def test_summary_counts_frames_and_cosmics(tmp_path):
    summary = generate_dataset(tmp_path, 3, 2, 1, size=64, seed=9)
    expected = [simulate_frame(np.random.default_rng([9, i]), 64).info["n_cosmics"] for i in range(6)]
    assert summary["counts"] == {"Train": 3, "Validation": 2, "Test": 1, "Real": 0}
    assert summary["cosmics"] == sum(expected)
    assert summary["cosmics_per_split"]["Validation"] == sum(expected[3:5])
    assert sum(summary["background_kinds"].values()) == 6


def test_existing_frames_are_kept_unless_overwrite(tmp_path):
    generate_dataset(tmp_path, 3, 0, 0, size=64)
    with pytest.raises(FileExistsError):
        generate_dataset(tmp_path, 1, 0, 0, size=64)
    generate_dataset(tmp_path, 1, 0, 0, size=64, overwrite=True)
    assert names(tmp_path / "Train") == names(tmp_path / "TrainAnnotation") == ["frame_00000.png"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(size=16), "at least 32"),
        (dict(n_train=-1), "Train"),
        (dict(n_test=-2), "Test"),
        (dict(n_real=-1), "Real"),
        (dict(seed=-1), "seed"),
    ],
)
def test_invalid_dataset_arguments_raise(tmp_path, kwargs, message):
    args = dict(n_train=1, n_validation=0, n_test=0, size=64) | kwargs
    with pytest.raises(ValueError, match=message):
        generate_dataset(tmp_path, **args)
    assert not any(tmp_path.iterdir())
