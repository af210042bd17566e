import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import jaccard_score, precision_score, recall_score

from segcore.training_metrics import CosmicIoU, CosmicPrecision, CosmicRecall, CosmicSpecificity

KERAS_METRICS = {
    "precision": CosmicPrecision,
    "recall": CosmicRecall,
    "specificity": CosmicSpecificity,
    "iou": CosmicIoU,
}


def logits_for(pred):
    """(B, H, W, 2) logits whose argmax is ``pred``, exact in bfloat16."""
    one = pred.astype(np.float32)
    return np.stack([1.0 - one, one], axis=-1)


def skewed_batches():
    """Three batches whose cosmic fractions and error rates differ widely."""
    rng = np.random.default_rng(42)
    batches = []
    for true_density, noise in [(0.02, 0.01), (0.5, 0.4), (0.9, 0.05)]:
        true = rng.random((2, 8, 8)) < true_density
        pred = np.where(rng.random(true.shape) < noise, ~true, true)
        batches.append((true, pred))
    return batches


def reference_value(name, true, pred):
    t, p = true.ravel().astype(int), pred.ravel().astype(int)
    return {
        "precision": precision_score(t, p),
        "recall": recall_score(t, p),
        "specificity": recall_score(t, p, pos_label=0),
        "iou": jaccard_score(t, p),
    }[name]


@pytest.mark.parametrize("name", KERAS_METRICS)
def test_streaming_metric_equals_pooled_ratio_not_batch_mean(name):
    metric = KERAS_METRICS[name]()
    batches = skewed_batches()
    for true, pred in batches:
        metric.update_state(true[..., None].astype(np.uint8), logits_for(pred))
    pooled = reference_value(
        name,
        np.concatenate([t.ravel() for t, _ in batches]),
        np.concatenate([p.ravel() for _, p in batches]),
    )
    batch_mean = np.mean([reference_value(name, t, p) for t, p in batches])
    assert float(metric.result()) == pytest.approx(pooled, abs=1e-6)
    assert abs(pooled - batch_mean) > 0.02


@pytest.mark.parametrize("name", KERAS_METRICS)
def test_streaming_metric_default_name(name):
    assert KERAS_METRICS[name]().name == name


def test_streaming_metric_accepts_labels_without_channel_axis():
    true, pred = skewed_batches()[1]
    with_axis, without_axis = CosmicPrecision(), CosmicPrecision()
    with_axis.update_state(true[..., None], logits_for(pred))
    without_axis.update_state(true, logits_for(pred))
    assert float(with_axis.result()) == float(without_axis.result())


def test_reset_state_zeroes_the_counts():
    metric = CosmicRecall()
    true, pred = skewed_batches()[0]
    metric.update_state(true, logits_for(pred))
    metric.reset_state()
    assert [float(v) for v in metric.variables] == [0.0, 0.0, 0.0, 0.0]
    true, pred = skewed_batches()[2]
    metric.update_state(true, logits_for(pred))
    assert float(metric.result()) == pytest.approx(reference_value("recall", true, pred))


def test_streaming_metrics_follow_empty_conventions():
    empty = np.zeros((1, 4, 4), bool)
    cosmic = empty.copy()
    cosmic[0, 1, 1] = True
    for metric_class in KERAS_METRICS.values():
        both_empty = metric_class()
        both_empty.update_state(empty, logits_for(empty))
        assert float(both_empty.result()) == 1.0
    for metric_class in (CosmicPrecision, CosmicRecall, CosmicIoU):
        missed = metric_class()
        missed.update_state(cosmic, logits_for(empty))
        assert float(missed.result()) == 0.0


def test_streaming_metric_weighs_pixels_by_sample_weight():
    true, pred = skewed_batches()[1]
    weights = np.array([0.25, 3.0])
    metric = CosmicPrecision()
    metric.update_state(true, logits_for(pred), sample_weight=weights)
    pixel_weights = np.broadcast_to(weights[:, None, None], true.shape).ravel()
    expected = precision_score(true.ravel(), pred.ravel(), sample_weight=pixel_weights)
    assert float(metric.result()) == pytest.approx(expected)


def test_streaming_metric_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(2, 8, 8\).*\(2, 8, 9, 2\)"):
        CosmicIoU().update_state(np.zeros((2, 8, 8, 1)), np.zeros((2, 8, 9, 2)))


def test_streaming_metric_accepts_bfloat16_logits_in_a_graph():
    metric = CosmicIoU()
    batches = skewed_batches()

    @tf.function
    def update(true, logits):
        metric.update_state(true, logits)

    for true, pred in batches:
        update(tf.constant(true[..., None], tf.uint8), tf.constant(logits_for(pred), tf.bfloat16))
    pooled = reference_value(
        "iou",
        np.concatenate([t.ravel() for t, _ in batches]),
        np.concatenate([p.ravel() for _, p in batches]),
    )
    assert float(metric.result()) == pytest.approx(pooled, abs=1e-6)


def test_streaming_metric_config_round_trips():
    metric = CosmicSpecificity(name="val_spec")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert type(restored) is CosmicSpecificity
    assert restored.name == "val_spec"


@pytest.fixture(scope="module")
def tiny_model_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 16, 16, 3)).astype(np.float32)
    y = (x[..., :1] > 0.8).astype(np.uint8)
    return x, y


def tiny_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(2, 1)])
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[cls() for cls in KERAS_METRICS.values()],
    )
    return model


def test_metrics_work_in_compile_fit_and_evaluate(tiny_model_data):
    x, y = tiny_model_data
    model = tiny_model()
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert set(KERAS_METRICS) <= set(history.history)
    results = model.evaluate(x, y, batch_size=5, verbose=0, return_dict=True)
    logits = model.predict(x, batch_size=5, verbose=0)
    pred = logits[..., 1] > logits[..., 0]
    for name in KERAS_METRICS:
        assert 0.0 < results[name] < 1.0
        assert results[name] == pytest.approx(reference_value(name, y[..., 0] > 0, pred), abs=1e-6)


def test_metrics_survive_model_save_and_load(tiny_model_data, tmp_path):
    x, y = tiny_model_data
    model = tiny_model()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    before = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    after = loaded.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    for name in KERAS_METRICS:
        assert after[name] == pytest.approx(before[name])
