"""SQLite under a live writer, and the run manager's crash detection, without TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import psutil
import pytest
from sqlalchemy import func, select, update

import db
from db.models import EpochMetric, Run, utcnow
from db.session import session_scope
from db_fixtures import make_layout, postgres_cluster, sqlite_store, store  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 150


def _dataset(tmp_path) -> int:
    make_layout(tmp_path / "src", {"Train": 2, "Test": 1})
    return db.import_folder(tmp_path / "src", name="live").dataset_id


def _run_row(dataset_id: int, **values) -> int:
    with session_scope() as session:
        run = Run(name="r", dataset_id=dataset_id, config={"epochs": 1}, run_dir=f"runs/{utcnow():%H%M%S%f}", **values)
        session.add(run)
        session.flush()
        return run.id


@pytest.mark.slow
def test_reads_and_writes_during_a_writing_process_never_hit_a_locked_database(sqlite_store, tmp_path):
    dataset_id = _dataset(tmp_path)
    frame = db.list_frames(dataset_id)[0]
    run_id = _run_row(dataset_id, status="running")
    # Another process writes progress as a training run does: heartbeats and epoch rows, as fast as it can.
    writer = textwrap.dedent(
        f"""
        from pathlib import Path
        from db.worker import StoreListener
        listener = StoreListener({run_id}, Path("."), heartbeat_seconds=0)
        for epoch in range({EPOCHS}):
            for step in range(1, 4):
                listener.on_batch_end(epoch, step, 3, {{"loss": 1.0}})
            listener.on_epoch_end(epoch, {{"loss": 1.0 / (epoch + 1), "val_loss": 2.0 / (epoch + 1), "iou": 0.5}})
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen([sys.executable, "-c", writer], env=env, cwd=REPO, stderr=subprocess.PIPE)
    errors: list[BaseException] = []
    seen: list[list[int]] = []
    stop = threading.Event()

    def read_loop():
        epochs: list[int] = []
        seen.append(epochs)
        try:
            while not stop.is_set():
                epochs.append(len(db.epoch_metrics(run_id)))
                db.get_run(run_id)
                db.runs_table()
        except BaseException as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)

    def app_writes():
        # The app saving masks at the same time: a second writer whose transactions read, then write,
        # which fails at once with "database is locked" unless writes begin IMMEDIATE.
        try:
            for i in range(100):
                db.save_mask_revision(frame.id, np.eye(64, dtype=bool) if i % 2 else np.zeros((64, 64), bool), author="ana")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=read_loop) for _ in range(3)] + [threading.Thread(target=app_writes)]
    for thread in threads:
        thread.start()
    _, stderr = process.communicate(timeout=300)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    assert process.returncode == 0, stderr.decode()[-2000:]
    assert b"could not record" not in stderr, stderr.decode()[-2000:]
    assert errors == []
    assert len(db.epoch_metrics(run_id)) == EPOCHS
    assert len(db.mask_history(frame.id)) == 101
    for epochs in seen:  # each reader saw progress as it happened, never going back
        assert 0 < max(epochs) and epochs == sorted(epochs)
    assert any(0 < n < EPOCHS for epochs in seen for n in epochs)


def test_a_dead_process_is_detected_as_failed(store, tmp_path):
    dataset_id = _dataset(tmp_path)
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    run_id = _run_row(dataset_id, status="running", pid=process.pid, heartbeat=utcnow(), process_started=1.0)

    assert db.refresh_run_states() == [run_id]

    run = db.get_run(run_id)
    assert run.status == "failed"
    assert f"pid {process.pid}" in run.error and "crashed or was killed" in run.error
    assert run.ended_at is not None
    assert db.refresh_run_states() == []  # marked once


def test_a_recycled_pid_is_not_mistaken_for_the_run(store, tmp_path):
    dataset_id = _dataset(tmp_path)
    me = psutil.Process()
    # This test's own process is alive, but it started at another time than the run's process did.
    run_id = _run_row(dataset_id, status="running", pid=me.pid, process_started=me.create_time() - 1000,
                      heartbeat=utcnow())
    assert db.refresh_run_states() == [run_id]


def test_a_stale_heartbeat_is_detected_and_the_hung_process_stopped(store, tmp_path):
    dataset_id = _dataset(tmp_path)
    run_id = _run_row(dataset_id, status="running")
    hung = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)", "db.worker", str(run_id)], start_new_session=True
    )
    try:
        with session_scope() as session:
            session.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(pid=hung.pid, process_started=psutil.Process(hung.pid).create_time(),
                        heartbeat=utcnow() - timedelta(seconds=600))
            )
        assert db.refresh_run_states(stale_after=120) == [run_id]
        run = db.get_run(run_id)
        assert run.status == "failed"
        assert run.error.startswith("no heartbeat for 600 s (limit 120 s)")
        assert hung.wait(timeout=30) == -9
    finally:
        if hung.poll() is None:
            hung.kill()


def test_a_fresh_heartbeat_keeps_a_live_run_running(store, tmp_path):
    dataset_id = _dataset(tmp_path)
    me = psutil.Process()
    run_id = _run_row(dataset_id, status="running", pid=me.pid, process_started=me.create_time(), heartbeat=utcnow())
    assert db.refresh_run_states() == []
    assert db.get_run(run_id).status == "running"


def test_cancelling_a_run_without_a_process_ends_it_at_once(store, tmp_path):
    dataset_id = _dataset(tmp_path)
    run_id = _run_row(dataset_id, status="queued")
    run = db.cancel_run(run_id)
    assert run.status == "cancelled"
    assert (run.run_dir / "cancel").exists()
    with pytest.raises(db.StoreError, match="only queued or running"):
        db.cancel_run(run_id)


def test_start_run_checks_its_configuration_and_dataset(store, tmp_path):
    dataset_id = _dataset(tmp_path)
    with pytest.raises(db.StoreError, match="crop size must be a positive multiple of 16"):
        db.start_run({"crop_size": 50}, dataset_id)
    with pytest.raises(db.StoreError, match="unknown training options: colour"):
        db.start_run({"colour": "red"}, dataset_id)
    empty = db.create_dataset("empty")
    with pytest.raises(db.StoreError, match="no training frames with masks"):
        db.start_run({"epochs": 1}, empty.id)
    with session_scope(write=False) as session:
        assert session.scalar(select(func.count(Run.id))) == 0
        assert session.scalar(select(func.count(EpochMetric.id))) == 0


def test_deleting_a_dataset_with_an_active_run_is_refused(store, tmp_path):
    dataset_id = _dataset(tmp_path)
    _run_row(dataset_id, status="running", heartbeat=utcnow())
    with pytest.raises(db.StoreError, match="active training run"):
        db.delete_dataset(dataset_id)
    assert len(db.list_datasets()) == 1


def test_wait_for_run_times_out_on_a_run_that_keeps_running(sqlite_store, tmp_path):
    dataset_id = _dataset(tmp_path)
    me = psutil.Process()
    run_id = _run_row(dataset_id, status="running", pid=me.pid, process_started=me.create_time(), heartbeat=utcnow())
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=f"run {run_id} still running"):
        db.wait_for_run(run_id, timeout=0.3, poll=0.1)
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_a_run_that_fails_records_why_and_where(sqlite_store, tmp_path):
    dataset_id = _dataset(tmp_path)
    lost = db.list_frames(dataset_id, "train")[0]
    lost.path.unlink()  # the data folder lost a file behind the store's back

    run_id = db.start_run({"epochs": 1, "crop_size": 64, "batch_size": 2}, dataset_id)
    run = db.wait_for_run(run_id, timeout=120)

    assert run.status == "failed"
    assert run.error.startswith("FileNotFoundError")
    assert lost.name in run.error and "Traceback" in run.error
    assert "FileNotFoundError" in db.run_log(run_id)
    assert db.epoch_metrics(run_id).empty
