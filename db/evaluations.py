"""Evaluating a run's model (or an LA Cosmic run's detector) on a split and storing the result,
per image and in summary.

Predicted masks are written under ``<run>/evaluations/<token>/`` (one 0/1 PNG
per image), with the split's pixel histogram and object curve in ``curves.json``
there, and the rows are inserted in one transaction once every image is scored,
so a half-done evaluation never shows. The dilation the masks were grown by is kept
in the evaluation's ``pooled`` JSON (no column of its own).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import func, select

from segcore.metrics import PER_IMAGE_SCORES

from .errors import NotFound, StoreError
from .models import FALLBACK_THRESHOLD, LACOSMIC_CHECKPOINT, SPLITS, Evaluation, EvaluationResultRow, Frame, MaskRevisionRow, Run, RunRevision
from .paths import from_stored, remove_tree, run_dir, to_stored, to_stored_any, token
from .session import session_scope

__all__ = ["CURVES_FILE", "EvaluationInfo", "evaluate_run", "evaluation_info", "store_evaluation"]

#: The file in an evaluation's predictions folder holding its curves (``segcore.curves.SplitCurves.to_dict``).
CURVES_FILE = "curves.json"


@dataclass(frozen=True)
class EvaluationInfo:
    id: int
    run_id: int
    split: str
    threshold: float
    precision: str | None  # the network's Keras dtype policy; None without a network (LA Cosmic)
    checkpoint: Path | str  # the model file, or "lacosmic" for an LA Cosmic run's stored parameters
    predictions_dir: Path
    summary: dict[str, dict[str, float | None]]  # metric -> {"mean": .., "std": ..}
    # split-level numbers (segcore.evaluator.POOLED_KEYS; evaluations made before the curves hold
    # pixel precision/recall/f1/iou only)
    pooled: dict[str, float | None]
    created: datetime
    n_images: int
    dilation: int = 0  # pixels the predicted masks were grown by

    @property
    def curves_path(self) -> Path:
        return self.predictions_dir / CURVES_FILE


def evaluation_info(row: Evaluation, n_images: int) -> EvaluationInfo:
    pooled = dict(row.pooled or {})
    dilation = int(pooled.pop("dilation", 0) or 0)
    return EvaluationInfo(
        id=row.id,
        run_id=row.run_id,
        split=row.split,
        threshold=row.threshold,
        precision=row.precision,
        checkpoint=row.checkpoint if row.checkpoint == LACOSMIC_CHECKPOINT else from_stored(row.checkpoint),
        predictions_dir=from_stored(row.predictions_dir),
        summary=row.summary,
        pooled=pooled,
        created=row.created,
        n_images=n_images,
        dilation=dilation,
    )


def _number(value: Any) -> float | None:
    """JSON and SQL friendly: NaN (an undefined score, e.g. precision with no prediction) becomes None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _model_path(run: Run, checkpoint: str) -> Path:
    checkpoints = from_stored(run.checkpoint_dir) if run.checkpoint_dir else run_dir(run.id) / "checkpoints"
    if checkpoint == "best":
        candidates = [checkpoints / "best.keras", from_stored(run.model_path) if run.model_path else None]
    elif checkpoint == "last":
        candidates = [checkpoints / "last.keras"]
    else:
        candidates = [Path(checkpoint)]
    for path in candidates:
        if path is not None and path.exists():
            return path
    raise StoreError(f"run {run.id} has no {checkpoint} checkpoint to evaluate")


def _pairs(session, run: Run, split: str, masks: str) -> list[tuple[Path, Path, int, int]]:
    """(frame path, mask path, frame id, revision id) of the split's frames that have a mask."""
    if masks == "run":
        revision = select(RunRevision.frame_id, RunRevision.revision_id.label("revision_id")).where(
            RunRevision.run_id == run.id
        )
    elif masks == "current":
        revision = select(MaskRevisionRow.frame_id, func.max(MaskRevisionRow.id).label("revision_id")).group_by(
            MaskRevisionRow.frame_id
        )
    else:
        raise StoreError(f"masks must be 'run' or 'current', got {masks!r}")
    revision = revision.subquery()
    rows = session.execute(
        select(Frame.path, MaskRevisionRow.path, Frame.id, MaskRevisionRow.id)
        .join(revision, revision.c.frame_id == Frame.id)
        .join(MaskRevisionRow, MaskRevisionRow.id == revision.c.revision_id)
        .where(Frame.dataset_id == run.dataset_id, Frame.split == split)
        .order_by(Frame.name)
    ).all()
    return [(from_stored(f), from_stored(m), fid, rid) for f, m, fid, rid in rows]


#: ``evaluate(frame/mask path pairs, progress, predictions_dir) -> segcore EvaluationResult``:
#: how one kind of run makes its masks and scores them.
Evaluate = Callable[[list[tuple[Path, Path]], Callable[[int, int], None] | None, Path], Any]


def evaluate_run(
    run_id: int,
    split: str = "test",
    threshold: float | None = None,
    checkpoint: str = "best",
    masks: str = "current",
    progress: Callable[[int, int], None] | None = None,
    dilation: int = 0,
) -> EvaluationInfo:
    """Evaluate a run's model (or an LA Cosmic run's parameters) on one split of its dataset,
    in this process, and store the result.

    Parameters
    ----------
    split : "train", "validation" or "test".
    threshold : probability threshold (default: the run's: fixed at its start or chosen
        on validation frames when its training ended; 0.5 for a run whose training
        ended before choosing one). An LA Cosmic run's masks have no threshold: None
        or 0.5 only.
    checkpoint : "best", "last", or a path to a ``.keras`` file ("best" only for an
        LA Cosmic run, which detects with its stored parameters).
    masks : "current" (the frames' masks now) or "run" (the revisions the run trained with).
    progress : ``progress(done, total)`` after each image.
    dilation : grow every predicted mask by this many pixels before scoring and
        writing it (``segcore.postprocess.dilate``), kept with the evaluation.
    """
    from segcore.postprocess import check_dilation

    try:
        dilation = check_dilation(dilation)
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    if split not in SPLITS or split == "real":
        raise StoreError(f"split must be train, validation or test, got {split!r}")
    with session_scope(write=False) as session:
        run = session.get(Run, run_id)
        if run is None:
            raise NotFound(f"run {run_id} does not exist")
        if run.kind == "lacosmic":
            from .classical import lacosmic_evaluation

            evaluate, stored_checkpoint = lacosmic_evaluation(run, threshold, checkpoint, dilation)
        else:
            evaluate, stored_checkpoint = _model_evaluation(run, threshold, checkpoint, dilation)
        pairs = _pairs(session, run, split, masks)
        dataset_id = run.dataset_id
    if not pairs:
        raise StoreError(f"run {run_id}: no frames with masks in the {split} split to evaluate on")
    from .datasets import dataset_hot_pixels

    hot = dataset_hot_pixels(dataset_id)  # kept out of the predicted masks, as the dataset's proposals do
    return store_evaluation(run_id, split, pairs, stored_checkpoint,
                            lambda *args: evaluate(*args, hot_pixels=hot), progress)


def _model_evaluation(run: Run, threshold: float | None, checkpoint: str, dilation: int = 0) -> tuple[Evaluate, str]:
    """How a training run's model file is evaluated, and the checkpoint path as stored."""
    if threshold is None:
        threshold = FALLBACK_THRESHOLD if run.threshold is None else run.threshold
    threshold = float(threshold)
    model_path = _model_path(run, checkpoint)
    if not 0.0 < threshold < 1.0:
        raise StoreError(f"threshold must be between 0 and 1, got {threshold}")

    def evaluate(pairs, progress, predictions_dir, hot_pixels=None):
        from segcore.evaluator import evaluate_pairs
        from segcore.model import load_model

        model = load_model(model_path, compile=False)
        return evaluate_pairs(
            model, pairs, threshold=threshold, progress=progress, predictions_dir=predictions_dir, dilation=dilation,
            keep_probabilities=True,  # kept beside the masks, so another threshold is instant (db.rescoring)
            hot_pixels=hot_pixels,
        )

    return evaluate, to_stored_any(model_path)


def store_evaluation(
    run_id: int,
    split: str,
    pairs: list[tuple[Path, Path, int, int]],
    checkpoint: str,
    evaluate: Evaluate,
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationInfo:
    """Score the (frame path, mask path, frame id, revision id) pairs with ``evaluate`` and store
    the evaluation and its per-image rows in one transaction; the predicted masks go under
    ``<run>/evaluations/<token>/`` with the curves (:data:`CURVES_FILE`), removed again if anything fails."""
    predictions = run_dir(run_id) / "evaluations" / token()
    try:
        result = evaluate([(f, m) for f, m, _, _ in pairs], progress, predictions)
        _write_curves(predictions / CURVES_FILE, result)
        from .rescoring import keep_probabilities

        keep_probabilities(result, predictions)
        by_path = {str(f): (fid, rid) for f, _, fid, rid in pairs}
        summary = result.summary()
        with session_scope() as session:
            evaluation = Evaluation(
                run_id=run_id,
                split=split,
                threshold=float(result.threshold),
                precision=result.precision,
                checkpoint=checkpoint,
                predictions_dir=to_stored(predictions),
                summary={
                    metric: {"mean": _number(row["mean"]), "std": _number(row["std"])}
                    for metric, row in summary.iterrows()
                },
                pooled={
                    **{key: _number(value) for key, value in result.pooled.items()},
                    "dilation": int(result.dilation),
                },
            )
            session.add(evaluation)
            session.flush()
            for record in result.per_image.to_dict("records"):
                frame_id, revision_id = by_path[str(record["image_path"])]
                prediction = record.get("prediction")
                session.add(
                    EvaluationResultRow(
                        evaluation_id=evaluation.id,
                        frame_id=frame_id,
                        revision_id=revision_id,
                        image=record["image"],
                        true_count=int(record["true_count"]),
                        pred_count=int(record["pred_count"]),
                        prediction_path=to_stored(prediction) if prediction else None,
                        **{metric: _number(record[metric]) for metric in PER_IMAGE_SCORES},
                    )
                )
            session.flush()
            return evaluation_info(evaluation, len(pairs))
    except BaseException:
        remove_tree(predictions)
        raise


def _write_curves(path: Path, result) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"threshold": float(result.threshold), **result.curves.to_dict()}))


def evaluations_on_older_masks(dataset_id: int, frame_id: int | None = None) -> dict[int, int]:
    """Evaluation id -> how many of the frames it scored have had their mask changed since (their
    current revision is not the one it scored against), for the dataset's runs; only evaluations
    with such frames, and with ``frame_id`` only those that scored that frame."""
    current = (
        select(MaskRevisionRow.frame_id, func.max(MaskRevisionRow.id).label("revision_id"))
        .group_by(MaskRevisionRow.frame_id)
        .subquery()
    )
    query = (
        select(EvaluationResultRow.evaluation_id, func.count())
        .join(Evaluation, Evaluation.id == EvaluationResultRow.evaluation_id)
        .join(Run, Run.id == Evaluation.run_id)
        .join(current, current.c.frame_id == EvaluationResultRow.frame_id)
        .where(Run.dataset_id == dataset_id, EvaluationResultRow.revision_id != current.c.revision_id)
        .group_by(EvaluationResultRow.evaluation_id)
    )
    if frame_id is not None:
        query = query.where(EvaluationResultRow.frame_id == frame_id)
    with session_scope(write=False) as session:
        return {int(e): int(n) for e, n in session.execute(query).all()}
