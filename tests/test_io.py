import os

import numpy as np
import pytest
import tifffile
from PIL import Image

from segcore import io
from segcore.errors import InputFileError


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_frames_read_back_exactly_as_float(tmp_path, rng, dtype):
    array = rng.integers(0, np.iinfo(dtype).max, (40, 56), dtype=dtype)
    path = tmp_path / "frame.png"
    io.write_frame(path, array)
    frame = io.read_frame(path)
    assert frame.dtype == np.float32 and frame.shape == (40, 56)
    np.testing.assert_array_equal(frame, array.astype(np.float32))
    # an independent decoder agrees on the stored values
    np.testing.assert_array_equal(np.asarray(Image.open(path)), array)


def test_tiff_and_npy_frames_keep_float_values(tmp_path, rng):
    array = rng.normal(100, 20, (32, 48)).astype(np.float32)
    tifffile.imwrite(tmp_path / "a.tif", array)
    np.save(tmp_path / "b.npy", array)
    np.testing.assert_array_equal(io.read_frame(tmp_path / "a.tif"), array)
    np.testing.assert_array_equal(io.read_frame(tmp_path / "b.npy"), array)


def test_frame_info_reports_size_and_bit_depth(tmp_path, rng):
    io.write_frame(tmp_path / "f.png", rng.integers(0, 60000, (30, 20), dtype=np.uint16))
    info = io.frame_info(tmp_path / "f.png")
    assert (info.height, info.width, info.dtype, info.bit_depth) == (30, 20, "uint16", 16)
    assert io.image_shape(tmp_path / "f.png") == (30, 20)


def test_grey_rgb_png_is_accepted_as_single_channel(tmp_path, rng):
    grey = rng.integers(0, 255, (16, 16), dtype=np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(io.read_frame(tmp_path / "rgb.png"), grey)


def test_mask_round_trip_writes_zero_one_png(tmp_path, rng):
    mask = rng.random((24, 30)) > 0.7
    io.write_mask(tmp_path / "m.png", mask)
    stored = np.asarray(Image.open(tmp_path / "m.png"))
    assert stored.dtype == np.uint8 and set(np.unique(stored)) <= {0, 1}
    np.testing.assert_array_equal(io.read_mask(tmp_path / "m.png"), mask)


def test_mask_nonzero_values_of_any_integer_type_are_cosmic(tmp_path):
    values = np.array([[0, 1, 255], [0, 7, 0]], dtype=np.uint16)
    io.write_frame(tmp_path / "m.png", values)
    np.testing.assert_array_equal(io.read_mask(tmp_path / "m.png"), values != 0)


def test_write_mask_leaves_no_temporary_files(tmp_path):
    io.write_mask(tmp_path / "m.png", np.ones((4, 4), bool))
    io.write_mask(tmp_path / "m.png", np.zeros((4, 4), bool))
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]
    assert not io.read_mask(tmp_path / "m.png").any()


def _error(path, call=io.read_frame, **kwargs) -> str:
    with pytest.raises(InputFileError) as info:
        call(path, **kwargs)
    assert str(path) in str(info.value)
    return info.value.problem


def test_missing_file_is_named(tmp_path):
    assert "not found" in _error(tmp_path / "nope.png")


def test_corrupt_png_is_named(tmp_path):
    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    assert "corrupt" in _error(path)


def test_text_file_with_image_suffix_is_refused(tmp_path):
    path = tmp_path / "notes.tif"
    path.write_text("not an image")
    assert "corrupt" in _error(path)


def test_unsupported_suffix_is_refused(tmp_path):
    path = tmp_path / "frame.jpg"
    path.write_bytes(b"\xff\xd8\xff")
    assert "unsupported file type" in _error(path)


def test_three_dimensional_npy_is_refused(tmp_path):
    np.save(tmp_path / "cube.npy", np.zeros((4, 5, 6)))
    assert "2-D" in _error(tmp_path / "cube.npy")


def test_colour_image_is_refused(tmp_path, rng):
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "colour.png")
    assert "colour" in _error(tmp_path / "colour.png")


def test_nan_pixels_are_invalid_pixels_and_a_frame_without_valid_ones_is_refused(tmp_path):
    array = np.ones((4, 4), np.float32)
    array[1, 2] = np.nan
    np.save(tmp_path / "nan.npy", array)
    frame, invalid = io.read_frame_and_invalid(tmp_path / "nan.npy")
    assert np.argwhere(invalid).tolist() == [[1, 2]] and np.all(frame == 1)  # filled from its neighbours
    np.save(tmp_path / "all_nan.npy", np.full((4, 4), np.nan, np.float32))
    assert "no valid pixel" in _error(tmp_path / "all_nan.npy")


def test_mask_size_mismatch_names_both_sizes(tmp_path):
    io.write_mask(tmp_path / "m.png", np.zeros((10, 12), bool))
    problem = _error(tmp_path / "m.png", io.read_mask, shape=(10, 14))
    assert "10x12" in problem and "10x14" in problem


def test_negative_float_mask_is_refused(tmp_path):
    np.save(tmp_path / "m.npy", np.array([[0.0, -1.0]]))
    assert "negative" in _error(tmp_path / "m.npy", io.read_mask)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    # A valid PNG header claiming 100000 x 100000 pixels, with almost no data.
    import struct
    import zlib

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))
    problem = _error(path)
    assert "too large" in problem or "larger than" in problem


def test_probability_mask_is_refused_by_name_as_the_store_refuses_it(tmp_path):
    path = tmp_path / "probabilities.npy"
    np.save(path, np.full((8, 8), 0.3, np.float32))
    with pytest.raises(InputFileError, match=r"probabilities\.npy: .*other than whole numbers.*not probabilities"):
        io.read_mask(path)
    np.save(path, np.eye(8, dtype=np.float32) * 255)  # whole numbers: 0/255 is a mask
    np.testing.assert_array_equal(io.read_mask(path), np.eye(8, dtype=bool))


def test_tiff_stack_is_refused_as_not_2d_from_its_header(tmp_path):
    import tifffile

    from segcore.io import image_shape

    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((5, 128, 128), np.uint16))
    for read in (image_shape, io.read_mask, io.read_frame):
        with pytest.raises(InputFileError, match=r"stack\.tif: expected a 2-D image, found shape \(5, 128, 128\)"):
            read(path)


@pytest.mark.slow
def test_written_files_get_the_users_umask_not_mkstemps_0600(tmp_path):
    import stat

    from segcore.model import build_deeplabv3plus, save_model

    previous = os.umask(0o002)  # a lab's shared group
    try:
        assert io.process_umask() == 0o002
        io.write_mask(tmp_path / "m.png", np.zeros((4, 4), bool))
        io.write_frame(tmp_path / "f.png", np.zeros((4, 4), np.uint16))
        model, _ = build_deeplabv3plus(input_shape=(32, 32, 3), backbone_weights="none")
        save_model(model, tmp_path / "model.keras")
    finally:
        os.umask(previous)
    for name in ("m.png", "f.png", "model.keras"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o664, name


def test_frame_size_limit_comes_from_the_setting(tmp_path, monkeypatch):
    path = tmp_path / "frame.png"
    io.write_frame(path, np.zeros((64, 80), np.uint16))
    monkeypatch.setenv("COSMICS_MAX_FRAME_PIXELS", str(64 * 80))
    assert io.read_frame(path).shape == (64, 80)
    monkeypatch.setenv("COSMICS_MAX_FRAME_PIXELS", str(64 * 80 - 1))
    with pytest.raises(InputFileError, match=r"frame.png: image of 64x80 pixels is larger than the limit of 5,119"):
        io.read_frame(path)
    monkeypatch.setenv("COSMICS_MAX_FRAME_PIXELS", "-3")
    with pytest.raises(ValueError, match="COSMICS_MAX_FRAME_PIXELS must be a positive whole number"):
        io.read_frame(path)
