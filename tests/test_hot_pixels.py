"""Hot pixels of a set (segcore.hotpixels): found against a brute-force reference and the simulator's own list,
kept out of masks by every command, read back from the file a run writes; simulated cameras shared by a set."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy import ndimage

from db_fixtures import sqlite_store  # noqa: F401  (fixture)
from segcore import io
from segcore.__main__ import main
from segcore.errors import InputFileError
from segcore.evaluator import evaluate_detector
from segcore.hotpixels import find_hot_pixels, hot_mask, hot_pixels_of_set, lone_standouts, read_hot_pixels, sample_indices
from segcore.preprocess import excess_significance
from segcore.synth import Camera, draw_camera, generate_dataset, simulate_frame

HOT = [(10, 12, 3000.0), (40, 70, 800.0), (77, 5, 20000.0)]


def _camera(size=96, seed=9, hot=HOT):
    camera = draw_camera(np.random.default_rng(seed), size, family="integrating")
    return Camera(camera.shape, camera.detector, np.zeros(camera.shape, bool), [], list(hot))


def _frames(n, camera, kind="dark", seed=0):
    return [simulate_frame(np.random.default_rng([seed, i]), camera.shape[0], kind=kind, camera=camera) for i in range(n)]


def test_lone_standouts_match_a_brute_force_reference():
    rng = np.random.default_rng(0)
    frame = rng.normal(100.0, 3.0, (64, 64)).astype(np.float32)
    frame[5, 5] += 200  # alone
    frame[20, 20:23] += 200  # a three-pixel track: none of it alone
    frame[40, 40] += 200
    frame[41, 41] += 60  # a photon beside it: 40,40 still stands out alone
    frame[50, 10] += 200
    frame[50, 11] += 120  # light shared with a neighbour: a spot, not a hot pixel
    excess = frame - ndimage.median_filter(frame, 5, mode="nearest")
    expected = np.zeros(frame.shape, bool)
    z = excess_significance(frame)
    for y, x in np.argwhere(z >= 5.0):
        around = excess[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].copy()
        around[min(y, 1), min(x, 1)] = -np.inf
        expected[y, x] = excess[y, x] >= 2.0 * max(around.max(), 0.0)
    got = lone_standouts(frame)
    np.testing.assert_array_equal(got, expected)
    assert got[5, 5] and got[40, 40] and not got[20, 20:23].any() and not got[50, 10:12].any()
    assert got.sum() == 2


def test_the_cameras_hot_pixels_are_found_and_nothing_else():
    camera = _camera()
    sims = _frames(10, camera, kind="bragg")
    assert all(s.info["hot_pixels"] == [(y, x) for y, x, _ in HOT] for s in sims)
    assert sum(s.info["n_cosmics"] for s in sims) > 0
    hot = find_hot_pixels(s.frame for s in sims)
    assert sorted(map(tuple, np.argwhere(hot).tolist())) == sorted((y, x) for y, x, _ in HOT)
    # Never in the truth: the simulator does not mask hot pixels.
    assert not any(s.mask[y, x] for s in sims for y, x, _ in HOT)


def test_a_pixel_bright_in_fewer_than_half_the_frames_is_not_hot_and_few_frames_give_no_map():
    rng = np.random.default_rng(1)
    frames = [rng.normal(50.0, 2.0, (48, 48)).astype(np.float32) for _ in range(10)]
    for i in range(4):  # bright in 4 of 10 frames: not a hot pixel
        frames[i][7, 9] += 500
    for frame in frames:
        frame[30, 30] += 500
    hot = find_hot_pixels(frames)
    assert np.argwhere(hot).tolist() == [[30, 30]]
    # Half the frames is enough: a hot pixel buried in the photon noise of some frames is still found.
    assert find_hot_pixels(frames, fraction=0.4)[7, 9]
    assert find_hot_pixels(frames[:9]) is None
    with pytest.raises(ValueError, match="share a shape"):
        find_hot_pixels([frames[0], frames[1][:40]])
    with pytest.raises(ValueError, match="fraction"):
        find_hot_pixels(frames, fraction=0.0)


def test_sample_indices_spread_evenly_over_a_long_series():
    assert sample_indices(7, most=25) == list(range(7))
    picked = sample_indices(1000, most=25)
    assert len(picked) == 25 and picked[0] == 0 and picked[-1] == 999
    assert max(np.diff(picked)) - min(np.diff(picked)) <= 1


def test_hot_pixels_of_a_set_go_by_frame_shape_and_leave_unreadable_frames_out():
    camera = _camera()
    frames = {f"a{i}": s.frame for i, s in enumerate(_frames(10, camera))}
    frames.update({f"b{i}": np.zeros((32, 40), np.float32) for i in range(10)})
    frames.update({f"c{i}": np.zeros((32, 32), np.float32) for i in range(9)})  # too few: not looked at
    frames["broken"] = None  # its header names no size
    frames["a_corrupt"] = "corrupt"  # its header reads, its pixels do not: left out of the 96x96 set

    def read(address):
        if frames[address] is None or isinstance(frames[address], str):
            raise InputFileError(address, "cannot be read")
        return frames[address]

    def shape_of(address):
        if frames[address] is None:
            raise InputFileError(address, "cannot be read")
        return (96, 96) if isinstance(frames[address], str) else frames[address].shape

    done = []
    hot, looked = hot_pixels_of_set(list(frames), read, shape_of, progress=lambda d, t: done.append((d, t)))
    assert looked == 21 and done[-1] == (21, 21)  # the corrupt frame was tried
    assert sorted(map(tuple, hot["96x96"])) == sorted((y, x) for y, x, _ in HOT) and "32x40" not in hot
    mask = hot_mask(hot, (96, 96))
    assert mask.sum() == 3 and hot_mask(hot, (32, 40)) is None


def test_cli_predict_keeps_hot_pixels_out_writes_them_and_reads_them_back(tmp_path, capsys):
    camera = _camera(hot=[(10, 12, 30000.0), (40, 70, 30000.0), (77, 5, 30000.0)])
    sims = _frames(10, camera, kind="dark", seed=3)
    files = []
    for i, sim in enumerate(sims):
        files.append(tmp_path / "in" / f"f{i}.tif")
        io.write_frame(files[-1], sim.frame)
    out = tmp_path / "auto"
    assert main(["lacosmic", *map(str, files), "--out", str(out)]) == 0
    assert "hot pixels: 3 stand out" in capsys.readouterr().err
    listed = json.loads((out / "hot_pixels.json").read_text())
    assert sorted(map(tuple, listed["96x96"])) == [(10, 12), (40, 70), (77, 5)]
    rows = list(csv.DictReader(open(out / "counts.csv")))
    assert [int(r["hot_pixels"]) for r in rows] == [3] * 10 and all(int(r["invalid_pixels"]) == 3 for r in rows)
    for row in rows:
        mask = io.read_mask(row["mask"]) > 0
        assert not mask[10, 12] and not mask[40, 70] and not mask[77, 5]
    # Without the rule, LA Cosmic takes every hot pixel for a cosmic.
    plain = tmp_path / "none"
    assert main(["lacosmic", *map(str, files), "--out", str(plain), "--hot-pixels", "none"]) == 0
    assert not (plain / "hot_pixels.json").exists()
    for row in csv.DictReader(open(plain / "counts.csv")):
        mask = io.read_mask(row["mask"]) > 0
        assert mask[10, 12] and mask[40, 70] and mask[77, 5]
        assert row["hot_pixels"] == "0"
    # The list written, or a mask image of it, serves a single frame later.
    image = tmp_path / "hot.png"
    io.write_mask(image, hot_mask(listed, (96, 96)))
    assert read_hot_pixels(image) == listed == read_hot_pixels(out / "hot_pixels.json")
    for given in (out / "hot_pixels.json", image):
        one = tmp_path / f"one_{given.suffix[1:]}"
        assert main(["lacosmic", str(files[0]), "--out", str(one), "--hot-pixels", str(given)]) == 0
        assert not (io.read_mask(one / "f0.png") > 0)[10, 12]


def test_a_bad_hot_pixel_file_is_one_clear_line(tmp_path, capsys):
    frame = tmp_path / "f.tif"
    io.write_frame(frame, np.full((40, 40), 100, np.uint16))
    bad = tmp_path / "hot.json"
    bad.write_text('{"40x40": [[1, 99]]}')
    assert main(["lacosmic", str(frame), "--out", str(tmp_path / "o"), "--hot-pixels", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: not a hot-pixel list" in err and "outside" in err and "Traceback" not in err


def test_evaluation_fills_hot_pixels_but_scores_the_truth_as_it_is(tmp_path):
    frame = np.full((40, 40), 100.0, np.float32)
    truth = np.zeros((40, 40), bool)
    truth[5, 5:8] = True  # a cosmic across the hot pixel 5,6
    io.write_frame(tmp_path / "f.tif", frame.astype(np.uint16))
    io.write_mask(tmp_path / "m.png", truth)
    seen = []

    def detect(f):
        seen.append(f.copy())
        return np.ones_like(f, bool)

    result = evaluate_detector(detect, [(tmp_path / "f.tif", tmp_path / "m.png")], hot_pixels={"40x40": [[5, 6]]})
    row = result.per_image.iloc[0]
    # Every pixel predicted but the hot one: 2 of the 3 true pixels found, 1597 false.
    assert (row["tp"], row["fn"], row["fp"]) == (2, 1, 1597)


def test_frames_of_one_camera_share_its_detector_gaps_and_hot_pixels(tmp_path):
    summary = generate_dataset(tmp_path / "d", 6, 0, 0, size=64, seed=2, frames_per_camera=3)
    assert summary["frames_per_camera"] == 3
    sims = [simulate_frame(np.random.default_rng([2, i]), 64,
                           camera=draw_camera(np.random.default_rng([2, i // 3, 1]), 64)) for i in range(6)]
    for i, sim in enumerate(sims):
        assert np.array_equal(io.read_frame(tmp_path / "d" / "Train" / f"frame_{i:05d}.png"), sim.frame)
    for a, b in ((0, 1), (1, 2), (3, 4)):
        assert sims[a].info["hot_pixels"] == sims[b].info["hot_pixels"]
        assert np.array_equal(sims[a].info["gap_mask"], sims[b].info["gap_mask"])
        same = ("family", "pitch_um", "thickness_um", "read_noise_e", "bias_adu", "adu_per_photon")
        assert all(sims[a].info["detector"][k] == sims[b].info["detector"][k] for k in same)
        assert not np.array_equal(sims[a].frame, sims[b].frame)
    assert sims[2].info["detector"]["pitch_um"] != sims[3].info["detector"]["pitch_um"]
    # One detector per frame stays the default, frame for frame as before.
    single = generate_dataset(tmp_path / "s", 2, 0, 0, size=64, seed=2)
    assert single["frames_per_camera"] == 1
    assert np.array_equal(io.read_frame(tmp_path / "s" / "Train" / "frame_00001.png"),
                          simulate_frame(np.random.default_rng([2, 1]), 64).frame)
    with pytest.raises(ValueError, match="frames_per_camera"):
        generate_dataset(tmp_path / "x", 2, 0, 0, size=64, frames_per_camera=0)
    with pytest.raises(ValueError, match="not 32x32"):
        simulate_frame(np.random.default_rng(0), 32, camera=draw_camera(np.random.default_rng(0), 64))


@pytest.mark.usefixtures("sqlite_store")
def test_the_apps_proposals_and_evaluations_keep_the_datasets_hot_pixels_out(tmp_path, monkeypatch):
    import db
    from db import prediction_worker, predictions
    from segcore.classical import LACosmicParams, lacosmic_mask

    camera = _camera(hot=[(10, 12, 30000.0), (40, 70, 30000.0)])
    sims = _frames(12, camera, kind="dark", seed=4)
    for i, sim in enumerate(sims):
        split = "Train" if i < 8 else "Validation" if i < 10 else "Test"
        io.write_frame(tmp_path / "src" / split / f"f{i:02d}.png", sim.frame)
        io.write_mask(tmp_path / "src" / f"{split}Annotation" / f"f{i:02d}.png", sim.mask)
    dataset = db.import_folder(tmp_path / "src", name="one camera").dataset_id
    assert db.dataset_hot_pixels(dataset) == {"96x96": [[10, 12], [40, 70]]}

    params = LACosmicParams()
    with db.session_scope() as session:
        from db.models import Run

        run = Run(name="lacosmic", dataset_id=dataset, kind="lacosmic", config={**params.to_dict(), "tune": False},
                  status="finished", threshold=0.5, threshold_source="fixed", epochs_run=0)
        session.add(run)
        session.flush()
        run_id = run.id
    monkeypatch.setattr(predictions, "_launch", lambda job_id: None)
    monkeypatch.setattr(prediction_worker.signal, "signal", lambda *args: None)
    job_id = db.start_prediction(dataset, run_id)
    assert prediction_worker.run_prediction(job_id) == 0
    for frame in db.list_frames(dataset):
        (proposal,) = db.frame_proposals(frame.id)
        proposed = db.proposal_mask(proposal.id)
        plain = lacosmic_mask(db.read_frame(frame.id), params)
        assert plain[10, 12] and plain[40, 70]  # LA Cosmic alone takes them for cosmics
        assert not proposed[10, 12] and not proposed[40, 70]
    evaluation = db.evaluate_run(run_id, "test")
    pairs = [(tmp_path / "src" / "Test" / f"f{i}.png", tmp_path / "src" / "TestAnnotation" / f"f{i}.png")
             for i in (10, 11)]
    expected = evaluate_detector(lambda f: lacosmic_mask(f, params), pairs, hot_pixels={"96x96": [[10, 12], [40, 70]]})
    assert evaluation.pooled["precision"] == pytest.approx(expected.pooled["precision"])
    assert evaluation.pooled["f1"] == pytest.approx(expected.pooled["f1"])


@pytest.mark.usefixtures("sqlite_store")
def test_a_training_run_exports_its_frames_with_the_datasets_hot_pixels_filled(tmp_path, monkeypatch):
    import db
    from db import runs as run_manager
    from db.worker import export_training_data
    from segcore.data import pair_split

    camera = _camera(hot=[(10, 12, 30000.0), (40, 70, 30000.0)])
    for i, sim in enumerate(_frames(12, camera, kind="dark", seed=5)):
        split = "Train" if i < 10 else "Test"
        io.write_frame(tmp_path / "src" / split / f"f{i:02d}.png", sim.frame)
        io.write_mask(tmp_path / "src" / f"{split}Annotation" / f"f{i:02d}.png", sim.mask)
    io.write_frame(tmp_path / "src" / "Train" / "other.png", np.full((64, 64), 7, np.uint16))  # another size: as it is
    io.write_mask(tmp_path / "src" / "TrainAnnotation" / "other.png", np.zeros((64, 64), bool))
    dataset = db.import_folder(tmp_path / "src", name="one camera").dataset_id
    monkeypatch.setattr(run_manager, "_launch", lambda run_id, resume: None)
    run_id = db.start_lacosmic_run(dataset, params={}, tune=False)
    data = export_training_data(run_id, tmp_path / "export")
    pairs = pair_split(data, "Train").pairs
    assert len(pairs) == 11
    for image, mask in pairs:
        stored = tmp_path / "src" / "Train" / f"{io.frame_stem(image)}.png"
        original = io.read_frame(stored)
        exported = io.read_frame(image)
        if original.shape == (64, 64):
            assert image.suffix == ".png" and np.array_equal(exported, original)
            continue
        assert image.suffix == ".npy"
        hot = np.zeros(original.shape, bool)
        hot[10, 12] = hot[40, 70] = True
        np.testing.assert_array_equal(exported[~hot], original[~hot])
        for y, x in ((10, 12), (40, 70)):  # the mean of the other pixels of its 9x9 box, in whole ADU
            around = original[y - 4:y + 5, x - 4:x + 5].sum() - original[y, x]
            assert exported[y, x] == np.rint(around / 80) and original[y, x] > 20000
        assert np.array_equal(io.read_mask(mask), io.read_mask(tmp_path / "src" / "TrainAnnotation" / f"{io.frame_stem(image)}.png"))
