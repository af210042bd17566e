"""Starting worker processes and telling whether one still lives.

Workers run in their own session (process group), so neither the app's exit nor
a signal to the app reaches them, and a hung one can be stopped with its children.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
LOG_FILE = "worker.log"
#: The module a training run's worker runs (``python -m db.worker RUN_ID``).
RUN_WORKER = "db.worker"

#: Seconds a worker that has not claimed its run or job yet is given to start. Its first heartbeat
#: comes when it claims, after loading Python, NumPy, SQLAlchemy (and TensorFlow for training):
#: seconds on an idle machine, over a minute on a loaded one.
START_ALLOWANCE = 600.0

# Workers this process started, so their exit can be reaped (a zombie still "exists").
_children: dict[int, subprocess.Popen] = {}


def worker_command(run_id: int, *extra: str, module: str = RUN_WORKER) -> list[str]:
    return [sys.executable, "-m", module, str(run_id), *extra]


def spawn_worker(
    run_id: int, folder: Path, home: Path, database_url: str, resume: bool, module: str = RUN_WORKER
) -> subprocess.Popen:
    """Start ``python -m <module> ID`` detached (a run's worker, or a prediction job's with
    ``module="db.prediction_worker"``), logging to ``<folder>/worker.log``."""
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["COSMICS_HOME"] = str(home)
    env["COSMICS_DB_URL"] = database_url
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with open(folder / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            worker_command(run_id, *(["--resume"] if resume else []), module=module),
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: survives the app and its signals
        )
    _children[process.pid] = process
    return process


def create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def process_alive(pid: int | None, started: float | None, worker: tuple[int, str] | None = None) -> bool:
    """Is ``pid`` still the process we started (not exited, not a zombie, not a recycled pid)?

    A worker this process started is judged by whether it has exited, nothing else: its pid cannot
    be given to another process before it is reaped here. Any other pid is identified by its start
    time, ``started``. That time is counted from the boot time the kernel derives from the wall
    clock, so it moves when the clock is set (an NTP step, a virtual machine resumed): when it
    disagrees and ``worker`` = (run or job id, worker module) is given, the process is still ours
    if it runs that worker (:func:`is_worker_of`), which a recycled pid does not.
    """
    if pid is None:
        return False
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        _children.pop(pid, None)
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        if started is not None and abs(process.create_time() - started) > 1.0:
            return worker is not None and is_worker_of(pid, *worker)
        return True
    except psutil.Error:
        return False


def start_limit(status: str, stale_after: float) -> float:
    """Seconds without a heartbeat after which a live worker is judged hung: ``stale_after`` once it
    has claimed its run or job (status "running" and on), at least :data:`START_ALLOWANCE` while it
    is still "queued" (starting: Python and its libraries load before it can beat)."""
    return max(stale_after, START_ALLOWANCE) if status == "queued" else stale_after


def is_worker_of(pid: int, run_id: int, module: str = RUN_WORKER) -> bool:
    """Does ``pid`` run this run's (or job's) worker (so stopping it stops nothing else)?"""
    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    return module in cmdline and str(run_id) in cmdline


def kill_process_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
