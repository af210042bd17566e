"""LA Cosmic runs: a detector that needs no training, recorded, run and shown like any run.

:func:`start_lacosmic_run` records a run of kind "lacosmic" (its parameters in ``config``,
the mask revision of every frame, as a training run records them) and launches the same
worker process (``python -m db.worker RUN_ID``). There :func:`detect_with_lacosmic` tunes
sigclip, objlim and sigfrac on the validation frames (when asked and they have masks),
stores the chosen parameters and their pooled F1 in ``config``, evaluates the test split
through ``segcore.evaluator.evaluate_detector`` and stores that evaluation as a trained
model's is stored (:func:`db.evaluations.store_evaluation`).

Progress, for the app's bars: ``steps_per_epoch`` holds the frames the run goes through
(the validation frames it tunes on, then the test frames), ``current_step`` how many are done.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

from sqlalchemy import update

from segcore.classical import OBJLIM_GRID, SIGCLIP_GRID, SIGFRAC_GRID, LACosmicParams, lacosmic_mask, tune_lacosmic, tuning_grid
from segcore.data import read_pairs
from segcore.evaluator import DETECTOR_THRESHOLD, evaluate_detector
from segcore.listeners import CancelToken

from .errors import StoreError
from .evaluations import Evaluate, _number, _pairs, evaluate_run
from .models import LACOSMIC_CHECKPOINT, Run, utcnow
from . import runs as run_manager
from .session import session_scope

__all__ = ["LACOSMIC_PARAMETERS", "TUNED_PARAMETERS", "lacosmic_params", "start_lacosmic_run"]

#: The parameters an LA Cosmic run keeps in its ``config`` (None: measured on each frame).
LACOSMIC_PARAMETERS = tuple(f.name for f in dataclasses.fields(LACosmicParams))
#: The parameters tuning chooses, with the values it tries by default.
TUNED_PARAMETERS = {"sigclip": SIGCLIP_GRID, "objlim": OBJLIM_GRID, "sigfrac": SIGFRAC_GRID}


class _Cancelled(Exception):
    """Raised from a progress callback when the run was asked to stop."""


def lacosmic_params(config: Mapping[str, Any]) -> LACosmicParams:
    """The LA Cosmic parameters stored in a run's ``config``."""
    return LACosmicParams(**{name: config[name] for name in LACOSMIC_PARAMETERS if name in config})


def _checked_params(params: Mapping[str, Any] | None) -> LACosmicParams:
    values = dict(params or {})
    unknown = sorted(set(values) - set(LACOSMIC_PARAMETERS))
    if unknown:
        raise StoreError(
            f"unknown LA Cosmic parameter(s): {', '.join(unknown)} (known: {', '.join(LACOSMIC_PARAMETERS)})"
        )
    try:
        numbers = {name: None if value is None else float(value) for name, value in values.items()}
        if numbers.get("niter") is not None:
            if not numbers["niter"].is_integer():
                raise ValueError(f"niter must be a whole number (got {values['niter']})")
            numbers["niter"] = int(numbers["niter"])
        return LACosmicParams(**numbers)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"invalid LA Cosmic parameters: {exc}") from None


def _checked_grid(grid: Mapping[str, Sequence[float]] | None) -> dict[str, list[float]]:
    values = dict(grid or {})
    unknown = sorted(set(values) - set(TUNED_PARAMETERS))
    if unknown:
        raise StoreError(f"only {', '.join(TUNED_PARAMETERS)} are tuned, not {', '.join(unknown)}")
    checked = {}
    for name, default in TUNED_PARAMETERS.items():
        try:
            tried = [float(v) for v in values.get(name, default)]
        except (TypeError, ValueError):
            raise StoreError(f"the {name} values to try must be numbers, got {values[name]!r}") from None
        if not tried or not all(math.isfinite(v) and v > 0 for v in tried):
            raise StoreError(f"the {name} values to try must be positive numbers, got {values.get(name)!r}")
        checked[name] = tried
    return checked


def start_lacosmic_run(
    dataset_id: int,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tune: bool = True,
    grid: Mapping[str, Sequence[float]] | None = None,
) -> int:
    """Record an LA Cosmic run on the dataset's current masks and start it in its own process.

    Parameters
    ----------
    dataset_id : the dataset; its test split (frames with masks) is evaluated, its
        validation split tunes the parameters.
    name : shown in the app; default "run <id>".
    params : ``segcore.classical.LACosmicParams`` fields (sigclip, sigfrac, objlim, niter,
        gain, read_noise, offset, saturation); missing ones take its defaults, None ones
        are measured on each frame.
    tune : choose sigclip, objlim and sigfrac for the best pooled pixel F1 on the
        validation frames (when they have masks; otherwise ``params`` are used as given).
    grid : the values tuning tries, per tuned parameter (e.g. ``{"sigclip": [4.5, 8]}``);
        missing ones: ``segcore.classical``'s grids.

    Returns
    -------
    The run id. ``get_run(id).config`` holds the parameters, ``tune`` and the
    ``tuning_grid``; when the run ends also ``tuned`` (whether it was), and after tuning
    the chosen parameters, ``tuned_f1`` (pooled pixel F1 on the validation frames) and
    ``tuning_frames``.

    Raises
    ------
    StoreError
        For a bad parameter or grid value (naming it), or a dataset without test frames with masks.
    """
    base = _checked_params(params)
    config: dict[str, Any] = {**base.to_dict(), "tune": bool(tune)}
    if tune:
        config["tuning_grid"] = _checked_grid(grid)
    # Its masks are read as probabilities 0 and 1: threshold 0.5, fixed.
    run_id = run_manager.record_run(
        dataset_id, name, "lacosmic", config, needs_split="test", threshold=DETECTOR_THRESHOLD, threshold_source="fixed"
    )
    run_manager._launch(run_id, resume=False)
    return run_id


def lacosmic_evaluation(run: Run, threshold: float | None, checkpoint: str, dilation: int = 0) -> tuple[Evaluate, str]:
    """How an LA Cosmic run is evaluated (with its stored parameters), and what the evaluation
    records as its checkpoint; for :func:`db.evaluations.evaluate_run`."""
    if threshold is not None and float(threshold) != DETECTOR_THRESHOLD:
        raise StoreError(
            f"run {run.id} is an LA Cosmic run: its masks have no probability threshold to set (got {threshold})"
        )
    if checkpoint != "best":
        raise StoreError(f"run {run.id} is an LA Cosmic run: it has no {checkpoint!r} checkpoint, only its parameters")
    params = lacosmic_params(run.config)

    def evaluate(pairs, progress, predictions_dir, hot_pixels=None):
        return evaluate_detector(
            lambda frame: lacosmic_mask(frame, params), pairs, progress, predictions_dir, dilation=dilation,
            hot_pixels=hot_pixels,
        )

    return evaluate, LACOSMIC_CHECKPOINT


# --------------------------------------------------------------------------- #
# In the worker process
# --------------------------------------------------------------------------- #


def detect_with_lacosmic(run_id: int, config: dict[str, Any], cancel: CancelToken) -> str:
    """Tune (when asked), record the parameters, evaluate the test split; the final status.

    Runs in the worker process (``db.worker``), on the mask revisions the run recorded.
    """
    from .worker import _write  # the worker's retrying writes; it imports this module lazily

    with session_scope(write=False) as session:
        run = session.get(Run, run_id)
        validation = _pairs(session, run, "validation", "run") if config.get("tune") else []
        test = _pairs(session, run, "test", "run")

    def record(what: str, **values) -> None:
        _write(lambda s: s.execute(update(Run).where(Run.id == run_id).values(heartbeat=utcnow(), **values)), what)

    def frames_done(done: int) -> None:
        if cancel.cancelled:
            raise _Cancelled
        record("progress", current_step=done)

    record("frames to go through", steps_per_epoch=len(validation) + len(test), current_step=0)
    try:
        chosen: dict[str, Any] = {"tuned": False}
        if validation:
            grid = tuning_grid(lacosmic_params(config), **config["tuning_grid"])
            print(f"run {run_id}: tuning {len(grid)} parameter sets on {len(validation)} validation frames", flush=True)
            labelled = read_pairs((frame_path, mask_path) for frame_path, mask_path, _, _ in validation)
            best, ranking = tune_lacosmic(labelled, grid, frames_done)
            chosen = {
                **{name: getattr(best, name) for name in TUNED_PARAMETERS},
                "tuned": True,
                "tuned_f1": _number(ranking[0][1]["f1"]),
                "tuning_frames": len(validation),
            }
            print(f"run {run_id}: chose " + ", ".join(f"{k} {v}" for k, v in chosen.items()), flush=True)
        elif config.get("tune"):
            print(f"run {run_id}: no validation frames with masks to tune on; the parameters as given", flush=True)
        # The parameters must be stored before the evaluation, which reads them from the run.
        with session_scope() as session:
            session.execute(update(Run).where(Run.id == run_id).values(config={**config, **chosen}))
        evaluation = evaluate_run(
            run_id, "test", masks="run", progress=lambda done, total: frames_done(len(validation) + done)
        )
    except _Cancelled:
        print(f"run {run_id}: cancelled", flush=True)
        return "cancelled"
    print(f"run {run_id}: evaluation {evaluation.id} on {evaluation.n_images} test frames", flush=True)
    return "finished"
