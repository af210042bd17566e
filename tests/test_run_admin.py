"""The Train page's run log without TensorFlow's start-up noise, and why a run's training ended."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from streamlit.testing.v1 import AppTest

import db
from db_fixtures import make_layout, sqlite_store  # noqa: F401
from test_app_proposals import ROOT
from test_db_predictions import _finished_run
from ui.run_admin import stop_text
from ui.run_text import readable_log

# The start of a real worker log on a machine without a GPU (TF_CPP_MIN_LOG_LEVEL=2 already set).
LOG = """run 3: pid 11004, starting
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796107705.581941   11004 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
E0000 00:00:1796107711.895713   11004 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
E0000 00:00:1796107711.9   11004 something.cc:12] a real error the user must see
Backbone weights: random
epoch 1/3:   0%|          | 0/2 [00:00<?, ?batch/s]\repoch 1/3: 100%|##########| 2/2 [00:11<00:00,  5.93s/batch, loss=1.961]
Training finished (time limit) after 1 epochs, best epoch 1 (val_loss 1.5797).
"""


def test_the_log_keeps_the_runs_lines_and_real_errors_and_drops_the_start_up_noise():
    assert readable_log(LOG).splitlines() == [
        "run 3: pid 11004, starting",
        "E0000 00:00:1796107711.9   11004 something.cc:12] a real error the user must see",
        "Backbone weights: random",
        "epoch 1/3: 100%|##########| 2/2 [00:11<00:00,  5.93s/batch, loss=1.961]",
        "Training finished (time limit) after 1 epochs, best epoch 1 (val_loss 1.5797).",
    ]


@pytest.mark.parametrize("reason, status, expected", [
    ("time limit", "finished", "Stopped on its time limit after 4 of 10 epochs"),
    ("early stopping", "finished", "Stopped early after 4 of 10 epochs"),
    ("epochs", "finished", "Ran all its 10 epochs."),
    (None, "finished", None),
    ("cancelled", "cancelled", None),
])
def test_why_training_ended_in_a_sentence(reason, status, expected):
    run = SimpleNamespace(stop_reason=reason, status=status, epochs_run=4, epochs_total=10)
    text = stop_text(run)
    assert (text is None) if expected is None else text.startswith(expected)


def test_the_train_page_says_a_run_stopped_on_its_time_limit(sqlite_store, tmp_path):  # noqa: F811
    from db.models import Run

    make_layout(tmp_path / "src", {"Train": 1, "Validation": 1, "Test": 1})
    run_id = _finished_run(db.import_folder(tmp_path / "src", name="t").dataset_id)
    with db.session_scope() as session:
        row = session.get(Run, run_id)
        row.stop_reason, row.epochs_run, row.epochs_total = "time limit", 2, 50
    at = AppTest.from_file(str(ROOT / "pages" / "3_Train.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert any("Stopped on its time limit after 2 of 50 epochs" in w.value for w in at.warning), [
        w.value for w in at.warning]
