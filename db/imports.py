"""Importing frames and masks: from a folder in the original layout, uploaded files, the simulator.

Every import is all or nothing. The files are first copied under
``COSMICS_HOME`` into a folder of their own (``<dataset>/imports/<token>/``, in the
original layout), then every frame and mask is decoded and checked there, masks
are written as new 0/1 PNG revisions, and only then are the rows inserted in one
short transaction. Any refusal removes what this import wrote and leaves the
stored datasets as they were.

A file holding several frames (an HDF5/NeXus stack, a multi-frame EDF) is copied in
once and each of its frames becomes a frame of its own: the store knows it by its
address (``<file>::/entry/data/data#12``, ``segcore.formats``) and names it
``<file stem>_00012<suffix>``. A mask file of the same layout (``stack.h5`` or
``stack_mask.h5`` in the annotation folder) gives each frame the mask of the same
index; single masks pair with a stack's frames by those names.
"""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence, Union

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from segcore import data as segdata
from segcore import formats, io
from segcore.errors import InputFileError

from .datasets import SPLIT_FOLDERS, SPLITS, ImportReport, check_split, clean_name, get_dataset_row, name_taken
from .errors import RefusedFile, StoreError, refuse_all
from .layout import layout_root, scan_layout
from .masks import check_mask_array, new_mask_file, revision_row
from .models import Dataset, Frame
from .paths import from_stored, remove_file, remove_tree, slug, staging_dir, to_stored, token
from .session import session_scope

__all__ = ["import_files", "import_folder", "import_simulated"]

UploadedFile = Union[str, os.PathLike, tuple[str, bytes]]


@dataclass
class _Incoming:
    """One file of an import, already copied into the import's own folder."""

    split: str
    is_mask: bool
    path: Path
    display: str  # the name the user knows it by, for messages
    address: str | None = None  # a frame of a multi-frame file: its address; ``path`` is then its frame name

    @property
    def source(self) -> str | Path:
        """What the readers read: the address of a frame in a multi-frame file, else the file."""
        return self.address or self.path

    @property
    def stored(self) -> str:
        """The frame's path as the store records it (relative; with its address part)."""
        if self.address is None:
            return to_stored(self.path)
        address = formats.parse_address(self.address)
        return str(formats.FrameAddress(Path(to_stored(address.file)), address.dataset, address.index))


def copy_in(files: Iterable[tuple[str, bool, Path, str]], batch: Path, move: bool) -> list[_Incoming]:
    incoming = []
    for split, is_mask, source, display in files:
        folder = SPLIT_FOLDERS[split]
        target = batch / (segdata.annotation_dir(folder) if is_mask else folder) / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise RefusedFile(display, "another file of the same name is part of this import")
        if move:
            os.replace(source, target)
        else:
            _copy_file(source, target)
        incoming.append(_Incoming(split, is_mask, target, display))
    return incoming


def _copy_file(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)


def _refuse_input(item: _Incoming, exc: InputFileError) -> RefusedFile:
    # A decoder's message may quote the staging copy's path: the user knows the file by its own name.
    return RefusedFile(item.display, exc.problem.replace(str(item.path), item.display))


def _expand(item: _Incoming) -> list[_Incoming]:
    """A multi-frame file as one item per frame (named ``<stem>_NNNNN<suffix>``); any other file as it is."""
    if formats.suffix_of(item.path) not in formats.DETECTOR_SUFFIXES:
        return [item]
    try:
        addresses = io.frame_addresses(item.path)
    except InputFileError as exc:
        raise _refuse_input(item, exc) from None
    if addresses == [str(item.path)]:
        return [item]
    base = segdata.mask_stem(item.path) if item.is_mask else item.path.stem
    expanded = []
    for address in addresses:
        parsed = formats.parse_address(address)
        name = (base if parsed.index is None else f"{base}_{parsed.index:05d}") + formats.suffix_of(item.path)
        part = address[len(str(parsed.file)):]
        expanded.append(_Incoming(item.split, item.is_mask, item.path.parent / name, item.display + part, address))
    return expanded


def _read_checked_frame(item: _Incoming) -> tuple[int, int, str, int]:
    try:
        array = io.read_raw(item.source)
    except InputFileError as exc:
        raise _refuse_input(item, exc) from None
    invalid = formats.invalid_pixels(array, hdf5=formats.is_hdf5(item.source))
    if invalid is not None and invalid.all():
        raise RefusedFile(item.display, "frame holds no valid pixel (all are NaN, infinite or the detector's invalid-pixel value)")
    if array.dtype.kind not in "buif":
        raise RefusedFile(item.display, f"unsupported pixel type {array.dtype}")
    return int(array.shape[0]), int(array.shape[1]), str(array.dtype), io.bit_depth(array.dtype)


def _read_checked_mask(item: _Incoming, shape: tuple[int, int]) -> np.ndarray:
    try:
        array = io.read_raw(item.source)
    except InputFileError as exc:
        raise _refuse_input(item, exc) from None
    return check_mask_array(array, shape, item.display)


@dataclass
class _Target:
    """The dataset an import goes into: an existing one, or one to create with the rows."""

    dataset_id: int | None
    name: str
    folder: Path
    source: str | None
    existing_stems: dict[str, dict[str, tuple[int, int, int]]]  # split -> stem -> (frame id, height, width)
    created_folder: bool


def _target(name: str | None, dataset_id: int | None, source: str | None, default_name: str) -> _Target:
    if dataset_id is not None:
        with session_scope(write=False) as session:
            dataset = get_dataset_row(session, dataset_id)
            stems: dict[str, dict[str, tuple[int, int, int]]] = defaultdict(dict)
            for frame in session.scalars(select(Frame).where(Frame.dataset_id == dataset.id)):
                stems[frame.split][frame.stem] = (frame.id, frame.height, frame.width)
            return _Target(dataset.id, dataset.name, from_stored(dataset.folder), dataset.source, stems, False)
    name = clean_name(name or default_name)
    with session_scope(write=False) as session:
        if name_taken(session, name):
            raise StoreError(f"a dataset named {name!r} already exists; choose another name or add to it")
    folder = from_stored("datasets") / f"{slug(name)}-{token()}"
    folder.mkdir(parents=True)
    return _Target(None, name, folder, source, defaultdict(dict), True)


def _store(target: _Target, incoming: list[_Incoming], author: str, ignored: list[str]) -> ImportReport:
    """Check every file of an import, write mask revisions, insert the rows in one transaction."""
    if not incoming:
        raise StoreError(f"nothing to import into {target.name!r}: no frames or masks found")
    refused: list[RefusedFile] = []  # every bad file is reported, not only the first
    expanded: list[_Incoming] = []
    for item in incoming:
        try:
            expanded.extend(_expand(item))
        except RefusedFile as exc:
            refused.append(exc)
    incoming = expanded
    display = {item.path: item for item in incoming}
    new_frames: list[_Incoming] = []
    masks_for_new: dict[Path, _Incoming] = {}  # frame path -> its mask
    masks_for_existing: list[tuple[int, _Incoming, tuple[int, int]]] = []
    without_mask: list[str] = []
    by_split: dict[str, list[_Incoming]] = defaultdict(list)
    for item in incoming:
        by_split[item.split].append(item)

    def checked(read, *args):
        try:
            return read(*args)
        except RefusedFile as exc:
            refused.append(exc)
            return None

    for split, items in by_split.items():
        pairing = segdata.pair_files([i.path for i in items if not i.is_mask], [i.path for i in items if i.is_mask])
        for dup in pairing.duplicates:
            refused.append(RefusedFile(
                display[dup].display, "another file of this import has the same name (file names must be unique per split)"
            ))
        existing = target.existing_stems.get(split, {})
        for image in sorted({p for p, _ in pairing.pairs} | set(pairing.missing_masks)):
            if image.stem in existing:
                refused.append(RefusedFile(
                    display[image].display,
                    f"a frame named {image.stem!r} is already in the {split} split of dataset {target.name!r}",
                ))
        for image, mask in pairing.pairs:
            masks_for_new[image] = display[mask]
        for image in pairing.missing_masks:
            if split != "real":
                without_mask.append(display[image].display)
        for mask in pairing.extra_masks:
            stem = segdata.mask_stem(mask)
            if stem not in existing:
                refused.append(RefusedFile(display[mask].display, f"mask has no frame named {stem!r} in the {split} split"))
                continue
            frame_id, height, width = existing[stem]
            masks_for_existing.append((frame_id, display[mask], (height, width)))
        for image in sorted({p for p, _ in pairing.pairs} | set(pairing.missing_masks)):
            new_frames.append(display[image])

    # Decode and check everything before writing anything the store will reference.
    order = {split: i for i, split in enumerate(SPLITS)}
    new_frames.sort(key=lambda item: (order[item.split], item.path.name))
    checked_frames = [(item, info) for item in new_frames if (info := checked(_read_checked_frame, item)) is not None]
    written: list[Path] = []
    try:
        mask_files: dict[Path, tuple[Path, int]] = {}
        folder = to_stored(target.folder)
        for item, (height, width, _, _) in checked_frames:
            mask_item = masks_for_new.get(item.path)
            if mask_item is not None:
                mask = checked(_read_checked_mask, mask_item, (height, width))
                if mask is None or refused:
                    continue  # nothing more is written once a file is refused
                path = new_mask_file(folder, item.split, item.path.stem, mask)
                written.append(path)
                mask_files[item.path] = (path, int(np.count_nonzero(mask)))
        existing_files = []
        for frame_id, mask_item, shape in masks_for_existing:
            mask = checked(_read_checked_mask, mask_item, shape)
            if mask is None or refused:
                continue
            path = new_mask_file(folder, mask_item.split, segdata.mask_stem(mask_item.path), mask)
            written.append(path)
            existing_files.append((frame_id, path, int(np.count_nonzero(mask))))
        refuse_all(refused)

        with session_scope() as session:
            if target.dataset_id is None:
                if name_taken(session, target.name):
                    raise StoreError(f"a dataset named {target.name!r} already exists; choose another name")
                dataset = Dataset(name=target.name, folder=folder, source=target.source)
                session.add(dataset)
                session.flush()
            else:
                dataset = get_dataset_row(session, target.dataset_id)
            added: dict[str, int] = {split: 0 for split in SPLITS}
            for item, (height, width, dtype, depth) in checked_frames:
                frame = Frame(
                    dataset_id=dataset.id,
                    split=item.split,
                    name=item.path.name,
                    stem=item.path.stem,
                    path=item.stored,
                    height=height,
                    width=width,
                    dtype=dtype,
                    bit_depth=depth,
                )
                session.add(frame)
                session.flush()
                added[item.split] += 1
                if item.path in mask_files:
                    path, pixels = mask_files[item.path]
                    session.add(revision_row(frame.id, path, pixels, source="uploaded", author=author, comment=None, run_id=None))
            for frame_id, path, pixels in existing_files:
                session.add(revision_row(frame_id, path, pixels, source="uploaded", author=author, comment=None, run_id=None))
            session.flush()
            report = ImportReport(
                dataset_id=dataset.id,
                dataset_name=dataset.name,
                frames_added=added,
                masks_added=len(mask_files) + len(existing_files),
                frames_without_mask=without_mask,
                ignored=ignored,
            )
        return report
    except IntegrityError as exc:
        for path in written:
            remove_file(path)
        raise StoreError(f"import into {target.name!r} conflicts with data stored meanwhile: {exc.orig}") from None
    except BaseException:
        for path in written:
            remove_file(path)
        raise


def run_import(
    name: str | None,
    dataset_id: int | None,
    source: str | None,
    default_name: str,
    author: str,
    collect: Callable[[Path], tuple[list[_Incoming], list[str]]],
) -> ImportReport:
    """Shared frame of every import: target, own folder, collect files, store; undo all on failure."""
    target = _target(name, dataset_id, source, default_name)
    batch = target.folder / "imports" / token()
    batch.mkdir(parents=True)
    try:
        incoming, ignored = collect(batch)
        return _store(target, incoming, author, ignored)
    except BaseException:
        remove_tree(batch)
        if target.created_folder:
            remove_tree(target.folder)
        raise


def import_folder(
    folder: str | os.PathLike,
    name: str | None = None,
    dataset_id: int | None = None,
    author: str = "import",
    source: str | None = None,
    move: bool = False,
) -> ImportReport:
    """Import a folder in the original layout (Train/, TrainAnnotation/, ..., Real/).

    Parameters
    ----------
    folder : the dataset folder, or a folder whose only entry is one.
    name : name of the new dataset (default: the folder's name); or
    dataset_id : an existing dataset to add the frames to.
    author : recorded on the imported mask revisions.
    move : move the files instead of copying them (for folders the store made itself).

    Raises
    ------
    StoreError / RefusedFile naming the first file refused; nothing is stored then.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise StoreError(f"{folder}: folder not found")
    root = layout_root(folder)

    def collect(batch: Path):
        files, ignored = scan_layout(root, lambda p: str(p))
        return copy_in(files, batch, move), ignored

    return run_import(name, dataset_id, source or f"folder {folder}", folder.resolve().name, author, collect)


IMPORT_ROOTS_ENV = "COSMICS_IMPORT_ROOTS"


def import_roots() -> list[Path]:
    """Server folders the app may import from: ``COSMICS_IMPORT_ROOTS`` (``os.pathsep``-separated); none by default."""
    raw = os.environ.get(IMPORT_ROOTS_ENV, "")
    return [Path(part).expanduser().resolve() for part in raw.split(os.pathsep) if part.strip()]


def import_server_folder(
    folder: str | os.PathLike, name: str | None = None, dataset_id: int | None = None, author: str = "import"
) -> ImportReport:
    """:func:`import_folder` for a path typed in the app: only under :func:`import_roots`.

    The path is resolved (symbolic links followed) before it is checked, and a
    refused path is never echoed, so the messages do not tell which folders exist
    outside the roots.
    """
    roots = import_roots()
    if not roots:
        raise StoreError(f"importing folders on the server is off; set {IMPORT_ROOTS_ENV} to the folders it may read")
    text = str(folder).strip()
    if not text or "\x00" in text:
        raise StoreError("type the absolute path of a folder under an import root")
    resolved = Path(text).expanduser().resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise StoreError("that folder is not under an import root: " + ", ".join(str(root) for root in roots))
    return import_folder(resolved, name=name, dataset_id=dataset_id, author=author)


#: Longest uploaded file name accepted (most file systems allow 255 bytes).
MAX_NAME_LENGTH = 200


def _upload_name(name: str) -> str:
    if "/" in name or "\\" in name or name.strip() in ("", ".", ".."):
        raise RefusedFile(name, "an uploaded file name must be a plain file name, without folders")
    shown = name.encode("unicode_escape").decode("ascii")[:80]
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise RefusedFile(shown, "an uploaded file name must not hold control characters")
    if len(name.encode()) > MAX_NAME_LENGTH:
        raise RefusedFile(shown + "...", f"an uploaded file name must be at most {MAX_NAME_LENGTH} bytes long")
    if Path(name).stem.strip(". ") == "" or name.startswith("."):
        raise RefusedFile(name, "an uploaded file name needs a name before its extension (and must not start with '.')")
    return name


def import_files(
    dataset_id: int,
    split: str,
    frames: Sequence[UploadedFile] = (),
    masks: Sequence[UploadedFile] = (),
    author: str = "upload",
) -> ImportReport:
    """Add uploaded frames and/or masks to one split of an existing dataset.

    Each file is a path or a ``(file_name, bytes)`` pair. Masks pair with frames
    of this upload, or with frames already in the split, by file stem (``x.png``
    or ``x_mask.png``); a mask for an existing frame becomes its new current
    revision (source "uploaded").
    """
    split = check_split(split)
    if not frames and not masks:
        raise StoreError("no files to import")

    def collect(batch: Path):
        folder = SPLIT_FOLDERS[split]
        incoming: list[_Incoming] = []
        seen: set[tuple[bool, str]] = set()
        for is_mask, files in ((False, frames), (True, masks)):
            for entry in files:
                if isinstance(entry, tuple):
                    file_name, payload = entry
                    base = _upload_name(file_name)
                else:
                    base, payload = Path(entry).name, None
                if (is_mask, base) in seen:
                    raise RefusedFile(base, "uploaded twice; file names must be unique")
                seen.add((is_mask, base))
                if Path(base).suffix.lower() not in io.FRAME_SUFFIXES:
                    raise RefusedFile(base, f"not an image file; expected {io.ACCEPTED_TEXT}")
                size = len(payload) if payload is not None else Path(entry).stat().st_size if Path(entry).is_file() else 0
                if size > io.max_frame_file_bytes():
                    raise RefusedFile(
                        base, f"file of {size:,} bytes is larger than any frame within the size limit "
                        f"({io.max_frame_pixels():,} pixels) can be"
                    )
                target = batch / (segdata.annotation_dir(folder) if is_mask else folder) / base
                target.parent.mkdir(parents=True, exist_ok=True)
                if payload is None:
                    if not Path(entry).is_file():
                        raise RefusedFile(str(entry), "file not found")
                    _copy_file(Path(entry), target)
                else:
                    target.write_bytes(bytes(payload))
                incoming.append(_Incoming(split, is_mask, target, base if payload is not None else str(entry)))
        return incoming, []

    return run_import(None, dataset_id, None, "", author, collect)


def import_simulated(
    name: str,
    n_train: int,
    n_validation: int,
    n_test: int,
    n_real: int = 0,
    size: int = 512,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """A new dataset made by the simulator (frames with exact masks)."""
    from segcore.synth import generate_dataset

    clean_name(name)
    staging = staging_dir("synth")
    try:
        generate_dataset(staging, n_train, n_validation, n_test, n_real=n_real, size=size, seed=seed, progress=progress)
        return import_folder(
            staging,
            name=name,
            author="simulator",
            source=f"simulator: {n_train}/{n_validation}/{n_test}/{n_real} frames of {size} px, seed {seed}",
            move=True,
        )
    finally:
        remove_tree(staging)

