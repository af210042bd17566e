"""One worker of a multi-worker training run for tests/test_multiworker.py (and bench/multiworker_train.py).

    python tests/multiworker_support.py CONFIG_JSON RESULT_PREFIX

TF_CONFIG in the environment makes it a worker of a MultiWorkerMirroredStrategy cluster. Writes
RESULT_PREFIX.npz (the final weights, in the model's order) and RESULT_PREFIX.json (the run's end, the
seconds of each training batch, and every file the trainer saved).
"""

import json
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from segcore import trainer

tf.config.threading.set_intra_op_parallelism_threads(1)
if __import__("os").environ.get("MW_DEBUG"):
    keras.config.disable_traceback_filtering()

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


keras.Model.fit = recording_fit
save = trainer._save
trainer._save = lambda model, path: (saved.append(str(path)), save(model, path))[1]

config = trainer.TrainConfig.from_dict(json.loads(sys.argv[1]))
end = trainer.train(config)
np.savez(sys.argv[2] + ".npz", *models[-1].get_weights())
with open(sys.argv[2] + ".json", "w") as handle:
    json.dump({"end": {k: v for k, v in vars(end).items()}, "saved": saved, "batch_seconds": batch_seconds}, handle,
              default=str)
