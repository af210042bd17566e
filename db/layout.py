"""Reading a folder in the original layout: which sub-folders are splits, which files count."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from segcore import data as segdata
from segcore import io

from .datasets import SPLIT_FOLDERS
from .errors import RefusedFile, StoreError

#: Names skipped silently: operating-system clutter, not user data.
CLUTTER = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}


def layout_folder(name: str) -> tuple[str, bool] | None:
    """``Train`` -> ("train", False); ``TrainAnnotation`` -> ("train", True); else None."""
    lowered = name.lower()
    for split, folder in SPLIT_FOLDERS.items():
        if lowered == folder.lower():
            return split, False
        if lowered == segdata.annotation_dir(folder).lower():
            return split, True
    return None


def is_clutter(name: str) -> bool:
    return name in CLUTTER or name.startswith(".")


def layout_root(folder: Path, label: str | None = None) -> Path:
    """The folder holding Train/ etc.: ``folder`` itself, or its only sub-folder."""
    entries = [p for p in folder.iterdir() if not is_clutter(p.name)]
    if any(p.is_dir() and layout_folder(p.name) for p in entries):
        return folder
    if len(entries) == 1 and entries[0].is_dir():
        inner = entries[0]
        if any(p.is_dir() and layout_folder(p.name) for p in inner.iterdir()):
            return inner
    raise StoreError(
        f"{label or folder}: no dataset folders found; expected Train/, TrainAnnotation/, Validation/, "
        "ValidationAnnotation/, Test/, TestAnnotation/ and optionally Real/"
    )


def scan_layout(root: Path, describe: Callable[[Path], str]) -> tuple[list[tuple[str, bool, Path, str]], list[str]]:
    """Image files of a layout folder as (split, is_mask, path, display); anything else refused or ignored."""
    found, ignored = [], []
    for entry in sorted(root.iterdir()):
        if is_clutter(entry.name):
            continue
        kind = layout_folder(entry.name) if entry.is_dir() else None
        if kind is None:
            ignored.append(f"{describe(entry)}: not part of the dataset layout")
            continue
        split, is_mask = kind
        for path in sorted(entry.iterdir()):
            if is_clutter(path.name):
                continue
            if path.is_symlink():
                raise RefusedFile(describe(path), "symbolic links are not imported")
            if path.is_dir():
                ignored.append(f"{describe(path)}: sub-folder ignored")
                continue
            if path.suffix.lower() not in io.FRAME_SUFFIXES:
                raise RefusedFile(describe(path), f"not an image file; expected {io.ACCEPTED_TEXT}")
            found.append((split, is_mask, path, describe(path)))
    return found, ignored
