"""How training reports progress and is asked to stop, without knowing who listens.

The console progress bar is one listener; the store's run writer is another.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainingStart:
    """What a listener learns when training begins."""

    epochs: int
    steps_per_epoch: int
    initial_epoch: int
    backbone_weights: str
    config: dict[str, Any] = field(default_factory=dict)
    #: the Keras dtype policy training computes in ("auto" resolved)
    precision: str = "float32"
    #: why that policy: "<policy>: <reason>" (see segcore.precision.explain_precision)
    precision_reason: str = ""


@dataclass
class TrainingEnd:
    """How training ended.

    status is one of "finished", "cancelled", "failed".
    """

    status: str
    epochs_run: int
    best_epoch: int | None
    best_val_loss: float | None
    best_checkpoint: str | None
    last_checkpoint: str | None
    model_path: str | None
    backbone_weights: str
    #: the Keras dtype policy training computed in ("auto" resolved)
    precision: str = "float32"
    history: dict[str, list[float]] = field(default_factory=dict)
    error: str | None = None
    #: decision threshold chosen on the validation frames (None when none was chosen)
    threshold: float | None = None
    #: why training ended: "epochs", "early stopping", "time limit", "cancelled" or "error"
    stop_reason: str | None = None


class TrainingListener:
    """Receives training progress. Override what you need; every method is a no-op.

    Epochs are numbered from 0 in callbacks, as Keras does. ``model`` is the Keras
    model being trained (set before ``on_train_begin``), for listeners that save
    or inspect it; it must not be changed.
    """

    model = None

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, start: TrainingStart) -> None:
        pass

    def on_epoch_begin(self, epoch: int) -> None:
        pass

    def on_batch_end(self, epoch: int, step: int, steps: int, logs: dict[str, float]) -> None:
        """step counts from 1 to steps within the epoch."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """logs holds loss, val_loss, the metrics and the learning rate of that epoch."""

    def on_train_end(self, end: TrainingEnd) -> None:
        pass


class CancelToken:
    """A request to stop, from another thread (``cancel()``) or another process (a file).

    Training checks it after every batch and stops at the end of that batch.
    """

    def __init__(self, cancel_file: str | os.PathLike | None = None):
        self._event = threading.Event()
        self.cancel_file = Path(cancel_file) if cancel_file else None

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        if self._event.is_set():
            return True
        if self.cancel_file is not None and self.cancel_file.exists():
            self._event.set()
            return True
        return False


class ConsoleProgress(TrainingListener):
    """A tqdm progress bar per epoch, with the epoch's metrics printed at its end."""

    def __init__(self, stream=None):
        self._bar = None
        self._stream = stream
        self._epochs = 0

    def on_train_begin(self, start: TrainingStart) -> None:
        self._epochs = start.epochs
        self._steps = start.steps_per_epoch
        print(f"Backbone weights: {start.backbone_weights}", file=self._stream, flush=True)

    def on_epoch_begin(self, epoch: int) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=self._steps, desc=f"epoch {epoch + 1}/{self._epochs}", unit="batch", file=self._stream, leave=True
        )

    def on_batch_end(self, epoch: int, step: int, steps: int, logs: dict[str, float]) -> None:
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            if "loss" in logs:
                self._bar.set_postfix(loss=f"{logs['loss']:.4f}")

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k in ("loss", "val_loss", "val_iou")})
            self._bar.close()
            self._bar = None

    def on_train_end(self, end: TrainingEnd) -> None:
        if self._bar is not None:
            self._bar.close()
        best = f", best epoch {end.best_epoch + 1} (val_loss {end.best_val_loss:.4f})" if end.best_epoch is not None else ""
        reason = f" ({end.stop_reason})" if end.stop_reason and end.stop_reason != end.status else ""
        print(f"Training {end.status}{reason} after {end.epochs_run} epochs{best}.", file=self._stream, flush=True)
