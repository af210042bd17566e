"""Reading frames and masks from PNG, TIFF, NPY and detector files, and writing masks.

Detector formats (HDF5/NeXus stacks, EDF, CBF, MarCCD, mar345, Bruker, ...) and frame
addresses (``file.h5::/entry/data/data#12``) are :mod:`segcore.formats`'; every function
here that takes a path takes such an address too. A frame's invalid pixels (NaN, a
detector's own invalid values, a NeXus pixel_mask) are :func:`read_frame_and_invalid`'s
second result; :func:`read_frame` gives the frame with them filled from their neighbours.

Every failure raises :class:`segcore.errors.InputFileError`, whose message names
the file and the problem, so callers (command line, store, app) can show it as is.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image

from . import formats
from .errors import InputFileError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".npy")
FRAME_SUFFIXES = IMAGE_SUFFIXES + formats.DETECTOR_SUFFIXES
MASK_SUFFIXES = FRAME_SUFFIXES
#: What the error for another suffix says is accepted.
ACCEPTED_TEXT = "PNG, TIFF, NPY, HDF5/NeXus (.h5, .nxs, ...) or a detector format (EDF, CBF, MarCCD, mar345, Bruker, ...)"
#: Largest frame accepted (pixels) unless COSMICS_MAX_FRAME_PIXELS says otherwise;
#: bigger headers are refused before decoding, which also stops decompression
#: bombs. 8192 x 8192 holds every X-ray detector on the market (an Eiger 16M is
#: 4150 x 4371, a Rayonix MX340 7680 x 7680).
MAX_FRAME_PIXELS = 8192 * 8192
#: Bytes per pixel of the widest frame file accepted (float64 NPY), for size caps.
MAX_BYTES_PER_PIXEL = 8


def max_frame_pixels() -> int:
    """The frame size limit in pixels: ``COSMICS_MAX_FRAME_PIXELS``, else MAX_FRAME_PIXELS."""
    value = os.environ.get("COSMICS_MAX_FRAME_PIXELS", "").strip()
    if not value:
        return MAX_FRAME_PIXELS
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(f"COSMICS_MAX_FRAME_PIXELS must be a positive whole number, got {value!r}")
    return int(value)


def max_frame_file_bytes() -> int:
    """The largest file a frame within the size limit can need (plus 1 MiB of headers)."""
    return max_frame_pixels() * MAX_BYTES_PER_PIXEL + 2**20


@dataclass(frozen=True)
class FrameInfo:
    """What a frame file holds, read from its header where possible."""

    height: int
    width: int
    dtype: str
    bit_depth: int


def _suffix(path: Path) -> str:
    if formats.ADDRESS_SEPARATOR in str(path):
        return ".h5"
    suffix = formats.suffix_of(formats.frame_file(path))
    if suffix not in FRAME_SUFFIXES:
        raise InputFileError(
            formats.frame_file(path), f"unsupported file type '{Path(path).suffix or '(none)'}'; use {ACCEPTED_TEXT}"
        )
    return suffix


def _header_shape(path: Path, suffix: str) -> tuple[int, ...]:
    """Shape from the file header, without decoding the pixels."""
    if suffix in formats.HDF5_SUFFIXES:
        address = formats.parse_address(path)
        info = formats.hdf5_info(address)
        if info.frames is not None and (address.index is not None or info.frames == 1):
            count = info.frames
            index = address.index or 0
            if not 0 <= index < count:
                raise InputFileError(address.file, f"frame index {index} out of range: {info.dataset} holds {count} frames")
        elif info.frames is not None:
            raise InputFileError(
                address.file, f"{info.dataset} holds {info.frames} frames; address one as "
                f"{address.file.name}::{info.dataset}#INDEX (0-{info.frames - 1})"
            )
        elif address.index not in (None, 0):
            raise InputFileError(address.file, f"frame index {address.index} out of range: {info.dataset} is a single 2-D frame")
        return (info.height, info.width)
    if suffix in formats.FABIO_SUFFIXES:
        frames, height, width = formats.fabio_shape(path)
        return (height, width) if frames == 1 or formats.parse_address(path).index is not None else (frames, height, width)
    try:
        if suffix == ".png":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as img:
                    width, height = img.size
            return (height, width)
        if suffix in (".tif", ".tiff"):
            with tifffile.TiffFile(path) as tif:
                return tuple(tif.series[0].shape)
        return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)
    except InputFileError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputFileError(path, f"image is too large to decode safely ({exc})") from None
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except Exception as exc:  # any decoder failure means a corrupt or mislabelled file
        raise InputFileError(path, f"unreadable or corrupt {suffix[1:].upper()} file ({exc})") from None


def image_shape(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image file from its header, without decoding the pixels."""
    path = Path(path)
    shape = _header_shape(path, _suffix(path))
    if len(shape) == 3 and _suffix(path) in formats.FABIO_SUFFIXES:
        raise InputFileError(
            formats.frame_file(path), f"holds {shape[0]} frames; address one as {formats.frame_file(path).name}#INDEX"
        )
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) == 3 and shape[2] in (3, 4):  # colour: read_raw decides whether it is grey
        shape = shape[:2]
    if len(shape) != 2:
        raise InputFileError(path, f"expected a 2-D image, found shape {shape}")
    return int(shape[0]), int(shape[1])


def read_raw(path: str | os.PathLike) -> np.ndarray:
    """Read an image file (or addressed frame) as stored (uint8, uint16, int32, float, ...), checked to be 2-D.

    A colour image whose channels are all equal is accepted as grayscale.
    """
    return _read_stored(path)[0]


def _read_stored(path) -> tuple[np.ndarray, np.ndarray | None]:
    """(frame as stored, NeXus pixel_mask or None)."""
    path = Path(path) if not isinstance(path, Path) else path
    suffix = _suffix(path)
    pixel_mask = None
    if suffix in formats.HDF5_SUFFIXES:
        image_shape(path)  # one frame addressed, else the error says how to address one
        array, pixel_mask = formats.read_hdf5(path)
        return _checked_array(formats.frame_file(path), array), pixel_mask
    if suffix in formats.FABIO_SUFFIXES:
        image_shape(path)
        return _checked_array(formats.frame_file(path), formats.read_fabio(path)), None
    shape = _header_shape(path, suffix)
    limit = max_frame_pixels()
    if int(np.prod(shape[:2])) > limit:
        raise InputFileError(
            path, f"image of {shape[0]}x{shape[1]} pixels is larger than the limit of {limit:,} pixels"
        )
    try:
        if suffix == ".png":
            array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if array is None:
                raise ValueError("decoder returned nothing")
            if array.ndim == 3:
                array = array[..., ::-1] if array.shape[2] >= 3 else array
        elif suffix in (".tif", ".tiff"):
            array = tifffile.imread(path)
        else:
            array = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InputFileError(path, f"unreadable or corrupt {suffix[1:].upper()} file ({exc})") from None
    return _checked_array(path, array), None


def _checked_array(path, array) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        colour = array[..., :3]
        if np.all(colour == colour[..., :1]):
            array = colour[..., 0]
        else:
            raise InputFileError(path, f"colour image of shape {array.shape}; expected a single-channel frame")
    elif array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise InputFileError(path, f"expected a 2-D image, found shape {array.shape}")
    if array.size == 0:
        raise InputFileError(path, "image is empty")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise InputFileError(path, f"unsupported pixel type {array.dtype}")
    if np.iscomplexobj(array):
        raise InputFileError(path, "complex pixel values are not supported")
    return array


def bit_depth(dtype: np.dtype) -> int:
    """Bits per pixel of a stored dtype (8 for uint8, 16 for uint16, 32 for float32...)."""
    return int(np.dtype(dtype).itemsize * 8) if np.dtype(dtype) != bool else 1


def frame_info(path: str | os.PathLike) -> FrameInfo:
    """Size and pixel type of a frame file (decodes it, so validates it too)."""
    array = read_raw(path)
    return FrameInfo(int(array.shape[0]), int(array.shape[1]), str(array.dtype), bit_depth(array.dtype))


def read_frame(path: str | os.PathLike) -> np.ndarray:
    """Read a frame as a 2-D float32 array of detector values (ADU), invalid pixels filled from their neighbours.

    Raises
    ------
    InputFileError
        If the file is missing, unreadable, not 2-D, empty, of an unsupported
        type, or holds no valid pixel.
    """
    return read_frame_and_invalid(path)[0]


def read_frame_and_invalid(path: str | os.PathLike, hot_pixels: dict | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(frame, invalid): the frame as :func:`read_frame` gives it and its invalid pixels (bool, None when none).

    Invalid pixels (:func:`segcore.formats.invalid_pixels`: NaN and infinities, the detector's own
    invalid values, a NeXus pixel_mask) are never signal: filled here from the valid pixels around
    them (:func:`segcore.formats.fill_invalid`), and never part of a predicted mask. The set's
    ``hot_pixels`` (:mod:`segcore.hotpixels`) for frames of this shape are treated the same way.
    """
    from .hotpixels import hot_mask

    array, pixel_mask = _read_stored(path)
    invalid = formats.invalid_pixels(array, hdf5=_suffix(Path(path)) in formats.HDF5_SUFFIXES, pixel_mask=pixel_mask)
    if invalid is not None and invalid.all():
        raise InputFileError(formats.frame_file(path), "frame holds no valid pixel (all are NaN, infinite or "
                             "the detector's invalid-pixel value)")
    hot = hot_mask(hot_pixels, array.shape)
    if hot is not None:
        invalid = hot if invalid is None else invalid | hot
    if invalid is None:
        return array.astype(np.float32), None
    return formats.fill_invalid(array, invalid), invalid


def frame_addresses(path: str | os.PathLike) -> list[str]:
    """Every frame a file (or address) holds, as addresses: a stack gives one per frame, a plain file itself.

    Raises InputFileError naming the file and problem (missing dataset, 1-D or 4-D data, bad index ...).
    """
    suffix = _suffix(Path(path))
    if suffix in formats.HDF5_SUFFIXES:
        address = formats.parse_address(path)
        if address.index is not None:
            image_shape(path)
            return [str(address)]
        return formats.hdf5_frame_addresses(address)
    if suffix in formats.FABIO_SUFFIXES:
        return formats.fabio_frame_addresses(path)
    return [str(path)]


def writable_frame_name(name: str) -> str:
    """``name``, or the same stem as .edf where :func:`write_frame` cannot write its format (MarCCD, mar345, ...)."""
    suffix = formats.suffix_of(name)
    if suffix in IMAGE_SUFFIXES or suffix in formats.HDF5_SUFFIXES or suffix in (".edf", ".cbf"):
        return name
    return formats.frame_stem(name) + ".edf"


frame_stem = formats.frame_stem
frame_name = formats.frame_name
frame_file = formats.frame_file


def read_mask(path: str | os.PathLike, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask as a 2-D boolean array (non-zero = cosmic; see :func:`mask_from_array`).

    Parameters
    ----------
    path : mask file.
    shape : expected (height, width), normally that of the mask's frame.
    """
    array = read_raw(path)
    if shape is not None and tuple(array.shape) != tuple(shape):
        raise InputFileError(
            path, f"mask is {array.shape[0]}x{array.shape[1]} but its frame is {shape[0]}x{shape[1]}"
        )
    return mask_from_array(array, path)


def mask_from_array(array, name: str | os.PathLike) -> np.ndarray:
    """A 2-D mask as a bool array (non-zero is cosmic), or InputFileError naming ``name`` and the problem.

    Accepted: bool, unsigned integers, non-negative signed integers, and floats
    holding only non-negative whole numbers (0/1, 0/255). A float mask with
    fractions looks like probabilities and is refused rather than silently
    thresholded.
    """
    array = np.asarray(array)
    kind = array.dtype.kind
    if kind == "b":
        return array.copy()
    if kind not in "uif":
        raise InputFileError(name, f"mask of type {array.dtype} is not supported; expected 0/non-zero integers or booleans")
    if kind == "f" and not np.all(np.isfinite(array)):
        raise InputFileError(name, "mask holds NaN or infinite values")
    if kind in "if" and array.size and array.min() < 0:
        raise InputFileError(
            name, f"mask of type {array.dtype} holds negative values; expected 0 for background, non-zero for cosmic"
        )
    if kind == "f":
        fractional = array[array != np.round(array)]
        if fractional.size:
            raise InputFileError(
                name,
                f"mask of type {array.dtype} holds values other than whole numbers (e.g. {fractional.flat[0]:g}); "
                "expected 0 for background and non-zero for cosmic, not probabilities",
            )
    return array != 0


def process_umask() -> int:
    """This process's umask, read without changing it where Linux tells it (/proc), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temporary_file(folder, name: str, suffix: str = ".tmp") -> tuple[int, str]:
    """``tempfile.mkstemp`` in ``folder``, with the mode a plain ``open`` would give (mkstemp's 0600
    would hide every model, checkpoint and mask from the rest of a lab's group)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=suffix)
    os.fchmod(fd, 0o666 & ~process_umask())
    return fd, tmp


def _atomic_write(path: Path, data: bytes) -> None:
    """Write bytes so that a crash leaves either the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temporary_file(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def encode_png(array: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", array)
    if not ok:
        raise ValueError(f"could not encode array of dtype {array.dtype} as PNG")
    return buffer.tobytes()


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write a mask with values 0/1, atomically: an 8-bit PNG, or by suffix .npy, .edf, .tif or .h5
    (:func:`segcore.formats.write_mask_file`)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    if Path(path).suffix.lower() != ".png":
        formats.write_mask_file(path, mask)
        return
    _atomic_write(Path(path), encode_png((mask != 0).astype(np.uint8)))


def write_frame(path: str | os.PathLike, frame: np.ndarray) -> None:
    """Write a frame: PNG for uint8/uint16, TIFF or NPY by suffix for anything else."""
    path = Path(path)
    frame = np.asarray(frame)
    suffix = path.suffix.lower()
    if suffix == ".png":
        if frame.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"PNG frames must be uint8 or uint16, got {frame.dtype}")
        _atomic_write(path, encode_png(frame))
    elif suffix in (".tif", ".tiff"):
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, frame)
    elif suffix == ".npy":
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, frame)
    elif suffix in (".edf", ".cbf"):
        formats.write_fabio_frame(path, frame)
    elif suffix in formats.HDF5_SUFFIXES:
        formats.write_hdf5_frame(path, frame)
    else:
        raise ValueError(f"cannot write frames as '{suffix}'")
