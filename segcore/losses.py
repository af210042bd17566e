"""Training losses for the 2-class logits.

Cross-entropy alone is the original loss. On X-ray frames cosmics cover about
0.1 % of the pixels, so cross-entropy is dominated by the background and a
network can sit for epochs predicting no cosmic at all. Adding the soft Dice
loss of the cosmic class, computed over the whole batch, keeps the gradient of
the rare class as large as that of the common one. Under a distribution strategy with
several replicas (several GPUs or workers) the Dice sums are added up over all
replicas, so the loss is the one of the whole global batch, as on one device.
"""

from __future__ import annotations

import keras
from keras import ops

@keras.saving.register_keras_serializable(package="segcore")
class DiceCrossEntropy(keras.losses.Loss):
    """Sparse cross-entropy from logits plus ``dice_weight`` x (1 - soft Dice of class 1).

    Parameters
    ----------
    dice_weight : weight of the Dice term.
    smooth : added to numerator and denominator so an all-background batch
        predicted as background scores a Dice of 1, not 0/0.
    """

    def __init__(self, dice_weight: float = 1.0, smooth: float = 1.0, name: str = "dice_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.dice_weight = dice_weight
        self.smooth = smooth

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:-1]), "int32")
        logits = ops.cast(y_pred, "float32")
        cross_entropy = ops.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        cosmic_probability = ops.softmax(logits, axis=-1)[..., 1]
        truth = ops.cast(labels, "float32")
        overlap, total = _over_replicas(ops.sum(cosmic_probability * truth), ops.sum(cosmic_probability) + ops.sum(truth))
        dice = (2.0 * overlap + self.smooth) / (total + self.smooth)
        # The batch-level loss is broadcast per image so Keras' reduction returns it unchanged.
        return ops.ones(ops.shape(logits)[:1]) * (cross_entropy + self.dice_weight * (1.0 - dice))

    def get_config(self):
        return {**super().get_config(), "dice_weight": self.dice_weight, "smooth": self.smooth}


def _over_replicas(overlap, total):
    """The Dice sums over the whole global batch: added up across replicas inside a multi-replica step (the
    all-reduce's gradient is an all-reduce too, so every replica's share gets its part of the gradient)."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()  # None in a cross-replica context
    if context is None or context.num_replicas_in_sync < 2:
        return overlap, total
    summed = context.all_reduce("SUM", ops.stack([overlap, total]))
    return summed[0], summed[1]


def make_loss(name: str):
    """The Keras loss object for a loss name ("cross_entropy" or "dice_cross_entropy")."""
    if name == "cross_entropy":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if name == "dice_cross_entropy":
        return DiceCrossEntropy()
    raise ValueError(f"loss must be cross_entropy or dice_cross_entropy, got {name!r}")
