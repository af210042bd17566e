"""Where the store keeps files under ``COSMICS_HOME``; the database holds paths relative to it."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

from .session import home


def to_stored(path: str | os.PathLike) -> str:
    """A path under home as stored in the database (relative, forward slashes)."""
    return Path(path).resolve().relative_to(home()).as_posix()


def to_stored_any(path: str | os.PathLike) -> str:
    """Relative when under home, else absolute (e.g. a model file the user picked elsewhere)."""
    try:
        return to_stored(path)
    except ValueError:
        return str(Path(path).resolve())


def from_stored(stored: str) -> Path:
    """The absolute path of a stored relative path (absolute ones are returned as they are)."""
    path = Path(stored)
    return path if path.is_absolute() else home() / path


def token() -> str:
    """A short name part that sorts by time and never repeats."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"


def slug(name: str) -> str:
    """A file-system-safe version of a display name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:60] or "dataset"


def staging_dir(prefix: str) -> Path:
    """A fresh folder under ``<home>/tmp``: same disk as the store, so moves are renames."""
    path = home() / "tmp" / f"{prefix}-{token()}"
    path.mkdir(parents=True)
    return path


def run_dir(run_id: int) -> Path:
    return home() / "runs" / str(run_id)


def remove_tree(path: Path | None) -> None:
    if path is not None and path.exists():
        shutil.rmtree(path, ignore_errors=True)


def remove_file(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
