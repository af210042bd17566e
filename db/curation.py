"""Tidying the store one record at a time: a run's notes and tags, deleting one frame.

(Deleting one run is :func:`db.runs.delete_run`.) Nothing another record needs is deleted: a
frame a run trained or was tested on is refused, naming the runs, because the run's recorded mask
revisions must stay to say what it learnt from.
"""

from __future__ import annotations

from sqlalchemy import select

from .errors import NotFound, StoreError
from .models import ACTIVE_STATUSES, Frame, MaskRevisionRow, ProposalRow, Run, RunRevision
from .paths import from_stored, remove_file
from .session import session_scope

__all__ = ["MAX_TAGS", "delete_frame", "set_run_notes"]

MAX_TAGS = 20


def _clean_tags(tags) -> list[str]:
    if isinstance(tags, str):
        tags = tags.split(",")
    cleaned = []
    for tag in tags or ():
        if not isinstance(tag, str):
            raise StoreError(f"a tag must be text, got {tag!r}")
        tag = " ".join(tag.split())
        if len(tag) > 40:
            raise StoreError(f"tag {tag[:40]!r}... is longer than 40 characters")
        if tag and tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_TAGS:
        raise StoreError(f"a run takes at most {MAX_TAGS} tags, got {len(cleaned)}")
    return cleaned


def set_run_notes(run_id: int, notes: str | None = None, tags=None) -> None:
    """Replace a run's notes (free text; empty: none) and tags (a list, or one comma-separated
    string; blanks and repeats dropped, at most :data:`MAX_TAGS` of 40 characters)."""
    cleaned = _clean_tags(tags)
    with session_scope() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise NotFound(f"run {run_id} does not exist")
        run.notes = (notes or "").strip() or None
        run.tags = cleaned or None


def delete_frame(frame_id: int) -> str:
    """Delete one frame with its mask revisions, proposals and files; returns its name.

    Refused (StoreError, nothing changed) when a run used the frame: the run's record of the
    mask revisions it trained and was tested on must stay. Evaluations that scored it keep their
    numbers (their row for it loses the frame link).
    """
    with session_scope() as session:
        frame = session.get(Frame, frame_id)
        if frame is None:
            raise NotFound(f"frame {frame_id} does not exist")
        runs = session.execute(
            select(Run.id, Run.status).join(RunRevision, RunRevision.run_id == Run.id)
            .where(RunRevision.frame_id == frame_id).order_by(Run.id)
        ).all()
        if runs:
            active = [r for r, status in runs if status in ACTIVE_STATUSES]
            ids = ", ".join(str(r) for r, _ in runs)
            raise StoreError(
                f"{frame.name} was used by run(s) {ids}" + (" (still running)" if active else "")
                + "; a run keeps the masks it was trained and tested on, so delete those runs first")
        files = [from_stored(frame.path)]
        files += [from_stored(p) for p in session.scalars(select(MaskRevisionRow.path).where(MaskRevisionRow.frame_id == frame_id))]
        for mask, probabilities in session.execute(
            select(ProposalRow.mask_path, ProposalRow.probabilities_path).where(ProposalRow.frame_id == frame_id)
        ).all():
            files += [from_stored(mask)] + ([from_stored(probabilities)] if probabilities else [])
        name = frame.name
        session.delete(frame)
    # Files go after the commit: a failed delete must not lose data the rows still point to.
    for path in files:
        remove_file(path)
    return name
