"""Training on several workers (MultiWorkerMirroredStrategy through TF_CONFIG), proven on this machine: two worker
processes on localhost (CPU) train a tiny network, are cancelled by the chief alone, and resume. The reference is
one worker (this process) at the same global batch: same losses, metrics and weights up to float32 rounding."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segcore.listeners import CancelToken, TrainingListener
from segcore.multiworker import localhost_tf_configs
from segcore.synth import generate_dataset

SUPPORT = Path(__file__).with_name("multiworker_support.py")
TIMEOUT = 900
CANCEL_AT = (1, 2)  # the chief cancels after the 2nd batch of the 2nd epoch
# Float32 sums in another order (each worker sums its share, then the shares are added): the losses agree to
# about 1e-7 relative (measured on two sets of frames); a different crop stream, a per-worker Dice term or
# Keras' own one-pass synchronized batch statistics (up to 3e-4, see segcore.multiworker) differ by more.
RTOL = 1e-4
#: A few pixels' share of the ~2,000 cosmic pixels an epoch's pooled scores count: a pixel whose probability sits
#: at the threshold may flip between two runs whose weights agree to ~1e-7.
SCORE_ATOL = 5e-3


def _config(data, out, **changes):
    config = dict(data_dir=str(data), out=str(out), backbone="tiny", backbone_weights="none", crop_size=32,
                  batch_size=4, epochs=2, steps_per_epoch=3, validation_steps=1, dropout=0.0, seed=3,
                  mixed_precision="float32", choose_threshold=True, loss="dice_cross_entropy")
    return {**config, **changes}


def _start_workers(phases, results, workers=2):
    """``workers`` processes on localhost, each running the trainings ``phases`` (configs) in turn."""
    processes = []
    for index, tf_config in enumerate(localhost_tf_configs(workers)):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", TF_CONFIG=tf_config)
        arguments = []
        for phase, config in enumerate(phases):
            arguments += [json.dumps(config), str(results / f"w{index}_{phase}")]
        processes.append(subprocess.Popen([sys.executable, str(SUPPORT), *arguments], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return processes


def _results(processes, phases, results):
    """Per phase, per worker (worker 0 first): (the run's record, its final weights)."""
    try:
        for process in processes:
            output, _ = process.communicate(timeout=TIMEOUT)
            assert process.returncode == 0, output[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    found = []
    for phase in range(len(phases)):
        found.append([])
        for index in range(len(processes)):
            prefix = results / f"w{index}_{phase}"
            weights = np.load(f"{prefix}.npz")
            found[-1].append((json.loads(Path(f"{prefix}.json").read_text()), [weights[k] for k in weights.files]))
    return found


class Batches(TrainingListener):
    def __init__(self, token, cancel_at):
        self.token, self.cancel_at, self.batches = token, cancel_at, []

    def on_batch_end(self, epoch, step, steps, logs):
        self.batches.append({"epoch": epoch, "step": step, **logs})
        if (epoch, step) == self.cancel_at:
            self.token.cancel()


def _train_one_worker(config, cancel_at=None):
    from segcore.trainer import TrainConfig, train

    token = CancelToken()
    listener = Batches(token, cancel_at)
    end = train(TrainConfig.from_dict(config), listeners=[listener], cancel=token)
    return vars(end), listener.batches


def _weights(path):
    from segcore.model import load_model

    return load_model(path, compile=False).get_weights()


@pytest.mark.slow
def test_two_workers_train_cancel_and_resume_like_one_worker_with_the_same_global_batch(tmp_path):
    data = tmp_path / "data"
    generate_dataset(data, n_train=4, n_validation=2, n_test=0, size=64, seed=0)
    results = tmp_path / "results"
    results.mkdir()
    one, two = tmp_path / "one" / "m.keras", tmp_path / "two" / "m.keras"
    # Two epochs, cancelled by the chief's listener after the 2nd batch of the 2nd; then resumed to the end.
    phases = [dict(_config(data, two), cancel_at=CANCEL_AT), _config(data, two, resume=True)]
    processes = _start_workers(phases, results)
    # The reference, one worker at the same global batch, trains here meanwhile.
    reference = [_train_one_worker(_config(data, one), CANCEL_AT), _train_one_worker(_config(data, one, resume=True))]
    found = _results(processes, phases, results)

    checkpoints = two.with_name("m_checkpoints")
    for phase, ((chief, chief_weights), (other, other_weights)) in enumerate(found):
        # The chief's cancel reached the other worker after the same batch (else it would wait in a collective).
        status, epochs_run = [("cancelled", 1), ("finished", 2)][phase]
        assert (chief["end"]["status"], other["end"]["status"]) == (status, status)
        assert chief["end"]["epochs_run"] == other["end"]["epochs_run"] == epochs_run
        assert len(chief["batch_seconds"]) == len(other["batch_seconds"]) == [3 + 2, 3][phase]
        for mine, theirs in zip(chief_weights, other_weights, strict=True):
            np.testing.assert_array_equal(mine, theirs)
        # The chief alone saved the checkpoints and the model, where the configuration says.
        written = {str(checkpoints / "last.keras"), str(two)}
        assert written <= set(chief["saved"]) <= written | {str(checkpoints / "best.keras")}
        assert len(other["saved"]) == len(chief["saved"])  # every worker saves (saving reads shared variables) ...
        assert not any(str(tmp_path) in p for p in other["saved"])  # ... but only the chief where the config says
        assert other["batches"] == []  # and only the chief's listeners hear of the batches
        # Both report the same (cross-worker) history: the one-worker run's, losses and pooled metrics alike.
        assert chief["end"]["history"] == other["end"]["history"]
        end, batches = reference[phase]
        assert (end["status"], end["epochs_run"], end["best_epoch"]) == (status, epochs_run, chief["end"]["best_epoch"])
        assert chief["end"]["history"].keys() == end["history"].keys()
        for key, values in end["history"].items():
            # Losses are continuous in the weights; scores of thresholded masks move by a whole pixel's share when
            # one probability sits at the threshold (the weights agree to ~1e-7, not bit for bit).
            tolerance = dict(rtol=RTOL) if key.endswith("loss") else dict(rtol=0, atol=SCORE_ATOL)
            np.testing.assert_allclose(chief["end"]["history"][key], values, err_msg=key, **tolerance)
        assert [(b["epoch"], b["step"]) for b in chief["batches"]] == [(b["epoch"], b["step"]) for b in batches]
        np.testing.assert_allclose([b["loss"] for b in chief["batches"]], [b["loss"] for b in batches], rtol=RTOL)
    assert sorted(os.listdir(checkpoints)) == ["best.keras", "last.keras", "state.json"]
    assert sorted(os.listdir(two.parent)) == ["m.keras", "m_checkpoints"]
    assert found[1][0][0]["end"]["threshold"] == reference[1][0]["threshold"]
    # After all 8 steps the weights are one worker's: the last checkpoint and the model. Adam moves a weight by at
    # most the rate (5e-4) a step; rounding moves a few by more than 1e-6 (measured on two sets of frames: median
    # 2e-8, 99.9 % 1e-6, largest 6.5e-6; with Keras' one-pass batch statistics 10 % moved by over 3e-5 and the
    # largest by 1e-3), a different batch moves most of them by about the rate.
    for name in ("m_checkpoints/last.keras", "m.keras"):
        mine, theirs = _weights(two.parent / name), _weights(one.parent / name)
        assert [w.shape for w in mine] == [w.shape for w in theirs]
        differences = np.concatenate([np.abs(a - b).ravel() for a, b in zip(mine, theirs)])
        spread = f"{name}: 99.9 % {np.quantile(differences, 0.999):.2g}, largest {differences.max():.2g}"
        assert differences.max() < 2.5e-4 and np.quantile(differences, 0.999) < 2e-5, spread


def test_two_pass_batch_statistics_keep_the_variance_of_a_feature_whose_mean_dwarfs_its_spread():
    import keras
    import tensorflow as tf

    from segcore.multiworker import _two_pass_moments

    rng = np.random.default_rng(0)
    values = (3000.0 + 0.05 * rng.standard_normal((4, 8, 8, 3))).astype(np.float32)
    layer = keras.layers.BatchNormalization(synchronized=True)
    layer.build(values.shape)
    want = values.astype(np.float64).reshape(-1, 3)
    mean, variance = _two_pass_moments(layer, layer._moments)(tf.constant(values))
    np.testing.assert_allclose(mean, want.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(variance, want.var(axis=0), rtol=1e-3)
    # Keras' one-pass form, E[x^2] - E[x]^2 in float32, loses the variance of such a feature entirely
    _, one_pass = layer._moments(tf.constant(values), None)
    assert np.max(np.abs(one_pass.numpy() / want.var(axis=0) - 1)) > 0.5


def test_localhost_tf_configs_name_one_cluster_of_free_ports_and_each_workers_index():
    configs = [json.loads(c) for c in localhost_tf_configs(3)]
    workers = configs[0]["cluster"]["worker"]
    assert all(c["cluster"] == {"worker": workers} for c in configs)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert len(set(workers)) == 3 and all(w.startswith("localhost:") and int(w.split(":")[1]) > 0 for w in workers)
