"""The Datasets page's pieces that are not layout (ui.dataset_forms, ui.dataset_overview)."""

from datetime import datetime
from types import SimpleNamespace

from ui.dataset_forms import TARGETS, import_target
from ui.dataset_overview import dataset_rows, thumb_label


def test_an_import_goes_into_the_selected_dataset_only_when_chosen_and_there_is_one():
    selected = SimpleNamespace(id=7)
    assert import_target(TARGETS[1], selected) == 7
    assert import_target(TARGETS[0], selected) is None
    assert import_target(TARGETS[1], None) is None


def test_thumb_label_says_which_frames_lack_a_mask():
    def row(revision, split="train"):
        return SimpleNamespace(revision_id=revision, name="f1", split=split)

    assert thumb_label(row(3.0)) == (3, "f1 · train")
    assert thumb_label(row(float("nan"))) == (None, "f1 · train · no mask")
    assert thumb_label(row(None)) == (None, "f1 · train · no mask")
    assert thumb_label(row(None, "real")) == (None, "f1 · real")


def test_dataset_rows_count_frames_per_split():
    dataset = SimpleNamespace(name="A", frames={"train": 5, "test": 2}, created=datetime(2026, 1, 2, 3, 4), source=None)
    assert dataset_rows([dataset]) == [
        {"Dataset": "A", "Train": 5, "Validation": 0, "Test": 2, "Real": 0, "Created": "2026-01-02 03:04", "Source": ""}
    ]
