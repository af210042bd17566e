"""Training on several machines: ``tf.distribute.MultiWorkerMirroredStrategy`` through ``TF_CONFIG``.

Every worker runs the same ``python -m segcore train ...`` with its own ``TF_CONFIG`` (the cluster's
``host:port`` list and its own index), as Keras documents it. ``--batch-size`` is the global batch: each step
every worker takes its share of the same batch (the crops are drawn from the same seeded stream everywhere and
sharded by element), batch norms take their statistics over the whole global batch, the Dice term of the loss
pools its sums over the whole global batch, and the gradients are summed across workers, so the weights stay
identical everywhere and the loss is the one-worker loss at that batch. The chief (task ``chief``, else worker 0) alone reports to the
listeners and writes the checkpoints, ``state.json`` and the model where the configuration says; the others
save into a scratch folder they delete at the end (saving reads variables the workers hold together, so every
worker must save). ``--resume`` makes every worker continue from the chief's last checkpoint (a shared folder).
A decision to stop (cancel, time limit) is agreed on after every batch and epoch: when any worker stops, all stop
after the same batch, so none is left waiting in a collective.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path


_STRATEGIES: dict[str, object] = {}


def cluster_strategy():
    """This process's ``MultiWorkerMirroredStrategy`` for its ``TF_CONFIG``, made once: TensorFlow starts a
    worker's collective server once per process, so later trainings in the same process share it."""
    import tensorflow as tf

    key = os.environ.get("TF_CONFIG", "")
    if key not in _STRATEGIES:
        _STRATEGIES[key] = tf.distribute.MultiWorkerMirroredStrategy()
    return _STRATEGIES[key]


def agree(strategy, flags: list[bool]) -> list[bool]:
    """Each flag true on every worker when it is true on any: one all-reduce across the workers, which every
    worker must make at the same point (after each batch and epoch)."""
    import tensorflow as tf

    local = tf.constant([float(flag) for flag in flags])

    def replica_sum():
        return tf.distribute.get_replica_context().all_reduce("SUM", local)

    summed = strategy.experimental_local_results(strategy.run(replica_sum))[0]
    return [bool(value > 0) for value in summed.numpy()]


def agree_on(strategy):
    """:func:`agree` on ``strategy``'s workers, or None with one worker (nothing to agree on)."""
    if worker_count(strategy) < 2:
        return None
    return lambda flags: agree(strategy, flags)


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


def localhost_tf_configs(workers: int) -> list[str]:
    """``TF_CONFIG`` values for ``workers`` worker processes on this machine, each on a free port (worker 0 first):
    a cluster to try multi-worker training, or to test it, without a second machine."""
    import socket

    sockets = [socket.socket() for _ in range(workers)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}) for index in range(workers)]


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
    builds from the datasets' element shapes instead.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_data, validation_data = train_data.with_options(options), validation_data.with_options(options)

    def build(iterator=None, data_batch=None):
        # From the batch's shapes and types alone: taking a batch from the iterator would start the dataset's
        # first pass (its first shuffle order) for nothing, and training would see the second one.
        specs = train_data.element_spec
        with strategy.scope():
            model._symbolic_build(data_batch=tf.nest.map_structure(
                lambda s: tf.TensorSpec((None, *s.shape[1:]), s.dtype), specs))

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
            # Keras' synchronized statistics take the variance as E[x^2] - E[x]^2, which loses float32 digits where
            # a feature's mean is large against its spread; one worker's come from the squared deviations.
            object.__setattr__(layer, "_moments", _two_pass_moments(layer, layer._moments))


def _two_pass_moments(layer, keras_moments):
    """A BatchNormalization's ``_moments`` over the global batch in two passes, as ``tf.nn.moments`` computes them
    on one worker: the mean from the summed values and counts, then the variance from the summed squared
    deviations from it (each sum all-reduced across the replicas)."""
    import tensorflow as tf

    def moments(inputs, mask=None):
        context = tf.distribute.get_replica_context()
        if mask is not None or context is None:
            return keras_moments(inputs, mask)
        x = tf.cast(inputs, "float32")
        axes = layer._reduction_axes
        count = context.all_reduce("SUM", tf.reduce_sum(tf.ones_like(x), axis=axes, keepdims=True))
        mean = context.all_reduce("SUM", tf.reduce_sum(x, axis=axes, keepdims=True)) / count
        squares = context.all_reduce("SUM", tf.reduce_sum(tf.square(x - mean), axis=axes, keepdims=True))
        mean, variance = tf.squeeze(mean, axes), tf.squeeze(squares / count, axes)
        return tf.cast(mean, inputs.dtype), tf.cast(variance, inputs.dtype)

    return moments


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
