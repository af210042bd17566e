import numpy as np
import pytest

from segcore import data, io
from segcore.errors import InputFileError
from segcore.preprocess import normalize_frame


def _write_pair(root, split, stem, frame, mask, mask_name=None, frame_suffix=".png"):
    io.write_frame(root / split / f"{stem}{frame_suffix}", frame)
    io.write_mask(root / data.annotation_dir(split) / (mask_name or f"{stem}.png"), mask)


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        frame = rng.integers(0, 5000, (40, 56), dtype=np.uint16)
        _write_pair(tmp_path, "Train", f"f{i}", frame, frame > 4500)
    return tmp_path


def test_pairs_by_stem_not_by_position(tmp_path):
    images = [tmp_path / n for n in ("a.png", "b.png", "c.png")]
    masks = [tmp_path / n for n in ("c.png", "a_mask.png", "z.png")]
    pairing = data.pair_files(images, masks)
    assert [(i.name, m.name) for i, m in pairing.pairs] == [("a.png", "a_mask.png"), ("c.png", "c.png")]
    assert [p.name for p in pairing.missing_masks] == ["b.png"]
    assert [p.name for p in pairing.extra_masks] == ["z.png"]
    assert not pairing.complete
    assert any("b.png: frame has no mask" in line for line in pairing.problems())


def test_duplicate_stems_are_reported(tmp_path):
    pairing = data.pair_files([tmp_path / "a.png", tmp_path / "a.tif"], [tmp_path / "a.png"])
    assert [p.name for p in pairing.duplicates] == ["a.tif"]


def test_the_layout_names_each_split_folder_once_for_segcore_and_the_store():
    import db
    from db.layout import layout_folder

    assert data.SPLIT_FOLDERS == {"train": "Train", "validation": "Validation", "test": "Test", "real": "Real"}
    assert db.SPLITS == ("train", "validation", "test", "real")
    assert [layout_folder(name) for name in ("Validation", "testannotation", "Real", "RealAnnotation", "Other")] == [
        ("validation", False), ("test", True), ("real", False), ("real", True), None]


def test_pair_split_reads_the_layout(dataset):
    pairing = data.pair_split(dataset, "Train")
    assert len(pairing.pairs) == 3 and pairing.complete
    assert data.pair_split(dataset, "Test").pairs == []
    with pytest.raises(ValueError, match="split"):
        data.pair_split(dataset, "Real")


def test_read_pairs_yields_the_files_and_names_a_mask_of_the_wrong_size(dataset):
    pairs = data.pair_split(dataset, "Train").pairs
    for (image, mask), (frame, true) in zip(pairs, data.read_pairs(pairs), strict=True):
        np.testing.assert_array_equal(frame, io.read_frame(image))
        np.testing.assert_array_equal(true, io.read_frame(mask) > 0)
    io.write_mask(dataset / "TrainAnnotation" / "f2.png", np.zeros((40, 50), bool))
    reader = data.read_pairs(pairs)
    next(reader), next(reader)  # one pair at a time: the first two are fine
    with pytest.raises(InputFileError, match=r"f2.png.*40x50.*40x56"):
        next(reader)


def test_training_batches_have_the_promised_shapes(dataset):
    batches = list(data.train_dataset(data.pair_split(dataset, "Train").pairs, crop_size=32, batch_size=4).take(3))
    for x, y in batches:
        assert x.shape == (4, 32, 32, 3) and x.dtype.name == "float32"
        assert y.shape == (4, 32, 32, 1) and y.dtype.name == "uint8"
        assert -1.0 <= x.numpy().min() and x.numpy().max() <= 1.0
        assert set(np.unique(y.numpy())) <= {0, 1}


def test_crops_are_native_resolution_pieces_of_the_normalised_frame(dataset):
    pairs = data.pair_split(dataset, "Train").pairs
    frames = [normalize_frame(io.read_frame(i)) for i, _ in pairs]
    masks = [io.read_mask(m) for _, m in pairs]
    for x, y in data.train_dataset(pairs, crop_size=16, batch_size=2, augment=False).take(2):
        for crop, label in zip(x.numpy()[..., 0], y.numpy()[..., 0]):
            found = False
            for frame, mask in zip(frames, masks):
                windows = np.lib.stride_tricks.sliding_window_view(frame, (16, 16))
                hits = np.argwhere(np.all(np.abs(windows - crop) < 1e-5, axis=(2, 3)))
                if len(hits):
                    r, c = hits[0]
                    np.testing.assert_array_equal(label, mask[r : r + 16, c : c + 16])
                    found = True
            assert found


def test_augmentation_keeps_frame_and_mask_aligned(tmp_path):
    # The mask is exactly the bright pixels, so any misalignment would show.
    rng = np.random.default_rng(5)
    frame = np.full((32, 32), 100, np.uint16)
    mask = rng.random((32, 32)) > 0.8
    frame[mask] = 60000
    _write_pair(tmp_path, "Train", "a", frame, mask)
    pairs = data.pair_split(tmp_path, "Train").pairs
    for x, y in data.train_dataset(pairs, crop_size=32, batch_size=1, seed=3).take(8):
        np.testing.assert_array_equal(x.numpy()[0, ..., 0] > 0, y.numpy()[0, ..., 0] == 1)


def test_training_order_is_reproducible_from_the_seed(dataset):
    pairs = data.pair_split(dataset, "Train").pairs
    first = [x.numpy() for x, _ in data.train_dataset(pairs, 16, 2, seed=11).take(3)]
    again = [x.numpy() for x, _ in data.train_dataset(pairs, 16, 2, seed=11).take(3)]
    other = [x.numpy() for x, _ in data.train_dataset(pairs, 16, 2, seed=12).take(3)]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    assert not np.array_equal(np.stack(first), np.stack(other))


def test_validation_tiles_cover_every_pixel_once(dataset):
    pairs = data.pair_split(dataset, "Train").pairs
    tiles = np.concatenate([y.numpy() for _, y in data.validation_dataset(pairs, crop_size=16, batch_size=5)])
    assert len(tiles) == 3 * data.tiles_per_frame((40, 56), 16) == 3 * 3 * 4
    # Overlapping edge tiles count some pixels twice; the total can only exceed the true count.
    true_pixels = sum(io.read_mask(m).sum() for _, m in pairs)
    assert tiles.sum() >= true_pixels


def test_small_frames_are_padded_to_the_crop(tmp_path):
    _write_pair(tmp_path, "Train", "s", np.arange(100, dtype=np.uint16).reshape(10, 10), np.eye(10, dtype=bool))
    pairs = data.pair_split(tmp_path, "Train").pairs
    x, y = next(iter(data.train_dataset(pairs, crop_size=16, batch_size=1, augment=False)))
    assert x.shape == (1, 16, 16, 3) and int(y.numpy().sum()) == 10


def test_tiff_and_npy_frames_feed_the_pipeline(tmp_path):
    rng = np.random.default_rng(2)
    frame = rng.normal(50, 5, (32, 32)).astype(np.float32)
    _write_pair(tmp_path, "Train", "t", frame, frame > 55, frame_suffix=".tif")
    _write_pair(tmp_path, "Train", "n", frame, frame > 55, frame_suffix=".npy")
    pairs = data.pair_split(tmp_path, "Train").pairs
    tiles = list(data.validation_dataset(pairs, crop_size=32, batch_size=1))
    for x, _ in tiles:
        np.testing.assert_allclose(x.numpy()[0, ..., 0], normalize_frame(frame), atol=1e-5)


@pytest.mark.parametrize("crop, batch", [(30, 2), (0, 2), (32, 0)])
def test_bad_crop_or_batch_is_refused(dataset, crop, batch):
    with pytest.raises(ValueError):
        data.train_dataset(data.pair_split(dataset, "Train").pairs, crop_size=crop, batch_size=batch)


def test_cosmic_crops_contain_cosmic_pixels(tmp_path):
    rng = np.random.default_rng(9)
    frame = rng.integers(0, 100, (128, 128), dtype=np.uint16)
    mask = np.zeros((128, 128), bool)
    mask[100:103, 7:9] = True
    _write_pair(tmp_path, "Train", "a", frame, mask)
    pairs = data.pair_split(tmp_path, "Train").pairs
    always = [int(y.numpy().sum()) for _, y in data.train_dataset(pairs, 32, 1, seed=1, cosmic_crop_fraction=1.0).take(20)]
    never = [int(y.numpy().sum()) for _, y in data.train_dataset(pairs, 32, 1, seed=1, cosmic_crop_fraction=0.0).take(20)]
    assert min(always) > 0
    assert sum(n > 0 for n in never) < 20
    with pytest.raises(ValueError, match="cosmic crop fraction"):
        data.train_dataset(pairs, 32, 1, cosmic_crop_fraction=1.5)
    with pytest.raises(ValueError, match="cosmic crop choice"):
        data.train_dataset(pairs, 32, 1, cosmic_choice="area")


def test_cosmic_pick_weights_are_one_over_the_cosmic_pixels_in_the_window():
    from scipy.ndimage import uniform_filter

    rng = np.random.default_rng(4)
    mask = rng.random((40, 50)) < 0.08
    mask[0:6, 44:50] = True  # a blob in the corner: the window reaches past the frame there
    counts = np.rint(uniform_filter(mask.astype(float), size=9, mode="constant") * 81)
    expected = np.where(mask, 1.0 / np.maximum(counts, 1), 0.0)
    np.testing.assert_allclose(data.cosmic_pick_weights(mask.astype(np.uint8)).numpy(), expected, rtol=1e-6)


def test_picking_by_cosmic_gives_a_one_pixel_cosmic_as_many_crops_as_a_blob(tmp_path):
    frame = np.random.default_rng(2).integers(0, 100, (128, 128), dtype=np.uint16)
    mask = np.zeros((128, 128), bool)
    mask[20, 20] = True  # one pixel
    mask[90:97, 90:97] = True  # 49 pixels, 70 pixels away: no 16-pixel crop holds both
    _write_pair(tmp_path, "Train", "a", frame, mask)
    pairs = data.pair_split(tmp_path, "Train").pairs

    def share_with_the_spot(choice):
        crops = data.train_dataset(pairs, 16, 1, seed=3, augment=False, cosmic_crop_fraction=1.0, cosmic_choice=choice)
        sums = [int(y.numpy().sum()) for _, y in crops.take(300)]
        assert all(n > 0 for n in sums)  # every crop holds one of the two cosmics
        # one pixel: the spot (a crop showing one pixel of the blob needs its corner and an extreme offset: rare)
        return np.mean([n == 1 for n in sums])

    # pixel: 1 of 50 cosmic pixels is the spot; cosmic: half the picks (binomial sd about 0.03 at n = 300)
    assert share_with_the_spot("pixel") < 0.06
    assert 0.4 < share_with_the_spot("cosmic") < 0.6
