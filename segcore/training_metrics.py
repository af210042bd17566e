"""Streaming Keras metrics of the cosmic class, for training.

They sum pixel confusion counts over a whole epoch, so an epoch's value is the
ratio of the sums, not a mean of per-batch ratios. Empty cases follow the rule
of ``segcore.metrics``.
"""

from __future__ import annotations

import keras
from keras import ops

class CosmicConfusionMetric(keras.metrics.Metric):
    """Base of the streaming cosmic metrics: sums pixel confusion counts.

    ``y_true`` holds labels of shape (B, H, W, 1) or (B, H, W), non-zero for
    cosmic; ``y_pred`` holds 2-class logits of shape (B, H, W, 2), and a
    pixel is predicted cosmic where logit 1 exceeds logit 0 (softmax
    probability above 0.5). The counts are summed over every
    ``update_state`` call, so the result is the ratio of summed counts over
    the epoch, not a mean of batch ratios. Empty cases follow the module's
    rule: a zero denominator gives 1.0 when fp == fn == 0, else 0.0.
    """

    def __init__(self, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        # float64 keeps counts exact far beyond float32's 2**24 pixels.
        self.true_positives = self._count_weight("true_positives")
        self.false_positives = self._count_weight("false_positives")
        self.false_negatives = self._count_weight("false_negatives")
        self.true_negatives = self._count_weight("true_negatives")

    def _count_weight(self, name):
        return self.add_weight(shape=(), initializer="zeros", dtype="float64", name=name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.convert_to_tensor(y_true)
        y_pred = ops.convert_to_tensor(y_pred)
        if y_pred.shape[-1] is not None and y_pred.shape[-1] != 2:
            raise ValueError(f"y_pred must hold 2-class logits (..., 2), got shape {y_pred.shape}")
        if len(y_true.shape) == len(y_pred.shape):
            y_true = ops.squeeze(y_true, axis=-1)
        if None not in y_true.shape and None not in y_pred.shape[:-1]:
            if tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
                raise ValueError(
                    f"y_true shape {tuple(y_true.shape)} does not match "
                    f"y_pred shape {tuple(y_pred.shape)} without its class axis"
                )
        true = ops.not_equal(y_true, 0)
        pred = ops.greater(y_pred[..., 1], y_pred[..., 0])

        if sample_weight is None:
            weight = None
        else:
            weight = ops.cast(ops.convert_to_tensor(sample_weight), "float64")
            if len(weight.shape) == len(true.shape) + 1:
                weight = ops.squeeze(weight, axis=-1)
            for _ in range(len(true.shape) - len(weight.shape)):
                weight = ops.expand_dims(weight, -1)
            weight = ops.broadcast_to(weight, ops.shape(true))

        def total(condition):
            counted = ops.cast(condition, "float64")
            if weight is not None:
                counted = counted * weight
            return ops.sum(counted)

        not_true = ops.logical_not(true)
        not_pred = ops.logical_not(pred)
        self.true_positives.assign_add(total(ops.logical_and(true, pred)))
        self.false_positives.assign_add(total(ops.logical_and(not_true, pred)))
        self.false_negatives.assign_add(total(ops.logical_and(true, not_pred)))
        self.true_negatives.assign_add(total(ops.logical_and(not_true, not_pred)))

    def reset_state(self):
        for variable in (
            self.true_positives,
            self.false_positives,
            self.false_negatives,
            self.true_negatives,
        ):
            variable.assign(ops.zeros((), dtype="float64"))

    def _ratio(self, numerator, denominator):
        agree = ops.equal(self.false_positives + self.false_negatives, 0.0)
        has_denominator = ops.greater(denominator, 0.0)
        safe = ops.where(has_denominator, denominator, ops.ones_like(denominator))
        empty_value = ops.where(agree, 1.0, 0.0)
        value = ops.where(has_denominator, numerator / safe, ops.cast(empty_value, "float64"))
        return ops.cast(value, self.dtype)


@keras.saving.register_keras_serializable(package="segcore")
class CosmicPrecision(CosmicConfusionMetric):
    """Pixel precision of the cosmic class, tp / (tp + fp), over an epoch."""

    def __init__(self, name="precision", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def result(self):
        tp, fp = self.true_positives, self.false_positives
        return self._ratio(tp, tp + fp)


@keras.saving.register_keras_serializable(package="segcore")
class CosmicRecall(CosmicConfusionMetric):
    """Pixel recall of the cosmic class, tp / (tp + fn), over an epoch."""

    def __init__(self, name="recall", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def result(self):
        tp, fn = self.true_positives, self.false_negatives
        return self._ratio(tp, tp + fn)


@keras.saving.register_keras_serializable(package="segcore")
class CosmicSpecificity(CosmicConfusionMetric):
    """Pixel specificity, tn / (tn + fp), over an epoch."""

    def __init__(self, name="specificity", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def result(self):
        tn, fp = self.true_negatives, self.false_positives
        return self._ratio(tn, tn + fp)


@keras.saving.register_keras_serializable(package="segcore")
class CosmicIoU(CosmicConfusionMetric):
    """Intersection over union of the cosmic class, tp / (tp + fp + fn), over an epoch."""

    def __init__(self, name="iou", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def result(self):
        tp = self.true_positives
        return self._ratio(tp, tp + self.false_positives + self.false_negatives)
