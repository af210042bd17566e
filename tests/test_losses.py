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


def _per_image_reference(labels, logits, smooth=1.0):
    return np.mean([_reference(labels[i : i + 1], logits[i : i + 1], smooth=smooth) for i in range(len(labels))])


def test_image_dice_cross_entropy_averages_each_crops_loss():
    labels, logits = _batch(3, shape=(3, 8, 8))
    labels[2] = 0  # a crop without cosmics
    value = float(make_loss("image_dice_cross_entropy")(labels[..., None], logits))
    assert value == pytest.approx(_per_image_reference(labels, logits), rel=1e-5)


def test_a_missed_small_hit_costs_more_per_image_than_pooled():
    # Crop 0: 100 cosmic pixels found; crop 1: a 2-pixel hit missed.
    labels = np.zeros((2, 16, 16), np.uint8)
    labels[0, :10, :10] = 1
    labels[1, 5, 5:7] = 1
    cosmic_logit = np.full((2, 16, 16), -10.0)
    cosmic_logit[0][labels[0] > 0] = 10.0
    logits = np.stack([np.zeros_like(cosmic_logit), cosmic_logit], axis=-1).astype(np.float32)
    pooled = float(make_loss("dice_cross_entropy")(labels, logits))
    per_image = float(make_loss("image_dice_cross_entropy")(labels, logits))
    assert pooled == pytest.approx(_reference(labels, logits), rel=1e-5)
    assert per_image == pytest.approx(_per_image_reference(labels, logits), rel=1e-5)
    # Pooled Dice ~ 201 / 203 = 0.990; per crop ~ (1 + 1/3) / 2 = 0.667: the missed worm weighs 0.32 more.
    assert per_image - pooled == pytest.approx(201 / 203 - (1 + 1 / 3) / 2, abs=0.01)


def test_cross_entropy_is_the_original_loss():
    labels, logits = _batch(2)
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(make_loss("cross_entropy")(labels, logits)) == pytest.approx(float(expected))


def test_loss_survives_serialisation():
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(DiceCrossEntropy(2.0)))
    assert isinstance(restored, DiceCrossEntropy) and restored.dice_weight == 2.0
    per_image = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(make_loss("image_dice_cross_entropy"))
    )
    assert per_image.per_image and per_image.name == "image_dice_cross_entropy"


def test_unknown_loss_name_is_refused():
    with pytest.raises(ValueError, match="dice_cross_entropy"):
        make_loss("focal")
