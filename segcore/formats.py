"""Detector file formats: HDF5/NeXus stacks (h5py + hdf5plugin), single-frame detector
formats (fabio: EDF, CBF, MarCCD, mar345, Bruker, ADSC/Rigaku ...), frame addresses,
invalid (bad) pixels, and masks written the way X-ray tools read them.

Frame addresses
---------------
One notation everywhere (command line, store, app), fabio's and silx's own::

    FILE                      a single-frame file, or a file holding exactly one frame
    FILE::/path/to/dataset    a 2-D dataset, or a 3-D stack holding one frame
    FILE::/path/to/dataset#12 frame 12 (from 0) of a 3-D stack (N, H, W)
    FILE#12                   frame 12 of the file's default stack (NeXus default signal)

Without ``::`` an HDF5 file's frames come from its NeXus default signal: the ``@default``
attributes from the root to an NXentry to an NXdata group, whose ``@signal`` names the
dataset (as NeXus readers do); a file without those attributes must hold exactly one
image dataset (2-D or 3-D), else the address must name one.

Invalid pixels
--------------
Detectors mark pixels that hold no measurement (module gaps, dead or hot pixels) with a
value no measurement can take. :func:`invalid_pixels` finds them: NaN and infinities in
float frames; the all-ones value of 32-bit unsigned frames (2^32-1, Eiger) in any
format, and of 16-bit unsigned frames (65535, Eiger in 16-bit mode) in HDF5 files only
(in PNG/TIFF/NPY/EDF frames 65535 is a saturated pixel, which can be a cosmic); -1 and -2
in signed frames of 32 bits or more whose smallest value is -2 or more (Pilatus: gaps -1,
bad pixels -2; a frame with other negative values is background-subtracted data whose -1
and -2 are measurements); and a NeXus ``pixel_mask`` of the frame's entry (non-zero =
invalid, per frame or one for all). Those pixels are never signal: :func:`fill_invalid`
replaces them by the mean of the valid pixels around them before a frame is prepared for
the network, and every predicted mask is cleared there, so they are never cosmics.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputFileError

ADDRESS_SEPARATOR = "::"
INDEX_MARK = "#"

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs", ".nx5", ".nexus", ".cxi")
#: Single-frame detector formats read by fabio (TIFF, Pilatus and Eiger TIFF included, is read by tifffile).
FABIO_SUFFIXES = (
    ".edf", ".cor", ".cbf", ".mccd", ".mar2300", ".mar3450", ".mar1200", ".mar1600", ".mar1800", ".mar2000",
    ".mar2400", ".mar3000", ".sfrm", ".gfrm", ".img", ".kcd", ".esperanto",
)
DETECTOR_SUFFIXES = HDF5_SUFFIXES + FABIO_SUFFIXES

#: Mask formats :func:`write_mask_file` writes, by suffix; "h5" also writes stacks (:class:`MaskStackWriter`).
MASK_FORMATS = ("png", "npy", "edf", "tif", "h5")
#: Bit of a NeXus NXdetector ``pixel_mask`` our cosmic masks set: bit 8, "user defined mask".
NEXUS_USER_MASK_BIT = 1 << 8
#: Where a NeXus pixel_mask sits relative to its entry (NeXus, then DECTRIS' own place).
PIXEL_MASK_PATHS = ("instrument/detector/pixel_mask", "instrument/detector/detectorSpecific/pixel_mask")


def _hdf5():
    """h5py with the compression filters detector files need (bitshuffle/LZ4, Blosc, ...)."""
    import h5py
    import hdf5plugin  # noqa: F401  (registers the filters)

    return h5py


@dataclass(frozen=True)
class FrameAddress:
    """Where one frame lives: a file, an HDF5 dataset in it (None: the default), a frame index (None: the only one)."""

    file: Path
    dataset: str | None = None
    index: int | None = None

    def __str__(self) -> str:
        text = str(self.file)
        if self.dataset is not None:
            text += ADDRESS_SEPARATOR + self.dataset
        if self.index is not None:
            text += f"{INDEX_MARK}{self.index}"
        return text

    @property
    def is_part(self) -> bool:
        """Whether the address names a part of its file (a dataset or a frame), not a whole file."""
        return self.dataset is not None or self.index is not None


_INDEX = re.compile(r"^(.*)#(\d+)$")


def suffix_of(path: str | os.PathLike) -> str:
    """The file's format suffix, lower case (``.edf`` for ``x.edf.gz`` too, fabio reads compressed files)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".gz", ".bz2") and Path(path.stem).suffix.lower() in FABIO_SUFFIXES:
        return Path(path.stem).suffix.lower()
    return suffix


def parse_address(text: str | os.PathLike) -> FrameAddress:
    """A frame address (see the module's docstring) from its text; a plain path is a whole file."""
    if isinstance(text, FrameAddress):
        return text
    text = os.fspath(text)
    if ADDRESS_SEPARATOR in text:
        file, rest = text.split(ADDRESS_SEPARATOR, 1)
        match = _INDEX.match(rest)
        dataset, index = (match.group(1), int(match.group(2))) if match else (rest, None)
        dataset = "/" + dataset.strip("/") if dataset.strip("/") else None
        return FrameAddress(Path(file), dataset, index)
    match = _INDEX.match(text)
    if match and suffix_of(match.group(1)) in DETECTOR_SUFFIXES:
        return FrameAddress(Path(match.group(1)), None, int(match.group(2)))
    return FrameAddress(Path(text))


def is_address(path) -> bool:
    """Whether ``path`` names part of a file (``FILE::dataset`` or ``FILE#i``) rather than a file."""
    return parse_address(path).is_part


def frame_file(path) -> Path:
    """The file that holds the frame ``path`` addresses."""
    return parse_address(path).file


def is_hdf5(path) -> bool:
    return suffix_of(frame_file(path)) in HDF5_SUFFIXES or ADDRESS_SEPARATOR in os.fspath(path)


def is_fabio(path) -> bool:
    return suffix_of(frame_file(path)) in FABIO_SUFFIXES and ADDRESS_SEPARATOR not in os.fspath(path)


def frame_stem(path) -> str:
    """A file-name stem for the frame: the file's stem, with ``_NNNNN`` for a frame of a stack."""
    address = parse_address(path)
    name = address.file.name
    stem = name[: -len(".gz")] if name.lower().endswith((".gz",)) else name
    stem = Path(stem[: -len(".bz2")] if stem.lower().endswith(".bz2") else stem).stem
    return stem if address.index is None else f"{stem}_{address.index:05d}"


def frame_name(path) -> str:
    """A file name for the frame: its file's name, or ``<stem>_NNNNN<suffix>`` for a frame of a stack."""
    address = parse_address(path)
    if address.index is None:
        return address.file.name
    return frame_stem(address) + suffix_of(address.file)


# --- HDF5 / NeXus ------------------------------------------------------------------


def _attr_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray):
        return _attr_text(value.flat[0]) if value.size else None
    return str(value)


def open_hdf5(file: Path):
    """An open h5py.File, or InputFileError naming the file (missing, not HDF5, truncated or corrupt)."""
    h5py = _hdf5()
    file = Path(file)
    if not file.exists():
        raise InputFileError(file, "file not found")
    if file.is_dir():
        raise InputFileError(file, "is a folder, not an HDF5 file")
    try:
        return h5py.File(file, "r")
    except OSError as exc:
        text = str(exc)
        if "truncated" in text.lower():
            problem = "truncated HDF5 file (the file is shorter than its header says; was the copy complete?)"
        elif "signature" in text.lower() or "not an hdf5" in text.lower():
            problem = "not an HDF5 file (no HDF5 signature), or its header is corrupt"
        else:
            problem = f"unreadable or corrupt HDF5 file ({text})"
        raise InputFileError(file, problem) from None


def _nexus_default(h5) -> str | None:
    """The NeXus default signal dataset's path: @default from the root down to NXdata, then @signal."""
    node = h5
    for _ in range(8):
        nx_class = _attr_text(node.attrs.get("NX_class"))
        if nx_class == "NXdata":
            signal = _attr_text(node.attrs.get("signal"))
            if signal and signal in node and hasattr(node[signal], "shape"):
                return node[signal].name
            return None
        default = _attr_text(node.attrs.get("default"))
        if default and default in node:
            target = node[default]
            if hasattr(target, "shape"):
                return target.name
            node = target
            continue
        # No @default: the first NXentry, then the first NXdata in it (what NeXus readers fall back to).
        wanted = "NXentry" if node is h5 else "NXdata"
        children = [node[k] for k in node if not hasattr(node.get(k, getlink=True), "path")]
        nxt = next((c for c in children if not hasattr(c, "shape") and _attr_text(c.attrs.get("NX_class")) == wanted), None)
        if nxt is None:
            return None
        node = nxt
    return None


def _image_datasets(h5) -> list[str]:
    found: list[str] = []

    def visit(name, obj):
        if hasattr(obj, "shape") and len(obj.shape) in (2, 3) and obj.dtype.kind in "buif" and min(obj.shape) > 0:
            found.append("/" + name)

    h5.visititems(visit)
    return found


def _numeric_datasets(h5) -> list[tuple[str, tuple]]:
    found: list[tuple[str, tuple]] = []

    def visit(name, obj):
        if hasattr(obj, "shape") and obj.dtype.kind in "buif":
            found.append(("/" + name, tuple(obj.shape)))

    h5.visititems(visit)
    return found


def _dataset(h5, file: Path, path: str | None):
    """The dataset ``path`` names, or the file's default; InputFileError naming file and problem."""
    if path is None:
        path = _nexus_default(h5)
        if path is None:
            images = _image_datasets(h5)
            if len(images) == 1:
                path = images[0]
            elif not images:
                others = _numeric_datasets(h5)
                if len(others) != 1:
                    shown = ", ".join(f"{name} ({len(shape)}-D)" for name, shape in others[:6])
                    raise InputFileError(
                        file, "holds no 2-D or 3-D image dataset (and no NeXus default signal)"
                        + (f"; found {shown}" if shown else "")
                    )
                path = others[0][0]
            else:
                shown = ", ".join(images[:6]) + (" ..." if len(images) > 6 else "")
                raise InputFileError(
                    file, f"holds several image datasets ({shown}) and no NeXus default; "
                    f"name one as {file.name}::/path/to/dataset"
                )
    try:
        node = h5[path]
    except KeyError:
        raise InputFileError(file, f"has no dataset {path}") from None
    except Exception as exc:  # broken external link, corrupt object header
        raise InputFileError(file, f"cannot open {path} ({exc})") from None
    if not hasattr(node, "shape"):
        raise InputFileError(file, f"{path} is a group, not a dataset")
    if node.dtype.kind not in "buif":
        raise InputFileError(file, f"dataset {path} holds {node.dtype} values, not numbers")
    if len(node.shape) not in (2, 3):
        raise InputFileError(
            file, f"dataset {path} is {len(node.shape)}-D (shape {tuple(node.shape)}); expected a 2-D frame "
            "or a 3-D stack of frames (N, height, width)"
        )
    return node


def _check_index(file: Path, node, index: int | None) -> int | None:
    if len(node.shape) == 2:
        if index not in (None, 0):
            raise InputFileError(file, f"frame index {index} out of range: {node.name} is a single 2-D frame")
        return None
    count = node.shape[0]
    if index is None:
        if count == 1:
            return 0
        raise InputFileError(
            file, f"{node.name} holds {count} frames; address one as {file.name}::{node.name}#INDEX (0-{count - 1})"
        )
    if not 0 <= index < count:
        raise InputFileError(
            file, f"frame index {index} out of range: {node.name} holds {count} frame{'s' if count != 1 else ''}"
            + (f" (0-{count - 1})" if count else "")
        )
    return index


def _check_pixels(file: Path, shape: tuple[int, ...]) -> None:
    from .io import max_frame_pixels

    limit = max_frame_pixels()
    if int(np.prod(shape[-2:])) > limit:
        raise InputFileError(file, f"image of {shape[-2]}x{shape[-1]} pixels is larger than the limit of {limit:,} pixels")


def _pixel_mask(h5, node, index: int | None) -> np.ndarray | None:
    """A NeXus pixel_mask of the dataset's entry with the frame's shape (non-zero = invalid), if there is one."""
    entry = "/" + node.name.strip("/").split("/")[0]
    shape = node.shape[-2:]
    for relative in PIXEL_MASK_PATHS:
        path = f"{entry}/{relative}"
        if path == node.name or path not in h5:
            continue
        mask = h5[path]
        if not hasattr(mask, "shape"):
            continue
        if tuple(mask.shape) == tuple(shape):
            return np.asarray(mask[()]) != 0
        if len(mask.shape) == 3 and tuple(mask.shape[1:]) == tuple(shape) and index is not None and index < mask.shape[0]:
            return np.asarray(mask[index]) != 0
    return None


@dataclass(frozen=True)
class StackInfo:
    """What an HDF5 address resolves to: the dataset's path, its frame count (None: a 2-D dataset), shape, dtype."""

    file: Path
    dataset: str
    frames: int | None
    height: int
    width: int
    dtype: str


def hdf5_info(path) -> StackInfo:
    """The dataset an HDF5 address (or file) resolves to, from its header; nothing decoded."""
    address = parse_address(path)
    with open_hdf5(address.file) as h5:
        node = _dataset(h5, address.file, address.dataset)
        frames = node.shape[0] if len(node.shape) == 3 else None
        return StackInfo(address.file, node.name, frames, int(node.shape[-2]), int(node.shape[-1]), str(node.dtype))


def read_hdf5(path) -> tuple[np.ndarray, np.ndarray | None]:
    """(frame as stored, NeXus pixel_mask or None) of one HDF5 frame; only that frame is read."""
    address = parse_address(path)
    with open_hdf5(address.file) as h5:
        node = _dataset(h5, address.file, address.dataset)
        index = _check_index(address.file, node, address.index)
        _check_pixels(address.file, node.shape)
        try:
            array = np.asarray(node[index] if index is not None else node[()])
        except Exception as exc:  # a corrupt or truncated chunk, a missing compression filter
            where = f"frame {index} of {node.name}" if index is not None else node.name
            text = str(exc)
            if "filter" in text.lower() or "plugin" in text.lower():
                raise InputFileError(address.file, f"cannot decompress {where}: its compression filter is missing ({text})") from None
            raise InputFileError(address.file, f"cannot read {where}: truncated or corrupt data ({text})") from None
        try:
            pixel_mask = _pixel_mask(h5, node, index)
        except Exception:  # an unreadable side mask must not hide the frame
            pixel_mask = None
    return array, pixel_mask


def hdf5_frame_addresses(path) -> list[str]:
    """Every frame's address in an HDF5 file or dataset (``FILE::/dataset#i``, or ``FILE::/dataset`` for 2-D)."""
    info = hdf5_info(path)
    file = parse_address(path).file
    _check_pixels(file, (info.height, info.width))
    if info.frames is None:
        return [str(FrameAddress(file, info.dataset))]
    if info.frames == 0:
        raise InputFileError(file, f"{info.dataset} holds no frames")
    return [str(FrameAddress(file, info.dataset, i)) for i in range(info.frames)]


# --- fabio ----------------------------------------------------------------------------


def _fabio_error(file: Path, exc: Exception) -> InputFileError:
    if isinstance(exc, FileNotFoundError):
        return InputFileError(file, "file not found")
    return InputFileError(file, f"unreadable or corrupt {suffix_of(file)[1:].upper()} file ({exc or type(exc).__name__})")


def fabio_shape(path) -> tuple[int, ...]:
    """(frames, height, width) from a fabio file's header, nothing decoded."""
    import fabio

    address = parse_address(path)
    try:
        header = fabio.openheader(str(address.file))
        shape = tuple(int(v) for v in header.shape)
        frames = int(getattr(header, "nframes", 1) or 1)
    except Exception as exc:
        raise _fabio_error(address.file, exc) from None
    if len(shape) != 2:
        raise InputFileError(address.file, f"expected a 2-D image, found shape {shape}")
    return (frames, *shape)


def read_fabio(path) -> np.ndarray:
    """One frame of a fabio-readable file, as stored."""
    import fabio

    address = parse_address(path)
    frames, height, width = fabio_shape(address)
    _check_pixels(address.file, (height, width))
    index = address.index or 0
    if not 0 <= index < frames:
        raise InputFileError(address.file, f"frame index {index} out of range: the file holds {frames} frame{'s' if frames != 1 else ''}")
    try:
        image = fabio.open(str(address.file))
        if index:
            image = image.getframe(index)
        array = np.asarray(image.data)
    except Exception as exc:
        raise _fabio_error(address.file, exc) from None
    if array.ndim != 2 or array.size == 0:
        raise InputFileError(address.file, f"expected a 2-D image, found shape {array.shape}")
    return array


def fabio_frame_addresses(path) -> list[str]:
    address = parse_address(path)
    frames = fabio_shape(address)[0]
    if address.index is not None or frames == 1:
        return [str(address)]
    return [str(FrameAddress(address.file, None, i)) for i in range(frames)]


# --- invalid pixels ---------------------------------------------------------------------


def invalid_pixels(array: np.ndarray, hdf5: bool = False, pixel_mask: np.ndarray | None = None) -> np.ndarray | None:
    """Pixels that hold no measurement (see the module's docstring), or None when there are none."""
    array = np.asarray(array)
    kind, size = array.dtype.kind, array.dtype.itemsize
    invalid = None
    if kind == "f":
        bad = ~np.isfinite(array)
        invalid = bad if bad.any() else None
    elif kind == "u" and (size >= 4 or (size == 2 and hdf5)):
        bad = array == np.iinfo(array.dtype).max
        invalid = bad if bad.any() else None
    elif kind == "i" and size >= 4 and array.size and array.min() >= -2:
        bad = array < 0
        invalid = bad if bad.any() else None
    if pixel_mask is not None and pixel_mask.shape == array.shape and pixel_mask.any():
        invalid = pixel_mask.copy() if invalid is None else invalid | pixel_mask
    return invalid


def clear_invalid(array: np.ndarray, invalid: np.ndarray | None) -> np.ndarray:
    """A mask or probability map with its invalid pixels set to 0 (False): never cosmics there."""
    if invalid is None:
        return array
    array = np.array(array, copy=True)
    array[invalid] = 0
    return array


#: Box sides tried in turn by :func:`fill_invalid` (a valid pixel within the box fills the hole).
FILL_BOXES = (9, 33, 129, 513)


def fill_invalid(frame: np.ndarray, invalid: np.ndarray | None) -> np.ndarray:
    """The float32 frame with its invalid pixels replaced by the mean of the valid pixels around them.

    The smallest box of :data:`FILL_BOXES` holding a valid pixel decides; beyond the largest,
    the median of all valid pixels. A hole (a module gap) so becomes a smooth continuation of
    the background, neither a bright nor a dark edge the network or a median filter would see.
    When every valid pixel holds a whole number (photon counts), the fills are rounded too: the
    input recipes treat integer-valued frames as counts, and one fractional fill would hide that.
    """
    import cv2

    frame = np.asarray(frame, dtype=np.float32)
    if invalid is None or not invalid.any():
        return frame
    valid = np.logical_not(invalid).view(np.uint8).astype(np.float32)
    values = frame.copy()
    values[invalid] = 0
    out = values.copy()
    todo = invalid.copy()
    for side in FILL_BOXES:
        if not todo.any():
            break
        total = cv2.boxFilter(values, -1, (side, side), normalize=False, borderType=cv2.BORDER_CONSTANT)
        count = cv2.boxFilter(valid, -1, (side, side), normalize=False, borderType=cv2.BORDER_CONSTANT)
        ready = todo & (count > 0.5)
        out[ready] = total[ready] / count[ready]
        todo &= ~ready
    if todo.any():
        out[todo] = np.median(frame[~invalid])
    if np.array_equal(values, np.rint(values)):
        out[invalid] = np.rint(out[invalid])
    return out


# --- writing masks (and frames) the X-ray tools read ------------------------------------


def _replace_when_done(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then move it into place; nothing half-written stays."""
    from .io import temporary_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temporary_file(path.parent, path.name, suffix=path.suffix or ".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def mask_format_of(path) -> str:
    """The mask format a file name asks for: png, npy, edf, tif or h5 (ValueError otherwise)."""
    suffix = suffix_of(path)
    if suffix in (".tif", ".tiff"):
        return "tif"
    if suffix in HDF5_SUFFIXES:
        return "h5"
    if suffix[1:] in MASK_FORMATS:
        return suffix[1:]
    raise ValueError(f"cannot write masks as '{suffix}'; use one of {', '.join('.' + f for f in MASK_FORMATS)}")


def mask_format_for_input(path) -> str:
    """The mask format that suits a frame's own format: h5 for HDF5/NeXus, edf for other detector formats, else png."""
    if is_hdf5(path):
        return "h5"
    if is_fabio(path):
        return "edf"
    return "png"


def _nexus_groups(h5, dataset: str) -> None:
    """Create the groups of ``dataset``'s path with NeXus classes (NXentry / NXdata) and @default / @signal."""
    parts = dataset.strip("/").split("/")
    node = h5
    for depth, part in enumerate(parts[:-1]):
        node = node.require_group(part)
        if depth == 0 and len(parts) >= 3:
            node.attrs.setdefault("NX_class", "NXentry")
            h5.attrs.setdefault("default", part)
        if depth == len(parts) - 2:
            if len(parts) >= 3:
                node.attrs.setdefault("NX_class", "NXdata")
                node.parent.attrs.setdefault("default", part)
            node.attrs.setdefault("signal", parts[-1])


def _pixel_mask_path(dataset: str) -> str | None:
    parts = dataset.strip("/").split("/")
    if len(parts) < 2:
        return None
    path = f"/{parts[0]}/{PIXEL_MASK_PATHS[0]}"
    return None if path == "/" + "/".join(parts) else path


class StackWriter:
    """Writes an HDF5 file holding one 2-D array per frame at ``dataset`` (same layout as the input), gzip-compressed,
    one chunk per frame; with ``pixel_mask`` also the NeXus NXdetector ``pixel_mask`` (uint32, bit 8 "user defined
    mask" where the mask is set). Frames not written stay 0. Written to a temporary file, moved into place by ``close``;
    ``abort`` (or an exception inside ``with``) leaves nothing."""

    def __init__(self, path, dataset: str, frames: int | None, shape: tuple[int, int], dtype, *,
                 pixel_mask: bool = False, attrs: dict | None = None, level: int = 4):
        from .io import temporary_file

        h5py = _hdf5()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = temporary_file(self.path.parent, self.path.name, suffix=".h5")
        os.close(fd)
        self._tmp = Path(tmp)
        self.frames = frames
        self.written: set[int] = set()
        full = (frames, *shape) if frames is not None else tuple(shape)
        chunks = (1, *shape) if frames is not None else tuple(shape)
        try:
            self._h5 = h5py.File(self._tmp, "w")
            _nexus_groups(self._h5, dataset)
            self._data = self._h5.create_dataset(
                dataset, shape=full, dtype=dtype, chunks=chunks, compression="gzip", compression_opts=level, shuffle=True,
                fillvalue=0,
            )
            for key, value in (attrs or {}).items():
                self._data.attrs[key] = value
            self._mask = None
            mask_path = _pixel_mask_path(dataset) if pixel_mask else None
            if mask_path is not None:
                self._mask = self._h5.create_dataset(
                    mask_path, shape=full, dtype=np.uint32, chunks=chunks, compression="gzip", compression_opts=level,
                    shuffle=True, fillvalue=0,
                )
                self._mask.attrs["description"] = f"cosmic-ray hits: bit 8 (user defined mask, value {NEXUS_USER_MASK_BIT})"
                entry = self._h5[mask_path.split("/")[1]]
                entry.attrs.setdefault("NX_class", "NXentry")
                entry["instrument"].attrs.setdefault("NX_class", "NXinstrument")
                entry["instrument/detector"].attrs.setdefault("NX_class", "NXdetector")
        except BaseException:
            self.abort()
            raise

    def write(self, index: int | None, array) -> None:
        array = np.asarray(array)
        if index is None:
            self._data[...] = array
        else:
            self._data[index] = array
        if self._mask is not None:
            bits = np.where(array != 0, np.uint32(NEXUS_USER_MASK_BIT), np.uint32(0))
            if index is None:
                self._mask[...] = bits
            else:
                self._mask[index] = bits
        self.written.add(-1 if index is None else index)

    def close(self) -> Path:
        self._h5.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        h5 = getattr(self, "_h5", None)
        if h5 is not None:
            try:
                h5.close()
            except Exception:
                pass
        if self._tmp.exists():
            self._tmp.unlink()

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is None:
            self.close()
        else:
            self.abort()


def mask_stack_writer(path, like, frames: int | None = None) -> StackWriter:
    """A :class:`StackWriter` for cosmic masks (uint8 0/1 + NeXus pixel_mask) in the layout of the input ``like``
    (an address or :class:`StackInfo`): the same dataset path, one mask per frame."""
    info = like if isinstance(like, StackInfo) else hdf5_info(like)
    count = info.frames if frames is None else frames
    return StackWriter(path, info.dataset, count, (info.height, info.width), np.uint8, pixel_mask=True,
                       attrs={"long_name": "cosmic-ray mask (1 = cosmic)"})


def write_mask_file(path, mask: np.ndarray) -> None:
    """Write one 2-D mask (0/1) as .npy (uint8), .edf (fabio, uint8), .tif (uint8) or .h5 (NeXus: /entry/data/data
    uint8 and /entry/instrument/detector/pixel_mask), atomically. PNG is :func:`segcore.io.write_mask`'s."""
    mask = (np.asarray(mask) != 0).astype(np.uint8)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    kind = mask_format_of(path)
    if kind == "npy":
        def save(tmp):
            with open(tmp, "wb") as handle:
                np.save(handle, mask)

        _replace_when_done(Path(path), save)
    elif kind == "edf":
        from fabio.edfimage import EdfImage

        _replace_when_done(Path(path), lambda tmp: EdfImage(data=mask, header={"title": "cosmic-ray mask"}).write(str(tmp)))
    elif kind == "tif":
        import tifffile

        _replace_when_done(Path(path), lambda tmp: tifffile.imwrite(tmp, mask))
    elif kind == "h5":
        with StackWriter(path, "/entry/data/data", None, mask.shape, np.uint8, pixel_mask=True) as writer:
            writer.write(None, mask)
    else:
        raise ValueError(f"write PNG masks with segcore.io.write_mask, not {path}")


def write_hdf5_frame(path, frame: np.ndarray, invalid: np.ndarray | None = None) -> None:
    """One 2-D frame as a NeXus file (``/entry/data/data``, its pixel type kept, gzip), atomically; ``invalid``
    becomes the NeXus NXdetector ``pixel_mask`` (bit 0), so the frame reads back with the same invalid pixels."""
    frame = np.asarray(frame)
    with StackWriter(path, "/entry/data/data", None, frame.shape, frame.dtype, level=1) as writer:
        writer.write(None, frame)
        if invalid is not None and invalid.any():
            mask = writer._h5.create_dataset(
                f"/entry/{PIXEL_MASK_PATHS[0]}", data=invalid.astype(np.uint32), compression="gzip", shuffle=True
            )
            mask.attrs["description"] = "invalid pixels (bit 0), as read from the original frame"
            writer._h5["entry/instrument"].attrs.setdefault("NX_class", "NXinstrument")
            writer._h5["entry/instrument/detector"].attrs.setdefault("NX_class", "NXdetector")


def extract_frame(address, target) -> Path:
    """Write the one frame ``address`` names as a file of its own at ``target`` (.h5: NeXus with the frame's invalid
    pixels as pixel_mask; .edf/.cbf through fabio; else :func:`segcore.io.write_frame`), its pixels as stored."""
    from . import io

    target = Path(target)
    raw, pixel_mask = io._read_stored(address)
    if suffix_of(target) in HDF5_SUFFIXES:
        write_hdf5_frame(target, raw, invalid_pixels(raw, hdf5=is_hdf5(address), pixel_mask=pixel_mask))
    else:
        io.write_frame(target, raw)
    return target


def write_fabio_frame(path, frame: np.ndarray) -> None:
    """Write a frame as EDF (any numeric type) or CBF (integers, stored as int32), atomically."""
    suffix = suffix_of(path)
    frame = np.asarray(frame)
    if suffix == ".edf":
        from fabio.edfimage import EdfImage

        _replace_when_done(Path(path), lambda tmp: EdfImage(data=frame).write(str(tmp)))
    elif suffix == ".cbf":
        from fabio.cbfimage import CbfImage

        if frame.dtype.kind not in "iub":
            raise ValueError(f"CBF frames hold integers, not {frame.dtype}")
        _replace_when_done(Path(path), lambda tmp: CbfImage(data=frame.astype(np.int32)).write(str(tmp)))
    else:
        raise ValueError(f"cannot write frames as '{suffix}'")
