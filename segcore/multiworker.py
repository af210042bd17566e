"""Training on several machines: ``tf.distribute.MultiWorkerMirroredStrategy`` through ``TF_CONFIG``.

Every worker runs the same ``python -m segcore train ...`` with its own ``TF_CONFIG`` (the cluster's
``host:port`` list and its own index), as Keras documents it. ``--batch-size`` is the global batch: each step
every worker takes its share of the same batch (the crops are drawn from the same seeded stream everywhere and
sharded by element), batch norms take their statistics over the whole global batch, and the gradients are summed
across workers, so the weights stay identical everywhere and the loss is the one-worker loss at that batch
(cross-entropy exactly; the Dice term of ``dice_cross_entropy``, pooled over a batch, is pooled over each
worker's share, so its value differs a little). The chief (task ``chief``, else worker 0) alone reports to the
listeners and writes the checkpoints, ``state.json`` and the model where the configuration says; the others
save into a scratch folder they delete at the end (saving reads variables the workers hold together, so every
worker must save). ``--resume`` makes every worker continue from the chief's last checkpoint (a shared folder).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path


def is_chief(strategy) -> bool:
    """Whether this process reports and writes: always, except on the non-chief workers of a TF_CONFIG cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if not task_type or task_type == "chief":
        return True
    if task_type != "worker":
        return False
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return "chief" not in cluster and resolver.task_id == 0


def worker_count(strategy) -> int:
    """Workers training together (1 without TF_CONFIG)."""
    extended = getattr(strategy, "extended", None)
    return int(getattr(extended, "_num_workers", 1) or 1)


def scratch_config(config):
    """(``config`` writing its checkpoints and model into a fresh scratch folder, that folder) for a non-chief."""
    scratch = Path(tempfile.mkdtemp(prefix="segcore-worker-"))
    (scratch / "checkpoints").mkdir()
    return dataclasses.replace(config, checkpoint_dir=str(scratch / "checkpoints"),
                               out=str(scratch / Path(config.out).name)), scratch


def prepare_fit(model, strategy, train_data, validation_data):
    """The datasets sharded by element across workers, and Keras' pre-fit build made to work on several workers.

    Keras 3 builds the metrics and optimizer before ``fit`` from the first batch averaged across replicas
    (``strategy.reduce`` outside a ``tf.function``), which MultiWorkerMirroredStrategy refuses with "Attempt to
    convert a value (PerReplica...)" (keras-team/keras#20585). Only the batch's shapes matter there, so this
    builds from this worker's own share instead.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_data, validation_data = train_data.with_options(options), validation_data.with_options(options)

    def build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = build
    _mean_scalar_logs()
    _synchronize_batch_norms(model)
    return train_data, validation_data


def _synchronize_batch_norms(model) -> None:
    """Batch statistics over the whole global batch, as one worker computes them: without this each worker
    normalises its share by its own statistics (a different loss) and the moving averages drift apart."""
    import keras

    def layers(layer):
        yield layer
        for inner in getattr(layer, "layers", []):
            yield from layers(inner)

    for layer in layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True


def _mean_scalar_logs() -> None:
    """Keras 3 averages each step's logs across workers with ``strategy.reduce("MEAN", v, axis=0)``, which fails
    on the scalar losses and metrics ("Invalid reduction dimension 0 for input with 0 dimensions"); average
    scalars as they are (``axis=None``). Applied once, only in multi-worker runs; other reductions are Keras' own."""
    from keras import tree
    from keras.src.backend.tensorflow import trainer as keras_trainer

    original = keras_trainer.reduce_per_replica
    if getattr(original, "segcore_scalars", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and keras_trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None if v.shape.rank == 0 else 0),
                                      values)
        return original(values, strategy, reduction)

    reduce_per_replica.segcore_scalars = True
    keras_trainer.reduce_per_replica = reduce_per_replica
