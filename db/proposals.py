"""Proposals: one frame's proposed mask from a prediction job (:mod:`db.predictions`) or from a
run's evaluation; never ground truth until an expert saves it (``save_mask_revision(..., proposal_id=N)``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import select

from .errors import NotFound, StoreError
from .models import Dataset, Frame, PredictionJob, ProposalRow, Run, utcnow
from .paths import from_stored, remove_tree, to_stored
from .predictions import prediction_dir
from .session import session_scope

__all__ = [
    "Proposal",
    "frame_proposals",
    "get_proposal",
    "proposal_mask",
    "proposal_probabilities",
    "proposed_frames",
    "propose_from_evaluation",
]


@dataclass(frozen=True)
class Proposal:
    """One frame's proposed mask; ground truth only once an expert saves it."""

    id: int
    job_id: int
    frame_id: int
    run_id: int | None
    model_source: str
    model_name: str
    threshold: float
    mask_path: Path
    probabilities_path: Path | None
    cosmic_pixels: int
    cosmics: int
    created: datetime


def _proposal(row: ProposalRow, job: PredictionJob) -> Proposal:
    return Proposal(
        id=row.id,
        job_id=row.job_id,
        frame_id=row.frame_id,
        run_id=job.run_id,
        model_source=job.model_source,
        model_name=job.model_name,
        threshold=row.threshold,
        mask_path=from_stored(row.mask_path),
        probabilities_path=from_stored(row.probabilities_path) if row.probabilities_path else None,
        cosmic_pixels=row.cosmic_pixels,
        cosmics=row.cosmics,
        created=row.created,
    )


def frame_proposals(frame_id: int) -> list[Proposal]:
    """Every proposal made for a frame, newest first."""
    with session_scope(write=False) as session:
        if session.get(Frame, frame_id) is None:
            raise NotFound(f"frame {frame_id} does not exist")
        rows = session.execute(
            select(ProposalRow, PredictionJob)
            .join(PredictionJob, PredictionJob.id == ProposalRow.job_id)
            .where(ProposalRow.frame_id == frame_id)
            .order_by(ProposalRow.id.desc())
        ).all()
        return [_proposal(row, job) for row, job in rows]


def proposed_frames(dataset_id: int) -> set[int]:
    """Ids of the dataset's frames that have a proposal made after their current mask (or have no mask)."""
    from sqlalchemy import func

    from .models import MaskRevisionRow

    current = (
        select(MaskRevisionRow.frame_id, func.max(MaskRevisionRow.created).label("saved"))
        .group_by(MaskRevisionRow.frame_id)
        .subquery()
    )
    query = (
        select(ProposalRow.frame_id)
        .join(Frame, Frame.id == ProposalRow.frame_id)
        .outerjoin(current, current.c.frame_id == ProposalRow.frame_id)
        .where(Frame.dataset_id == dataset_id, (current.c.saved.is_(None)) | (ProposalRow.created > current.c.saved))
        .distinct()
    )
    with session_scope(write=False) as session:
        return set(session.scalars(query))


def get_proposal(proposal_id: int) -> Proposal:
    with session_scope(write=False) as session:
        row = session.get(ProposalRow, proposal_id)
        if row is None:
            raise NotFound(f"proposal {proposal_id} does not exist")
        return _proposal(row, session.get(PredictionJob, row.job_id))


def proposal_mask(proposal_id: int) -> np.ndarray:
    """The proposed mask, bool (H, W)."""
    from segcore import io

    return io.read_mask(get_proposal(proposal_id).mask_path)


def proposal_probabilities(proposal_id: int) -> np.ndarray | None:
    """The cosmic probabilities the proposal was thresholded from (float32 (H, W); stored as
    float16), or None for a detector without probabilities (LA Cosmic)."""
    path = get_proposal(proposal_id).probabilities_path
    return None if path is None else np.load(path).astype(np.float32)


def propose_from_evaluation(result_id: int) -> Proposal:
    """An evaluation's predicted mask of one frame as a proposal (made once, then reused), so a mask
    saved from it records its run and what was changed, like one from a prediction job."""
    from .models import Evaluation, EvaluationResultRow

    with session_scope() as session:
        result = session.get(EvaluationResultRow, result_id)
        if result is None:
            raise NotFound(f"evaluation result {result_id} does not exist")
        if result.frame_id is None or not result.prediction_path:
            raise StoreError(f"evaluation result {result_id} has no stored frame or predicted mask")
        for job, proposal in session.execute(
            select(PredictionJob, ProposalRow).join(ProposalRow, ProposalRow.job_id == PredictionJob.id)
            .where(ProposalRow.frame_id == result.frame_id, PredictionJob.scope == "evaluation")
        ).all():
            if (job.params or {}).get("evaluation_result_id") == result_id:
                return _proposal(proposal, job)
        evaluation = session.get(Evaluation, result.evaluation_id)
        run = session.get(Run, evaluation.run_id)
        frame = session.get(Frame, result.frame_id)
        dataset = session.get(Dataset, frame.dataset_id)
        name = f"{run.name} (LA Cosmic)" if run.kind == "lacosmic" else run.name
        job = PredictionJob(
            dataset_id=dataset.id, dataset_name=dataset.name, run_id=run.id, model_source=run.kind,
            model_name=f"{name}, evaluation {evaluation.id}", params={"evaluation_result_id": result_id},
            threshold=evaluation.threshold, scope="evaluation", frame_ids=[frame.id], status="finished",
            frames_done=1, precision=evaluation.precision, ended_at=utcnow(),
        )
        session.add(job)
        session.flush()
        folder = prediction_dir(job.id)
        remove_tree(folder)
        folder.mkdir(parents=True)
        job.folder = to_stored(folder)
        from segcore import io
        from segcore.metrics import n_cosmics

        mask = io.read_mask(from_stored(result.prediction_path), shape=(frame.height, frame.width))
        target = folder / f"{frame.id}.png"
        io.write_mask(target, mask)
        row = ProposalRow(job_id=job.id, frame_id=frame.id, threshold=evaluation.threshold,
                          mask_path=to_stored(target), cosmic_pixels=int(mask.sum()), cosmics=n_cosmics(mask))
        session.add(row)
        session.flush()
        return _proposal(row, job)
