"""How the store judges whether a prediction job's or a training run's worker still lives: a worker
that is still starting (loading its libraries on a loaded machine, no heartbeat yet) and a wall
clock that was set since the worker started are not mistaken for a dead or hung process.

The "workers" are sleeping Python processes whose command line names the job, as a real worker's
does (``python -m db.prediction_worker JOB_ID``); no model or TensorFlow is loaded.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import psutil
import pytest
from sqlalchemy import update

import db
from db import processes
from db.models import PredictionJob, Run, utcnow
from db.predictions import PREDICTION_WORKER
from db.session import session_scope
from db_fixtures import make_layout, sqlite_store  # noqa: F401


@pytest.fixture
def dataset_id(sqlite_store, tmp_path):
    make_layout(tmp_path / "src", {"Train": 1, "Test": 1})
    return db.import_folder(tmp_path / "src", name="live").dataset_id


@pytest.fixture
def sleeper():
    """Start a sleeping process whose command line names ``module`` and ``job_id`` (a worker's)."""
    started = []

    def start(module: str, job_id: int) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", module, str(job_id)],
                                   start_new_session=True)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        processes._children.pop(process.pid, None)


def _job(dataset_id: int, **values) -> int:
    with session_scope() as session:
        job = PredictionJob(dataset_id=dataset_id, dataset_name="live", model_source="lacosmic",
                            model_name="LA Cosmic", scope="dataset", frame_ids=[1], **values)
        session.add(job)
        session.flush()
        return job.id


def _run(dataset_id: int, **values) -> int:
    with session_scope() as session:
        run = Run(name="r", dataset_id=dataset_id, config={"epochs": 1}, run_dir=f"runs/{utcnow():%H%M%S%f}", **values)
        session.add(run)
        session.flush()
        return run.id


def _set(table, row_id: int, **values) -> None:
    with session_scope() as session:
        session.execute(update(table).where(table.id == row_id).values(**values))


def test_a_prediction_worker_still_starting_gets_the_start_allowance_then_is_stopped(dataset_id, sleeper):
    # Launched and recorded by the app, not yet claimed by the worker (it has no heartbeat yet).
    job_id = _job(dataset_id, status="queued")
    worker = sleeper(PREDICTION_WORKER, job_id)
    _set(PredictionJob, job_id, pid=worker.pid, process_started=psutil.Process(worker.pid).create_time(),
         created=utcnow() - timedelta(seconds=300))

    assert db.refresh_prediction_states(stale_after=120) == []  # 300 s: slow, but still starting
    assert db.get_prediction(job_id).status == "queued" and worker.poll() is None

    _set(PredictionJob, job_id, created=utcnow() - timedelta(seconds=processes.START_ALLOWANCE + 60))
    assert db.refresh_prediction_states(stale_after=120) == [job_id]
    job = db.get_prediction(job_id)
    assert job.status == "failed"
    assert job.error.startswith(f"no heartbeat for {processes.START_ALLOWANCE + 60:.0f} s "
                                f"(limit {processes.START_ALLOWANCE:.0f} s, still starting)")
    assert worker.wait(timeout=30) == -9


def test_a_claimed_prediction_job_is_judged_by_its_heartbeat_limit(dataset_id, sleeper):
    job_id = _job(dataset_id, status="running")
    worker = sleeper(PREDICTION_WORKER, job_id)
    _set(PredictionJob, job_id, pid=worker.pid, process_started=psutil.Process(worker.pid).create_time(),
         heartbeat=utcnow() - timedelta(seconds=300))
    assert db.refresh_prediction_states(stale_after=120) == [job_id]
    assert db.get_prediction(job_id).error.startswith("no heartbeat for 300 s (limit 120 s);")
    assert worker.wait(timeout=30) == -9


def test_a_training_worker_still_starting_gets_the_start_allowance(dataset_id, sleeper):
    run_id = _run(dataset_id, status="queued")
    worker = sleeper("db.worker", run_id)
    _set(Run, run_id, pid=worker.pid, process_started=psutil.Process(worker.pid).create_time(),
         created=utcnow() - timedelta(seconds=300))
    assert db.refresh_run_states(stale_after=120) == []
    assert db.get_run(run_id).status == "queued" and worker.poll() is None


@pytest.mark.parametrize("step", [2.0, -5.0, 3600.0])
def test_a_worker_started_here_lives_while_it_runs_whatever_the_wall_clock_did(dataset_id, sleeper, step):
    """The start time is recorded from the wall clock at boot; the clock set by ``step`` seconds since
    makes it disagree. A worker this process started is judged by its exit alone."""
    job_id = _job(dataset_id, status="queued")
    worker = sleeper(PREDICTION_WORKER, job_id)
    processes._children[worker.pid] = worker  # as spawn_worker registers the workers it starts
    _set(PredictionJob, job_id, pid=worker.pid, process_started=psutil.Process(worker.pid).create_time() + step)

    assert db.refresh_prediction_states() == []
    assert db.get_prediction(job_id).status == "queued"
    worker.kill()
    worker.wait(timeout=30)
    assert db.refresh_prediction_states() == [job_id]
    assert "ended without reporting" in db.get_prediction(job_id).error


def test_a_worker_started_elsewhere_is_known_by_its_command_line_when_the_clock_moved(dataset_id, sleeper):
    job_id = _job(dataset_id, status="running", heartbeat=utcnow())
    worker = sleeper(PREDICTION_WORKER, job_id)  # not this process' child record: another app started it
    _set(PredictionJob, job_id, pid=worker.pid, process_started=psutil.Process(worker.pid).create_time() + 2.0)
    assert db.refresh_prediction_states() == []
    assert db.get_prediction(job_id).status == "running"

    # The same pid recorded for another job: a recycled pid running something else is not that job's worker.
    other = _job(dataset_id, status="running", heartbeat=utcnow())
    _set(PredictionJob, other, pid=worker.pid, process_started=psutil.Process(worker.pid).create_time() + 2.0)
    assert db.refresh_prediction_states() == [other]
    assert "ended without reporting" in db.get_prediction(other).error
