import numpy as np
import pytest
from skimage.measure import label, regionprops

from segcore.io import read_mask, read_raw
from segcore.synth import (
    BACKGROUND_KINDS,
    COSMIC_KINDS,
    MASK_SIGMAS,
    SATURATION,
    generate_dataset,
    simulate_frame,
)


def sim(seed, size=96, **kwargs):
    return simulate_frame(np.random.default_rng(seed), size, **kwargs)


def first(predicate, seeds=range(200), **kwargs):
    """First simulated frame (over seeds) for which predicate holds."""
    for seed in seeds:
        s = sim(seed, **kwargs)
        if predicate(s):
            return s
    raise AssertionError("no frame matched")


# --- simulate_frame --------------------------------------------------------------------


def test_same_generator_state_gives_identical_frame():
    a, b = sim(5), sim(5)
    np.testing.assert_array_equal(a.frame, b.frame)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.info["cosmics"] == b.info["cosmics"]


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


def test_noise_sigma_is_read_noise_plus_photon_noise():
    s = sim(3)
    info = s.info
    expected = np.sqrt(info["read_noise"] ** 2 + info["gain"] * info["signal"].astype(np.float64))
    np.testing.assert_allclose(info["noise_sigma"], expected, rtol=1e-3)


def test_frame_noise_matches_noise_sigma():
    for seed in range(3):
        s = sim(seed, size=128, kind="halo", n_cosmics=0)
        info = s.info
        residual = (s.frame - info["bias"] - info["signal"]) / info["noise_sigma"]
        live = ~info["gap_mask"] & (s.frame < SATURATION)
        for row, col in info["hot_pixels"]:
            live[row, col] = False
        assert 0.95 < residual[live].std() < 1.08
        assert abs(residual[live].mean()) < 0.05


def test_every_masked_pixel_carries_cosmic_charge_above_threshold():
    for seed in range(15):
        s = sim(seed)
        charge, sigma = s.info["cosmic_charge"], s.info["noise_sigma"]
        assert np.all(charge[s.mask] > MASK_SIGMAS * sigma[s.mask])


def test_strong_cosmic_charge_is_always_masked():
    for seed in range(15):
        s = sim(seed)
        strong = s.info["cosmic_charge"] > 10 * s.info["noise_sigma"]
        assert np.all(s.mask[strong])


def test_zero_cosmics_gives_empty_mask_for_every_background():
    for kind in BACKGROUND_KINDS:
        s = sim(2, kind=kind, n_cosmics=0)
        assert not s.mask.any() and not s.info["cosmic_charge"].any()


def test_bragg_spots_are_bright_but_not_masked():
    s = first(lambda s: len(s.info["bragg_spots"]) > 0, kind="bragg", n_cosmics=0)
    rows, cols = np.round(np.array(s.info["bragg_spots"])).astype(int).clip(0, 95).T
    above = (s.frame[rows, cols] - s.info["bias"]) / s.info["noise_sigma"][rows, cols]
    assert above.max() > 10  # at least one spot a cosmic-like bright peak
    assert not s.mask.any()


def test_hot_pixels_are_bright_but_not_masked():
    s = first(lambda s: len(s.info["hot_pixels"]) > 0, n_cosmics=0)
    rows, cols = np.array(s.info["hot_pixels"]).T
    assert np.all(s.frame[rows, cols] > s.info["bias"] + 5 * s.info["noise_sigma"][rows, cols])
    assert not s.mask.any()


def test_module_gaps_are_zero_and_never_masked():
    s = first(lambda s: len(s.info["gaps"]) > 0 and s.info["n_cosmics"] > 0)
    gap = s.info["gap_mask"]
    assert gap.any()
    assert np.all(s.frame[gap] == 0)
    assert not s.mask[gap].any()


def test_single_cosmic_mask_matches_its_recorded_area_and_bbox():
    checked = 0
    for seed in range(30):
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


def test_saturated_cosmics_reach_full_scale():
    flagged = 0
    for seed in range(60):
        s = sim(seed, size=64)
        for cosmic in s.info["cosmics"]:
            if cosmic["saturated"]:
                r0, c0, r1, c1 = cosmic["bbox"]
                assert s.frame[r0:r1, c0:c1].max() == SATURATION
                flagged += 1
    assert flagged > 0


def test_frames_vary_in_background_cosmic_kind_and_count():
    frames = [sim(seed, size=64) for seed in range(40)]
    backgrounds = {s.info["background"] for s in frames}
    kinds = {c["type"] for s in frames for c in s.info["cosmics"]}
    counts = [s.info["n_cosmics"] for s in frames]
    components = [label(s.mask, connectivity=2).max() for s in frames]
    assert len(backgrounds) >= 3
    assert kinds == set(COSMIC_KINDS)
    assert 0 in counts and max(counts) >= 5
    assert len(set(components)) >= 4


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
