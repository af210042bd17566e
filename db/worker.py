"""The run process: ``python -m db.worker RUN_ID [--resume]``.

Started by :func:`db.runs.start_run`. It exports the run's recorded mask
revisions into ``<run>/data`` in the original layout, trains through
``segcore.trainer.train`` with a listener that writes progress to the store,
stores the threshold training chose on the validation frames (for a run whose
threshold was not fixed), evaluates the best model on the test split at the
run's threshold, and records how it ended. An LA Cosmic run (started by
:func:`db.classical.start_lacosmic_run`) detects instead of training
(:func:`db.classical.detect_with_lacosmic`). Every
write is its own short transaction, so the app can read at any time.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import psutil
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import OperationalError

from segcore import data as segdata
from segcore import formats
from segcore.listeners import CancelToken, ConsoleProgress, TrainingEnd, TrainingListener, TrainingStart

from .datasets import SPLIT_FOLDERS
from .errors import StoreUnavailable
from .masks import copy_revision_file
from .models import ACTIVE_STATUSES, EpochMetric, Frame, MaskRevisionRow, Run, RunRevision, utcnow
from .paths import from_stored, remove_tree, run_dir, to_stored
from .runs import CANCEL_FILE, _finish
from .session import init_db, session_scope

#: Least seconds between two heartbeats written from batch ends.
BATCH_HEARTBEAT_SECONDS = 5.0
#: Heartbeat of the process itself, also during data export, validation and evaluation.
PROCESS_HEARTBEAT_SECONDS = 10.0
_WRITE_RETRIES = 5


def _write(statement_factory, what: str, retries: int = _WRITE_RETRIES) -> None:
    """Run write statements in one short transaction, retrying a busy database a few times.

    Progress must never kill training: after the last retry the error is logged.
    """
    for attempt in range(retries):
        try:
            with session_scope() as session:
                statement_factory(session)
            return
        except (OperationalError, StoreUnavailable) as exc:
            if attempt == retries - 1:
                print(f"could not record {what}: {exc}", file=sys.stderr, flush=True)
                return
            time.sleep(0.2 * 2**attempt)


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


class StoreListener(TrainingListener):
    """Writes a run's progress to the store: heartbeat, position, epoch metrics, checkpoints."""

    def __init__(self, run_id: int, checkpoint_dir: Path, heartbeat_seconds: float = BATCH_HEARTBEAT_SECONDS):
        self.run_id = run_id
        self.checkpoint_dir = Path(checkpoint_dir)
        self.heartbeat_seconds = heartbeat_seconds
        self._last_beat = 0.0

    def _update(self, what: str, **values) -> None:
        _write(lambda s: s.execute(update(Run).where(Run.id == self.run_id).values(**values)), what)

    def on_train_begin(self, start: TrainingStart) -> None:
        self._update(
            "training start",
            backbone_weights=start.backbone_weights,
            precision=start.precision,
            precision_reason=start.precision_reason or None,
            epochs_total=start.epochs,
            steps_per_epoch=start.steps_per_epoch,
            current_epoch=start.initial_epoch,
            current_step=0,
            heartbeat=utcnow(),
        )

    def on_epoch_begin(self, epoch: int) -> None:
        self._update("epoch start", current_epoch=epoch, current_step=0, heartbeat=utcnow())

    def on_batch_end(self, epoch: int, step: int, steps: int, logs: dict[str, float]) -> None:
        now = time.monotonic()
        if now - self._last_beat >= self.heartbeat_seconds:
            self._last_beat = now
            self._update("heartbeat", current_epoch=epoch, current_step=step, heartbeat=utcnow())

    def _checkpoints(self) -> dict[str, str]:
        found = {}
        for column, name in (("best_checkpoint", "best.keras"), ("last_checkpoint", "last.keras")):
            path = self.checkpoint_dir / name
            if path.exists():
                found[column] = to_stored(path)
        return found

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        watched = logs.get("val_loss", logs.get("loss"))

        def write(session):
            # A resumed run may repeat an epoch that was cut short: its rows are replaced.
            session.execute(delete(EpochMetric).where(EpochMetric.run_id == self.run_id, EpochMetric.epoch == epoch))
            session.add_all(
                EpochMetric(run_id=self.run_id, epoch=epoch, metric=name, value=_finite(value))
                for name, value in sorted(logs.items())
            )
            session.execute(
                update(Run)
                .where(Run.id == self.run_id)
                .values(epochs_run=epoch + 1, heartbeat=utcnow(), **self._checkpoints())
            )
            if watched is not None and math.isfinite(watched):
                session.execute(
                    update(Run)
                    .where(Run.id == self.run_id, or_(Run.best_val_loss.is_(None), Run.best_val_loss > watched))
                    .values(best_epoch=epoch, best_val_loss=float(watched))
                )

        _write(write, f"epoch {epoch} metrics")

    def on_train_end(self, end: TrainingEnd) -> None:
        values = dict(self._checkpoints(), epochs_run=end.epochs_run, heartbeat=utcnow(), stop_reason=end.stop_reason)
        if end.backbone_weights and end.backbone_weights != "unknown":
            values["backbone_weights"] = end.backbone_weights
        if end.best_epoch is not None:
            values.update(best_epoch=end.best_epoch, best_val_loss=_finite(end.best_val_loss))
        if end.model_path:
            values["model_path"] = to_stored(end.model_path)
        self._update("training end", **values)


class _Heartbeat:
    """Beats from a thread while the process lives, also in phases without batches."""

    def __init__(self, run_id: int, seconds: float = PROCESS_HEARTBEAT_SECONDS, table=Run):
        # ``table``: Run, or a prediction job's table, whose rows beat the same way.
        self.run_id, self.seconds, self.table = run_id, seconds, table
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds):
            _write(
                lambda s: s.execute(update(self.table).where(self.table.id == self.run_id).values(heartbeat=utcnow())),
                "heartbeat",
                retries=1,
            )

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


def export_training_data(run_id: int, target: Path) -> Path:
    """Write the run's frames and recorded mask revisions in the original layout.

    Frames and masks are hard-linked where possible (neither is ever modified in
    place), so this costs no disk space on the same file system. A frame of a stack
    (an address ``FILE::/dataset#i``) is written as a file of its own under its frame
    name, its pixels and invalid pixels as stored (``segcore.formats.extract_frame``).
    A frame of a size in which the dataset has hot pixels (:func:`db.datasets.dataset_hot_pixels`)
    is written as ``<stem>.npy`` with them filled, as its proposals and evaluations see it: the
    network then never learns that a lone bright pixel is no cosmic.
    """
    from segcore import io
    from segcore.hotpixels import hot_mask

    from .datasets import dataset_hot_pixels

    remove_tree(target)
    with session_scope(write=False) as session:
        rows = session.execute(
            select(Frame.split, Frame.name, Frame.stem, Frame.path, MaskRevisionRow.path, Frame.height, Frame.width)
            .join(RunRevision, RunRevision.frame_id == Frame.id)
            .join(MaskRevisionRow, MaskRevisionRow.id == RunRevision.revision_id)
            .where(RunRevision.run_id == run_id)
        ).all()
        dataset_id = session.get(Run, run_id).dataset_id
    hot = {} if dataset_id is None else dataset_hot_pixels(dataset_id)
    for split, name, stem, frame_path, mask_path, height, width in rows:
        folder = SPLIT_FOLDERS[split]
        if hot_mask(hot, (height, width)) is not None:
            (target / folder).mkdir(parents=True, exist_ok=True)
            np.save(target / folder / f"{stem}.npy", io.read_frame_and_invalid(from_stored(frame_path), hot)[0])
        elif formats.is_address(frame_path):
            formats.extract_frame(from_stored(frame_path), target / folder / name)
        else:
            copy_revision_file(from_stored(frame_path), target / folder / name)
        copy_revision_file(from_stored(mask_path), target / segdata.annotation_dir(folder) / f"{stem}.png")
    return target


def _traceback_excerpt(exc: BaseException, lines: int = 12) -> str:
    """The header and the innermost ``lines`` lines of the exception's own traceback (not the ones it chains)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, chain=False)).rstrip().splitlines()
    return "\n".join(text[:1] + text[1:][-lines:])[-4000:]


def _claim(run_id: int) -> dict | None:
    """Mark the run running under this process; None if it should not run."""
    folder = run_dir(run_id)
    pid = os.getpid()
    with session_scope() as session:
        run = session.get(Run, run_id)
        if run is None:
            print(f"run {run_id} does not exist", file=sys.stderr)
            return None
        if run.status not in ACTIVE_STATUSES:
            print(f"run {run_id} is {run.status}; nothing to do", file=sys.stderr)
            return None
        if (folder / CANCEL_FILE).exists():
            run.status, run.ended_at = "cancelled", utcnow()
            return None
        run.status = "running"
        run.pid = pid
        run.process_started = psutil.Process(pid).create_time()
        run.started_at = run.started_at or utcnow()
        run.heartbeat = utcnow()
        run.attempts += 1
        run.error = None
        run.ended_at = None
        return {
            "kind": run.kind,
            "config": dict(run.config),
            "threshold": run.threshold,
            "threshold_source": run.threshold_source,
        }


def _record_threshold(run_id: int, threshold: float) -> None:
    """Store the threshold training chose on the validation frames (must not be lost to a busy database)."""
    with session_scope() as session:
        session.execute(update(Run).where(Run.id == run_id).values(threshold=float(threshold)))


def _train(run_id: int, claim: dict, resume: bool, cancel: CancelToken) -> str:
    """Train, store the chosen threshold, evaluate the best model on the test split; the final status."""
    from segcore.trainer import TrainConfig, train

    from .evaluations import evaluate_run

    folder = run_dir(run_id)
    data_dir = export_training_data(run_id, folder / "data")
    config = TrainConfig.from_dict(
        {
            **claim["config"],
            "data_dir": str(data_dir),
            "out": str(folder / "model.keras"),
            "checkpoint_dir": str(folder / "checkpoints"),
            "resume": resume,
        }
    )
    listener = StoreListener(run_id, config.checkpoints)
    end = train(config, listeners=[listener, ConsoleProgress(sys.stdout)], cancel=cancel)
    if end.status == "cancelled":
        print(f"run {run_id}: cancelled after {end.epochs_run} epochs", flush=True)
        return "cancelled"
    if claim["threshold_source"] == "validation" and end.threshold is not None:
        _record_threshold(run_id, end.threshold)
        print(f"run {run_id}: threshold {end.threshold:g} chosen on the validation frames", flush=True)
    if segdata.list_frames(data_dir / "Test"):
        # The run's threshold: the fixed one, the one just chosen, or 0.5 when none was chosen.
        evaluation = evaluate_run(run_id, "test", checkpoint="best", masks="run")
        print(f"run {run_id}: evaluation {evaluation.id} on {evaluation.n_images} test frames", flush=True)
    return "finished"


def _failure_text(exc: BaseException, kind: str) -> str:
    """What a failed run records: a training run adds the traceback's end; an LA Cosmic run
    (whose errors are about its frames or parameters) one line, the traceback being in its log."""
    line = f"{type(exc).__name__}: {exc}"
    if kind == "train":
        return f"{line}\n{_traceback_excerpt(exc)}"
    return " ".join(line.split())


def run_worker(run_id: int, resume: bool = False) -> int:
    """Do one stored run (train, or detect with LA Cosmic) and record how it ended; the process exit code."""
    claim = _claim(run_id)
    if claim is None:
        return 0
    pid = os.getpid()
    cancel = CancelToken(run_dir(run_id) / CANCEL_FILE)
    # A polite stop (system shutdown, kill without -9) becomes a cancel at the next batch (or frame).
    signal.signal(signal.SIGTERM, lambda *_: cancel.cancel())
    print(f"run {run_id}: pid {pid}, {'resuming' if resume else 'starting'}", flush=True)
    try:
        with _Heartbeat(run_id):
            if claim["kind"] == "lacosmic":
                from .classical import detect_with_lacosmic

                status = detect_with_lacosmic(run_id, claim["config"], cancel)
            else:
                status = _train(run_id, claim, resume, cancel)
        _finish(run_id, status, only_if_pid=pid)
        print(f"run {run_id}: {status}", flush=True)
        return 0
    except BaseException as exc:
        traceback.print_exc()
        _finish(run_id, "failed", error=_failure_text(exc, claim["kind"]), only_if_pid=pid)
        return 1
    finally:
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m db.worker", description="Run one stored training run.")
    parser.add_argument("run_id", type=int)
    parser.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    args = parser.parse_args(argv)
    init_db()
    return run_worker(args.run_id, resume=args.resume)


if __name__ == "__main__":
    sys.exit(main())
