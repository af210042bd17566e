"""Prediction jobs: proposals from any finished run (trained or LA Cosmic) or an uploaded model,
for a whole dataset, one split (``real`` included) or chosen frames.

A job is recorded here and done by its own process (``python -m db.prediction_worker JOB_ID``),
so a browser refresh neither stops nor repeats it; the app reads its progress. Each frame's
result is a *proposal* (its own table, with the model and threshold that made it), never
ground truth: it becomes a mask only when an expert saves it, and the saved revision records
which proposal it came from (:func:`db.masks.save_mask_revision`); reading proposals is
:mod:`db.proposals`.

Files: ``<COSMICS_HOME>/predictions/<job id>/`` holds the job's log, an uploaded model, and per
frame ``<frame id>.png`` (the 0/1 proposal) and ``<frame id>.npy`` (float16 cosmic
probabilities; LA Cosmic gives masks, not probabilities, so none).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from sqlalchemy import select, update

from .errors import NotFound, StoreError
from .models import ACTIVE_STATUSES, FALLBACK_THRESHOLD, SPLITS, Dataset, Frame, PredictionJob, Run, utcnow
from .paths import from_stored, remove_tree, to_stored
from .processes import (
    LOG_FILE,
    create_time,
    is_worker_of,
    kill_process_group,
    process_alive,
    spawn_worker,
    start_limit,
)
from .session import database_url, home, session_scope

__all__ = [
    "PREDICTION_WORKER",
    "PredictionInfo",
    "cancel_prediction",
    "prediction_models",
    "get_prediction",
    "list_predictions",
    "prediction_log",
    "refresh_prediction_states",
    "start_prediction",
    "wait_for_prediction",
]

PREDICTION_WORKER = "db.prediction_worker"
CANCEL_FILE = "cancel"
#: Seconds without a heartbeat after which a live-looking job is declared failed.
STALE_AFTER = 120.0
UPLOADED_MODEL = "model.keras"


@dataclass(frozen=True)
class PredictionInfo:
    id: int
    dataset_id: int | None  # None once the dataset was deleted
    dataset_name: str
    run_id: int | None
    #: "train" (a training run's model), "lacosmic" (an LA Cosmic run's parameters) or "file" (uploaded)
    model_source: str
    model_name: str
    model_path: Path | None
    params: dict[str, Any] | None
    threshold: float | None  # None until the worker read an uploaded model's own
    views: int  # views of each frame the network averaged (1: the frame as it is)
    scope: str  # "frame", a split name, or "dataset"
    frame_ids: tuple[int, ...]
    status: str
    frames_done: int
    precision: str | None
    created: datetime
    started_at: datetime | None
    ended_at: datetime | None
    pid: int | None
    heartbeat: datetime | None
    error: str | None
    folder: Path

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def frames_total(self) -> int:
        return len(self.frame_ids)

    @property
    def progress(self) -> float:
        if self.status == "finished":
            return 1.0
        return min(1.0, self.frames_done / self.frames_total) if self.frame_ids else 0.0


def _info(row: PredictionJob) -> PredictionInfo:
    return PredictionInfo(
        id=row.id,
        dataset_id=row.dataset_id,
        dataset_name=row.dataset_name,
        run_id=row.run_id,
        model_source=row.model_source,
        model_name=row.model_name,
        model_path=from_stored(row.model_path) if row.model_path else None,
        params=dict(row.params) if row.params else None,
        threshold=row.threshold,
        views=row.views,
        scope=row.scope,
        frame_ids=tuple(row.frame_ids),
        status=row.status,
        frames_done=row.frames_done,
        precision=row.precision,
        created=row.created,
        started_at=row.started_at,
        ended_at=row.ended_at,
        pid=row.pid,
        heartbeat=row.heartbeat,
        error=row.error,
        folder=from_stored(row.folder),
    )


def prediction_dir(job_id: int) -> Path:
    return home() / "predictions" / str(job_id)


def _run_model(session, run: Run, threshold) -> dict[str, Any]:
    """What a job records about a run's model; StoreError when the run has none to predict with."""
    if run.status in ACTIVE_STATUSES:
        raise StoreError(f"run {run.id} ({run.name}) is still {run.status}; predict with it once it has finished")
    if run.kind == "lacosmic":
        from segcore.evaluator import DETECTOR_THRESHOLD

        from .classical import lacosmic_params

        if run.status != "finished":
            raise StoreError(f"run {run.id} ({run.name}) is an LA Cosmic run that {run.status}: it chose no parameters")
        if threshold is not None and float(threshold) != DETECTOR_THRESHOLD:
            raise StoreError(f"run {run.id} is an LA Cosmic run: its masks have no probability threshold to set")
        return dict(model_source="lacosmic", model_name=f"{run.name} (LA Cosmic)", model_path=None,
                    params=lacosmic_params(run.config).to_dict(), threshold=DETECTOR_THRESHOLD)
    from .evaluations import _model_path

    try:
        path = _model_path(run, "best")
    except StoreError:
        raise StoreError(f"run {run.id} ({run.name}) has no model file to predict with (it {run.status} "
                         "before saving one, or its files were removed)") from None
    if threshold is None:
        threshold = FALLBACK_THRESHOLD if run.threshold is None else run.threshold
    return dict(model_source="train", model_name=run.name, model_path=to_stored(path), params=None,
                threshold=_checked_threshold(threshold))


def _checked_views(views) -> int:
    from segcore.inference import check_views

    try:
        return check_views(views)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


def _checked_threshold(threshold) -> float:
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise StoreError(f"threshold must be a number between 0 and 1, got {threshold!r}") from None
    if not 0.0 < value < 1.0:
        raise StoreError(f"threshold must be between 0 and 1, got {threshold!r}")
    return value


def _model_file_bytes(model_file) -> tuple[str, bytes | Path]:
    """(name, bytes or path) of an uploaded model: a path, or ``(file name, bytes)`` as from an uploader."""
    if isinstance(model_file, (str, os.PathLike)):
        path = Path(model_file)
        if not path.is_file():
            raise StoreError(f"{path}: no such model file")
        name, content = path.name, path
    else:
        name, content = model_file
    if not str(name).endswith(".keras"):
        raise StoreError(f"{name}: not a Keras model file (a model is saved as .keras)")
    return str(name), content


def _frames_to_predict(session, dataset: Dataset, split: str | None, frame_ids: Sequence[int] | None) -> tuple[str, list[int]]:
    if frame_ids is not None:
        ids = [int(i) for i in frame_ids]
        found = set(session.scalars(select(Frame.id).where(Frame.id.in_(ids), Frame.dataset_id == dataset.id)))
        missing = [i for i in ids if i not in found]
        if missing:
            raise StoreError(f"frame(s) {', '.join(map(str, missing))} are not in dataset {dataset.name!r}")
        if not ids:
            raise StoreError("no frames given to predict on")
        return "frame", list(dict.fromkeys(ids))
    query = select(Frame.id).where(Frame.dataset_id == dataset.id)
    if split is not None:
        if split not in SPLITS:
            raise StoreError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        query = query.where(Frame.split == split)
    ids = list(session.scalars(query.order_by(Frame.split, Frame.name)))
    if not ids:
        where = f"the {split} split of " if split else ""
        raise StoreError(f"no frames in {where}dataset {dataset.name!r} to predict on")
    return split or "dataset", ids


#: What proposals of LA Cosmic without a run say made them.
BUILT_IN_LACOSMIC = "LA Cosmic (built in, no run)"


def start_prediction(
    dataset_id: int,
    run_id: int | None = None,
    *,
    model_file=None,
    split: str | None = None,
    frame_ids: Sequence[int] | None = None,
    threshold: float | None = None,
    lacosmic: Mapping[str, Any] | None = None,
    views: int = 1,
) -> int:
    """Record a prediction job and start it in its own process.

    Parameters
    ----------
    dataset_id : the dataset whose frames get proposals (any dataset: a model trained on one
        predicts on another, frames of any size).
    run_id : a run that is not active: a training run with a model file, or a finished LA Cosmic run.
    model_file : instead of a run, a ``.keras`` file (path, or ``(file name, bytes)``); copied
        into the job's folder.
    lacosmic : instead of a run or a file, LA Cosmic with these parameters (``{}``: its defaults,
        the noise measured on each frame), so a new user gets proposals before any run exists.
    split : only this split's frames ("train", "validation", "test" or "real").
    frame_ids : only these frames (e.g. the frame on screen); otherwise the split, or the dataset.
    threshold : probability threshold of the proposals; default the run's (else 0.5), an uploaded
        model's own (else 0.5); LA Cosmic's masks have none (None or 0.5 only).
    views : the network's probabilities averaged over 1, 2, 4 or 8 views of each frame (flips and
        transposes: a little better, that many times slower); LA Cosmic has one view.

    Returns
    -------
    The job id; ``get_prediction(id)`` tells its progress. Bad input (no such run, a run without
    a model, a file that is not ``.keras``, no frames) raises StoreError before anything is recorded.
    """
    if sum(x is not None for x in (run_id, model_file, lacosmic)) != 1:
        raise StoreError("predict with a run, a model file or LA Cosmic's parameters (one of them)")
    views = _checked_views(views)
    with session_scope() as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None:
            raise NotFound(f"dataset {dataset_id} does not exist")
        if run_id is not None:
            run = session.get(Run, run_id)
            if run is None:
                raise NotFound(f"run {run_id} does not exist")
            model = _run_model(session, run, threshold)
            upload = None
        elif lacosmic is not None:
            from segcore.evaluator import DETECTOR_THRESHOLD

            from .classical import _checked_params

            if threshold is not None and float(threshold) != DETECTOR_THRESHOLD:
                raise StoreError("LA Cosmic's masks have no probability threshold to set")
            upload = None
            model = dict(model_source="lacosmic", model_name=BUILT_IN_LACOSMIC, model_path=None,
                         params=_checked_params(lacosmic).to_dict(), threshold=DETECTOR_THRESHOLD)
        else:
            upload = _model_file_bytes(model_file)
            model = dict(model_source="file", model_name=upload[0], model_path=None, params=None,
                         threshold=None if threshold is None else _checked_threshold(threshold))
        if views != 1 and model["model_source"] == "lacosmic":
            raise StoreError("LA Cosmic looks at each frame once: views must be 1")
        scope, ids = _frames_to_predict(session, dataset, split, frame_ids)
        job = PredictionJob(dataset_id=dataset.id, dataset_name=dataset.name, run_id=run_id, scope=scope,
                            frame_ids=ids, status="queued", frames_done=0, views=views, **model)
        session.add(job)
        session.flush()
        folder = prediction_dir(job.id)
        remove_tree(folder)  # a leftover of a deleted database's job
        folder.mkdir(parents=True)
        job.folder = to_stored(folder)
        if upload is not None:
            target = folder / UPLOADED_MODEL
            if isinstance(upload[1], Path):
                shutil.copyfile(upload[1], target)
            else:
                target.write_bytes(upload[1])
            job.model_path = to_stored(target)
        job_id = job.id
    _launch(job_id)
    return job_id


def _launch(job_id: int) -> None:
    try:
        process = spawn_worker(job_id, prediction_dir(job_id), home(), database_url(), False, module=PREDICTION_WORKER)
    except OSError as exc:
        finish_prediction(job_id, "failed", error=f"could not start the prediction process: {exc}")
        raise StoreError(f"prediction {job_id}: could not start the prediction process: {exc}") from None
    with session_scope() as session:
        session.execute(
            update(PredictionJob)
            .where(PredictionJob.id == job_id, PredictionJob.pid.is_(None), PredictionJob.status.in_(ACTIVE_STATUSES))
            .values(pid=process.pid, process_started=create_time(process.pid))
        )


def finish_prediction(job_id: int, status: str, error: str | None = None, only_if_pid: int | None = None) -> bool:
    """Set a final status if the job is still active (and still this pid's); True if set."""
    query = update(PredictionJob).where(PredictionJob.id == job_id, PredictionJob.status.in_(ACTIVE_STATUSES))
    if only_if_pid is not None:
        query = query.where(PredictionJob.pid == only_if_pid)
    with session_scope() as session:
        return session.execute(query.values(status=status, error=error, ended_at=utcnow())).rowcount > 0


def get_prediction(job_id: int) -> PredictionInfo:
    with session_scope(write=False) as session:
        row = session.get(PredictionJob, job_id)
        if row is None:
            raise NotFound(f"prediction job {job_id} does not exist")
        return _info(row)


def list_predictions(dataset_id: int | None = None) -> list[PredictionInfo]:
    """Prediction jobs, newest first (of one dataset, or all)."""
    query = select(PredictionJob).order_by(PredictionJob.id.desc())
    if dataset_id is not None:
        query = query.where(PredictionJob.dataset_id == dataset_id)
    with session_scope(write=False) as session:
        return [_info(row) for row in session.scalars(query)]


def cancel_prediction(job_id: int) -> PredictionInfo:
    """Ask a job to stop after the frame it is on; the proposals made so far are kept."""
    job = get_prediction(job_id)
    if not job.active:
        raise StoreError(f"prediction job {job_id} is {job.status}; only queued or running jobs can be cancelled")
    job.folder.mkdir(parents=True, exist_ok=True)
    (job.folder / CANCEL_FILE).touch()
    if job.pid is None or not process_alive(job.pid, _process_started(job_id), (job_id, PREDICTION_WORKER)):
        finish_prediction(job_id, "cancelled", only_if_pid=job.pid)
    return get_prediction(job_id)


def _process_started(job_id: int) -> float | None:
    with session_scope(write=False) as session:
        return session.scalar(select(PredictionJob.process_started).where(PredictionJob.id == job_id))


def refresh_prediction_states(stale_after: float = STALE_AFTER) -> list[int]:
    """Mark active jobs whose process died, or whose heartbeat is stale, as failed; their ids.

    A job still "queued" has a process that is starting and does not beat yet: it gets
    :data:`~db.processes.START_ALLOWANCE` from its creation before it is judged hung.
    """
    now = utcnow()
    with session_scope(write=False) as session:
        active = session.execute(
            select(PredictionJob.id, PredictionJob.status, PredictionJob.pid, PredictionJob.process_started,
                   PredictionJob.heartbeat, PredictionJob.created).where(PredictionJob.status.in_(ACTIVE_STATUSES))
        ).all()
    marked = []
    for job_id, status, pid, started, heartbeat, created in active:
        age = (now - (heartbeat or created)).total_seconds()
        limit = start_limit(status, stale_after)
        reason = None
        if pid is None:
            if age > stale_after:
                reason = f"the prediction process did not start within {stale_after:.0f} s"
        elif not process_alive(pid, started, (job_id, PREDICTION_WORKER)):
            reason = f"the prediction process (pid {pid}) ended without reporting: it crashed or was killed"
        elif age > limit:
            reason = (f"no heartbeat for {age:.0f} s (limit {limit:.0f} s"
                      + (", still starting" if status == "queued" else "")
                      + f"); the prediction process (pid {pid}) was stopped")
            if is_worker_of(pid, job_id, PREDICTION_WORKER):
                kill_process_group(pid)
        if reason and finish_prediction(job_id, "failed", error=reason, only_if_pid=pid):
            marked.append(job_id)
    return marked


def wait_for_prediction(job_id: int, timeout: float | None = None, poll: float = 0.3) -> PredictionInfo:
    """Block until the job is no longer queued or running (for scripts and tests)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        refresh_prediction_states()
        job = get_prediction(job_id)
        if not job.active:
            return job
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"prediction job {job_id} still {job.status} after {timeout} s")
        time.sleep(poll)


def prediction_log(job_id: int, tail: int = 100) -> str:
    path = prediction_dir(job_id) / LOG_FILE
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-tail:])


def prediction_models() -> list:
    """The runs of every dataset that can predict (newest first): training runs that are not
    active and have a model file, and finished LA Cosmic runs; as ``RunInfo``."""
    from .runs import get_run

    with session_scope(write=False) as session:
        runs = session.scalars(select(Run).where(Run.status.not_in(ACTIVE_STATUSES)).order_by(Run.id.desc())).all()
        usable = []
        for run in runs:
            try:
                _run_model(session, run, None)
            except StoreError:
                continue
            usable.append(run.id)
    return [get_run(run_id) for run_id in usable]
