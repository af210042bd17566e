"""The prediction process: ``python -m db.prediction_worker JOB_ID``.

Started by :func:`db.predictions.start_prediction`. It loads the job's model (a run's model
file, an uploaded one, or LA Cosmic with a run's parameters), then for each frame in turn
writes the proposal's files and row and the progress, so the app can show proposals while
the job still runs. A cancel file stops it after the current frame. Any error ends the job
"failed" with one line saying why (the traceback is in its log); masks are never touched.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
import psutil
from sqlalchemy import delete, update

from segcore.errors import SegcoreError
from segcore.listeners import CancelToken

from .errors import StoreError
from .models import ACTIVE_STATUSES, Dataset, Frame, PredictionJob, ProposalRow, utcnow
from .paths import from_stored, to_stored
from .predictions import CANCEL_FILE, finish_prediction, prediction_dir
from .review import count_uncertain, mark_proposed
from .session import init_db, session_scope
from .worker import _Heartbeat, _write

#: ``detect(frame) -> (mask, probabilities or None)``
Detect = Callable[[np.ndarray], tuple[np.ndarray, "np.ndarray | None"]]


def _claim(job_id: int) -> PredictionJob | None:
    pid = os.getpid()
    with session_scope() as session:
        job = session.get(PredictionJob, job_id)
        if job is None or job.status not in ACTIVE_STATUSES:
            print(f"prediction job {job_id}: nothing to do", file=sys.stderr)
            return None
        if (prediction_dir(job_id) / CANCEL_FILE).exists():
            job.status, job.ended_at = "cancelled", utcnow()
            return None
        job.status, job.pid = "running", pid
        job.process_started = psutil.Process(pid).create_time()
        job.started_at = job.heartbeat = utcnow()
        session.flush()
        session.expunge(job)
        return job


def model_detector(path: Path, threshold: float | None, views: int = 1) -> tuple[Detect, float, str]:
    """A saved model as a detector: (detect, threshold used, the arithmetic it computes in); its probabilities
    averaged over ``views`` views of each frame (:func:`segcore.inference.predict_probabilities`).

    Refuses, naming the file, a model that is not a cosmic segmentation model (3 input
    channels, 2 output classes per pixel).
    """
    from segcore.errors import InputFileError
    from segcore.inference import model_threshold, predict_probabilities
    from segcore.inference_graph import inference_model, model_precision
    from segcore.model import check_cosmic_model, load_model

    model = load_model(path, compile=False)
    try:
        check_cosmic_model(model, path)
    except InputFileError as exc:
        raise StoreError(f"{path.name}: {exc.problem}") from None
    if threshold is None:
        threshold = model_threshold(model)
    fast = inference_model(model)

    def detect(frame):
        # float16 is what is kept; the mask is thresholded from the kept values so the two agree.
        probabilities = predict_probabilities(fast, frame, views=views).astype(np.float16)
        return probabilities > threshold, probabilities

    return detect, float(threshold), model_precision(fast)


def lacosmic_detector(params: dict) -> tuple[Detect, float, None]:
    from segcore.classical import LACosmicParams, lacosmic_mask
    from segcore.evaluator import DETECTOR_THRESHOLD

    chosen = LACosmicParams(**params)
    return (lambda frame: (lacosmic_mask(frame, chosen), None)), DETECTOR_THRESHOLD, None


def _frame_or_none(frame_id: int, dataset_id: int | None, dataset_name: str):
    """(name, path) of a frame still stored, None for a deleted frame; StoreError when its dataset was deleted."""
    with session_scope(write=False) as session:
        if dataset_id is None or session.get(Dataset, dataset_id) is None:
            raise StoreError(f"dataset {dataset_name!r} was deleted while its frames were being predicted")
        frame = session.get(Frame, frame_id)
        return None if frame is None else (frame.name, from_stored(frame.path))


def _hot_pixels(job: PredictionJob) -> dict:
    """The job's dataset's hot pixels (:func:`db.datasets.dataset_hot_pixels`), said in the job's log."""
    from segcore.hotpixels import count_hot

    from .datasets import dataset_hot_pixels

    hot = {} if job.dataset_id is None else dataset_hot_pixels(job.dataset_id)
    if hot:
        print(f"prediction {job.id}: {count_hot(hot)} hot pixel(s) of the dataset kept out of the masks", flush=True)
    return hot


def _store_proposal(job_id: int, frame_id: int, threshold: float, mask: np.ndarray, probabilities) -> None:
    from segcore import io
    from segcore.metrics import n_cosmics

    folder = prediction_dir(job_id)
    mask_path = folder / f"{frame_id}.png"
    io.write_mask(mask_path, mask)
    probabilities_path = None
    if probabilities is not None:
        probabilities_path = folder / f"{frame_id}.npy"
        np.save(probabilities_path, probabilities)
    with session_scope() as session:
        # A frame deleted meanwhile gets no proposal (its row would point nowhere).
        if session.get(Frame, frame_id) is None:
            return
        session.execute(delete(ProposalRow).where(ProposalRow.job_id == job_id, ProposalRow.frame_id == frame_id))
        session.add(ProposalRow(
            job_id=job_id, frame_id=frame_id, threshold=threshold, mask_path=to_stored(mask_path),
            probabilities_path=to_stored(probabilities_path) if probabilities_path else None,
            cosmic_pixels=int(np.count_nonzero(mask)), cosmics=n_cosmics(mask),
            uncertain_pixels=None if probabilities is None else count_uncertain(probabilities),
        ))
        mark_proposed(session, frame_id)


#: A Dask scheduler's address (tcp://host:8786): prediction jobs send their frames to its workers.
DASK_SCHEDULER_SETTING = "COSMICS_DASK_SCHEDULER"


def dask_scheduler() -> str | None:
    """The scheduler prediction jobs use (``COSMICS_DASK_SCHEDULER``), None: this process does the work."""
    return os.environ.get(DASK_SCHEDULER_SETTING, "").strip() or None


def _progress(job_id: int, done: int) -> None:
    _write(lambda s: s.execute(update(PredictionJob).where(PredictionJob.id == job_id).values(
        frames_done=done, heartbeat=utcnow())), "progress")


def predict_on_cluster(job: PredictionJob, cancel: CancelToken, scheduler: str) -> str:
    """The job's proposals made by the workers of the Dask cluster at ``scheduler`` (each loads the model once and
    keeps it, :func:`segcore.cluster.proposal`); this process stores them as they come back, in any order."""
    from segcore import cluster

    if job.model_source == "lacosmic":
        model, params = None, job.params or {}
    elif not job.model_path:
        raise StoreError(f"prediction job {job.id} has no model file")
    else:
        model, params = str(from_stored(job.model_path)), None
    frames = []
    for frame_id in job.frame_ids:
        found = _frame_or_none(frame_id, job.dataset_id, job.dataset_name)
        if found is None:
            print(f"prediction {job.id}: frame {frame_id} was deleted; skipped", flush=True)
        else:
            frames.append((frame_id, *found))
    with cluster.connect(scheduler) as client:
        from distributed import as_completed

        threshold, precision = (lacosmic_detector(params)[1], None) if model is None else \
            client.submit(cluster.model_facts, model, job.threshold, pure=False).result()
        _write(lambda s: s.execute(update(PredictionJob).where(PredictionJob.id == job.id).values(
            threshold=threshold, precision=precision, heartbeat=utcnow())), "model loaded")
        print(f"prediction {job.id}: {job.model_name} at threshold {threshold:g} on {len(job.frame_ids)} frame(s) "
              f"on the Dask cluster at {scheduler}", flush=True)
        futures = client.map(cluster.proposal, [str(path) for _, _, path in frames], model=model,
                             threshold=job.threshold, lacosmic=params, views=job.views,
                             hot_pixels=_hot_pixels(job), pure=False)
        frame_of = {future: frame for future, frame in zip(futures, frames)}
        done = len(job.frame_ids) - len(frames)
        try:
            for future in as_completed(futures):
                if cancel.cancelled:
                    print(f"prediction {job.id}: cancelled after {done} frame(s)", flush=True)
                    return "cancelled"
                frame_id, name, _ = frame_of[future]
                mask, probabilities, used = future.result()
                future.release()
                _store_proposal(job.id, frame_id, used, mask, probabilities)
                done += 1
                _progress(job.id, done)
        finally:
            client.cancel(futures)
    return "finished"


def predict(job: PredictionJob, cancel: CancelToken) -> str:
    """Make the job's proposals frame by frame; the final status."""
    from segcore import formats, io

    scheduler = dask_scheduler()
    if scheduler is not None:
        return predict_on_cluster(job, cancel, scheduler)
    if job.model_source == "lacosmic":
        detect, threshold, precision = lacosmic_detector(job.params or {})
    else:
        if not job.model_path:
            raise StoreError(f"prediction job {job.id} has no model file")
        detect, threshold, precision = model_detector(from_stored(job.model_path), job.threshold, job.views)
    _write(lambda s: s.execute(update(PredictionJob).where(PredictionJob.id == job.id).values(
        threshold=threshold, precision=precision, heartbeat=utcnow())), "model loaded")
    print(f"prediction {job.id}: {job.model_name} at threshold {threshold:g}, {job.views} view(s), on "
          f"{len(job.frame_ids)} frame(s)", flush=True)
    hot = _hot_pixels(job)
    for done, frame_id in enumerate(job.frame_ids, start=1):
        if cancel.cancelled:
            print(f"prediction {job.id}: cancelled after {done - 1} frame(s)", flush=True)
            return "cancelled"
        found = _frame_or_none(frame_id, job.dataset_id, job.dataset_name)
        if found is None:
            print(f"prediction {job.id}: frame {frame_id} was deleted; skipped", flush=True)
        else:
            name, path = found
            frame, invalid = io.read_frame_and_invalid(path, hot)
            mask, probabilities = detect(frame)
            if mask.shape != frame.shape:
                raise StoreError(f"{name}: the model gave a {mask.shape} mask for a {frame.shape} frame")
            # A detector's invalid pixels and the dataset's hot pixels are never cosmics.
            mask = formats.clear_invalid(mask, invalid)
            probabilities = None if probabilities is None else formats.clear_invalid(probabilities, invalid)
            _store_proposal(job.id, frame_id, threshold, mask, probabilities)
        _write(lambda s: s.execute(update(PredictionJob).where(PredictionJob.id == job.id).values(
            frames_done=done, heartbeat=utcnow())), "progress")
    return "finished"


def run_prediction(job_id: int) -> int:
    """Do one stored prediction job and record how it ended; the process exit code."""
    job = _claim(job_id)
    if job is None:
        return 0
    pid = os.getpid()
    cancel = CancelToken(prediction_dir(job_id) / CANCEL_FILE)
    signal.signal(signal.SIGTERM, lambda *_: cancel.cancel())
    try:
        with _Heartbeat(job_id, table=PredictionJob):
            status = predict(job, cancel)
        finish_prediction(job_id, status, only_if_pid=pid)
        print(f"prediction {job_id}: {status}", flush=True)
        return 0
    except BaseException as exc:
        traceback.print_exc()
        # The store's and segcore's errors name the file or record already; others need their type.
        text = str(exc) if isinstance(exc, SegcoreError) else f"{type(exc).__name__}: {exc}"
        finish_prediction(job_id, "failed", error=" ".join(text.split())[:2000], only_if_pid=pid)
        return 1
    finally:
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m db.prediction_worker", description="Run one stored prediction job.")
    parser.add_argument("job_id", type=int)
    args = parser.parse_args(argv)
    init_db()
    return run_prediction(args.job_id)


if __name__ == "__main__":
    sys.exit(main())
