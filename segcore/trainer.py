"""Training DeepLabV3+ on a dataset folder, with checkpoints, listeners, cancel and resume.

Two learning-rate schedules, both in closed form so a resumed run gets the
same rates. "step" is the original one, counted in frames seen rather than in
our (much shorter) epochs: Adam at the base rate for the first 2 x 31,860
frames, then multiplied by exp(-0.1) every further 31,860 frames, the original
epoch length. "cosine" anneals the base rate to a small fraction of it over the
planned run: the planned frames (epochs x steps x batch) or, with a time limit,
the training time, whichever runs out first. Early stopping on val_loss with patience 30 restores the best weights.
After training, the decision threshold chosen on the validation frames (see
:func:`choose_threshold`) is recorded in the model's card. Every epoch writes
``last.keras`` (with the optimizer state) and ``state.json``; every improvement
writes ``best.keras``. Both files are written
atomically, so a crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from . import data, io
from .errors import SegcoreError
from .listeners import CancelToken, TrainingEnd, TrainingListener, TrainingStart
from .precision import PRECISION_POLICIES, explain_precision
from .preprocess import DEFAULT_RECIPE, INPUT_RECIPES
#: "cross_entropy" is the original loss; see segcore.losses for "dice_cross_entropy".
LOSSES = ("cross_entropy", "dice_cross_entropy")
#: Backbones of segcore.model.build_deeplabv3plus: "resnet50" is the published one; "tiny" builds
#: and trains in seconds (random weights only), for trying a pipeline end to end.
BACKBONES = ("resnet50", "tiny")
#: Frames in one epoch of the original script: its learning-rate decay step.
ORIGINAL_EPOCH_FRAMES = 31860
#: "step" is the original decay by frames seen; "cosine" anneals over the planned run.
SCHEDULES = ("step", "cosine")


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved with the run to reproduce it."""

    data_dir: str
    out: str
    crop_size: int = 128
    batch_size: int = 6
    epochs: int = 100
    learning_rate: float = 5e-4
    flat_epochs: int = 2
    decay_rate: float = 0.1
    decay_frames: int = ORIGINAL_EPOCH_FRAMES
    schedule: str = "cosine"
    final_rate_fraction: float = 0.01
    patience: int = 30
    backbone: str = "resnet50"
    backbone_weights: str = "imagenet"
    freeze_backbone: bool = False
    decoder_kernel: int = 3
    separable: bool = True
    full_resolution: bool = True
    dropout: float = 0.2
    seed: int = 0
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    checkpoint_dir: str | None = None
    resume: bool = False
    mixed_precision: str = "auto"
    time_limit_minutes: float | None = None
    loss: str = "dice_cross_entropy"
    cosmic_crop_fraction: float = 0.5
    cosmic_crop_choice: str = "pixel"
    input_recipe: str = DEFAULT_RECIPE
    choose_threshold: bool = True
    zero_init_residuals: bool = True
    prior_output: bool = True

    def __post_init__(self):
        problems = []
        if self.crop_size <= 0 or self.crop_size % 16:
            problems.append(f"crop size must be a positive multiple of 16 (got {self.crop_size})")
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                problems.append(f"{name.replace('_', ' ')} must be at least 1 (got {getattr(self, name)})")
        if not self.learning_rate > 0:
            problems.append(f"learning rate must be positive (got {self.learning_rate})")
        if self.patience < 1:
            problems.append(f"patience must be at least 1 (got {self.patience})")
        for name in ("steps_per_epoch", "validation_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name.replace('_', ' ')} must be at least 1 or left out (got {value})")
        if self.flat_epochs < 0:
            problems.append(f"flat epochs must be at least 0 (got {self.flat_epochs})")
        if not self.decay_rate >= 0:
            problems.append(f"decay rate must be at least 0 (got {self.decay_rate})")
        if self.decoder_kernel < 1:
            problems.append(f"decoder kernel must be at least 1 (got {self.decoder_kernel})")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1) (got {self.dropout})")
        if self.mixed_precision not in PRECISION_POLICIES:
            problems.append(f"mixed precision must be one of {', '.join(PRECISION_POLICIES)} (got {self.mixed_precision!r})")
        if not str(self.out).endswith(".keras"):
            problems.append(f"output model path must end in .keras (got {self.out!r})")
        if self.loss not in LOSSES:
            problems.append(f"loss must be one of {', '.join(LOSSES)} (got {self.loss!r})")
        if self.decay_frames < 1:
            problems.append(f"decay frames must be at least 1 (got {self.decay_frames})")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {', '.join(SCHEDULES)} (got {self.schedule!r})")
        if not 0 <= self.final_rate_fraction <= 1:
            problems.append(f"final rate fraction must be in [0, 1] (got {self.final_rate_fraction})")
        if self.input_recipe not in INPUT_RECIPES:
            problems.append(f"input recipe must be one of {', '.join(INPUT_RECIPES)} (got {self.input_recipe!r})")
        if self.cosmic_crop_choice not in data.COSMIC_CROP_CHOICES:
            problems.append(
                f"cosmic crop choice must be one of {', '.join(data.COSMIC_CROP_CHOICES)} (got {self.cosmic_crop_choice!r})"
            )
        if not 0 <= self.cosmic_crop_fraction <= 1:
            problems.append(f"cosmic crop fraction must be in [0, 1] (got {self.cosmic_crop_fraction})")
        if self.backbone not in BACKBONES:
            problems.append(f"backbone must be one of {', '.join(BACKBONES)} (got {self.backbone!r})")
        elif self.backbone != "resnet50" and str(self.backbone_weights).lower() not in ("none", "random"):
            problems.append(
                f"the {self.backbone} backbone has random weights only: backbone weights must be 'none' "
                f"(got {self.backbone_weights!r})"
            )
        if self.time_limit_minutes is not None and not self.time_limit_minutes > 0:
            problems.append(f"time limit must be positive minutes (got {self.time_limit_minutes})")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def checkpoints(self) -> Path:
        if self.checkpoint_dir:
            return Path(self.checkpoint_dir)
        out = Path(self.out)
        return out.with_name(out.stem + "_checkpoints")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training options: {', '.join(unknown)}")
        return cls(**values)


def learning_rate_at(
    frames_seen: int,
    base: float,
    flat_epochs: int = 2,
    decay_rate: float = 0.1,
    decay_frames: int = ORIGINAL_EPOCH_FRAMES,
) -> float:
    """The original schedule in closed form, by frames seen (so resuming gives the same rate).

    The original epoch ``e = frames_seen // decay_frames``; epochs 0 .. flat_epochs-1
    use ``base`` and each later one multiplies it by exp(-decay_rate).
    """
    epoch = int(frames_seen) // int(decay_frames)
    return base * math.exp(-decay_rate * max(0, epoch - flat_epochs + 1))


def schedule_progress(
    frames_seen: int, planned_frames: int, seconds: float = 0.0, limit_seconds: float | None = None
) -> float:
    """How far through the planned run training is, from 0 to 1.

    The larger of the share of planned frames seen and, with a time limit, the
    share of the training time spent, so a run that will stop on its time limit
    still ends annealed.
    """
    progress = frames_seen / planned_frames
    if limit_seconds:
        progress = max(progress, seconds / limit_seconds)
    return min(1.0, max(0.0, progress))


def cosine_rate(progress: float, base: float, final_fraction: float = 0.01) -> float:
    """Cosine annealing from ``base`` at progress 0 to ``base * final_fraction`` at progress 1."""
    floor = base * final_fraction
    return floor + (base - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def choose_strategy():
    """One device, all local GPUs (MirroredStrategy), or several machines (TF_CONFIG)."""
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        from .multiworker import cluster_strategy

        return cluster_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _atomic_json(path: Path, payload: dict) -> None:
    fd, tmp = io.temporary_file(path.parent, path.name)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2)
    os.replace(tmp, path)


def _split_pairs(data_dir: str):
    if not Path(data_dir).is_dir():
        raise SegcoreError(f"{data_dir}: dataset folder not found")
    train = data.pair_split(data_dir, "Train")
    validation = data.pair_split(data_dir, "Validation")
    for pairing in (train, validation):
        if pairing.missing_masks or pairing.extra_masks or pairing.duplicates:
            warnings.warn("unmatched files left out of training:\n" + "\n".join(pairing.problems()), RuntimeWarning)
    if not train.pairs:
        raise SegcoreError(f"{data_dir}: no training frames with masks in Train/ and TrainAnnotation/")
    train_pairs, validation_pairs = train.pairs, validation.pairs
    if not validation_pairs:
        held_out = max(1, len(train_pairs) // 10)
        if len(train_pairs) < 2:
            raise SegcoreError(f"{data_dir}: need a Validation/ split or at least 2 training frames")
        warnings.warn(
            f"{data_dir}: no Validation/ frames; holding out {held_out} training frames for validation", RuntimeWarning
        )
        train_pairs, validation_pairs = train_pairs[:-held_out], train_pairs[-held_out:]
    # Every frame and mask is decoded once before anything is built: a truncated file or a
    # NaN frame is named here, not in a TensorFlow traceback halfway through an epoch.
    for _ in data.read_pairs(train_pairs + validation_pairs):
        pass
    return train_pairs, validation_pairs


def _default_steps(pairs, crop_size: int, batch_size: int) -> int:
    """Enough crops per epoch to cover every training pixel about once."""
    from .io import image_shape

    pixels = sum(math.prod(image_shape(image)) for image, _ in pairs)
    return max(1, math.ceil(pixels / (crop_size * crop_size) / batch_size))


def _compile(model, learning_rate: float, loss: str = "cross_entropy"):
    import keras

    from .losses import make_loss
    from .training_metrics import CosmicIoU, CosmicPrecision, CosmicRecall, CosmicSpecificity

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=make_loss(loss),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            CosmicPrecision(),
            CosmicRecall(),
            CosmicSpecificity(),
            CosmicIoU(),
        ],
    )


class _Control:
    """Keras callback doing the schedule, checkpoints, early stopping, listeners and cancel.

    One callback rather than Keras' separate ones, because all of their state must
    survive a resume through ``state.json``.
    """

    def __new__(cls, *args, **kwargs):
        import keras

        # Build the class lazily so importing segcore does not import Keras.
        class Control(keras.callbacks.Callback):
            def __init__(self, config: TrainConfig, listeners, cancel, state, steps, agree=None):
                super().__init__()
                self.config, self.listeners, self.cancel = config, listeners, cancel
                # Several workers stop together: a flag set on any is set on all (segcore.multiworker.agree).
                self.agree = agree or (lambda flags: flags)
                self.state, self.steps = state, steps
                self.cancelled = False
                self.out_of_time = False
                self.started = time.monotonic()
                # Training time of earlier sessions of a resumed run, for the cosine schedule.
                self.seconds_before = float(state.get("train_seconds", 0.0))
                self.batch_started = self.last_batch_end = self.started
                self.batches_done = 0  # in the epoch in progress: a time limit may end it early
                self.batch_seconds = 0.0
                self.tail_seconds = 0.0  # validation and checkpoints after an epoch's last batch

            def time_left(self) -> float | None:
                if not self.config.time_limit_minutes:
                    return None
                return 60 * self.config.time_limit_minutes - (time.monotonic() - self.started)

            def seconds_trained(self) -> float:
                return self.seconds_before + time.monotonic() - self.started

            def rate_at(self, frames: int) -> float:
                config = self.config
                if config.schedule == "cosine":
                    limit = 60 * config.time_limit_minutes if config.time_limit_minutes else None
                    planned = config.epochs * self.steps * config.batch_size
                    progress = schedule_progress(frames, planned, self.seconds_trained(), limit)
                    return cosine_rate(progress, config.learning_rate, config.final_rate_fraction)
                return learning_rate_at(frames, config.learning_rate, config.flat_epochs, config.decay_rate, config.decay_frames)

            def on_epoch_begin(self, epoch, logs=None):
                self.rate = None
                self.state["epoch_in_progress"] = epoch
                self.batches_done = 0
                for listener in self.listeners:
                    listener.on_epoch_begin(epoch)

            def on_train_batch_begin(self, batch, logs=None):
                self.batch_started = time.monotonic()
                frames = self.state.get("frames_seen", 0) + batch * self.config.batch_size
                rate = self.rate_at(frames)
                if rate != self.rate:
                    self.model.optimizer.learning_rate.assign(rate)
                    self.rate = rate

            def on_train_batch_end(self, batch, logs=None):
                self.last_batch_end = time.monotonic()
                self.batch_seconds = self.last_batch_end - self.batch_started
                self.batches_done = batch + 1
                values = {k: float(v) for k, v in (logs or {}).items()}
                values["learning_rate"] = self.rate
                for listener in self.listeners:
                    listener.on_batch_end(self.state["epoch_in_progress"], batch + 1, self.steps, values)
                left = self.time_left()
                # A time limit ends the epoch here if its validation and checkpoints still fit in the limit.
                cancelled, out_of_time = self.agree(
                    [self.cancel is not None and self.cancel.cancelled, left is not None and left <= self.tail_seconds]
                )
                if cancelled:
                    self.cancelled = True
                    self.model.stop_training = True
                if out_of_time:
                    self.out_of_time = True
                    self.model.stop_training = True

            def on_epoch_end(self, epoch, logs=None):
                if self.cancelled:
                    return  # a partial epoch is neither recorded nor checkpointed as done
                values = {k: float(v) for k, v in (logs or {}).items()}
                values["learning_rate"] = float(self.model.optimizer.learning_rate.numpy())
                state = self.state
                for key, value in values.items():
                    state["history"].setdefault(key, []).append(value)
                val_loss = values.get("val_loss", values.get("loss"))
                improved = state["best_val_loss"] is None or val_loss < state["best_val_loss"]
                paths = self.config.checkpoints
                if improved:
                    state.update(best_val_loss=val_loss, best_epoch=epoch, wait=0)
                    _save(self.model, paths / "best.keras")
                else:
                    state["wait"] += 1
                state["epochs_done"] = epoch + 1
                state["frames_seen"] = state.get("frames_seen", 0) + self.batches_done * self.config.batch_size
                state["train_seconds"] = self.seconds_trained()
                _save(self.model, paths / "last.keras")
                _atomic_json(paths / "state.json", state)
                for listener in self.listeners:
                    listener.on_epoch_end(epoch, values)
                if state["wait"] >= self.config.patience:
                    self.model.stop_training = True
                self.tail_seconds = time.monotonic() - self.last_batch_end
                left = self.time_left()
                # Not even one more batch and its epoch's end would fit?
                if self.agree([left is not None and left <= self.tail_seconds + self.batch_seconds])[0]:
                    self.out_of_time = True
                    self.model.stop_training = True

        return Control(*args, **kwargs)


def _save(model, path: Path) -> None:
    from .model import save_model

    save_model(model, path)


def _initial_state(weights_used: str) -> dict[str, Any]:
    return {
        "epochs_done": 0,
        "best_epoch": None,
        "best_val_loss": None,
        "wait": 0,
        "history": {},
        "backbone_weights": weights_used,
        "frames_seen": 0,
        "train_seconds": 0.0,
        "threshold": None,
    }


def choose_threshold(model, pairs, precision: str = "float32") -> tuple[float, float]:
    """The threshold (of :data:`segcore.metrics.THRESHOLD_GRID`) with the best pooled pixel F1 on ``pairs``.

    Returns
    -------
    (threshold, f1)
    """
    from .inference import predict_probabilities
    from .inference_graph import inference_model
    from .metrics import ThresholdSearch

    predictor = inference_model(model, precision)
    search = ThresholdSearch()
    for image, mask in pairs:
        search.add(io.read_mask(mask), predict_probabilities(predictor, io.read_frame(image)))
    return search.best()


def train(
    config: TrainConfig,
    listeners: Iterable[TrainingListener] = (),
    cancel: CancelToken | None = None,
) -> TrainingEnd:
    """Train a model as the configuration says, reporting to the listeners.

    Returns
    -------
    TrainingEnd with status "finished" or "cancelled". The best weights are
    saved to ``config.out``.

    Raises
    ------
    SegcoreError or InputFileError for a bad dataset; any other error after the
    listeners were told the run failed.
    """
    import keras

    from . import multiworker
    from .inference_graph import model_precision
    from .model import build_deeplabv3plus, load_model, model_card, set_model_threshold

    listeners = list(listeners)
    checkpoints = config.checkpoints
    weights_used = "unknown"
    precision_choice = explain_precision(config.mixed_precision)
    precision = precision_choice.policy
    state: dict[str, Any] = _initial_state(weights_used)
    scratch = None  # a non-chief worker's folder for the checkpoints only the chief keeps
    previous_policy = keras.mixed_precision.global_policy()
    try:
        keras.utils.set_random_seed(config.seed)
        keras.mixed_precision.set_global_policy(precision)
        train_pairs, validation_pairs = _split_pairs(config.data_dir)
        steps = config.steps_per_epoch or _default_steps(train_pairs, config.crop_size, config.batch_size)
        checkpoints.mkdir(parents=True, exist_ok=True)
        last = checkpoints / "last.keras"
        strategy = choose_strategy()
        if not multiworker.is_chief(strategy):  # only the chief reports and writes where the configuration says
            listeners, (config, scratch) = [], multiworker.scratch_config(config)
        recipe = config.input_recipe
        with strategy.scope():
            if config.resume and last.exists():
                saved = json.loads((checkpoints / "state.json").read_text())
                state = {**_initial_state(weights_used), **saved}
                if "frames_seen" not in saved:  # a checkpoint from before the schedule counted frames
                    state["frames_seen"] = state["epochs_done"] * steps * config.batch_size
                weights_used = state["backbone_weights"]
                model = load_model(last, compile=True)
                # The checkpoint keeps the arithmetic and input recipe it was trained with, whatever the config says.
                precision = model_precision(model)
                recipe = model_card(model)["input_recipe"]
            else:
                if config.resume:
                    warnings.warn(f"{last}: no checkpoint to resume from; starting afresh", RuntimeWarning)
                model, weights_used = build_deeplabv3plus(
                    backbone=config.backbone,
                    backbone_weights=config.backbone_weights,
                    freeze_backbone=config.freeze_backbone,
                    dropout=config.dropout,
                    decoder_kernel=config.decoder_kernel,
                    separable=config.separable,
                    full_resolution=config.full_resolution,
                    input_recipe=recipe,
                    zero_init_residuals=config.zero_init_residuals,
                    prior_output=config.prior_output,
                )
                state = _initial_state(weights_used)
                _compile(model, config.learning_rate, config.loss)
        checkpoints = config.checkpoints
        train_data = data.train_dataset(
            train_pairs,
            config.crop_size,
            config.batch_size,
            seed=config.seed,
            cosmic_crop_fraction=config.cosmic_crop_fraction,
            cosmic_choice=config.cosmic_crop_choice,
            recipe=recipe,
        )
        validation_data = data.validation_dataset(validation_pairs, config.crop_size, config.batch_size, recipe=recipe)
        if config.validation_steps:
            validation_data = validation_data.take(config.validation_steps)
        start = TrainingStart(
            epochs=config.epochs,
            steps_per_epoch=steps,
            initial_epoch=state["epochs_done"],
            backbone_weights=weights_used,
            config=config.to_dict(),
            precision=precision,
            precision_reason=precision_choice.reason if not config.resume else f"{precision}: kept from the checkpoint",
        )
        for listener in listeners:
            if hasattr(listener, "set_model"):
                listener.set_model(model)
            listener.on_train_begin(start)
        if multiworker.worker_count(strategy) > 1:
            train_data, validation_data = multiworker.prepare_fit(model, strategy, train_data, validation_data)
        agree = multiworker.agree_on(strategy)
        control = _Control(config, listeners, cancel, state, steps, agree)
        if state["epochs_done"] < config.epochs and state["wait"] < config.patience:
            model.fit(
                train_data,
                epochs=config.epochs,
                initial_epoch=state["epochs_done"],
                steps_per_epoch=steps,
                validation_data=validation_data,
                callbacks=[control],
                shuffle=False,  # the dataset shuffles itself, reproducibly
                verbose=0,
            )
        best = checkpoints / "best.keras"
        if best.exists():
            model.load_weights(best)
        if state["epochs_done"] > 0 and config.choose_threshold and not control.cancelled:
            state["threshold"], state["validation_f1"] = choose_threshold(model, validation_pairs, precision)
            set_model_threshold(model, state["threshold"])
            _atomic_json(checkpoints / "state.json", state)
        if state["epochs_done"] > 0:
            _save(model, Path(config.out))
        end = TrainingEnd(
            status="cancelled" if control.cancelled else "finished",
            epochs_run=state["epochs_done"],
            best_epoch=state["best_epoch"],
            best_val_loss=state["best_val_loss"],
            best_checkpoint=str(best) if best.exists() else None,
            last_checkpoint=str(last) if last.exists() else None,
            model_path=str(config.out) if state["epochs_done"] > 0 else None,
            backbone_weights=weights_used,
            precision=precision,
            history=state["history"],
            threshold=state.get("threshold"),
            stop_reason=(
                "cancelled"
                if control.cancelled
                else "time limit"
                if control.out_of_time
                else "early stopping"
                if state["wait"] >= config.patience
                else "epochs"
            ),
        )
    except BaseException as exc:
        end = TrainingEnd(
            status="failed",
            epochs_run=state.get("epochs_done", 0),
            best_epoch=state.get("best_epoch"),
            best_val_loss=state.get("best_val_loss"),
            best_checkpoint=str(checkpoints / "best.keras") if (checkpoints / "best.keras").exists() else None,
            last_checkpoint=str(checkpoints / "last.keras") if (checkpoints / "last.keras").exists() else None,
            model_path=None,
            backbone_weights=weights_used,
            precision=precision,
            history=state.get("history", {}),
            error=f"{type(exc).__name__}: {exc}" if str(exc) else "".join(traceback.format_exception_only(exc)).strip(),
            stop_reason="error",
        )
        for listener in listeners:
            listener.on_train_end(end)
        raise
    finally:
        # Models built later in this process get the policy they would have had.
        keras.mixed_precision.set_global_policy(previous_policy)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    for listener in listeners:
        listener.on_train_end(end)
    return end
