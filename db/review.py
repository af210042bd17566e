"""Where to label next: a frame's review status, the queue of frames still without a mask ordered
by how unsure the models are about them, and retraining on the masks as they are now.

A frame's status (``REVIEW_STATUSES``, table ``frame_reviews``) follows the loop by itself: a
prediction job's proposal for a frame without a saved mask makes it "proposed"; a mask saved
from the app (drawn, a proposal accepted or corrected, a revision restored) makes it
"corrected"; :func:`set_review_status` marks a saved mask "reviewed" (an expert looked again and
confirmed it). Imported masks leave it as it was. Frames without a row have no status yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select

from .errors import NotFound, StoreError, StoreUnavailable
from .models import (
    REVIEW_STATUSES,
    Frame,
    FrameReview,
    MaskRevisionRow,
    PredictionJob,
    ProposalRow,
    Run,
    utcnow,
)
from .paths import from_stored
from .session import session_scope

__all__ = [
    "REVIEW_STATUSES",
    "UNCERTAIN_RANGE",
    "QueueEntry",
    "count_uncertain",
    "labeling_queue",
    "retraining_config",
    "review_statuses",
    "set_review_status",
    "start_retraining",
]

#: A pixel is uncertain when the model's cosmic probability is in this closed range.
UNCERTAIN_RANGE = (0.2, 0.8)


def count_uncertain(probabilities: np.ndarray, low: float = UNCERTAIN_RANGE[0], high: float = UNCERTAIN_RANGE[1]) -> int:
    """The number of pixels whose probability is between ``low`` and ``high`` (both included)."""
    p = np.asarray(probabilities, np.float32)
    return int(np.count_nonzero((p >= low) & (p <= high)))


# --- review status ---------------------------------------------------------------------------


def mark(session, frame_id: int, status: str, author: str = "", only_if_none: bool = False) -> None:
    """Set a frame's review status inside the caller's transaction (for ``db`` itself)."""
    row = session.get(FrameReview, frame_id)
    if row is None:
        session.add(FrameReview(frame_id=frame_id, status=status, author=(author or "").strip(), changed=utcnow()))
    elif not only_if_none:
        row.status, row.author, row.changed = status, (author or "").strip(), utcnow()


def mark_proposed(session, frame_id: int) -> None:
    """A proposal was stored: a frame without a saved mask and without a status becomes "proposed"."""
    has_mask = session.scalar(select(func.count(MaskRevisionRow.id)).where(MaskRevisionRow.frame_id == frame_id))
    if not has_mask:
        mark(session, frame_id, "proposed", only_if_none=True)


def review_statuses(dataset_id: int) -> dict[int, str]:
    """frame id -> review status, for the dataset's frames that have one."""
    with session_scope(write=False) as session:
        rows = session.execute(
            select(FrameReview.frame_id, FrameReview.status)
            .join(Frame, Frame.id == FrameReview.frame_id)
            .where(Frame.dataset_id == dataset_id)
        ).all()
    return {frame_id: status for frame_id, status in rows}


def set_review_status(frame_id: int, status: str, author: str = "") -> None:
    """Set a frame's review status by hand. "reviewed" and "corrected" need a saved mask."""
    if status not in REVIEW_STATUSES:
        raise StoreError(f"a review status must be one of {', '.join(REVIEW_STATUSES)}, got {status!r}")
    with session_scope() as session:
        frame = session.get(Frame, frame_id)
        if frame is None:
            raise NotFound(f"frame {frame_id} does not exist")
        if status != "proposed":
            saved = session.scalar(select(func.count(MaskRevisionRow.id)).where(MaskRevisionRow.frame_id == frame_id))
            if not saved:
                raise StoreError(f"{frame.name} has no saved mask yet; save one before marking it {status}")
        mark(session, frame_id, status, author)


# --- the queue -------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueEntry:
    """A frame without a saved mask, with what the models say about it."""

    frame_id: int
    name: str
    split: str
    #: the review status (None: no status yet)
    status: str | None
    #: the newest proposal of a model with probabilities, and its uncertain pixels
    model_proposal_id: int | None
    uncertain_pixels: int | None
    #: the newest LA Cosmic proposal, and the pixels where it and the model's proposal differ
    lacosmic_proposal_id: int | None
    disagreement: int | None
    #: cosmics in the newest proposal (any model)
    proposed_cosmics: int | None

    @property
    def doubt(self) -> int | None:
        """Pixels in doubt: the model's uncertain pixels plus the pixels where it and LA Cosmic
        disagree (what is known of them); None when no proposal says anything."""
        known = [n for n in (self.uncertain_pixels, self.disagreement) if n is not None]
        return sum(known) if known else None


def _keep(proposal_id: int, **counts) -> None:
    """Store counts on a proposal row for the next call; a store that cannot be written (read-only)
    keeps none, and the count is made again next time."""
    try:
        with session_scope() as session:
            stored = session.get(ProposalRow, proposal_id)
            if stored is not None:
                for name, value in counts.items():
                    setattr(stored, name, value)
    except StoreUnavailable:
        pass


def _uncertain_of(row: ProposalRow) -> int | None:
    """The proposal's uncertain pixels, counted now (and stored) for a proposal made before they were kept."""
    if row.uncertain_pixels is not None or not row.probabilities_path:
        return row.uncertain_pixels
    try:
        count = count_uncertain(np.load(from_stored(row.probabilities_path)))
    except (OSError, ValueError):
        return None  # a lost file: the queue still works, this frame has no number
    _keep(row.id, uncertain_pixels=count)
    return count


def _disagreement(model: ProposalRow, lacosmic: ProposalRow) -> int | None:
    """Pixels where the model's proposal and LA Cosmic's differ: the stored count when it was made
    against this LA Cosmic proposal (proposals never change once stored), else counted from both
    masks now and stored."""
    from segcore import io
    from segcore.errors import SegcoreError

    if model.disagreement is not None and model.disagreement_with == lacosmic.id:
        return model.disagreement
    try:
        count = int(np.count_nonzero(io.read_mask(from_stored(model.mask_path))
                                     ^ io.read_mask(from_stored(lacosmic.mask_path))))
    except (OSError, ValueError, SegcoreError):
        return None  # a lost or damaged file: this frame has no number, the queue still works
    _keep(model.id, disagreement=count, disagreement_with=lacosmic.id)
    return count


def labeling_queue(dataset_id: int, split: str | None = None) -> list[QueueEntry]:
    """The dataset's frames without a saved mask (of ``split``, or all), the frames the models are
    least sure about first.

    Order: by :attr:`QueueEntry.doubt`, most first; then frames whose only proposals have no
    probabilities (LA Cosmic alone), most proposed cosmics first; then frames without any proposal;
    ties by split and name.
    """
    from .datasets import SPLITS

    with session_scope(write=False) as session:
        query = select(Frame).where(Frame.dataset_id == dataset_id)
        if split is not None:
            query = query.where(Frame.split == split)
        masked = select(MaskRevisionRow.frame_id).distinct()
        frames = session.scalars(query.where(Frame.id.not_in(masked))).all()
        ids = [f.id for f in frames]
        statuses = dict(session.execute(
            select(FrameReview.frame_id, FrameReview.status).where(FrameReview.frame_id.in_(ids))).all()) if ids else {}
        proposals = session.execute(
            select(ProposalRow, PredictionJob.model_source)
            .join(PredictionJob, PredictionJob.id == ProposalRow.job_id)
            .where(ProposalRow.frame_id.in_(ids))
            .order_by(ProposalRow.id.desc())
        ).all() if ids else []
        for row, _ in proposals:
            session.expunge(row)
        frames = [(f.id, f.name, f.split) for f in frames]
    newest: dict[int, ProposalRow] = {}
    model: dict[int, ProposalRow] = {}
    lacosmic: dict[int, ProposalRow] = {}
    for row, source in proposals:  # newest first
        newest.setdefault(row.frame_id, row)
        if source == "lacosmic":
            lacosmic.setdefault(row.frame_id, row)
        elif row.probabilities_path:
            model.setdefault(row.frame_id, row)
    entries = []
    for frame_id, name, frame_split in frames:
        m, la = model.get(frame_id), lacosmic.get(frame_id)
        entries.append(QueueEntry(
            frame_id=frame_id, name=name, split=frame_split, status=statuses.get(frame_id),
            model_proposal_id=m.id if m else None, uncertain_pixels=_uncertain_of(m) if m else None,
            lacosmic_proposal_id=la.id if la else None,
            disagreement=_disagreement(m, la) if m and la else None,
            proposed_cosmics=newest[frame_id].cosmics if frame_id in newest else None,
        ))
    split_order = {s: i for i, s in enumerate(SPLITS)}

    def key(e: QueueEntry):
        if e.doubt is not None:
            return (0, -e.doubt, split_order[e.split], e.name)
        if e.proposed_cosmics is not None:
            return (1, -e.proposed_cosmics, split_order[e.split], e.name)
        return (2, 0, split_order[e.split], e.name)

    return sorted(entries, key=key)


# --- retraining --------------------------------------------------------------------------------


def retraining_config(dataset_id: int) -> tuple[dict, int | None]:
    """The training options of the dataset's newest training run (the store's own options left
    out) and its id, or ``({}, None)`` (TrainConfig's defaults) when it has none."""
    from .runs import STORE_OPTIONS

    with session_scope(write=False) as session:
        row = session.scalars(
            select(Run).where(Run.dataset_id == dataset_id, Run.kind == "train").order_by(Run.id.desc()).limit(1)
        ).first()
        if row is None:
            return {}, None
        return {k: v for k, v in row.config.items() if k not in STORE_OPTIONS and k != "resume"}, row.id


def start_retraining(dataset_id: int, name: str | None = None, defaults: dict | None = None) -> int:
    """Start a training run on the dataset's masks as they are now, through :func:`db.runs.start_run`
    (which records the mask revision of every frame it uses).

    The options are those of the dataset's newest training run, so the new model is comparable
    with it; without one, ``defaults`` (e.g. the Train page's), else TrainConfig's. Returns the run id.
    """
    from .runs import start_run

    config, previous = retraining_config(dataset_id)
    if previous is None:
        config = dict(defaults or {})
    if name is None:
        name = f"retrained after run {previous}" if previous is not None else "first training from the Label page"
    return start_run(config, dataset_id, name=name)
