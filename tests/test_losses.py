import keras
import numpy as np
import pytest
from sklearn.metrics import log_loss

from segcore.losses import DiceCrossEntropy, make_loss


def _batch(seed=0, shape=(2, 8, 8)):
    rng = np.random.default_rng(seed)
    labels = (rng.random(shape) < 0.2).astype(np.uint8)
    logits = rng.normal(size=shape + (2,)).astype(np.float32)
    return labels, logits


def _reference(labels, logits, dice_weight=1.0, smooth=1.0):
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    cross_entropy = log_loss(labels.ravel(), probabilities.reshape(-1, 2), labels=[0, 1])
    cosmic = probabilities[..., 1]
    dice = (2 * (cosmic * labels).sum() + smooth) / (cosmic.sum() + labels.sum() + smooth)
    return cross_entropy + dice_weight * (1 - dice)


def test_dice_cross_entropy_matches_a_numpy_reference():
    labels, logits = _batch()
    value = float(DiceCrossEntropy()(labels[..., None], logits))
    assert value == pytest.approx(_reference(labels, logits), rel=1e-5)


def test_dice_weight_scales_the_dice_term():
    labels, logits = _batch(1)
    value = float(DiceCrossEntropy(dice_weight=3.0)(labels, logits))
    assert value == pytest.approx(_reference(labels, logits, dice_weight=3.0), rel=1e-5)


def test_perfect_prediction_of_an_empty_batch_costs_almost_nothing():
    labels = np.zeros((1, 4, 4), np.uint8)
    logits = np.stack([np.full((1, 4, 4), 20.0), np.full((1, 4, 4), -20.0)], axis=-1).astype(np.float32)
    assert float(DiceCrossEntropy()(labels, logits)) == pytest.approx(0.0, abs=1e-6)


def test_cross_entropy_is_the_original_loss():
    labels, logits = _batch(2)
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(make_loss("cross_entropy")(labels, logits)) == pytest.approx(float(expected))


def test_loss_survives_serialisation():
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(DiceCrossEntropy(2.0)))
    assert isinstance(restored, DiceCrossEntropy) and restored.dice_weight == 2.0


def test_unknown_loss_name_is_refused():
    with pytest.raises(ValueError, match="dice_cross_entropy"):
        make_loss("focal")
