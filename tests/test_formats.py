"""Detector files (#12): frames written by fabio and h5py themselves, read back through segcore.io,
the command line and the store pixel for pixel; invalid pixels; masks read back by fabio's and h5py's
own readers; bad HDF5 input as one clear error with nothing stored changed."""

from __future__ import annotations

import csv
import tracemalloc
import zipfile

import fabio
import h5py
import hdf5plugin
import numpy as np
import pytest
import tifffile
from db_fixtures import *  # noqa: F401,F403
from fabio.cbfimage import CbfImage
from fabio.edfimage import EdfImage
from fabio.pilatusimage import PilatusImage

import db
from segcore import formats, io
from segcore.__main__ import main
from segcore.errors import InputFileError
from segcore.evaluator import evaluate_detector
from segcore.synth import simulate_frame

EIGER_INVALID = np.uint32(2**32 - 1)


def _frame(seed, shape=(48, 40), dtype=np.uint32):
    return np.random.default_rng(seed).poisson(20, shape).astype(dtype)


def _stack(n=5, shape=(48, 40)):
    """An Eiger-like uint32 stack with a module gap (row 10) and a dead pixel at 2^32-1."""
    stack = np.stack([_frame(i, shape) for i in range(n)])
    stack[:, 10, :] = EIGER_INVALID
    stack[:, 30, 7] = EIGER_INVALID
    return stack


def write_eiger_stack(path, stack):
    """HDF5 stack as an Eiger writes it: bitshuffle/LZ4 through hdf5plugin, one chunk per frame, NeXus attributes."""
    with h5py.File(path, "w") as h5:
        h5.attrs["default"] = "entry"
        entry = h5.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "data"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "data"
        data.create_dataset("data", data=stack, chunks=(1, *stack.shape[1:]), **hdf5plugin.Bitshuffle(cname="lz4"))
    return path


def write_nexus_with_decoys(path, signal):
    """A NeXus file whose default signal is found only through @default / @signal: other image datasets beside it."""
    with h5py.File(path, "w") as h5:
        h5.attrs["default"] = "scan_2"
        for name in ("scan_1", "scan_2"):
            entry = h5.create_group(name)
            entry.attrs["NX_class"] = "NXentry"
            entry.attrs["default"] = "plot"
            plot = entry.create_group("plot")
            plot.attrs["NX_class"] = "NXdata"
            plot.attrs["signal"] = "counts"
            plot.create_dataset("counts", data=signal if name == "scan_2" else signal * 0 + 7, compression="gzip")
            plot.create_dataset("dark", data=np.zeros_like(signal))
            entry.create_dataset("instrument/detector/pixel_mask", data=np.zeros(signal.shape[-2:], np.uint32))
        h5["scan_2/instrument/detector/pixel_mask"][3, 4] = 1  # NeXus: non-zero = do not use
    return path


# --- reading ----------------------------------------------------------------------------


def test_edf_cbf_and_pilatus_tiff_written_by_fabio_read_back_pixel_for_pixel(tmp_path):
    data = _frame(0, dtype=np.int32)
    EdfImage(data=data.astype(np.float32)).write(str(tmp_path / "f.edf"))
    CbfImage(data=data).write(str(tmp_path / "f.cbf"))
    PilatusImage(data=data).write(str(tmp_path / "f.tif"))
    for name, dtype in (("f.edf", np.float32), ("f.cbf", np.int32), ("f.tif", np.int32)):
        raw = io.read_raw(tmp_path / name)
        assert raw.dtype == dtype and np.array_equal(raw, data.astype(dtype)), name
        assert np.array_equal(io.read_frame(tmp_path / name), data.astype(np.float32))
        assert fabio.open(str(tmp_path / name)).data.tolist() == raw.tolist()
        assert io.image_shape(tmp_path / name) == data.shape


def test_pilatus_gaps_minus_one_and_bad_pixels_minus_two_are_invalid(tmp_path):
    data = _frame(1, dtype=np.int32)
    data[5, :] = -1
    data[20, 3] = -2
    CbfImage(data=data).write(str(tmp_path / "p.cbf"))
    PilatusImage(data=data).write(str(tmp_path / "p.tif"))
    for name in ("p.cbf", "p.tif"):
        frame, invalid = io.read_frame_and_invalid(tmp_path / name)
        assert np.array_equal(invalid, data < 0)
        assert frame.min() >= 0  # filled from the valid pixels around, never -1
        assert np.array_equal(frame[~invalid], data[~invalid].astype(np.float32))
    # Background-subtracted signed data: -1 and -2 are measurements there.
    noisy = data.copy()
    noisy[0, 0] = -7
    CbfImage(data=noisy).write(str(tmp_path / "noisy.cbf"))
    assert io.read_frame_and_invalid(tmp_path / "noisy.cbf")[1] is None


def test_eiger_stack_compressed_with_bitshuffle_lz4_reads_frame_by_frame(tmp_path):
    stack = _stack()
    path = write_eiger_stack(tmp_path / "series_master.h5", stack)
    with h5py.File(path) as h5:  # really compressed with the bitshuffle filter
        assert "32008" in h5["entry/data/data"]._filters
    addresses = io.frame_addresses(path)
    assert addresses == [f"{path}::/entry/data/data#{i}" for i in range(len(stack))]
    for i, address in enumerate(addresses):
        raw = io.read_raw(address)
        assert raw.dtype == np.uint32 and np.array_equal(raw, stack[i])
        frame, invalid = io.read_frame_and_invalid(address)
        assert np.array_equal(invalid, stack[i] == EIGER_INVALID)
        assert frame.max() < 1000 and np.array_equal(frame[~invalid], stack[i][~invalid].astype(np.float32))
        assert io.image_shape(address) == stack.shape[1:]
        assert io.frame_name(address) == f"series_master_{i:05d}.h5" and io.frame_stem(address) == f"series_master_{i:05d}"
    # FILE#i: frame i of the default signal
    assert np.array_equal(io.read_raw(f"{path}#3"), stack[3])


def test_sixteen_bit_all_ones_is_invalid_in_hdf5_but_a_saturated_pixel_in_png(tmp_path):
    frame = _frame(2, dtype=np.uint16)
    frame[4, 4] = 65535
    with h5py.File(tmp_path / "f.h5", "w") as h5:
        h5["data"] = frame
    io.write_frame(tmp_path / "f.png", frame)
    assert io.read_frame_and_invalid(tmp_path / "f.h5")[1].sum() == 1
    assert io.read_frame_and_invalid(tmp_path / "f.png")[1] is None  # a cosmic can saturate a 16-bit frame
    assert io.read_frame(tmp_path / "f.png")[4, 4] == 65535


def test_nexus_default_signal_is_found_through_nxdata_attributes_and_its_pixel_mask_is_invalid(tmp_path):
    signal = np.stack([_frame(10 + i, dtype=np.int32) for i in range(3)])
    path = write_nexus_with_decoys(tmp_path / "scan.nxs", signal)
    addresses = io.frame_addresses(path)
    assert addresses == [f"{path}::/scan_2/plot/counts#{i}" for i in range(3)]
    assert np.array_equal(io.read_raw(addresses[1]), signal[1])
    assert np.argwhere(io.read_frame_and_invalid(addresses[1])[1]).tolist() == [[3, 4]]
    # Another dataset by its own address
    assert np.array_equal(io.read_raw(f"{path}::/scan_1/plot/counts#0"), signal[0] * 0 + 7)


def test_reading_one_frame_of_a_stack_reads_only_that_frame(tmp_path):
    stack = np.random.default_rng(3).integers(0, 100, (24, 512, 512), dtype=np.uint32)  # 24 MiB
    path = write_eiger_stack(tmp_path / "big.h5", stack)
    tracemalloc.start()
    try:
        io.read_frame(f"{path}#17")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * stack[0].nbytes  # the frame, its float32 copy and a little more; never the stack


@pytest.mark.parametrize(
    "make, address, problem",
    [
        (lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 40), "{p}#0", "HDF5"),
        (lambda p: p.write_bytes(write_eiger_stack(p, _stack()).read_bytes()[:3000]), "{p}#1", "truncated"),
        (lambda p: write_eiger_stack(p, _stack()), "{p}::/entry/data/missing#0", "has no dataset /entry/data/missing"),
        (lambda p: write_eiger_stack(p, _stack()), "{p}#9", "frame index 9 out of range: /entry/data/data holds 5 frames"),
        (lambda p: write_eiger_stack(p, _stack()), "{p}", "holds 5 frames; address one as"),
        (lambda p: h5py.File(p, "w").create_dataset("x", data=np.zeros(10)).file.close(), "{p}", "1-D"),
        (lambda p: h5py.File(p, "w").create_dataset("x", data=np.zeros((2, 2, 4, 4))).file.close(), "{p}", "4-D"),
        (lambda p: h5py.File(p, "w").create_dataset("x", data=np.full((4, 4), np.nan)).file.close(), "{p}", "no valid pixel"),
    ],
    ids=["corrupt", "truncated", "missing-dataset", "index-out-of-range", "stack-without-index", "1-D", "4-D", "all-nan"],
)
def test_bad_hdf5_is_one_error_naming_file_and_problem(make, address, problem, tmp_path):
    path = tmp_path / "bad.h5"
    make(path)
    with pytest.raises(InputFileError) as error:
        io.read_frame(address.format(p=path))
    assert str(error.value).startswith(f"{path}: ") and problem in str(error.value)


# --- predictions never count invalid pixels -------------------------------------------------


def test_predictions_and_scores_leave_invalid_pixels_out(tmp_path):
    stack = _stack(n=2)
    path = write_eiger_stack(tmp_path / "s.h5", stack)
    truth = np.zeros(stack.shape[1:], np.uint8)
    truth[10, 3] = 1  # a "cosmic" drawn over the gap does not count
    truth[20, 20] = 1
    io.write_mask(tmp_path / "m.png", truth)
    everything = evaluate_detector(lambda frame: np.ones(frame.shape, bool), [(f"{path}#0", tmp_path / "m.png")])
    row = everything.per_image.iloc[0]
    invalid = int((stack[0] == EIGER_INVALID).sum())
    assert row["tp"] == 1 and row["fn"] == 0 and row["fp"] == stack[0].size - invalid - 1
    assert row["image"] == "s_00000.h5"


def test_lacosmic_cli_finds_cosmics_but_never_on_gaps_and_writes_a_stack_mask_fabio_reads(tmp_path):
    sample = simulate_frame(np.random.default_rng(4), 96, n_cosmics=5, family="integrating")
    stack = np.stack([sample.frame.astype(np.uint32)] * 3)
    stack[:, 40:44, :] = EIGER_INVALID  # a module gap: hot as can be, yet never a cosmic
    path = write_eiger_stack(tmp_path / "run.h5", stack)
    out = tmp_path / "out"
    assert main(["lacosmic", str(path), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "counts.csv").open()))
    assert [r["file"] for r in rows] == io.frame_addresses(path)
    assert all(int(r["invalid_pixels"]) == 4 * 96 for r in rows) and all(int(r["cosmics"]) > 0 for r in rows)
    written = out / "run.h5"
    # fabio's and h5py's own readers, frame by frame, in the input's layout
    image = fabio.open(f"{written}::/entry/data/data")
    assert image.nframes == 3
    with h5py.File(written) as h5:
        masks = h5["entry/data/data"]
        assert masks.compression == "gzip" and masks.chunks == (1, 96, 96) and masks.dtype == np.uint8
        pixel_mask = h5["entry/instrument/detector/pixel_mask"]
        assert h5["entry"].attrs["NX_class"] == "NXentry" and h5["entry/instrument/detector"].attrs["NX_class"] == "NXdetector"
        for i in range(3):
            mask = image.getframe(i).data
            assert np.array_equal(mask, masks[i])
            assert not mask[40:44].any() and mask.sum() == int(rows[i]["cosmic_pixels"])
            assert np.array_equal(pixel_mask[i], mask.astype(np.uint32) * formats.NEXUS_USER_MASK_BIT)
            assert np.array_equal(io.read_mask(f"{written}#{i}"), mask.astype(bool))


def test_clean_cli_writes_a_stack_of_the_same_layout_and_type_with_invalid_pixels_untouched(tmp_path):
    sample = simulate_frame(np.random.default_rng(5), 64, n_cosmics=3, family="integrating")
    stack = np.stack([sample.frame.astype(np.uint32)] * 2)
    stack[:, 5, :] = EIGER_INVALID
    (tmp_path / "in").mkdir()
    path = write_eiger_stack(tmp_path / "in" / "s.h5", stack)
    out = tmp_path / "out"
    assert main(["clean", "--lacosmic", str(path), "--out", str(out)]) == 0
    with h5py.File(out / "s.h5") as h5, h5py.File(out / "s_mask.h5") as masks:
        cleaned = h5["entry/data/data"][()]
        mask = masks["entry/data/data"][()].astype(bool)
    assert cleaned.dtype == np.uint32 and cleaned.shape == stack.shape
    assert np.array_equal(cleaned[~mask], stack[~mask]) and mask.any()
    assert np.all(cleaned[:, 5, :] == EIGER_INVALID)
    assert cleaned[mask].max() < EIGER_INVALID  # no cosmic filled from a gap


@pytest.mark.parametrize("fmt", ["npy", "edf", "tif", "h5", "png"])
def test_single_masks_read_back_with_the_tools_own_readers(fmt, tmp_path):
    mask = np.zeros((30, 20), bool)
    mask[3:5, 7] = True
    path = tmp_path / f"m.{fmt}"
    io.write_mask(path, mask)
    if fmt == "npy":
        back = np.load(path)
    elif fmt == "edf":
        back = fabio.open(str(path)).data
    elif fmt == "tif":
        back = tifffile.imread(path)
    elif fmt == "h5":
        with h5py.File(path) as h5:
            back = h5["entry/data/data"][()]
            assert np.array_equal(h5["entry/instrument/detector/pixel_mask"][()] != 0, mask)
    else:
        import cv2

        back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint8 and np.array_equal(back, mask.astype(np.uint8))
    assert np.array_equal(io.read_mask(path), mask)


def test_predict_mask_format_option_and_a_missing_dataset_is_one_line(tmp_path, capsys):
    path = write_eiger_stack(tmp_path / "s.h5", _stack(n=2))
    out = tmp_path / "o"
    assert main(["lacosmic", f"{path}::/entry/data/data#1", "--out", str(out), "--mask-format", "edf"]) == 0
    assert fabio.open(str(out / "s_00001.edf")).data.shape == (48, 40)
    assert main(["lacosmic", f"{path}::/entry/nothing", "--out", str(tmp_path / "p")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert err == [f"error: {path}: has no dataset /entry/nothing"]


# --- the store ----------------------------------------------------------------------------------


def _stored_files(home):
    return sorted(p.relative_to(home) for p in home.rglob("*") if p.is_file() and p.suffix not in (".db", ".db-wal", ".db-shm"))


def test_store_imports_every_frame_of_a_stack_by_its_address_with_its_mask_stack(sqlite_store, tmp_path):
    stack = _stack(n=4)
    frames = write_eiger_stack(tmp_path / "series.h5", stack)
    masks = np.zeros(stack.shape, np.uint8)
    for i in range(4):
        masks[i, 20 + i, 5] = 1
    with h5py.File(tmp_path / "series_mask.h5", "w") as h5:
        h5.create_dataset("entry/data/data", data=masks, compression="gzip")
    EdfImage(data=_frame(7).astype(np.float32)).write(str(tmp_path / "single.edf"))
    dataset = db.create_dataset("detector files")
    report = db.import_files(dataset.id, "train", frames=[frames, tmp_path / "single.edf"], masks=[tmp_path / "series_mask.h5"])
    assert report.frames_added["train"] == 5 and report.masks_added == 4
    stored = {f.name: f for f in db.list_frames(dataset.id)}
    assert sorted(stored) == ["series_00000.h5", "series_00001.h5", "series_00002.h5", "series_00003.h5", "single.edf"]
    for i in range(4):
        record = stored[f"series_{i:05d}.h5"]
        assert str(record.path).endswith(f"series.h5::/entry/data/data#{i}") and record.dtype == "uint32"
        assert np.array_equal(io.read_raw(record.path), stack[i])
        assert np.array_equal(db.current_mask(record.id), masks[i].astype(bool))
    assert np.array_equal(db.read_frame(stored["single.edf"].id), _frame(7).astype(np.float32))
    assert db.validation_report(dataset.id).missing_files == []


def test_a_frame_of_a_stack_exported_for_training_reads_back_the_same_with_its_invalid_pixels(tmp_path):
    stack = _stack(n=2)
    address = f"{write_eiger_stack(tmp_path / 's.h5', stack)}#1"
    single = formats.extract_frame(address, tmp_path / "train" / "s_00001.h5")
    assert np.array_equal(io.read_raw(single), stack[1])
    for a, b in zip(io.read_frame_and_invalid(single), io.read_frame_and_invalid(address)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: p.write_bytes(write_eiger_stack(p, _stack()).read_bytes()[:3000]), "truncated"),
        (lambda p: h5py.File(p, "w").create_dataset("x", data=np.zeros(10)).file.close(), "1-D"),
        (lambda p: h5py.File(p, "w").create_dataset("x", data=np.zeros((2, 2, 4, 4))).file.close(), "4-D"),
    ],
    ids=["truncated", "1-D", "4-D"],
)
def test_a_bad_hdf5_upload_is_refused_by_name_and_nothing_stored_changes(make, problem, sqlite_store, tmp_path):
    dataset = db.create_dataset("kept")
    good = write_eiger_stack(tmp_path / "good.h5", _stack(n=2))
    db.import_files(dataset.id, "train", frames=[good])
    before_frames, before_files = db.list_frames(dataset.id), _stored_files(sqlite_store)
    bad = tmp_path / "bad.h5"
    make(bad)
    with pytest.raises(db.RefusedFile) as error:
        db.import_files(dataset.id, "test", frames=[good, bad])
    assert str(bad) in str(error.value) and problem in str(error.value)
    assert db.list_frames(dataset.id) == before_frames and _stored_files(sqlite_store) == before_files


def test_a_mask_stack_shorter_than_its_frame_stack_masks_the_frames_it_holds(sqlite_store, tmp_path):
    dataset = db.create_dataset("short masks")
    frames = write_eiger_stack(tmp_path / "s.h5", _stack(n=3))
    with h5py.File(tmp_path / "s_mask.h5", "w") as h5:
        h5["entry/data/data"] = np.zeros((2, 48, 40), np.uint8)  # one mask short: frame 2 has none
    report = db.import_files(dataset.id, "train", frames=[frames], masks=[tmp_path / "s_mask.h5"])
    assert report.masks_added == 2 and report.frames_without_mask == [f"{frames}::/entry/data/data#2"]


@pytest.mark.parametrize("fmt", ["h5", "edf", "npy"])
def test_dataset_export_zip_holds_the_stack_once_and_masks_the_tools_read_and_imports_back(fmt, sqlite_store, tmp_path):
    stack = _stack(n=3)
    frames = write_eiger_stack(tmp_path / "s.h5", stack)
    dataset = db.create_dataset("to export")
    db.import_files(dataset.id, "validation", frames=[frames])
    records = db.list_frames(dataset.id)
    for i, record in enumerate(records[:2]):  # frame 2 stays without a mask
        mask = np.zeros(stack.shape[1:], bool)
        mask[15 + i, 4:6] = True
        db.save_mask_revision(record.id, mask, author="test")
    zip_path = db.export_dataset(dataset.id, fmt)
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(archive.namelist())
        archive.extractall(tmp_path / "unzipped")
    if fmt == "h5":
        assert names == ["Validation/s.h5", "ValidationAnnotation/s.h5"]
        written = tmp_path / "unzipped" / "ValidationAnnotation" / "s.h5"
        image = fabio.open(f"{written}::/entry/data/data")
        with h5py.File(written) as h5:
            assert list(h5["entry/data/data"].attrs["unlabelled_frames"]) == [2]
        for i, record in enumerate(records[:2]):
            assert np.array_equal(image.getframe(i).data.astype(bool), db.current_mask(record.id))
    else:
        assert names == ["Validation/s.h5", f"ValidationAnnotation/s_00000.{fmt}", f"ValidationAnnotation/s_00001.{fmt}"]
        for i, record in enumerate(records[:2]):
            back = tmp_path / "unzipped" / "ValidationAnnotation" / f"s_{i:05d}.{fmt}"
            data = np.load(back) if fmt == "npy" else fabio.open(str(back)).data
            assert np.array_equal(data.astype(bool), db.current_mask(record.id))
    again = db.import_zip(str(zip_path), name="reimported")
    copies = db.list_frames(again.dataset_id)
    assert [c.name for c in copies] == [r.name for r in records]
    for record, copy in zip(records[:2], copies[:2]):
        assert np.array_equal(db.current_mask(copy.id), db.current_mask(record.id))
        assert np.array_equal(io.read_raw(copy.path), io.read_raw(record.path))


@pytest.mark.slow
def test_cli_trains_on_a_folder_of_stacks_with_mask_stacks(tmp_path, capsys):
    """Training crops come from frames of stacks: a folder layout with stack files pairs frame by frame."""
    from segcore.data import pair_split

    root = tmp_path / "data"
    for split, seed in (("Train", 0), ("Validation", 1)):
        samples = [simulate_frame(np.random.default_rng([seed, i]), 64, n_cosmics=3, family="integrating") for i in range(2)]
        (root / split).mkdir(parents=True)
        (root / f"{split}Annotation").mkdir()
        stack = np.stack([s.frame.astype(np.uint32) for s in samples])
        stack[:, 7, :] = EIGER_INVALID
        write_eiger_stack(root / split / "run.h5", stack)
        with h5py.File(root / f"{split}Annotation" / "run_mask.h5", "w") as h5:
            h5.create_dataset("entry/data/data", data=np.stack([s.mask for s in samples]).astype(np.uint8), compression="gzip")
    pairing = pair_split(root, "Train")
    assert pairing.complete and [str(image) for image, _ in pairing.pairs] == io.frame_addresses(root / "Train" / "run.h5")
    code = main(["train", "--data", str(root), "--out", str(tmp_path / "m.keras"), "--crop-size", "32", "--batch-size", "2",
                 "--epochs", "1", "--steps-per-epoch", "2", "--validation-steps", "1", "--backbone", "tiny",
                 "--backbone-weights", "none", "--no-threshold-search"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "m.keras").exists()


def test_overview_of_a_large_frame_is_made_small_first_and_keeps_a_one_pixel_hit_and_the_window_box():
    from ui.images import MASK_COLOR, outline, overlay_mask, overview, thumbnail, zoom_window

    gray = np.random.default_rng(8).integers(0, 120, (2185, 2075), dtype=np.uint8)
    mask = np.zeros(gray.shape, bool)
    mask[1500, 300] = True
    window = zoom_window(gray.shape, 600, 1600, 8)
    picture = overview(gray, mask, window, MASK_COLOR, 0.6, size=320)
    reference = thumbnail(outline(overlay_mask(gray, mask, MASK_COLOR, 0.6), window, thickness=3), 320)
    assert picture.shape == reference.shape and max(picture.shape[:2]) <= 320
    factor = int(np.ceil(max(gray.shape) / 320))
    hit = picture[1500 // factor, 300 // factor]
    assert hit[0] > hit[1] and hit[0] > hit[2]  # the hit shows red in the small picture
    box = np.all(picture == (255, 215, 0), axis=2)
    rows, cols = np.nonzero(box)
    assert abs(rows.min() - window.top // factor) <= 1 and abs(cols.min() - window.left // factor) <= 1
    assert abs(rows.max() + 1 - (window.top + window.height) / factor) <= 1


def test_a_run_on_stack_frames_evaluates_them_by_name_and_exports_them_for_training(sqlite_store, tmp_path, monkeypatch):
    """LA Cosmic run through the worker (in this process) on a dataset imported from stacks; the training export."""
    from db import runs as run_manager
    from db.worker import export_training_data, run_worker
    from segcore.data import pair_split

    monkeypatch.setattr(run_manager, "_launch", lambda run_id, resume: None)
    dataset = db.create_dataset("stacks")
    for split, seed in (("train", 0), ("test", 1)):
        samples = [simulate_frame(np.random.default_rng([seed, i]), 64, n_cosmics=3, family="integrating") for i in range(2)]
        stack = np.stack([s.frame.astype(np.uint32) for s in samples])
        stack[:, 7, :] = EIGER_INVALID
        (tmp_path / split).mkdir()
        frames = write_eiger_stack(tmp_path / split / "run.h5", stack)
        with h5py.File(tmp_path / split / "run_mask.h5", "w") as h5:
            h5.create_dataset("entry/data/data", data=np.stack([s.mask for s in samples]).astype(np.uint8))
        db.import_files(dataset.id, split, frames=[frames], masks=[tmp_path / split / "run_mask.h5"])
    run_id = db.start_lacosmic_run(dataset.id, params={"sigclip": 5.0}, tune=False)
    assert run_worker(run_id) == 0
    (evaluation,) = db.list_evaluations(run_id)
    table = db.per_image_results(evaluation.id)
    assert sorted(table["image"]) == ["run_00000.h5", "run_00001.h5"]
    assert evaluation.n_images == 2
    data = export_training_data(run_id, tmp_path / "export")
    pairing = pair_split(data, "Train")
    assert pairing.complete and [io.frame_stem(image) for image, _ in pairing.pairs] == ["run_00000", "run_00001"]
    stored = {f.stem: f for f in db.list_frames(dataset.id, "train")}
    for image, mask in pairing.pairs:
        record = stored[io.frame_stem(image)]
        assert np.array_equal(io.read_raw(image), io.read_raw(record.path))
        assert np.array_equal(io.read_frame_and_invalid(image)[1], io.read_frame_and_invalid(record.path)[1])
        assert np.array_equal(io.read_mask(mask), db.current_mask(record.id))


def test_invalid_pixels_of_a_counting_frame_are_filled_with_whole_counts_so_the_counting_rule_still_applies(tmp_path):
    from segcore.preprocess import count_significance, excess_significance

    counts = np.random.default_rng(3).poisson(0.05, (64, 64)).astype(np.uint32)
    counts[20:24, 30] = 4  # a short track
    stack = counts[None].copy()
    stack[:, 40, :] = EIGER_INVALID  # a module gap
    stack[:, 5, 5] = EIGER_INVALID
    address = io.frame_addresses(write_eiger_stack(tmp_path / "series_master.h5", stack))[0]
    frame, invalid = io.read_frame_and_invalid(address)
    assert invalid.sum() == 65
    assert np.array_equal(frame, np.rint(frame)) and np.array_equal(frame[~invalid], counts[~invalid])
    # Whole counts: the frame takes the Poisson rule of counting frames, as it would without the gap.
    z = excess_significance(frame, counting=True)
    np.testing.assert_allclose(z[20:24, 30], np.maximum(count_significance(frame), 0.0)[20:24, 30])
    assert z[20:24, 30].min() > 5.0
    # Fractional fills (the mean of the pixels around) would have hidden the counts.
    fractional = frame.copy()
    fractional[invalid] += 0.25
    assert not np.allclose(excess_significance(fractional, counting=True)[20:24, 30], z[20:24, 30])
