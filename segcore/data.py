"""Finding frame/mask pairs in the dataset layout, and feeding them to the model.

Layout: ``Train/`` + ``TrainAnnotation/``, ``Validation/`` + ``ValidationAnnotation/``,
``Test/`` + ``TestAnnotation/``, optional ``Real/`` (frames without masks). A frame
and its mask share a file stem; a mask may also be named ``<stem>_mask``.

The ``tf.data`` pipelines decode PNG natively and normalise inside the graph, so
the hot path has no Python callback; TIFF and NPY frames are decoded by a NumPy
reader because TensorFlow has no decoder for them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import formats, io
from .preprocess import DEFAULT_RECIPE, check_recipe, tf_network_input

SPLITS = ("Train", "Validation", "Test")
REAL_SPLIT = "Real"
#: The layout's folder of frames for each split as the store names it (``db.SPLITS``, lower case):
#: the one mapping between the two spellings.
SPLIT_FOLDERS = {folder.lower(): folder for folder in (*SPLITS, REAL_SPLIT)}
MASK_SUFFIX_ALIASES = ("_mask",)
#: Normalised frames are cached in memory when they fit in this many bytes.
CACHE_BUDGET_BYTES = 4 * 1024**3


def annotation_dir(split: str) -> str:
    """Folder name of a split's masks: ``Train`` -> ``TrainAnnotation``."""
    return f"{split}Annotation"


def list_frames(folder: str | os.PathLike) -> list[Path]:
    """Frames of a folder (PNG, TIFF, NPY, detector files), sorted by name; [] if the folder is missing.

    A file holding several frames (an HDF5/NeXus stack) gives one address per frame
    (``stack.h5::/entry/data/data#12``, see :mod:`segcore.formats`), named by
    :func:`segcore.io.frame_stem` (``stack_00012``); an unreadable stack raises InputFileError.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in io.FRAME_SUFFIXES
    )
    frames: list[Path] = []
    for path in files:
        if path.suffix.lower() in formats.DETECTOR_SUFFIXES:
            frames.extend(Path(address) for address in io.frame_addresses(path))
        else:
            frames.append(path)
    return frames


def mask_stem(path: Path) -> str:
    """The frame stem a mask file belongs to (``a_mask.png`` -> ``a``; frame 3 of ``s_mask.h5`` -> ``s_00003``)."""
    address = formats.parse_address(path)
    stem = formats.frame_stem(address.file)
    for alias in MASK_SUFFIX_ALIASES:
        if stem.endswith(alias) and len(stem) > len(alias):
            stem = stem[: -len(alias)]
            break
    return stem if address.index is None else f"{stem}_{address.index:05d}"


@dataclass
class Pairing:
    """Frames matched to masks by stem, and what could not be matched."""

    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    missing_masks: list[Path] = field(default_factory=list)
    extra_masks: list[Path] = field(default_factory=list)
    duplicates: list[Path] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not (self.missing_masks or self.extra_masks or self.duplicates)

    def problems(self) -> list[str]:
        """One readable line per unmatched or duplicated file."""
        lines = [f"{p}: frame has no mask" for p in self.missing_masks]
        lines += [f"{p}: mask has no frame" for p in self.extra_masks]
        lines += [f"{p}: another file has the same name stem" for p in self.duplicates]
        return lines


def _by_stem(paths, stem_of) -> tuple[dict[str, Path], list[Path]]:
    found: dict[str, Path] = {}
    duplicates = []
    for path in sorted(Path(p) for p in paths):
        stem = stem_of(path)
        if stem in found:
            duplicates.append(path)
        else:
            found[stem] = path
    return found, duplicates


def pair_files(images, masks) -> Pairing:
    """Match frames to masks by file stem.

    Parameters
    ----------
    images, masks : iterables of paths.

    Returns
    -------
    Pairing with the pairs sorted by frame name and the unmatched files by name.
    """
    frames, frame_dups = _by_stem(images, io.frame_stem)
    labels, label_dups = _by_stem(masks, mask_stem)
    pairs = [(frames[s], labels[s]) for s in sorted(frames) if s in labels]
    return Pairing(
        pairs=pairs,
        missing_masks=[frames[s] for s in sorted(frames) if s not in labels],
        extra_masks=[labels[s] for s in sorted(labels) if s not in frames],
        duplicates=frame_dups + label_dups,
    )


def pair_split(data_dir: str | os.PathLike, split: str) -> Pairing:
    """Pairs of one split (``Train``, ``Validation`` or ``Test``) of a dataset folder."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    data_dir = Path(data_dir)
    return pair_files(list_frames(data_dir / split), list_frames(data_dir / annotation_dir(split)))


def read_pairs(pairs):
    """Yield (frame, mask) arrays of (frame path, mask path) pairs, one pair in memory at a time.

    Raises
    ------
    InputFileError naming a file that cannot be read or a mask whose size differs from its frame.
    """
    for image, mask in pairs:
        frame = io.read_frame(image)
        yield frame, io.read_mask(mask, shape=frame.shape)


# --- tf.data -------------------------------------------------------------------


def _read_any_frame(path: bytes) -> np.ndarray:
    return io.read_frame(path.decode())


def _read_any_mask(path: bytes) -> np.ndarray:
    return io.read_mask(path.decode()).astype(np.float32)


def _decode(path, is_png, reader, png_dtype):
    """Decode a PNG in-graph, anything else through the NumPy reader."""
    import tensorflow as tf

    def png():
        return tf.cast(tf.io.decode_png(tf.io.read_file(path), channels=1, dtype=png_dtype)[..., 0], tf.float32)

    def other():
        return tf.ensure_shape(tf.numpy_function(reader, [path], tf.float32), [None, None])

    return tf.cond(is_png, png, other)


def _load_pair(image_path, mask_path, recipe):
    """(path, path) -> network input (H, W, 3) float32 under ``recipe`` and mask (H, W) uint8 0/1."""
    import tensorflow as tf

    image_png = tf.strings.regex_full_match(tf.strings.lower(image_path), r".*\.png")
    mask_png = tf.strings.regex_full_match(tf.strings.lower(mask_path), r".*\.png")
    frame = _decode(image_path, image_png, _read_any_frame, tf.uint16)
    mask = _decode(mask_path, mask_png, _read_any_mask, tf.uint16)
    return tf_network_input(frame, recipe), tf.cast(mask > 0, tf.uint8)


def _pad_to(frame, mask, size):
    """Pad the (H, W, C) input (with -1, the normalised black) and mask (with 0) to at least size x size."""
    import tensorflow as tf

    height, width = tf.shape(frame)[0], tf.shape(frame)[1]
    pad_h, pad_w = tf.maximum(size - height, 0), tf.maximum(size - width, 0)
    paddings = [[0, pad_h], [0, pad_w]]
    return tf.pad(frame, paddings + [[0, 0]], constant_values=-1.0), tf.pad(mask, paddings, constant_values=0)


def _to_model_input(frame, mask):
    return frame, mask[..., None]


#: How a crop around a cosmic picks its cosmic: "pixel" (any cosmic pixel alike, so large
#: cosmics are picked more often) or "cosmic" (each compact cosmic about alike).
COSMIC_CROP_CHOICES = ("pixel", "cosmic")
#: Side of the window whose cosmic-pixel count stands for a cosmic's area in the "cosmic" choice.
COSMIC_AREA_WINDOW = 9


def cosmic_pick_weights(mask, window: int = COSMIC_AREA_WINDOW):
    """Weight of each pixel in the "cosmic" crop choice: 1 / (cosmic pixels in its window) on cosmic pixels, 0 elsewhere.

    A compact cosmic of area A <= window^2 has about A pixels of weight 1/A, so each such
    cosmic is picked about equally often whatever its size; a track longer than the
    window counts as about (length / window) cosmics. No connected-component labelling,
    so it runs inside the tf.data graph.
    """
    import tensorflow as tf

    cosmic = tf.cast(mask > 0, tf.float32)
    box = tf.ones([window, window, 1, 1], tf.float32)  # a sum, zero outside the frame (avg_pool would renormalise)
    counts = tf.nn.conv2d(cosmic[None, ..., None], box, 1, "SAME")[0, ..., 0]
    return tf.math.divide_no_nan(cosmic, counts)


def _crop_origin(seeds, mask, crop_size: int, cosmic_crop_fraction: float, cosmic_choice: str = "pixel"):
    """Top-left corner of a crop: uniform, or (with the given probability) around a cosmic.

    Cosmics cover about 0.1 % of a frame; cropping around them sometimes gives the
    network enough cosmic pixels to learn from early on. The frame's cosmic
    pixels are listed only when such a crop is drawn; ``cosmic_choice`` says how
    one of them is picked (:data:`COSMIC_CROP_CHOICES`).
    """
    import tensorflow as tf

    height, width = tf.shape(mask)[0], tf.shape(mask)[1]
    limit = tf.stack([height - crop_size + 1, width - crop_size + 1])
    uniform = tf.random.stateless_uniform([2], seeds[0], minval=0, maxval=tf.int32.max, dtype=tf.int32) % limit
    wants_cosmic = tf.random.stateless_uniform([], seeds[1]) < cosmic_crop_fraction

    def around_cosmic():
        cosmic_pixels = tf.cast(tf.where(mask > 0), tf.int32)
        count = tf.shape(cosmic_pixels)[0]

        def pick():
            if cosmic_choice == "cosmic":
                weights = tf.gather_nd(cosmic_pick_weights(mask), cosmic_pixels)
                index = tf.random.stateless_categorical(tf.math.log(weights)[None, :], 1, seeds[2], dtype=tf.int32)[0, 0]
            else:
                index = tf.random.stateless_uniform([], seeds[2], minval=0, maxval=count, dtype=tf.int32)
            offset = tf.random.stateless_uniform([2], seeds[3], minval=0, maxval=crop_size, dtype=tf.int32)
            return tf.clip_by_value(cosmic_pixels[index] - offset, 0, limit - 1)

        return tf.cond(count > 0, pick, lambda: uniform)

    return tf.cond(wants_cosmic, around_cosmic, lambda: uniform)


def _random_crop_and_augment(
    seed, frame, mask, crop_size: int, augment: bool, cosmic_crop_fraction: float = 0.0, cosmic_choice: str = "pixel"
):
    import tensorflow as tf

    frame, mask = _pad_to(frame, mask, crop_size)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=6)
    origin = _crop_origin(seeds[:4], mask, crop_size, cosmic_crop_fraction, cosmic_choice)
    # Cut frame and mask first: stacking them whole would copy the full frame per crop.
    frame = tf.slice(frame, tf.concat([origin, [0]], 0), [crop_size, crop_size, -1])
    mask = tf.slice(mask, origin, [crop_size, crop_size])
    stacked = tf.concat([frame, tf.cast(mask, tf.float32)[..., None]], axis=-1)
    if augment:
        stacked = tf.image.stateless_random_flip_left_right(stacked, seed=seeds[4])
        turns = tf.random.stateless_uniform([], seeds[5], minval=0, maxval=4, dtype=tf.int32)
        stacked = tf.image.rot90(stacked, k=turns)
    return _to_model_input(stacked[..., :-1], tf.cast(stacked[..., -1], tf.uint8))


def _estimated_bytes(pairs) -> int:
    # 3-channel float32 input + uint8 mask per pixel
    return sum(13 * math.prod(io.image_shape(image)) for image, _ in pairs)


def _frames(pairs, cache, recipe):
    import tensorflow as tf

    if not pairs:
        raise ValueError("no frame/mask pairs to read")
    check_recipe(recipe)
    images = [str(image) for image, _ in pairs]
    masks = [str(mask) for _, mask in pairs]
    dataset = tf.data.Dataset.from_tensor_slices((images, masks))
    dataset = dataset.map(lambda i, m: _load_pair(i, m, recipe), num_parallel_calls=tf.data.AUTOTUNE)
    if cache == "auto":
        cache = _estimated_bytes(pairs) <= CACHE_BUDGET_BYTES
    return dataset.cache() if cache else dataset


def train_dataset(
    pairs,
    crop_size: int = 256,
    batch_size: int = 6,
    seed: int = 0,
    augment: bool = True,
    cache="auto",
    cosmic_crop_fraction: float = 0.5,
    recipe: str = DEFAULT_RECIPE,
    cosmic_choice: str = "pixel",
):
    """Endless batches of random native-resolution crops for training.

    Parameters
    ----------
    pairs : list of (frame path, mask path).
    crop_size : side of the square crops, a multiple of 16. Frames smaller than
        a crop are padded.
    batch_size : crops per batch.
    seed : makes the order, the crops and the augmentation reproducible.
    augment : random horizontal flips and 90-degree rotations (which with the
        flip give all 8 symmetries of the square).
    cache : keep normalised frames in memory; "auto" does so when they fit.
    cosmic_crop_fraction : probability that a crop is placed around a randomly
        chosen cosmic pixel of its frame instead of uniformly.
    recipe : input recipe (:data:`segcore.preprocess.INPUT_RECIPES`).
    cosmic_choice : how a crop around a cosmic picks it (:data:`COSMIC_CROP_CHOICES`):
        "pixel" favours large cosmics, "cosmic" gives small ones the same chance.

    Returns
    -------
    tf.data.Dataset of ((B, crop, crop, 3) float32 network input, (B, crop, crop, 1) uint8).
    """
    import tensorflow as tf

    _check_crop(crop_size, batch_size)
    if not 0.0 <= cosmic_crop_fraction <= 1.0:
        raise ValueError(f"cosmic crop fraction must be in [0, 1], got {cosmic_crop_fraction}")
    if cosmic_choice not in COSMIC_CROP_CHOICES:
        raise ValueError(f"cosmic crop choice must be one of {', '.join(COSMIC_CROP_CHOICES)}, got {cosmic_choice!r}")
    frames = _frames(pairs, cache, recipe)
    frames = frames.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True).repeat()
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    dataset = tf.data.Dataset.zip((seeds, frames)).map(
        lambda s, fm: _random_crop_and_augment(s, fm[0], fm[1], crop_size, augment, cosmic_crop_fraction, cosmic_choice),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _grid_origins(length, crop_size):
    """Tile origins covering [0, length) with tiles of crop_size; the last one flush with the end."""
    import tensorflow as tf

    count = (tf.maximum(length, crop_size) + crop_size - 1) // crop_size
    return tf.minimum(tf.range(count) * crop_size, tf.maximum(length - crop_size, 0))


def _grid_tiles(frame, mask, crop_size: int):
    import tensorflow as tf

    frame, mask = _pad_to(frame, mask, crop_size)
    rows = _grid_origins(tf.shape(frame)[0], crop_size)
    cols = _grid_origins(tf.shape(frame)[1], crop_size)
    grid = tf.reshape(tf.stack(tf.meshgrid(rows, cols, indexing="ij"), axis=-1), [-1, 2])

    def tile(origin):
        r, c = origin[0], origin[1]
        return _to_model_input(frame[r : r + crop_size, c : c + crop_size], mask[r : r + crop_size, c : c + crop_size])

    return tf.data.Dataset.from_tensor_slices(grid).map(tile)


def validation_dataset(pairs, crop_size: int = 256, batch_size: int = 6, cache="auto", recipe: str = DEFAULT_RECIPE):
    """Every pixel of every frame once, as a grid of native-resolution tiles.

    Deterministic, finite, the same every epoch, so validation loss is comparable
    between epochs.
    """
    import tensorflow as tf

    _check_crop(crop_size, batch_size)
    dataset = _frames(pairs, cache, recipe).flat_map(lambda f, m: _grid_tiles(f, m, crop_size))
    tiles = sum(tiles_per_frame(io.image_shape(image), crop_size) for image, _ in pairs)
    # flat_map hides the length; stating it lets Keras know when validation ends.
    batches = math.ceil(tiles / batch_size)
    dataset = dataset.batch(batch_size).apply(tf.data.experimental.assert_cardinality(batches))
    return dataset.prefetch(tf.data.AUTOTUNE)


def tiles_per_frame(shape: tuple[int, int], crop_size: int) -> int:
    """How many grid tiles :func:`validation_dataset` cuts from a frame of this shape."""
    rows = math.ceil(max(shape[0], crop_size) / crop_size)
    cols = math.ceil(max(shape[1], crop_size) / crop_size)
    return rows * cols


def _check_crop(crop_size: int, batch_size: int) -> None:
    if crop_size <= 0 or crop_size % 16:
        raise ValueError(f"crop size must be a positive multiple of 16, got {crop_size}")
    if batch_size <= 0:
        raise ValueError(f"batch size must be positive, got {batch_size}")
