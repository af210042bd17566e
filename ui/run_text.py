"""How the pages speak of runs: their labels and status icons, thresholds and where they came
from, LA Cosmic's parameters, the settings a run ran with, timing and progress, readable worker
logs. Plain text and numbers from the store's RunInfo and EvaluationInfo; no Streamlit."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone

import pandas as pd

from db.models import ACTIVE_STATUSES  # noqa: F401  (the pages take it from here with the rest)
from db.runs import STORE_OPTIONS

STATUS_ICONS = {
    "queued": ":material/schedule:",
    "running": ":material/play_circle:",
    "finished": ":material/check_circle:",
    "failed": ":material/error:",
    "cancelled": ":material/cancel:",
    "cancelling": ":material/hourglass_top:",
}

#: What the pages say of an LA Cosmic run wherever a training run shows training things.
LACOSMIC_LABEL = "LA Cosmic (no training)"
#: LA Cosmic's noise parameters, left empty to be measured on each frame, as the pages name them.
MEASURED_PARAMETERS = {"gain": "gain", "read_noise": "read noise", "offset": "offset", "saturation": "saturation"}


def is_lacosmic(run) -> bool:
    """An LA Cosmic run: it detects with fixed parameters and trains nothing."""
    return getattr(run, "kind", "train") == "lacosmic"


def method_text(run) -> str:
    return LACOSMIC_LABEL if is_lacosmic(run) else "DeepLabV3+ (trained)"


def _lacosmic_settings(run) -> dict:
    """An LA Cosmic run's config with LACosmicParams' defaults filled in (None: measured on each frame)."""
    from segcore.classical import LACosmicParams

    return {**LACosmicParams().to_dict(), **(run.config or {})}


def full_config(run) -> dict:
    """The run's settings with the defaults it ran with filled in (training options, or
    LA Cosmic's parameters, a noise parameter left to each frame saying so)."""
    import dataclasses

    if is_lacosmic(run):
        settings = _lacosmic_settings(run)
        for name in MEASURED_PARAMETERS:
            if settings.get(name) is None:
                settings[name] = "measured on each frame"
        return settings
    from segcore.trainer import TrainConfig

    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    settings = {**defaults, **(run.config or {})}
    return {k: v for k, v in settings.items() if k not in STORE_OPTIONS}


def lacosmic_parameters_text(run) -> str:
    """``sigclip 8 · sigfrac 0.3 · objlim 2 · niter 4 · gain, read noise, offset, saturation measured
    on each frame · sigclip, sigfrac and objlim tuned on 15 validation frames (pooled F1 0.712)``."""
    config = _lacosmic_settings(run)
    parts = [f"{name} {config[name]:g}" for name in ("sigclip", "sigfrac", "objlim", "niter")]
    given = [f"{label} {config[name]:g}" for name, label in MEASURED_PARAMETERS.items() if config.get(name) is not None]
    measured = [label for name, label in MEASURED_PARAMETERS.items() if config.get(name) is None]
    parts += given
    if measured:
        parts.append(f"{', '.join(measured)} measured on each frame")
    if config.get("tuned"):
        f1 = config.get("tuned_f1")
        score = "" if f1 is None else f" (pooled F1 {f1:.3f})"
        frames = config.get("tuning_frames", 0)
        parts.append(f"sigclip, sigfrac and objlim tuned on {frames} validation frame{'' if frames == 1 else 's'}{score}")
    elif config.get("tune") and getattr(run, "status", None) in ACTIVE_STATUSES:
        parts.append("sigclip, sigfrac and objlim to be tuned on the validation frames")
    elif config.get("tune"):
        parts.append("not tuned (no validation frames with masks): as given")
    else:
        parts.append("as given (not tuned)")
    return " · ".join(parts)


def run_label(run) -> str:
    """``#3 baseline (finished)``, ``#4 la (LA Cosmic, finished)``: how a run is named in every chooser."""
    kind = "LA Cosmic, " if is_lacosmic(run) else ""
    return f"#{run.id} {run.name} ({kind}{getattr(run, 'shown_status', run.status)})"


def evaluation_label(evaluation) -> str:
    created = getattr(evaluation, "created", None)
    when = f", {created:%Y-%m-%d %H:%M}" if isinstance(created, datetime) else ""
    count = getattr(evaluation, "n_images", None)
    images = f", {count} images" if count else ""
    return f"#{evaluation.id}: {evaluation.split} split, threshold {evaluation.threshold:g}{images}{when}"


#: How the Train form names the input recipes (segcore.preprocess.INPUT_RECIPES).
INPUT_RECIPE_LABELS = {
    "stretch_log_count_excess_full_range": "Stretch + log counts + local excess, counting-aware, noise of bright "
    "spots measured",
    "stretch_log_count_excess": "Stretch + log counts + local excess, counting-aware (recommended)",
    "stretch_log_excess": "Stretch + log counts + local excess",
    "stretch": "Stretch only (the original script)",
}


def threshold_text(run) -> str:
    """A run's evaluation threshold and where it came from: ``0.42 (chosen on validation)``."""
    if is_lacosmic(run):
        return f"none: {LACOSMIC_LABEL} gives masks"
    threshold = getattr(run, "threshold", None)
    if getattr(run, "threshold_source", "fixed") == "fixed":
        return f"{threshold:g} (fixed)" if threshold is not None else "0.5 (fixed)"
    if threshold is not None:
        return f"{threshold:g} (chosen on validation)"
    if getattr(run, "status", None) in ACTIVE_STATUSES:
        return "to be chosen on the validation frames when training ends"
    return "0.5 (default: training ended before a threshold was chosen on validation)"


def evaluation_threshold_text(evaluation, run=None) -> str:
    """An evaluation's threshold; with its source when it is the run's own, else "set by hand"."""
    value = evaluation.threshold
    if run is not None and is_lacosmic(run):
        return threshold_text(run)
    if run is not None:
        own = getattr(run, "threshold", None)
        own = 0.5 if own is None else own
        if math.isclose(value, own, abs_tol=1e-9):
            return threshold_text(run)
    return f"{value:g} (set by hand)"


def format_duration(seconds: float | None) -> str:
    """``1 h 02 min``, ``3 min 05 s``, ``12 s``; a dash when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _as_utc(value) -> datetime | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    value = pd.Timestamp(value).to_pydatetime()
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def batch_progress(run) -> tuple[int | None, int | None]:
    """(batches done, batches per epoch) of the epoch in progress, as the run reports them."""
    return getattr(run, "current_step", None), getattr(run, "steps_per_epoch", None)


def planned_epochs(run) -> int:
    return int(getattr(run, "epochs_total", None) or (run.config or {}).get("epochs", 0) or 0)


def timing(run, epochs: pd.DataFrame | None = None, now: datetime | None = None) -> dict:
    """Seconds per epoch and an estimate of the time left, from what the run recorded.

    Returns
    -------
    dict with ``elapsed`` (seconds since the run started, to its end if it ended),
    ``per_epoch`` (None before the first epoch ends), ``left`` (None when unknown;
    early stopping may end the run sooner), ``done`` and ``total`` epochs.
    """
    now = now or datetime.now(timezone.utc)
    started = _as_utc(getattr(run, "started_at", None))
    ended = _as_utc(getattr(run, "ended_at", None))
    elapsed = ((ended or now) - started).total_seconds() if started else None
    total = planned_epochs(run)
    done = int(getattr(run, "epochs_run", 0) or (len(epochs) if epochs is not None else 0))
    per_epoch = elapsed / done if elapsed and done else None
    left = None
    if per_epoch and total and not ended:
        step, steps = batch_progress(run)
        in_epoch = step / steps if step and steps else 0.0
        left = max(0.0, (total - done - in_epoch) * per_epoch)
    return {"elapsed": elapsed, "per_epoch": per_epoch, "left": left, "done": done, "total": total}


def seconds_since(moment, now: datetime | None = None) -> float | None:
    moment = _as_utc(moment)
    if moment is None:
        return None
    return ((now or datetime.now(timezone.utc)) - moment).total_seconds()


_PROGRESS_LINE = re.compile(r"^\s*(epoch \d+/\d+):")


#: What TensorFlow, XLA and CUDA print while starting on a machine without a GPU: not the run's news.
_STARTUP_NOISE = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\)"
    r"|^[IW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]"  # absl INFO/WARNING lines of the C++ libraries
    r"|^E\d{4} .*\] (failed call to cuInit|Unable to register cu\w+ factory)"
    r"|oneDNN custom operations are on|This TensorFlow binary is optimized"
    r"|rebuild TensorFlow with the appropriate compiler flags|TF-TRT Warning|computation placer already registered"
)


def readable_log(text: str, lines: int = 40) -> str:
    """A worker log as a person reads it: TensorFlow's and CUDA's start-up messages left out, a
    progress bar's many redrawings of its line kept as the last; then the last ``lines`` lines."""
    kept: list[str] = []
    for line in re.split(r"[\r\n]+", text):
        if not line.strip() or _STARTUP_NOISE.search(line):
            continue
        bar = _PROGRESS_LINE.match(line)
        if bar and kept and kept[-1].lstrip().startswith(bar.group(1) + ":"):
            kept[-1] = line.rstrip()
        else:
            kept.append(line.rstrip())
    return "\n".join(kept[-lines:])
