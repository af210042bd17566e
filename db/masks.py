"""Mask revisions: every mask a frame ever had. A mask file is never overwritten.

Saving writes the PNG to a new file first (atomically), then inserts its row in
one transaction. A crash before the commit leaves at most an unreferenced file:
the previous revision stays current and readable. The current mask of a frame
is its revision with the highest id.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from segcore import io
from segcore.errors import InputFileError

from .errors import NotFound, RefusedFile, StoreError
from .models import MASK_SOURCES, Dataset, Frame, MaskRevisionRow, Run
from .paths import from_stored, remove_file, to_stored, token
from .session import session_scope

__all__ = [
    "MASK_SOURCES",
    "MaskRevision",
    "adopt_prediction",
    "check_mask_array",
    "current_mask",
    "current_revision",
    "mask_history",
    "read_revision",
    "restore_revision",
    "save_mask_revision",
]


@dataclass(frozen=True)
class MaskRevision:
    id: int
    frame_id: int
    source: str
    run_id: int | None
    author: str
    comment: str | None
    created: datetime
    path: Path
    cosmic_pixels: int
    restored_from_id: int | None
    #: the proposal the expert started from, and the pixels and cosmics changed from it
    #: (see ``segcore.components.proposal_changes``); None for masks not made from a proposal
    proposal_id: int | None = None
    changed_pixels: int | None = None
    changed_cosmics: int | None = None

    @classmethod
    def of(cls, row: MaskRevisionRow) -> "MaskRevision":
        return cls(
            id=row.id,
            frame_id=row.frame_id,
            source=row.source,
            run_id=row.run_id,
            author=row.author,
            comment=row.comment,
            created=row.created,
            path=from_stored(row.path),
            cosmic_pixels=row.cosmic_pixels,
            restored_from_id=row.restored_from_id,
            proposal_id=row.proposal_id,
            changed_pixels=row.changed_pixels,
            changed_cosmics=row.changed_cosmics,
        )


def check_mask_array(mask, shape: tuple[int, int], name: str) -> np.ndarray:
    """A mask as a bool array, or :class:`RefusedFile` naming ``name`` and the problem.

    What a mask may hold is :func:`segcore.io.mask_from_array`'s rule, shared with the command line.
    """
    array = np.asarray(mask)
    if array.ndim != 2:
        raise RefusedFile(name, f"mask must be 2-D, got shape {array.shape}")
    if tuple(array.shape) != tuple(shape):
        raise RefusedFile(
            name, f"mask is {array.shape[0]}x{array.shape[1]} but its frame is {shape[0]}x{shape[1]}"
        )
    try:
        return io.mask_from_array(array, name)
    except InputFileError as exc:
        raise RefusedFile(name, exc.problem) from None


def check_source(source: str, run_id: int | None) -> None:
    if source not in MASK_SOURCES:
        raise StoreError(f"mask source must be one of {', '.join(MASK_SOURCES)}, got {source!r}")
    if source == "predicted" and run_id is None:
        raise StoreError("a predicted mask needs the id of the run that predicted it")
    if source == "corrected":
        raise StoreError("a corrected mask is saved with the proposal it corrects (proposal_id)")


def new_mask_file(dataset_folder: str, split: str, stem: str, mask: np.ndarray) -> Path:
    """Write a bool mask to a new file (never an existing one) and return its path."""
    folder = from_stored(dataset_folder) / "masks" / split / stem
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{token()}.png"
    try:
        io.write_mask(path, mask)
    except OSError as exc:  # disk full, quota, permissions: the earlier revisions stay as they were
        remove_file(path)
        raise StoreError(f"{split}/{stem}: the mask could not be saved: {exc.strerror or exc}") from exc
    except BaseException:
        remove_file(path)
        raise
    return path


def revision_row(
    frame_id: int,
    path: Path,
    cosmic_pixels: int,
    *,
    source: str,
    author: str,
    comment: str | None,
    run_id: int | None,
    restored_from_id: int | None = None,
    proposal: dict | None = None,
) -> MaskRevisionRow:
    """The row recording a mask file already written by :func:`new_mask_file`.

    ``proposal``: the proposal columns (proposal_id, changed_pixels, changed_cosmics) when the
    mask was made from one; its source is then "predicted" or "corrected".
    """
    if proposal is None:
        check_source(source, run_id)
    return MaskRevisionRow(
        frame_id=frame_id,
        path=to_stored(path),
        source=source,
        run_id=run_id,
        restored_from_id=restored_from_id,
        author=(author or "").strip(),
        comment=(comment or None),
        cosmic_pixels=int(cosmic_pixels),
        **(proposal or {}),
    )


def _save(frame_id: int, make_mask, **fields) -> MaskRevision:
    # The file is written outside the transaction so the write lock is held only for the insert.
    with session_scope(write=False) as session:
        frame = session.get(Frame, frame_id)
        if frame is None:
            raise NotFound(f"frame {frame_id} does not exist")
        if fields.get("run_id") is not None and session.get(Run, fields["run_id"]) is None:
            raise NotFound(f"run {fields['run_id']} does not exist; the mask of frame {frame_id} was not saved")
        mask = make_mask(frame)
        folder = session.get(Dataset, frame.dataset_id).folder
        split, stem = frame.split, frame.stem
    if fields.get("proposal") is None:
        check_source(fields["source"], fields["run_id"])
    path = new_mask_file(folder, split, stem, mask)
    try:
        with session_scope() as session:
            if session.get(Frame, frame_id) is None:
                raise NotFound(f"frame {frame_id} was deleted while its mask was being saved")
            row = revision_row(frame_id, path, int(np.count_nonzero(mask)), **fields)
            session.add(row)
            if row.source != "uploaded":
                # An expert saved this mask (drawn, from a proposal, or restored): the frame is corrected.
                from .review import mark

                mark(session, frame_id, "corrected", row.author)
            session.flush()
        return MaskRevision.of(row)
    except BaseException:
        remove_file(path)
        raise


def save_mask_revision(
    frame_id: int,
    mask,
    source: str = "drawn",
    author: str = "",
    comment: str | None = None,
    run_id: int | None = None,
    proposal_id: int | None = None,
) -> MaskRevision:
    """Save ``mask`` as the frame's new current mask, keeping every earlier one.

    Parameters
    ----------
    frame_id : the frame the mask belongs to.
    mask : 2-D array of the frame's size; non-zero = cosmic (see :func:`check_mask_array`).
    source : "uploaded", "drawn" or "predicted" (then ``run_id`` says by which run).
    author : who saved it, as typed in the app.
    comment : optional note.
    proposal_id : the proposal (``db.predictions``) the expert started from. The revision then
        records it, its run, and the pixels and cosmics changed from it; its source is
        "predicted" when nothing was changed, else "corrected" (``source`` is not used).

    Raises
    ------
    RefusedFile for a mask of the wrong size or type; StoreError for a proposal of another
    frame; nothing is changed then.
    """
    def checked(frame):
        return check_mask_array(mask, (frame.height, frame.width), f"mask for {frame.name}")

    if proposal_id is None:
        return _save(frame_id, checked, source=source, author=author, comment=comment, run_id=run_id)
    from segcore.components import proposal_changes

    from .proposals import get_proposal

    made = get_proposal(proposal_id)
    if made.frame_id != frame_id:
        raise StoreError(f"proposal {proposal_id} is for frame {made.frame_id}, not frame {frame_id}")
    frame = _frame_name_and_shape(frame_id)
    saved = check_mask_array(mask, frame[1], f"mask for {frame[0]}")
    changes = proposal_changes(io.read_mask(made.mask_path, shape=saved.shape), saved)
    return _save(
        frame_id,
        lambda _: saved,
        source="corrected" if changes.pixels else "predicted",
        author=author,
        comment=comment,
        run_id=made.run_id,
        proposal=dict(proposal_id=proposal_id, changed_pixels=changes.pixels, changed_cosmics=changes.cosmics),
    )


def _frame_name_and_shape(frame_id: int) -> tuple[str, tuple[int, int]]:
    """(name, (height, width)) of a frame."""
    with session_scope(write=False) as session:
        frame = session.get(Frame, frame_id)
        if frame is None:
            raise NotFound(f"frame {frame_id} does not exist")
        return frame.name, (frame.height, frame.width)


def _current_row(session: Session, frame_id: int) -> MaskRevisionRow | None:
    query = select(MaskRevisionRow).where(MaskRevisionRow.frame_id == frame_id).order_by(MaskRevisionRow.id.desc())
    return session.scalars(query.limit(1)).first()


def current_revision(frame_id: int) -> MaskRevision | None:
    """The frame's newest revision, or None when it has no mask yet."""
    with session_scope(write=False) as session:
        if session.get(Frame, frame_id) is None:
            raise NotFound(f"frame {frame_id} does not exist")
        row = _current_row(session, frame_id)
        return MaskRevision.of(row) if row else None


def read_revision(revision_id: int) -> np.ndarray:
    """The mask of one revision as a bool (H, W) array."""
    with session_scope(write=False) as session:
        row = session.get(MaskRevisionRow, revision_id)
        if row is None:
            raise NotFound(f"mask revision {revision_id} does not exist")
        path = from_stored(row.path)
    return io.read_mask(path)


def current_mask(frame_id: int) -> np.ndarray | None:
    """The frame's current mask as a bool (H, W) array, or None when it has none."""
    revision = current_revision(frame_id)
    return None if revision is None else io.read_mask(revision.path)


def mask_history(frame_id: int) -> list[MaskRevision]:
    """Every revision of the frame's mask, newest (current) first."""
    with session_scope(write=False) as session:
        if session.get(Frame, frame_id) is None:
            raise NotFound(f"frame {frame_id} does not exist")
        query = select(MaskRevisionRow).where(MaskRevisionRow.frame_id == frame_id).order_by(MaskRevisionRow.id.desc())
        return [MaskRevision.of(row) for row in session.scalars(query)]


def restore_revision(revision_id: int, author: str = "", comment: str | None = None) -> MaskRevision:
    """Make an old revision current again, as a new revision copying its pixels."""
    with session_scope(write=False) as session:
        old = session.get(MaskRevisionRow, revision_id)
        if old is None:
            raise NotFound(f"mask revision {revision_id} does not exist")
        frame_id, source, run_id = old.frame_id, old.source, old.run_id
        # A restored proposal-based mask keeps saying which proposal it came from.
        proposal = None if old.proposal_id is None and source != "corrected" else dict(
            proposal_id=old.proposal_id, changed_pixels=old.changed_pixels, changed_cosmics=old.changed_cosmics)
    mask = read_revision(revision_id)
    return _save(
        frame_id,
        lambda frame: check_mask_array(mask, (frame.height, frame.width), f"revision {revision_id}"),
        source=source,
        author=author,
        comment=comment or f"restored revision {revision_id}",
        run_id=run_id,
        restored_from_id=revision_id,
        proposal=proposal,
    )


def adopt_prediction(result_id: int, author: str = "", comment: str | None = None) -> MaskRevision:
    """Make a run's predicted mask for one evaluated image the frame's current mask; it goes through
    a proposal (``db.predictions.propose_from_evaluation``), which the revision records."""
    from .proposals import propose_from_evaluation

    proposal = propose_from_evaluation(result_id)
    mask = io.read_mask(proposal.mask_path)
    return save_mask_revision(proposal.frame_id, mask, author=author, comment=comment, proposal_id=proposal.id)


def copy_revision_file(revision_path: Path, target: Path) -> None:
    """Put a revision's mask at ``target`` (hard link when possible: files are never modified)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(revision_path, target)
    except OSError:
        shutil.copyfile(revision_path, target)
