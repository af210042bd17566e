"""The run manager: training runs live in their own processes, never inside a web request.

``start_run`` records the run (with the mask revision of every frame, so it can
be reproduced after masks change) and launches ``python -m db.worker RUN_ID``
detached, in its own session: closing the app or refreshing the browser neither
kills nor duplicates it. The worker is the only writer of its run's progress;
the app only reads, plus the crash check in :func:`refresh_run_states`.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from .errors import NotFound, StoreError
from .models import ACTIVE_STATUSES, FALLBACK_THRESHOLD, RUN_KINDS, RUN_STATUSES, THRESHOLD_SOURCES, Dataset, Frame, MaskRevisionRow, Run, RunRevision, utcnow
from .paths import from_stored, remove_tree, run_dir, to_stored
from .processes import (
    LOG_FILE,
    RUN_WORKER,
    create_time,
    is_worker_of,
    kill_process_group,
    process_alive,
    spawn_worker,
    start_limit,
)
from .session import database_url, home, session_scope

__all__ = [
    "FALLBACK_THRESHOLD",
    "RUN_KINDS",
    "RUN_STATUSES",
    "THRESHOLD_SOURCES",
    "STALE_AFTER",
    "WEIGHT_SUFFIXES",
    "RunInfo",
    "cancel_run",
    "delete_run",
    "get_run",
    "refresh_run_states",
    "resume_run",
    "run_log",
    "save_weights_file",
    "start_run",
    "wait_for_run",
]

#: Seconds without a heartbeat after which a live-looking run is declared failed.
STALE_AFTER = 120.0
#: TrainConfig fields the store sets itself for every run (paths, resume): not user settings, never shown.
STORE_OPTIONS = ("data_dir", "out", "checkpoint_dir", "resume")
CANCEL_FILE = "cancel"
#: File types a backbone weights file may have (Keras reads the format from the suffix).
WEIGHT_SUFFIXES = ("h5", "keras")


@dataclass(frozen=True)
class RunInfo:
    id: int
    name: str
    dataset_id: int
    dataset_name: str
    status: str
    #: "train" (a network is trained) or "lacosmic" (LA Cosmic detects; no training)
    kind: str
    config: dict[str, Any]
    #: the test evaluation's threshold; None while (or when) none was chosen on validation
    threshold: float | None
    #: "validation" (chosen on the validation frames when training ends) or "fixed"
    threshold_source: str
    backbone_weights: str | None
    precision: str | None
    #: why training computed in that arithmetic, e.g. "float32: auto, CPU has no ... AMX"
    precision_reason: str | None
    created: datetime
    started_at: datetime | None
    ended_at: datetime | None
    pid: int | None
    heartbeat: datetime | None
    run_dir: Path
    checkpoint_dir: Path | None
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    model_path: Path | None
    epochs_total: int | None
    steps_per_epoch: int | None
    current_epoch: int | None
    current_step: int | None
    epochs_run: int
    best_epoch: int | None
    best_val_loss: float | None
    attempts: int
    error: str | None
    #: what the user wrote about the run, and its tags (migration 0008)
    notes: str | None = None
    tags: tuple[str, ...] = ()
    #: why training ended: "epochs", "early stopping", "time limit", "cancelled", "error" (None: not known)
    stop_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def stopping(self) -> bool:
        """True while a cancelled run's process is still finishing its batch: shown as "cancelling"."""
        return self.active and (self.run_dir / CANCEL_FILE).exists()

    @property
    def shown_status(self) -> str:
        """The status as the pages say it: "cancelling" between the request and the process's exit."""
        return "cancelling" if self.stopping else self.status

    @property
    def evaluation_threshold(self) -> float:
        """The threshold evaluations use by default: the run's, else 0.5 (none was chosen)."""
        return FALLBACK_THRESHOLD if self.threshold is None else self.threshold

    @property
    def threshold_fallback(self) -> bool:
        """True when the run was to choose its threshold on validation frames but has none."""
        return self.threshold is None

    @property
    def trains(self) -> bool:
        """True for a training run; False for a detector that needs no training (LA Cosmic)."""
        return self.kind == "train"

    @property
    def progress(self) -> float:
        """Fraction of the planned batches (of an LA Cosmic run: frames) done, 0..1 (for a progress bar)."""
        if not self.trains:
            if self.status == "finished":
                return 1.0
            return min(1.0, (self.current_step or 0) / self.steps_per_epoch) if self.steps_per_epoch else 0.0
        if not self.epochs_total or not self.steps_per_epoch:
            return 0.0
        if not self.active:
            return min(1.0, self.epochs_run / self.epochs_total)
        done = self.epochs_run * self.steps_per_epoch + (self.current_step or 0)
        return min(1.0, done / (self.epochs_total * self.steps_per_epoch))


def _path(value: str | None) -> Path | None:
    return from_stored(value) if value else None


def run_info(row: Run, dataset_name: str) -> RunInfo:
    return RunInfo(
        id=row.id,
        name=row.name,
        dataset_id=row.dataset_id,
        dataset_name=dataset_name,
        status=row.status,
        kind=row.kind,
        config=dict(row.config),
        threshold=row.threshold,
        threshold_source=row.threshold_source,
        backbone_weights=row.backbone_weights,
        precision=row.precision,
        precision_reason=row.precision_reason,
        created=row.created,
        started_at=row.started_at,
        ended_at=row.ended_at,
        pid=row.pid,
        heartbeat=row.heartbeat,
        run_dir=from_stored(row.run_dir),
        checkpoint_dir=_path(row.checkpoint_dir),
        best_checkpoint=_path(row.best_checkpoint),
        last_checkpoint=_path(row.last_checkpoint),
        model_path=_path(row.model_path),
        epochs_total=row.epochs_total,
        steps_per_epoch=row.steps_per_epoch,
        current_epoch=row.current_epoch,
        current_step=row.current_step,
        epochs_run=row.epochs_run,
        best_epoch=row.best_epoch,
        best_val_loss=row.best_val_loss,
        attempts=row.attempts,
        error=row.error,
        notes=row.notes,
        tags=tuple(row.tags or ()),
        stop_reason=row.stop_reason,
    )


def get_run(run_id: int) -> RunInfo:
    with session_scope(write=False) as session:
        row = session.get(Run, run_id)
        if row is None:
            raise NotFound(f"run {run_id} does not exist")
        return run_info(row, session.get(Dataset, row.dataset_id).name)


def _training_options(config) -> dict[str, Any]:
    """The user's training options, checked by TrainConfig itself."""
    from segcore.trainer import TrainConfig

    values = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
    options = {k: v for k, v in values.items() if k not in STORE_OPTIONS}
    try:
        TrainConfig.from_dict({**options, "data_dir": ".", "out": "model.keras"})
    except (TypeError, ValueError) as exc:
        raise StoreError(f"invalid training configuration: {exc}") from None
    return options


def start_run(config, dataset_id: int, name: str | None = None, threshold: float | None = None) -> int:
    """Record a training run on the dataset's current masks and start it in its own process.

    Parameters
    ----------
    config : ``segcore.trainer.TrainConfig`` or a dict of its fields; ``data_dir``,
        ``out``, ``checkpoint_dir`` and ``resume`` are set by the store.
    dataset_id : the dataset to train on (train and validation splits; test for the
        final evaluation).
    name : shown in the app; default "run <id>".
    threshold : probability threshold of the evaluation on the test split; None
        (the default): the one that maximises pooled pixel F1 on the validation
        frames, chosen when training ends (``threshold_source`` "validation"; a run
        that ends before choosing one falls back to 0.5). A number is kept as given
        (``threshold_source`` "fixed").

    Returns
    -------
    The run id. The run is "queued" until its process starts.
    """
    options = _training_options(config)
    if threshold is not None:
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise StoreError(f"threshold must be a number between 0 and 1 or None, got {threshold!r}") from None
        if not 0.0 < threshold < 1.0:
            raise StoreError(f"threshold must be between 0 and 1, got {threshold}")
    run_id = record_run(
        dataset_id,
        name,
        "train",
        options,
        needs_split="train",
        threshold=threshold,
        threshold_source="validation" if threshold is None else "fixed",
        epochs_total=int(options.get("epochs", 100)),
    )
    _launch(run_id, resume=False)
    return run_id


#: How a split is named when a run needs its frames with masks.
_SPLIT_WORDS = {"train": "training", "validation": "validation", "test": "test"}


def record_run(
    dataset_id: int, name: str | None, kind: str, config: dict[str, Any], needs_split: str, **columns
) -> int:
    """Record a queued run of ``kind`` with the current mask revision of every train, validation
    and test frame (what the run works on, whatever is edited later); its folder is made afresh.

    ``needs_split``: the split that must have frames with masks (StoreError otherwise).
    ``columns``: further Run columns. Returns the run id; nothing is launched.
    """
    if kind not in RUN_KINDS:
        raise StoreError(f"a run's kind must be one of {', '.join(RUN_KINDS)}, got {kind!r}")
    with session_scope() as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None:
            raise NotFound(f"dataset {dataset_id} does not exist")
        current = (
            select(Frame.id, func.max(MaskRevisionRow.id), Frame.split)
            .join(MaskRevisionRow, MaskRevisionRow.frame_id == Frame.id)
            .where(Frame.dataset_id == dataset_id, Frame.split.in_(("train", "validation", "test")))
            .group_by(Frame.id, Frame.split)
        )
        revisions = session.execute(current).all()
        if not any(split == needs_split for _, _, split in revisions):
            raise StoreError(f"dataset {dataset.name!r} has no {_SPLIT_WORDS[needs_split]} frames with masks")
        run = Run(
            name=(name or "").strip() or "run",
            dataset_id=dataset_id,
            kind=kind,
            config=config,
            status="queued",
            **columns,
        )
        session.add(run)
        session.flush()
        if not (name or "").strip():
            run.name = f"run {run.id}"
        folder = run_dir(run.id)
        run.run_dir = to_stored(_fresh_dir(folder))
        run.checkpoint_dir = to_stored(folder / "checkpoints")
        session.add_all(RunRevision(run_id=run.id, frame_id=f, revision_id=r) for f, r, _ in revisions)
        return run.id


def _fresh_dir(folder: Path) -> Path:
    # A leftover folder of a deleted database's run must not leak into this one.
    remove_tree(folder)
    folder.mkdir(parents=True)
    return folder


def _launch(run_id: int, resume: bool) -> None:
    try:
        process = spawn_worker(run_id, run_dir(run_id), home(), database_url(), resume)
    except OSError as exc:
        _finish(run_id, "failed", error=f"could not start the training process: {exc}")
        raise StoreError(f"run {run_id}: could not start the training process: {exc}") from None
    with session_scope() as session:
        # The worker may already have recorded itself; only fill in what is missing.
        session.execute(
            update(Run)
            .where(Run.id == run_id, Run.pid.is_(None), Run.status.in_(ACTIVE_STATUSES))
            .values(pid=process.pid, process_started=create_time(process.pid))
        )


def _finish(run_id: int, status: str, error: str | None = None, only_if_pid: int | None = None) -> bool:
    """Set a final status if the run is still active (and still this pid's); True if set."""
    query = update(Run).where(Run.id == run_id, Run.status.in_(ACTIVE_STATUSES))
    if only_if_pid is not None:
        query = query.where(Run.pid == only_if_pid)
    with session_scope() as session:
        result = session.execute(query.values(status=status, error=error, ended_at=utcnow()))
        return result.rowcount > 0


def _last_log_line(run_id: int) -> str:
    text = run_log(run_id, tail=20).strip().splitlines()
    return text[-1][-300:] if text else ""


def refresh_run_states(stale_after: float = STALE_AFTER) -> list[int]:
    """Mark active runs whose process died, or whose heartbeat is stale, as failed.

    A run still "queued" has a process that is starting and does not beat yet: it gets
    :data:`~db.processes.START_ALLOWANCE` before it is judged hung. A stale run whose process
    still exists is stopped (it may be hung), so a resumed run never has two writers.
    Checkpoints are kept for ``resume_run``.

    Returns
    -------
    Ids of the runs marked failed by this call.
    """
    now = utcnow()
    with session_scope(write=False) as session:
        active = session.execute(
            select(Run.id, Run.status, Run.pid, Run.process_started, Run.heartbeat, Run.created).where(
                Run.status.in_(ACTIVE_STATUSES)
            )
        ).all()
    marked = []
    for run_id, status, pid, started, heartbeat, created in active:
        last_sign = heartbeat or created
        age = (now - last_sign).total_seconds()
        limit = start_limit(status, stale_after)
        reason = None
        if pid is None:
            if age > stale_after:
                reason = f"the training process did not start within {stale_after:.0f} s"
        elif not process_alive(pid, started, (run_id, RUN_WORKER)):
            reason = f"the training process (pid {pid}) ended without reporting: it crashed or was killed"
            last = _last_log_line(run_id)
            if last:
                reason += f"; last log line: {last}"
        elif age > limit:
            reason = (f"no heartbeat for {age:.0f} s (limit {limit:.0f} s"
                      + (", still starting" if status == "queued" else "")
                      + f"); the training process (pid {pid}) was stopped")
            if is_worker_of(pid, run_id):
                kill_process_group(pid)
        if reason and _finish(run_id, "failed", error=reason, only_if_pid=pid if pid is not None else None):
            marked.append(run_id)
    return marked


def cancel_run(run_id: int) -> RunInfo:
    """Ask a run to stop at the end of its current batch; it keeps its best checkpoint.

    A run whose process is gone (or never started) is marked cancelled at once.
    """
    run = get_run(run_id)
    if not run.active:
        raise StoreError(f"run {run_id} is {run.status}; only queued or running runs can be cancelled")
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / CANCEL_FILE).touch()
    if run.pid is None or not process_alive(run.pid, _process_started(run_id), (run_id, RUN_WORKER)):
        # Nobody left to see the file: record the outcome here.
        _finish(run_id, "cancelled", only_if_pid=run.pid)
    return get_run(run_id)


def _process_started(run_id: int) -> float | None:
    with session_scope(write=False) as session:
        return session.scalar(select(Run.process_started).where(Run.id == run_id))


def resume_run(run_id: int) -> int:
    """Continue a failed or cancelled run from its last checkpoint, on the same mask revisions."""
    refresh_run_states()
    run = get_run(run_id)
    if run.status not in ("failed", "cancelled"):
        raise StoreError(f"run {run_id} is {run.status}; only failed or cancelled runs can be resumed")
    if run.pid is not None and process_alive(run.pid, _process_started(run_id), (run_id, RUN_WORKER)):
        raise StoreError(
            f"run {run_id} is still stopping: its process (pid {run.pid}) has not exited yet; resume it in a moment"
        )
    cancel_file = run.run_dir / CANCEL_FILE
    if cancel_file.exists():
        cancel_file.unlink()
    with session_scope() as session:
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            # A fresh heartbeat: the crash check must give the new process time to start.
            .values(status="queued", error=None, ended_at=None, pid=None, process_started=None, heartbeat=utcnow(),
                    current_step=0)  # the interrupted epoch starts again from its first batch
        )
    _launch(run_id, resume=True)
    return run_id


def wait_for_run(run_id: int, timeout: float | None = None, poll: float = 0.5, stale_after: float = STALE_AFTER) -> RunInfo:
    """Block until the run is no longer queued or running (for scripts and tests)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        refresh_run_states(stale_after)
        run = get_run(run_id)
        if not run.active:
            return run
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {run.status} after {timeout} s")
        time.sleep(poll)


def run_log(run_id: int, tail: int = 200) -> str:
    """The last ``tail`` lines of the run's worker log ('' if none yet)."""
    path = run_dir(run_id) / LOG_FILE
    if not path.exists():
        return ""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 256 * 1024))
        text = handle.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-tail:])


def delete_run(run_id: int) -> None:
    """Remove a finished, failed or cancelled run with its metrics, evaluations and files."""
    with session_scope() as session:
        row = session.get(Run, run_id)
        if row is None:
            raise NotFound(f"run {run_id} does not exist")
        if row.status in ACTIVE_STATUSES:
            raise StoreError(f"run {run_id} is {row.status}; cancel it first")
        folder = from_stored(row.run_dir) if row.run_dir else None
        session.delete(row)
    remove_tree(folder)


def save_weights_file(file_name: str, data: bytes) -> Path:
    """Keep an uploaded backbone weights file under ``<COSMICS_HOME>/weights/``; its path, for
    ``TrainConfig.backbone_weights``.

    The name keeps its suffix (Keras reads the format from it); an existing file of the same
    name and size is reused, one of another size is kept and the new one gets a time stamp.
    A name not ending in a :data:`WEIGHT_SUFFIXES` suffix is a StoreError.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(file_name).name).strip("._") or "weights.h5"
    if not safe.endswith(tuple("." + s for s in WEIGHT_SUFFIXES)):
        raise StoreError(f"{file_name}: a weights file must end in .h5, .weights.h5 or .keras")
    folder = home() / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe
    if target.exists() and target.stat().st_size != len(data):
        stem, suffix = safe.split(".", 1)
        target = folder / f"{stem}_{datetime.now(timezone.utc):%Y%m%d%H%M%S}.{suffix}"
    if not target.exists():
        target.write_bytes(data)
    return target
