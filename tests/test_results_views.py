"""The Results page's pieces that are not layout (ui.rescore, ui.result_images, ui.result_curves)."""

from types import SimpleNamespace

import pandas as pd

from ui.rescore import unevaluated_runs
from ui.result_curves import operating_point_text, score_numbers
from ui.result_images import image_choices


def _run(id, status="finished", epochs_run=3, kind="train"):
    return SimpleNamespace(id=id, status=status, epochs_run=epochs_run, kind=kind)


def test_unevaluated_runs_are_ended_runs_with_something_to_evaluate():
    runs = [
        _run(1),  # evaluated
        _run(2, status="cancelled"),
        _run(3, status="failed", epochs_run=0),  # nothing saved
        _run(4, status="running"),
        _run(5, status="cancelled", epochs_run=0, kind="lacosmic"),
    ]
    assert [r.id for r in unevaluated_runs(runs, {1: []})] == [2, 5]


def test_image_choices_put_the_worst_iou_first():
    table = pd.DataFrame({"image": ["a", "b", "c"], "iou": [0.5, 0.1, 0.5]})
    assert image_choices(table) == {"b": "b (IoU 0.100)", "a": "a (IoU 0.500)", "c": "c (IoU 0.500)"}
    assert image_choices(table.drop(columns="iou")) == {"a": "a", "b": "b", "c": "c"}


def test_score_numbers_leave_out_missing_scores():
    text = score_numbers(("precision", "recall", "f1"), {"precision": 0.5, "recall": float("nan")})
    assert text.count("**") == 2 and "0.500" in text
    assert score_numbers(("recall",), pd.Series({"recall": None}, dtype=float)) == ""


def test_operating_point_text_says_when_no_pixel_is_marked():
    assert operating_point_text(0.2, {"precision": 0.25, "recall": 0.5, "fpr": 1.5e-4}) == (
        "At threshold **0.2**: precision **0.250** · recall **0.500** · false-positive rate **1.50e-04**"
    )
    text = operating_point_text(0.95, {"precision": float("nan"), "recall": 0.0, "fpr": 0.0})
    assert text == "At threshold **0.95** no pixel is marked: recall **0** · false-positive rate **0**"
    assert "nan" not in text
    # A split without cosmic pixels: recall is 0/0 whether or not anything is marked.
    assert operating_point_text(0.95, {"precision": float("nan"), "recall": float("nan"), "fpr": 0.0}) == (
        "At threshold **0.95** no pixel is marked: recall **–** · false-positive rate **0**"
    )
    assert operating_point_text(0.2, {"precision": 0.0, "recall": float("nan"), "fpr": 2e-4}) == (
        "At threshold **0.2**: precision **0.000** · recall **–** · false-positive rate **2.00e-04**"
    )
