"""The small helpers behind the Train, Results and Compare pages."""

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from ui import run_text


def _run(**fields):
    values = dict(
        id=3, name="baseline", status="running", config={"epochs": 10}, epochs_total=10, epochs_run=0,
        started_at=None, ended_at=None, current_step=None, steps_per_epoch=None,
    )
    values.update(fields)
    return SimpleNamespace(**values)


NOW = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)


def test_timing_spreads_the_elapsed_time_over_the_epochs_done():
    run = _run(started_at=NOW - timedelta(seconds=100), epochs_run=4, current_step=5, steps_per_epoch=10)
    clock = run_text.timing(run, now=NOW)
    assert clock["per_epoch"] == pytest.approx(25.0)
    assert clock["left"] == pytest.approx((10 - 4 - 0.5) * 25.0)


def test_timing_knows_nothing_before_the_first_epoch_ends():
    clock = run_text.timing(_run(started_at=NOW - timedelta(seconds=30)), now=NOW)
    assert clock["per_epoch"] is None and clock["left"] is None


def test_timing_of_an_ended_run_counts_to_its_end_and_leaves_nothing_left():
    run = _run(status="finished", started_at=NOW - timedelta(seconds=300), ended_at=NOW - timedelta(seconds=100), epochs_run=10)
    clock = run_text.timing(run, now=NOW)
    assert clock["elapsed"] == pytest.approx(200.0)
    assert clock["left"] is None


@pytest.mark.parametrize("seconds, text", [(None, "–"), (7.4, "7 s"), (125, "2 min 05 s"), (3720, "1 h 02 min")])
def test_durations_read_like_words(seconds, text):
    assert run_text.format_duration(seconds) == text


def test_readable_log_keeps_the_last_drawing_of_each_progress_bar():
    log = "run 1: starting\nepoch 1/2:  50%|5| 1/2\nepoch 1/2: 100%|#| 2/2\nepoch 2/2:  50%|5| 1/2\rdone\n"
    assert run_text.readable_log(log) == "run 1: starting\nepoch 1/2: 100%|#| 2/2\nepoch 2/2:  50%|5| 1/2\ndone"


def test_full_config_fills_in_the_defaults_and_hides_store_paths():
    config = run_text.full_config(_run(config={"epochs": 3, "data_dir": "/x", "out": "/x/m.keras"}))
    assert config["epochs"] == 3
    assert config["learning_rate"] == 5e-4 and config["schedule"] == "cosine"
    assert "data_dir" not in config and "out" not in config


@pytest.mark.parametrize(
    "fields, expected",
    [
        (dict(threshold=0.42, threshold_source="validation", status="finished"), "0.42 (chosen on validation)"),
        (dict(threshold=0.3, threshold_source="fixed", status="running"), "0.3 (fixed)"),
        (dict(threshold=None, threshold_source="validation", status="running"),
         "to be chosen on the validation frames when training ends"),
        (dict(threshold=None, threshold_source="validation", status="cancelled"),
         "0.5 (default: training ended before a threshold was chosen on validation)"),
    ],
)
def test_threshold_text_says_where_a_runs_threshold_came_from(fields, expected):
    assert run_text.threshold_text(_run(**fields)) == expected


def test_an_evaluation_at_another_threshold_than_the_runs_was_set_by_hand():
    run = _run(threshold=0.42, threshold_source="validation", status="finished")
    assert run_text.evaluation_threshold_text(SimpleNamespace(threshold=0.42), run) == "0.42 (chosen on validation)"
    assert run_text.evaluation_threshold_text(SimpleNamespace(threshold=0.3), run) == "0.3 (set by hand)"
    fallback = _run(threshold=None, threshold_source="validation", status="cancelled")
    assert run_text.evaluation_threshold_text(SimpleNamespace(threshold=0.5), fallback).startswith("0.5 (default")


def _lacosmic_run(**config):
    return _run(kind="lacosmic", status="finished", config=config, threshold=0.5, threshold_source="fixed")


def test_an_lacosmic_run_is_named_and_described_as_one():
    run = _lacosmic_run(sigclip=8.0, objlim=2.0, gain=2.5, tune=True, tuned=True, tuned_f1=0.71234, tuning_frames=15)
    assert run_text.run_label(run) == "#3 baseline (LA Cosmic, finished)"
    assert run_text.method_text(run) == "LA Cosmic (no training)"
    assert run_text.lacosmic_parameters_text(run) == (
        "sigclip 8 · sigfrac 0.3 · objlim 2 · niter 4 · gain 2.5 · read noise, offset, saturation measured on each "
        "frame · sigclip, sigfrac and objlim tuned on 15 validation frames (pooled F1 0.712)"
    )
    assert run_text.threshold_text(run) == "none: LA Cosmic (no training) gives masks"
    assert run_text.evaluation_threshold_text(SimpleNamespace(threshold=0.5), run) == run_text.threshold_text(run)


@pytest.mark.parametrize(
    "config, status, ending",
    [
        (dict(tune=False), "finished", "as given (not tuned)"),
        (dict(tune=True), "running", "sigclip, sigfrac and objlim to be tuned on the validation frames"),
        (dict(tune=True, tuned=False), "finished", "not tuned (no validation frames with masks): as given"),
    ],
)
def test_an_lacosmic_runs_description_says_whether_it_was_tuned(config, status, ending):
    run = _run(kind="lacosmic", status=status, config=config)
    assert run_text.lacosmic_parameters_text(run).endswith(ending)


def test_full_config_of_an_lacosmic_run_holds_its_parameters_not_training_options():
    config = run_text.full_config(_lacosmic_run(sigclip=6.0, tune=False))
    assert (config["sigclip"], config["niter"], config["tune"]) == (6.0, 4, False)
    assert config["read_noise"] == "measured on each frame"
    assert "learning_rate" not in config and "epochs" not in config
