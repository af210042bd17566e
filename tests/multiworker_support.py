"""One worker of a multi-worker training run for tests/test_multiworker.py (and bench/dask_predict.py).

    python tests/multiworker_support.py CONFIG_JSON RESULT_PREFIX [CONFIG_JSON RESULT_PREFIX ...]

TF_CONFIG in the environment makes it a worker of a MultiWorkerMirroredStrategy cluster. Each CONFIG_JSON is one
training (a resume, say), run in turn in this process; all workers finish one before any starts the next. A
config's "cancel_at": [epoch, step] is not a training option: the chief's listener cancels after that batch (the
other workers are not told, the trainer must agree on it). Writes RESULT_PREFIX.npz (the final weights, in the
model's order) and RESULT_PREFIX.json (the run's end, the seconds of each training batch, every file the trainer
saved, and the learning rate and losses of each batch the chief's listener saw).
"""

import json
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from segcore import multiworker, trainer
from segcore.listeners import CancelToken, TrainingListener

tf.config.threading.set_intra_op_parallelism_threads(1)

models, saved, batch_seconds = [], [], []
fit = keras.Model.fit


def recording_fit(self, *args, **kwargs):
    models.append(self)

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            batch_seconds.append(time.perf_counter() - self.started)

    kwargs["callbacks"] = [*kwargs.get("callbacks", []), Timer()]
    return fit(self, *args, **kwargs)


class Canceller(TrainingListener):
    """Records each batch's logs and cancels after the batch ``cancel_at`` (epoch, step)."""

    def __init__(self, token, cancel_at):
        self.token, self.cancel_at, self.batches = token, tuple(cancel_at or ()), []

    def on_batch_end(self, epoch, step, steps, logs):
        self.batches.append({"epoch": epoch, "step": step, **logs})
        if (epoch, step) == self.cancel_at:
            self.token.cancel()


keras.Model.fit = recording_fit
save = trainer._save
trainer._save = lambda model, path: (saved.append(str(path)), save(model, path))[1]

for config_json, prefix in zip(sys.argv[1::2], sys.argv[2::2]):
    models.clear(), saved.clear(), batch_seconds.clear()
    options = json.loads(config_json)
    token = CancelToken()
    listener = Canceller(token, options.pop("cancel_at", None))
    end = trainer.train(trainer.TrainConfig.from_dict(options), listeners=[listener], cancel=token)
    np.savez(prefix + ".npz", *models[-1].get_weights())
    with open(prefix + ".json", "w") as handle:
        json.dump({"end": vars(end), "saved": saved, "batch_seconds": batch_seconds, "batches": listener.batches},
                  handle, default=str)
    if os.environ.get("TF_CONFIG"):
        multiworker.agree(multiworker.cluster_strategy(), [False])  # a barrier: the chief's files are all written
