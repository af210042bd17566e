"""Importing a ZIP that holds the original layout, refusing archives that could do harm.

Refused before anything is unpacked, from the archive's central directory:
entries whose path leaves the target folder (absolute, ``..``, drive letters),
symbolic links, encrypted entries, more than :data:`MAX_ZIP_MEMBERS` entries,
an entry larger than any frame within the size limit can need
(``segcore.io.max_frame_file_bytes``), archives declaring over a GiB that
unpack to more than :data:`MAX_ZIP_RATIO` times their packed size, and archives
whose declared size passes the limit (``COSMICS_MAX_ZIP_BYTES``, default :data:`MAX_ZIP_BYTES`) or the free
disk space. While unpacking, the bytes really written are
counted, so an entry that holds more than its header claims (a ZIP bomb that
lies) is stopped at the limit too. Frames whose image header claims more pixels
than ``segcore.io.max_frame_pixels()`` are refused by the frame check afterwards.
"""

from __future__ import annotations

import io as _bytes_io
import os
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Union

from segcore import io

from .errors import RefusedFile, StoreError
from .imports import copy_in, run_import
from .layout import CLUTTER, layout_root, scan_layout
from .paths import remove_tree, staging_dir
from .session import home

__all__ = ["MAX_ZIP_BYTES", "MAX_ZIP_MEMBERS", "import_zip", "max_zip_bytes"]

#: Largest total unpacked size accepted (bytes) unless COSMICS_MAX_ZIP_BYTES says otherwise.
MAX_ZIP_BYTES = 20 * 1024**3
MAX_ZIP_MEMBERS = 100_000
#: An archive declaring more than RATIO_CHECK_BYTES must not unpack to more than this many
#: times its packed size: detector frames pack 1-10x, a bomb ~1000x.
MAX_ZIP_RATIO = 200
RATIO_CHECK_BYTES = 1024**3
_CHUNK = 1024 * 1024
#: Disk space left free after unpacking (bytes).
_DISK_MARGIN = 512 * 1024**2

ZipSource = Union[str, os.PathLike, bytes, BinaryIO]


def max_zip_bytes() -> int:
    """The unpacked size limit of an archive: ``COSMICS_MAX_ZIP_BYTES``, else MAX_ZIP_BYTES."""
    value = os.environ.get("COSMICS_MAX_ZIP_BYTES", "").strip()
    if not value:
        return MAX_ZIP_BYTES
    if not value.isdigit() or int(value) <= 0:
        raise StoreError(f"COSMICS_MAX_ZIP_BYTES must be a positive whole number of bytes, got {value!r}")
    return int(value)


def _member_parts(name: str, label: str) -> tuple[str, ...]:
    """The safe relative path parts of an entry, or a refusal naming it."""
    normalised = name.replace("\\", "/")
    where = f"{label}:{name}"
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise RefusedFile(where, "entry has an absolute path; it would be written outside the import folder")
    parts = tuple(p for p in PurePosixPath(normalised).parts if p not in ("", "."))
    if ".." in parts:
        raise RefusedFile(where, "entry path contains '..'; it would be written outside the import folder")
    return parts


def _check_members(archive: zipfile.ZipFile, label: str, max_bytes: int) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise RefusedFile(label, f"archive has {len(infos)} entries; at most {MAX_ZIP_MEMBERS} are accepted")
    members = []
    declared = packed = 0
    entry_limit = io.max_frame_file_bytes()
    for info in infos:
        parts = _member_parts(info.filename, label)
        where = f"{label}:{info.filename}"
        if stat.S_ISLNK(info.external_attr >> 16):
            raise RefusedFile(where, "entry is a symbolic link; links are not imported")
        if info.flag_bits & 0x1:
            raise RefusedFile(where, "entry is encrypted")
        if info.is_dir() or not parts or any(p in CLUTTER or p.startswith(".") for p in parts):
            continue
        if info.file_size > entry_limit:
            raise RefusedFile(
                where, f"entry would unpack to {info.file_size:,} bytes, more than a frame within the size limit "
                f"({io.max_frame_pixels():,} pixels) can need"
            )
        declared += info.file_size
        packed += info.compress_size
        members.append((info, parts))
    if declared > max_bytes:
        raise RefusedFile(
            label, f"archive would unpack to {declared:,} bytes, more than the limit of {max_bytes:,} bytes"
        )
    if declared > RATIO_CHECK_BYTES and declared > MAX_ZIP_RATIO * max(packed, 1):
        raise RefusedFile(
            label, f"archive would unpack {packed:,} packed bytes to {declared:,} bytes, more than {MAX_ZIP_RATIO} "
            "times as much; frames do not pack that well (a ZIP bomb?)"
        )
    free = shutil.disk_usage(home()).free
    if declared + _DISK_MARGIN > free:
        raise RefusedFile(label, f"archive would unpack to {declared:,} bytes but only {free:,} bytes of disk are free")
    return members


def _extract(archive: zipfile.ZipFile, members, target: Path, label: str, max_bytes: int) -> None:
    """Unpack, counting real bytes: a header may understate what an entry holds."""
    total = 0
    for info, parts in members:
        where = f"{label}:{info.filename}"
        path = target.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            with archive.open(info) as source, open(path, "xb") as sink:
                while chunk := source.read(_CHUNK):
                    written += len(chunk)
                    total += len(chunk)
                    if written > info.file_size:
                        raise RefusedFile(where, f"entry holds more than the {info.file_size:,} bytes its header claims")
                    if total > max_bytes:
                        raise RefusedFile(label, f"archive unpacks to more than the limit of {max_bytes:,} bytes")
                    sink.write(chunk)
        except FileExistsError:
            raise RefusedFile(where, "the archive holds two entries with this name") from None
        except (zipfile.BadZipFile, EOFError, NotImplementedError) as exc:
            raise RefusedFile(where, f"entry is damaged or uses an unsupported compression ({exc})") from None


def import_zip(
    zip_file: ZipSource,
    name: str | None = None,
    dataset_id: int | None = None,
    author: str = "upload",
    max_bytes: int | None = None,
    file_name: str | None = None,
):
    """Import a ZIP of a dataset in the original layout (at its root or inside one folder).

    Parameters
    ----------
    zip_file : path, bytes, or a binary file object (e.g. Streamlit's UploadedFile).
    name : name of the new dataset (default: the archive's name); or
    dataset_id : an existing dataset to add to.
    max_bytes : largest total unpacked size accepted (default :func:`max_zip_bytes`).
    file_name : the archive's name for messages when ``zip_file`` is bytes.

    Returns
    -------
    ImportReport. Raises RefusedFile naming the entry for any refused content.
    """
    max_bytes = max_zip_bytes() if max_bytes is None else max_bytes
    if isinstance(zip_file, (bytes, bytearray, memoryview)):
        label = file_name or "archive.zip"
        source: BinaryIO | str = _bytes_io.BytesIO(bytes(zip_file))
    elif isinstance(zip_file, (str, os.PathLike)):
        label = file_name or Path(zip_file).name
        source = os.fspath(zip_file)
        if not Path(source).is_file():
            raise StoreError(f"{source}: file not found")
    else:
        label = file_name or Path(getattr(zip_file, "name", "archive.zip")).name
        source = zip_file
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise RefusedFile(label, f"not a ZIP archive ({exc})") from None
    staging = None
    try:
        with archive:
            members = _check_members(archive, label, max_bytes)
            staging = staging_dir("zip")
            _extract(archive, members, staging, label, max_bytes)
        root = layout_root(staging, label)

        def describe(path: Path) -> str:
            return f"{label}:{path.relative_to(staging).as_posix()}"

        def collect(batch: Path):
            files, ignored = scan_layout(root, describe)
            return copy_in(files, batch, move=True), ignored

        default_name = Path(label).stem
        return run_import(name, dataset_id, f"ZIP {label}", default_name, author, collect)
    finally:
        remove_tree(staging)
