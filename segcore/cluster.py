"""Frames spread over a Dask cluster: ``predict``, ``lacosmic`` and ``clean`` on many workers.

The client (the command line) sends each frame's address to a worker. The worker reads the frame, finds its
cosmics with a detector it loaded once and keeps (one per model file and arithmetic, per worker process), writes
the frame's files atomically and then a small record saying so, under ``<out>/.segcore-job/``. A rerun into the
same folder with the same settings skips every frame whose record and files are there, so a killed job loses at
most the frames in flight; other settings (another model, threshold, tiling...) redo the frame. The frames of an
HDF5 stack come back as parts (one ``.npy`` per frame and output) that the client writes into the stack file,
atomically, once every frame of that stack is done. ``counts.csv`` is written at the end from the records,
atomically. A worker lost mid-job has its frames retried elsewhere by the scheduler. The files equal those of the
one-process command line bit for bit (tests/test_cluster.py).

:func:`proposal` is the same per-worker detector for the app's prediction jobs (``COSMICS_DASK_SCHEDULER``), which
store what comes back themselves.

Needs ``dask[distributed]``. SLURM or PBS clusters come from dask-jobqueue (README, ``examples/slurm_predict.py``).
"""

from __future__ import annotations

import csv
import hashlib
import io as _io
import json
import os
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import SegcoreError
from .outputs import FrameOutput, MaskOutput, write_atomically
from .hotpixels import shape_key
from .tiles import DEFAULT_OVERLAP, DEFAULT_TILE

#: ``--dask local``: a LocalCluster of worker processes on this machine.
LOCAL = "local"
#: The job's bookkeeping inside the output folder.
STATE_DIR = ".segcore-job"
#: Seconds to wait for a scheduler before saying it cannot be reached.
CONNECT_TIMEOUT = float(os.environ.get("COSMICS_DASK_TIMEOUT", "10"))
COUNTS_COLUMNS = ["file", "mask", "cosmics", "cosmic_pixels", "invalid_pixels", "hot_pixels"]


class WorkerSetupError(SegcoreError):
    """A worker could not set up the detector (model file missing or unreadable there): the whole job stops."""


@dataclass(frozen=True)
class FrameJob:
    """What every worker does to each frame. ``model`` None: LA Cosmic with ``lacosmic`` (LACosmicParams fields)."""

    out: str
    model: str | None = None
    lacosmic: dict | None = None
    threshold: float | None = None
    tile: int = DEFAULT_TILE
    overlap: int = DEFAULT_OVERLAP
    precision: str = "auto"
    dilate: int = 0
    mask_format: str = "auto"
    overlays: bool = False
    clean: bool = False
    views: int = 1
    hot_pixels: dict = field(default_factory=dict)  # segcore.hotpixels: "HxW" -> [[row, column], ...]
    extra: dict = field(default_factory=dict)

    @property
    def mask_suffix(self) -> str:
        return "_mask" if self.clean else ""

    def fingerprint(self) -> str:
        """The settings that decide the outputs (and the model file's size and time): a record made with others is
        not a finished frame."""
        settings = asdict(self)
        settings.pop("out")
        if self.model is not None and os.path.exists(self.model):
            stat = os.stat(self.model)
            settings["model_file"] = [stat.st_size, stat.st_mtime_ns]
        return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --- on the workers ----------------------------------------------------------------------------------------------

_MODELS: dict = {}
_MODELS_LOCK = threading.Lock()
_KEEP_MODELS = 2
_loads = 0


def models_loaded() -> int:
    """How many times this process loaded a model file (once per model while it is kept)."""
    return _loads


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return f"worker {get_worker().address}"
    except (ImportError, ValueError):
        return "this process"


def cached_model(path: str, precision: str = "auto"):
    """(inference model, its own threshold) for ``path``, loaded once per process and kept (the newest two);
    a changed file is loaded again."""
    try:
        stat = os.stat(path)
    except OSError:
        raise WorkerSetupError(f"{path}: no such model file on {_worker_name()}") from None
    key = (os.path.abspath(path), precision, stat.st_size, stat.st_mtime_ns)
    global _loads
    with _MODELS_LOCK:
        if key not in _MODELS:
            from .inference import load_inference_model, model_threshold

            _loads += 1

            try:
                model = load_inference_model(path, precision)
            except SegcoreError as exc:
                raise WorkerSetupError(f"{exc} (on {_worker_name()})") from None
            while len(_MODELS) >= _KEEP_MODELS:
                _MODELS.pop(next(iter(_MODELS)))
            _MODELS[key] = (model, model_threshold(model))
        return _MODELS[key]


def _detect(job: FrameJob, frame: np.ndarray) -> np.ndarray:
    if job.model is not None:
        from .inference import predict_mask

        model, own = cached_model(job.model, job.precision)
        threshold = own if job.threshold is None else job.threshold
        mask = predict_mask(model, frame, threshold=threshold, tile=job.tile, overlap=job.overlap, views=job.views)
    else:
        from .classical import LACosmicParams, lacosmic_mask

        mask = lacosmic_mask(frame, LACosmicParams(**job.lacosmic) if job.lacosmic else None)
    if job.dilate:
        from .postprocess import dilate

        mask = dilate(mask, job.dilate)
    return mask


class _State:
    """The job's records and parts under ``<out>/.segcore-job/``."""

    def __init__(self, out):
        self.root = Path(out) / STATE_DIR

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode()).hexdigest()[:24]

    def record_path(self, address: str) -> Path:
        return self.root / "frames" / f"{self._key(address)}.json"

    def part_path(self, address: str, kind: str) -> Path:
        return self.root / "parts" / f"{self._key(address)}.{kind}.npy"

    def stack_path(self, group) -> Path:
        return self.root / "stacks" / f"{self._key(json.dumps(group))}.json"

    @staticmethod
    def _write_json(path: Path, content: dict) -> None:
        write_atomically(path, lambda tmp: tmp.write_text(json.dumps(content)))

    @staticmethod
    def _read_json(path: Path) -> dict | None:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def write_record(self, address: str, record: dict) -> None:
        self._write_json(self.record_path(address), record)

    def read_record(self, address: str) -> dict | None:
        return self._read_json(self.record_path(address))

    def save_part(self, address: str, kind: str, array: np.ndarray) -> None:
        write_atomically(self.part_path(address, kind), lambda tmp: np.save(tmp, array))

    def write_stack(self, group, content: dict) -> None:
        self._write_json(self.stack_path(group), content)

    def read_stack(self, group) -> dict | None:
        return self._read_json(self.stack_path(group))


def process_frame(address: str, readable: str, job: FrameJob, fingerprint: str) -> dict:
    """The Dask task: one frame's masks (and cleaned frame, overlay) written, then its record; the record.

    ``address`` is the frame as the user named it (counts.csv's ``file``), ``readable`` the same made absolute.
    A frame that cannot be read gives ``{"address", "error"}``; a model that cannot be loaded raises
    :class:`WorkerSetupError`.
    """
    from . import formats, io
    from .metrics import find_cosmics

    try:
        raw = io.read_raw(readable) if job.clean else None
        frame, invalid = io.read_frame_and_invalid(readable, job.hot_pixels)
    except SegcoreError as exc:
        return {"address": address, "error": str(exc).replace(readable, address)}
    mask = formats.clear_invalid(_detect(job, frame), invalid)
    state, out = _State(job.out), Path(job.out)
    masks, files = MaskOutput(out, job.mask_format, job.mask_suffix), []
    if masks.stacked(readable):
        state.save_part(address, "mask", mask)
    else:
        files.append(masks.write(readable, mask))
    if job.clean:
        from .postprocess import clean_frame

        cleaned, frames = clean_frame(raw, mask, invalid), FrameOutput(out)
        if frames.stacked(readable):
            state.save_part(address, "frame", cleaned)
        else:
            path = frames.file_for(readable, cleaned)
            files.append(str(write_atomically(path, lambda tmp: io.write_frame(tmp, cleaned))))
    if job.overlays:
        from .overlays import prediction_overlay

        png = io.encode_png(prediction_overlay(frame, mask)[..., ::-1])
        files.append(str(write_atomically(out / f"{io.frame_stem(address)}_overlay.png", lambda tmp: tmp.write_bytes(png))))
    row = {"file": address, "mask": masks.written_as(readable), "cosmics": len(find_cosmics(mask)),
           "cosmic_pixels": int(mask.sum()), "invalid_pixels": 0 if invalid is None else int(invalid.sum()),
           "hot_pixels": len(job.hot_pixels.get(shape_key(frame.shape), []))}
    record = {"address": address, "fingerprint": fingerprint, "row": row, "files": files, "worker": _worker_name()}
    state.write_record(address, record)
    return record


def proposal(path: str, model: str | None, threshold: float | None, lacosmic: dict | None, views: int = 1,
             hot_pixels: dict | None = None):
    """The app's proposal for one frame on a worker: (mask, float16 probabilities or None, threshold used), as
    ``db.prediction_worker``'s own detectors make it (the mask thresholded from the kept float16 values; the
    network's probabilities averaged over ``views`` views; the dataset's ``hot_pixels`` kept out)."""
    from . import formats, io

    frame, invalid = io.read_frame_and_invalid(path, hot_pixels)
    if model is None:
        from .classical import LACosmicParams, lacosmic_mask
        from .evaluator import DETECTOR_THRESHOLD

        mask, probabilities, threshold = lacosmic_mask(frame, LACosmicParams(**(lacosmic or {}))), None, DETECTOR_THRESHOLD
    else:
        from .inference import predict_probabilities

        network, own = cached_model(model)
        threshold = own if threshold is None else threshold
        probabilities = predict_probabilities(network, frame, views=views).astype(np.float16)
        mask = probabilities > threshold
        probabilities = formats.clear_invalid(probabilities, invalid)
    return formats.clear_invalid(mask, invalid), probabilities, float(threshold)


def model_facts(model: str, threshold: float | None = None) -> tuple[float, str]:
    """(the threshold a job uses, the arithmetic the network computes in) for ``model`` on a worker."""
    from .inference_graph import model_precision

    network, own = cached_model(model)
    return float(own if threshold is None else threshold), model_precision(network)


# --- on the client -----------------------------------------------------------------------------------------------

#: A loaded machine's worker process can take minutes to import TensorFlow and register; Dask's 30 s default then
#: fails the whole cluster with "Nanny failed to start worker process".
LOCAL_START_TIMEOUT = "300s"


@contextmanager
def local_cluster(workers: int):
    """A LocalCluster of ``workers`` processes with one thread each, no dashboard, patient with slow starts."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.comm.timeouts.connect": LOCAL_START_TIMEOUT}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               death_timeout=LOCAL_START_TIMEOUT)
    with cluster:
        yield cluster


@contextmanager
def connect(address: str, workers: int | None = None):
    """A ``distributed.Client`` to the scheduler at ``address``, or with ``local`` to a LocalCluster of ``workers``
    processes (default: one per core) with one thread each. An unreachable scheduler is one SegcoreError."""
    try:
        from distributed import Client
    except ImportError:
        raise SegcoreError("--dask needs Dask's distributed scheduler: pip install 'dask[distributed]'") from None
    if address == LOCAL:
        import logging

        n = workers or os.cpu_count() or 1
        quiet = logging.getLogger("distributed")
        level = quiet.level
        try:
            with local_cluster(n) as cluster, Client(cluster) as client:
                try:
                    yield client
                finally:
                    # A busy machine's workers take a while to stop; their warnings on the way out are noise.
                    quiet.setLevel(logging.CRITICAL)
        finally:
            quiet.setLevel(level)
        return
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except Exception as exc:  # OSError, TimeoutError, ValueError for a malformed address ...
        raise SegcoreError(f"cannot reach the Dask scheduler at {address!r} within {CONNECT_TIMEOUT:g} s "
                           f"({type(exc).__name__}: {exc})") from None
    try:
        yield client
    finally:
        client.close()


def absolute_address(address: str) -> str:
    from . import formats

    parsed = formats.parse_address(address)
    return str(formats.FrameAddress(parsed.file.absolute(), parsed.dataset, parsed.index))


@dataclass
class JobResult:
    rows: list[dict]          # one per frame done, in the order of the addresses
    errors: list[str]         # one line per frame that failed
    skipped: int              # frames already done by an earlier run


def run_frames(client, job: FrameJob, addresses: list[str], progress: Callable[[int, int], None] | None = None,
               report: Callable[[str], None] | None = None, display_out=None) -> JobResult:
    """Every frame of ``addresses`` through ``process_frame`` on the cluster, skipping those an earlier run with the
    same settings finished; stack files written as their last frame comes back; ``counts.csv`` at the end
    (predict and lacosmic, not clean). ``progress(done, total)``; ``report(line)`` for each frame that failed.
    ``job.out`` should be absolute (the workers' working folder is theirs); counts.csv's ``mask`` column names the
    masks under ``display_out`` (default ``job.out``), the folder as the user gave it."""
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint, state = job.fingerprint(), _State(out)
    masks = MaskOutput(out, job.mask_format, job.mask_suffix)
    frames = FrameOutput(out)

    def kinds(address):
        return [kind for kind, output in (("mask", masks), ("frame", frames if job.clean else None))
                if output is not None and output.stacked(address)]

    members: dict[tuple, list[str]] = {}
    group_of: dict[str, tuple] = {}
    for address in addresses:
        if kinds(address):
            parsed = _parse(address)
            group_of[address] = (str(parsed.file), parsed.dataset)
            members.setdefault(group_of[address], []).append(address)

    def stack_done(group) -> bool:
        stack = state.read_stack(group)
        first = members[group][0]
        targets = [output.target(first) for output in (masks, frames if job.clean else None)
                   if output is not None and output.stacked(first)]
        return bool(stack and stack["fingerprint"] == fingerprint and stack["members"] == members[group]
                    and all(t.exists() for t in targets))

    def finished(address) -> dict | None:
        record = state.read_record(address)
        if not record or record.get("fingerprint") != fingerprint or not all(Path(f).exists() for f in record["files"]):
            return None
        if address in group_of and not all(state.part_path(address, k).exists() for k in kinds(address)):
            return None  # parts already in a stack file: judged with its whole stack below
        return record

    records: dict[str, dict] = {}
    assembled = set()
    for group, names in members.items():
        if stack_done(group):
            found = {a: state.read_record(a) for a in names}
            if all(r and r.get("fingerprint") == fingerprint for r in found.values()):
                records.update(found)
                assembled.add(group)
    for address in addresses:
        if address not in records and (record := finished(address)) is not None:
            records[address] = record
    skipped = len(records)
    errors: dict[str, str] = {}
    total = len(addresses)
    if progress:
        progress(len(records), total)

    def assemble(group) -> None:
        stack_masks, stack_frames = MaskOutput(out, job.mask_format, job.mask_suffix), FrameOutput(out)
        try:
            for address in members[group]:
                if address in errors:
                    continue  # as in one process: a frame that could not be read stays 0
                for kind in kinds(address):
                    writer = stack_masks if kind == "mask" else stack_frames
                    writer.write(absolute_address(address), np.load(state.part_path(address, kind)))
        except BaseException:
            stack_masks.abort()
            stack_frames.abort()
            raise
        stack_masks.close()
        stack_frames.close()
        state.write_stack(group, {"fingerprint": fingerprint, "members": members[group]})
        for address in members[group]:
            for kind in kinds(address):
                state.part_path(address, kind).unlink(missing_ok=True)
        assembled.add(group)

    def maybe_assemble(group) -> None:
        if group not in assembled and all(a in records or a in errors for a in members[group]):
            assemble(group)

    todo = [a for a in addresses if a not in records]
    if todo:
        from distributed import as_completed

        futures = client.map(process_frame, todo, [absolute_address(a) for a in todo], job=job, fingerprint=fingerprint,
                             pure=False)
        address_of = dict(zip(futures, todo))
        try:
            for future in as_completed(futures):
                address = address_of[future]
                try:
                    record = future.result()
                except WorkerSetupError as exc:
                    raise SegcoreError(str(exc)) from None
                except Exception as exc:
                    if type(exc).__name__ != "KilledWorker":
                        raise
                    record = {"address": address, "error": f"{address}: the workers running it died too often "
                              "(out of memory?); not tried again"}
                future.release()
                if "error" in record:
                    errors[address] = record["error"]
                    if report:
                        report(record["error"])
                else:
                    records[address] = record
                if address in group_of:
                    maybe_assemble(group_of[address])
                if progress:
                    progress(len(records) + len(errors), total)
        except BaseException:
            client.cancel(futures)
            raise
    for group in members:
        maybe_assemble(group)
    shown = MaskOutput(Path(display_out if display_out is not None else out), job.mask_format, job.mask_suffix)
    rows = [dict(records[a]["row"], mask=shown.written_as(a)) for a in addresses if a in records]
    if not job.clean:
        write_counts(out / "counts.csv", rows)
    return JobResult(rows, [errors[a] for a in addresses if a in errors], skipped)


def _parse(address: str):
    from . import formats

    return formats.parse_address(address)


def write_counts(path: Path, rows: list[dict]) -> None:
    """counts.csv, atomically (never half-written)."""
    text = _io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=COUNTS_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(path, lambda tmp: tmp.write_bytes(text.getvalue().encode()))
