"""What the app shows: runs, their epoch curves, evaluations, per-image results, comparisons.

Everything here only reads, in short transactions, and returns dataclasses or
pandas DataFrames.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import func, select

import json
from pathlib import Path

from segcore import io
from segcore.curves import SplitCurves
from segcore.evaluator import POOLED_KEYS
from segcore.metrics import DERIVED_SCORES, PER_IMAGE_SCORES, SCORE_COLUMNS, derived_scores

from .errors import NotFound, StoreError
from .evaluations import EvaluationInfo, evaluation_info
from .models import Dataset, EpochMetric, Evaluation, EvaluationResultRow, Frame, MaskRevisionRow, Run, RunRevision
from .paths import from_stored
from .runs import RunInfo, run_info
from .session import session_scope

__all__ = [
    "EvaluationInfo",
    "compare_per_image",
    "cleaned_frame",
    "compare_runs",
    "dataset_evaluations",
    "epoch_metrics",
    "evaluation_curves",
    "get_evaluation",
    "latest_evaluation",
    "list_evaluations",
    "list_runs",
    "per_image_results",
    "prediction_mask",
    "run_revisions",
    "runs_table",
]

#: Columns of epoch_metrics first, in this order; any other metric follows alphabetically.
EPOCH_COLUMNS = (
    "loss",
    "val_loss",
    "accuracy",
    "val_accuracy",
    "precision",
    "val_precision",
    "recall",
    "val_recall",
    "specificity",
    "val_specificity",
    "iou",
    "val_iou",
    "learning_rate",
)


def list_runs(dataset_id: int | None = None) -> list[RunInfo]:
    """Runs, newest first (of one dataset, or all)."""
    with session_scope(write=False) as session:
        query = select(Run, Dataset.name).join(Dataset, Dataset.id == Run.dataset_id).order_by(Run.id.desc())
        if dataset_id is not None:
            query = query.where(Run.dataset_id == dataset_id)
        return [run_info(run, name) for run, name in session.execute(query).all()]


def _latest_evaluations(session, run_ids: list[int], split: str) -> dict[int, Evaluation]:
    if not run_ids:
        return {}
    latest = (
        select(func.max(Evaluation.id))
        .where(Evaluation.run_id.in_(run_ids), Evaluation.split == split)
        .group_by(Evaluation.run_id)
    )
    rows = session.scalars(select(Evaluation).where(Evaluation.id.in_(latest)))
    return {row.run_id: row for row in rows}


def _mean(evaluation: Evaluation | None, metric: str) -> float | None:
    if evaluation is None:
        return None
    return (evaluation.summary.get(metric) or {}).get("mean")


def runs_table(dataset_id: int | None = None) -> pd.DataFrame:
    """One row per run for the runs page, with the latest test evaluation's mean IoU and count score
    (``kind`` "train" or "lacosmic"; ``epochs`` None for an LA Cosmic run)."""
    runs = list_runs(dataset_id)
    with session_scope(write=False) as session:
        latest = _latest_evaluations(session, [r.id for r in runs], "test")
    records = []
    for r in runs:
        end = r.ended_at if r.ended_at else (None if r.started_at is None else r.heartbeat)
        records.append(
            {
                "run_id": r.id,
                "name": r.name,
                "dataset": r.dataset_name,
                "status": r.status,
                "kind": r.kind,
                "epochs": None if not r.trains else f"{r.epochs_run}/{r.epochs_total}" if r.epochs_total else str(r.epochs_run),
                "best_epoch": None if r.best_epoch is None else r.best_epoch + 1,
                "best_val_loss": r.best_val_loss,
                "test_iou": _mean(latest.get(r.id), "iou"),
                "test_count_score": _mean(latest.get(r.id), "count_score"),
                "threshold": r.threshold,
                "threshold_source": r.threshold_source,
                "backbone_weights": r.backbone_weights,
                "precision": r.precision,
                "created": r.created,
                "duration_s": (end - r.started_at).total_seconds() if end and r.started_at else None,
                "error": (r.error or "").splitlines()[0] if r.error else None,
            }
        )
    columns = ["run_id", "name", "dataset", "status", "kind", "epochs", "best_epoch", "best_val_loss", "test_iou",
               "test_count_score", "threshold", "threshold_source", "backbone_weights", "precision", "created",
               "duration_s", "error"]
    return pd.DataFrame.from_records(records, columns=columns)


def epoch_metrics(run_id: int) -> pd.DataFrame:
    """One row per finished epoch (numbered from 0, as Keras does), one column per metric."""
    with session_scope(write=False) as session:
        if session.get(Run, run_id) is None:
            raise NotFound(f"run {run_id} does not exist")
        rows = session.execute(
            select(EpochMetric.epoch, EpochMetric.metric, EpochMetric.value).where(EpochMetric.run_id == run_id)
        ).all()
    if not rows:
        return pd.DataFrame(columns=["epoch", *[c for c in EPOCH_COLUMNS]])
    long = pd.DataFrame(rows, columns=["epoch", "metric", "value"])
    wide = long.pivot(index="epoch", columns="metric", values="value").sort_index().astype(float)
    ordered = [c for c in EPOCH_COLUMNS if c in wide.columns] + sorted(c for c in wide.columns if c not in EPOCH_COLUMNS)
    wide = wide[ordered].reset_index()
    wide.columns.name = None
    return wide


def _evaluation_rows(session, query) -> list[EvaluationInfo]:
    evaluations = list(session.scalars(query))
    counts = dict(
        session.execute(
            select(EvaluationResultRow.evaluation_id, func.count(EvaluationResultRow.id))
            .where(EvaluationResultRow.evaluation_id.in_([e.id for e in evaluations]))
            .group_by(EvaluationResultRow.evaluation_id)
        ).all()
    ) if evaluations else {}
    return [evaluation_info(e, int(counts.get(e.id, 0))) for e in evaluations]


def list_evaluations(run_id: int | None = None) -> list[EvaluationInfo]:
    """Evaluations, newest first (of one run, or all)."""
    with session_scope(write=False) as session:
        query = select(Evaluation).order_by(Evaluation.id.desc())
        if run_id is not None:
            query = query.where(Evaluation.run_id == run_id)
        return _evaluation_rows(session, query)


def latest_evaluation(run_id: int, split: str | None = None) -> EvaluationInfo | None:
    """The newest evaluation of a run (on ``split`` when given), or None."""
    with session_scope(write=False) as session:
        query = select(Evaluation).where(Evaluation.run_id == run_id).order_by(Evaluation.id.desc()).limit(1)
        if split is not None:
            query = query.where(Evaluation.split == split)
        found = _evaluation_rows(session, query)
    return found[0] if found else None


def dataset_evaluations(dataset_id: int) -> list[tuple[RunInfo, EvaluationInfo]]:
    """(run, evaluation) of every evaluation of the dataset's runs, newest evaluation first."""
    runs = {r.id: r for r in list_runs(dataset_id)}
    with session_scope(write=False) as session:
        evaluations = _evaluation_rows(
            session, select(Evaluation).where(Evaluation.run_id.in_(list(runs))).order_by(Evaluation.id.desc())
        ) if runs else []
    return [(runs[e.run_id], e) for e in evaluations]


def get_evaluation(evaluation_id: int) -> EvaluationInfo:
    with session_scope(write=False) as session:
        found = _evaluation_rows(session, select(Evaluation).where(Evaluation.id == evaluation_id))
    if not found:
        raise NotFound(f"evaluation {evaluation_id} does not exist")
    return found[0]


def per_image_results(evaluation_id: int) -> pd.DataFrame:
    """One row per image: every metric, true and predicted cosmic counts, the predicted mask's path,
    and the scores that follow from them (``segcore.metrics.DERIVED_SCORES``: object_f1, count_error,
    abs_count_error)."""
    with session_scope(write=False) as session:
        if session.get(Evaluation, evaluation_id) is None:
            raise NotFound(f"evaluation {evaluation_id} does not exist")
        rows = session.scalars(
            select(EvaluationResultRow).where(EvaluationResultRow.evaluation_id == evaluation_id).order_by(EvaluationResultRow.image)
        ).all()
    columns = ["result_id", "image", "frame_id", "revision_id", *PER_IMAGE_SCORES, "true_count", "pred_count",
               "prediction_path"]
    records = [
        {
            "result_id": r.id,
            "image": r.image,
            "frame_id": r.frame_id,
            "revision_id": r.revision_id,
            **{m: getattr(r, m) for m in PER_IMAGE_SCORES},
            "true_count": r.true_count,
            "pred_count": r.pred_count,
            "prediction_path": str(from_stored(r.prediction_path)) if r.prediction_path else None,
        }
        for r in rows
    ]
    table = pd.DataFrame.from_records(records, columns=columns)
    table[list(PER_IMAGE_SCORES)] = table[list(PER_IMAGE_SCORES)].astype(float)  # None -> NaN
    derived = derived_scores(table["object_precision"], table["object_recall"], table["true_count"], table["pred_count"])
    for name in DERIVED_SCORES:
        table[name] = derived[name]
    return table


def evaluation_curves(evaluation_id: int) -> SplitCurves | None:
    """The split's pixel histogram and object curve (``segcore.curves.SplitCurves``); None for an
    evaluation stored before curves were kept, or whose file is gone."""
    path = get_evaluation(evaluation_id).curves_path
    try:
        return SplitCurves.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError):
        return None


def cleaned_frame(result_id: int) -> tuple[str, bytes]:
    """An evaluated frame with its predicted cosmics replaced from their surroundings
    (``segcore.postprocess.clean_frame``), as a file in the frame's own format and pixel type:
    (the frame's file name, its bytes)."""
    import tempfile

    from segcore.postprocess import clean_frame

    with session_scope(write=False) as session:
        row = session.get(EvaluationResultRow, result_id)
        if row is None:
            raise NotFound(f"evaluation result {result_id} does not exist")
        frame = session.get(Frame, row.frame_id) if row.frame_id is not None else None
        if frame is None:
            raise NotFound(f"evaluation result {result_id}: its frame is no longer stored")
        frame_file, name = from_stored(frame.path), frame.name
    raw = io.read_raw(frame_file)
    # A detector's invalid pixels (gaps, bad pixels) stay as they are and never fill a cosmic.
    cleaned = clean_frame(raw, prediction_mask(result_id), io.read_frame_and_invalid(frame_file)[1])
    name = io.writable_frame_name(name)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        io.write_frame(path, cleaned)
        return name, path.read_bytes()


def prediction_mask(result_id: int) -> np.ndarray:
    """The predicted mask of one evaluated image, as bool (H, W)."""
    with session_scope(write=False) as session:
        row = session.get(EvaluationResultRow, result_id)
        if row is None:
            raise NotFound(f"evaluation result {result_id} does not exist")
        if not row.prediction_path:
            raise NotFound(f"evaluation result {result_id} has no stored prediction")
        path = from_stored(row.prediction_path)
    return io.read_mask(path)


def compare_runs(run_ids, split: str = "test", evaluation_ids: dict[int, int] | None = None) -> pd.DataFrame:
    """One row per run: its latest evaluation on ``split`` (mean of each metric, pooled pixel scores),
    or the evaluation ``evaluation_ids`` names for it (run id -> evaluation id; StoreError for one of
    another run or split)."""
    run_ids = [int(r) for r in run_ids]
    with session_scope(write=False) as session:
        runs = {r.id: r for r in session.scalars(select(Run).where(Run.id.in_(run_ids)))}
        latest = _latest_evaluations(session, run_ids, split)
        for run_id, evaluation_id in (evaluation_ids or {}).items():
            chosen = session.get(Evaluation, int(evaluation_id))
            if chosen is None or chosen.run_id != int(run_id) or chosen.split != split:
                raise StoreError(f"evaluation {evaluation_id} is not an evaluation of run {run_id} on the {split} split")
            latest[int(run_id)] = chosen
    missing = [r for r in run_ids if r not in runs]
    if missing:
        raise NotFound(f"run {missing[0]} does not exist")
    records = []
    for run_id in run_ids:
        run, evaluation = runs[run_id], latest.get(run_id)
        record = {
            "run_id": run_id,
            "name": run.name,
            "status": run.status,
            "kind": run.kind,
            "backbone_weights": run.backbone_weights,
            "training_precision": run.precision,
            "best_val_loss": run.best_val_loss,
            "run_threshold": run.threshold,
            "threshold_source": run.threshold_source,
            "evaluation_id": evaluation.id if evaluation else None,
            "threshold": evaluation.threshold if evaluation else None,
            "evaluation_precision": evaluation.precision if evaluation else None,
        }
        record["dilation"] = int((evaluation.pooled or {}).get("dilation", 0) or 0) if evaluation else None
        for metric in SCORE_COLUMNS:
            record[metric] = _mean(evaluation, metric)
        for key in POOLED_KEYS:
            record[f"pooled_{key}"] = (evaluation.pooled or {}).get(key) if evaluation else None
        records.append(record)
    return pd.DataFrame.from_records(records)


def compare_per_image(evaluation_ids, metric: str = "iou") -> pd.DataFrame:
    """Images as rows, one column per evaluation (named ``run <id> / eval <id>``) holding ``metric``."""
    if metric not in SCORE_COLUMNS:
        raise ValueError(f"unknown metric {metric!r}")
    columns = {}
    for evaluation_id in evaluation_ids:
        info = get_evaluation(evaluation_id)
        table = per_image_results(evaluation_id).set_index("image")[metric]
        columns[f"run {info.run_id} / eval {evaluation_id}"] = table
    frame = pd.DataFrame(columns)
    frame.index.name = "image"
    return frame.reset_index()


def run_revisions(run_id: int) -> pd.DataFrame:
    """The mask revision of every frame the run used, and whether the frame's mask changed since."""
    with session_scope(write=False) as session:
        if session.get(Run, run_id) is None:
            raise NotFound(f"run {run_id} does not exist")
        current = (
            select(MaskRevisionRow.frame_id, func.max(MaskRevisionRow.id).label("current_id"))
            .group_by(MaskRevisionRow.frame_id)
            .subquery()
        )
        rows = session.execute(
            select(Frame.id, Frame.split, Frame.name, RunRevision.revision_id, current.c.current_id)
            .join(RunRevision, RunRevision.frame_id == Frame.id)
            .join(current, current.c.frame_id == Frame.id)
            .where(RunRevision.run_id == run_id)
            .order_by(Frame.split, Frame.name)
        ).all()
    table = pd.DataFrame(rows, columns=["frame_id", "split", "name", "revision_id", "current_revision_id"])
    table["changed_since"] = table["revision_id"] != table["current_revision_id"]
    return table
