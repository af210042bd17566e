"""Re-scoring an evaluation at another threshold from the probabilities it kept: no network runs,
so it takes as long as reading the maps and counting.

A training run's evaluation keeps each image's cosmic probabilities (float16, grown by the
evaluation's dilation) as ``<predictions_dir>/probabilities/<image>.npy``
(:data:`PROBABILITIES_DIR`); :func:`rescore_evaluation` thresholds them again against the very
masks the evaluation scored and stores the result as a new evaluation of the run, linking the
same probability files. Evaluations made before the maps were kept, and LA Cosmic's (masks, no
probabilities), are refused with a StoreError saying to evaluate again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from sqlalchemy import select

from .errors import NotFound, StoreError
from .models import LACOSMIC_CHECKPOINT, Evaluation, EvaluationResultRow, Frame, MaskRevisionRow
from .paths import from_stored
from .session import session_scope

__all__ = ["PROBABILITIES_DIR", "can_rescore", "keep_probabilities", "rescore_evaluation"]

PROBABILITIES_DIR = "probabilities"


def _file(folder: Path, image: str) -> Path:
    return folder / PROBABILITIES_DIR / f"{image}.npy"


def keep_probabilities(result, predictions_dir: Path, source_dir: Path | None = None) -> None:
    """Write an evaluation's kept maps (``result.probabilities``: image -> float16 map) beside its
    predicted masks; from ``source_dir`` (a re-scored evaluation's) they are linked, not copied."""
    maps = getattr(result, "probabilities", None) or {}
    if not maps:
        return
    (predictions_dir / PROBABILITIES_DIR).mkdir(parents=True, exist_ok=True)
    for image, probabilities in maps.items():
        target = _file(predictions_dir, image)
        if source_dir is not None and _file(source_dir, image).exists():
            try:
                os.link(_file(source_dir, image), target)
                continue
            except OSError:
                shutil.copyfile(_file(source_dir, image), target)
                continue
        np.save(target, np.asarray(probabilities, np.float16))


def can_rescore(evaluation_id: int) -> bool:
    """Whether the evaluation kept its probabilities, so another threshold is instant."""
    with session_scope(write=False) as session:
        row = session.get(Evaluation, evaluation_id)
        if row is None:
            raise NotFound(f"evaluation {evaluation_id} does not exist")
        folder = from_stored(row.predictions_dir)
        first = session.scalars(select(EvaluationResultRow.image).where(EvaluationResultRow.evaluation_id == evaluation_id)
                                .limit(1)).first()
    return row.checkpoint != LACOSMIC_CHECKPOINT and first is not None and _file(folder, first).exists()


def rescore_evaluation(evaluation_id: int, threshold: float, progress=None):
    """A new evaluation of the same run, split, images and masks at ``threshold``, from the kept
    probabilities. Returns its :class:`db.evaluations.EvaluationInfo`."""
    from segcore.evaluator import rescore

    from .evaluations import store_evaluation

    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        raise StoreError(f"threshold must be a number between 0 and 1, got {threshold!r}") from None
    if not 0.0 < threshold < 1.0:
        raise StoreError(f"threshold must be between 0 and 1, got {threshold}")
    with session_scope(write=False) as session:
        row = session.get(Evaluation, evaluation_id)
        if row is None:
            raise NotFound(f"evaluation {evaluation_id} does not exist")
        if row.checkpoint == LACOSMIC_CHECKPOINT:
            raise StoreError(f"evaluation {evaluation_id} is LA Cosmic's: it gives masks, not probabilities, so it "
                             "has no threshold to change")
        run_id, split, checkpoint, precision = row.run_id, row.split, row.checkpoint, row.precision
        dilation = int((row.pooled or {}).get("dilation", 0) or 0)
        folder = from_stored(row.predictions_dir)
        scored = session.execute(
            select(EvaluationResultRow.image, Frame.path, MaskRevisionRow.path, Frame.id, MaskRevisionRow.id)
            .outerjoin(Frame, Frame.id == EvaluationResultRow.frame_id)
            .outerjoin(MaskRevisionRow, MaskRevisionRow.id == EvaluationResultRow.revision_id)
            .where(EvaluationResultRow.evaluation_id == evaluation_id)
            .order_by(EvaluationResultRow.image)
        ).all()
    gone = [image for image, frame, mask, _, _ in scored if frame is None or mask is None]
    if gone:
        raise StoreError(f"evaluation {evaluation_id}: the frame or scored mask of {', '.join(gone[:3])} was deleted "
                         "since; evaluate the run again instead")
    missing = [image for image, *_ in scored if not _file(folder, image).exists()]
    if missing:
        raise StoreError(f"evaluation {evaluation_id} kept no probabilities for {', '.join(missing[:3])} (it was "
                         "made before they were kept); evaluate the run again to re-score it instantly after that")
    maps = {image: np.load(_file(folder, image)) for image, *_ in scored}
    kept = SimpleNamespace(probabilities=maps, precision=precision, dilation=dilation)
    pairs = [(from_stored(f), from_stored(m), fid, rid) for _, f, m, fid, rid in scored]

    def evaluate(frame_mask_pairs, progress, predictions_dir):
        result = rescore(kept, frame_mask_pairs, threshold, progress=progress, predictions_dir=predictions_dir)
        keep_probabilities(result, predictions_dir, source_dir=folder)
        result.probabilities = {}  # linked already: store_evaluation need not write them again
        return result

    return store_evaluation(run_id, split, pairs, checkpoint, evaluate, progress)
