"""The Label page's edit session (ui.edit_session.EditSession): strokes, undo, discard, decisions on a
proposal's cosmics and extents, checked against masks built by hand."""

from __future__ import annotations

import numpy as np
from skimage.measure import label

from ui.edit_session import MAX_UNDO, EditSession


def _proposal_session() -> tuple[EditSession, np.ndarray]:
    proposal = np.zeros((20, 20), bool)
    proposal[2, 2] = proposal[10, 10] = True
    labels = label(proposal, connectivity=2)
    return EditSession(key=(1, "proposal:1", None), name="f.png", base=proposal, saved=np.zeros_like(proposal),
                       proposal=object(), labels=labels), labels


def test_a_new_session_starts_from_its_base_without_edits():
    base = np.zeros((8, 8), np.uint8)
    base[1, 1] = 1
    work = EditSession(key=(1, "current", None), name="f.png", base=base, saved=base)
    assert work.mask.dtype == bool and work.mask is not work.base and np.array_equal(work.current, base)
    assert not work.has_edits and not work.can_undo and not work.from_proposal and work.proposed == 0
    assert work.added_removed() == (0, 0)


def test_strokes_are_pending_until_committed_and_undo_drops_them_first():
    base = np.zeros((8, 8), bool)
    work = EditSession(key=(1, "current", None), name="f.png", base=base, saved=base)
    stroke = base.copy()
    stroke[2:4, 2:4] = True
    work.edited = stroke
    assert work.has_edits and work.can_undo and work.added_removed() == (4, 0)
    assert np.array_equal(work.current, stroke) and not work.mask.any()
    work.undo()  # the pending strokes go, nothing else
    assert work.edited is None and not work.has_edits

    work.edited = stroke
    work.commit_strokes()
    assert work.edited is None and np.array_equal(work.mask, stroke) and len(work.history) == 1
    work.edited = stroke.copy()  # strokes that change nothing make no undo step
    work.commit_strokes()
    assert len(work.history) == 1
    work.undo()
    assert not work.mask.any() and work.history == []
    work.undo()  # nothing left: no change, no error
    assert not work.mask.any()


def test_undo_keeps_at_most_max_undo_steps():
    base = np.zeros((4, 4), bool)
    work = EditSession(key=(1, "current", None), name="f.png", base=base, saved=base)
    for i in range(MAX_UNDO + 5):
        stroke = work.mask.copy()
        stroke.flat[i % 16] = not stroke.flat[i % 16]
        work.edited = stroke
        work.commit_strokes()
    assert len(work.history) == MAX_UNDO


def test_decisions_extents_undo_and_discard_on_a_proposal():
    work, labels = _proposal_session()
    significance = np.zeros((20, 20), np.float32)
    significance[9:12, 9:12] = 5.0

    work.decide({1: False})
    work.resize_cosmic(significance, 2, 3.0)
    assert (work.mask.sum(), work.decisions, work.next_undecided(None)) == (9, {1: False, 2: True}, None)
    work.undo()
    assert (work.mask.sum(), work.decisions, (work.labels == 2).sum()) == (1, {1: False}, 1)
    work.resize_cosmic(significance, 2, 3.0)
    work.discard()
    np.testing.assert_array_equal(work.mask, work.base)
    assert (work.decisions, work.history, work.labels is labels, work.next_undecided(1)) == ({}, [], True, 2)


def test_accept_all_and_reject_all_and_the_next_undecided_wraps_round():
    work, _ = _proposal_session()
    assert (work.next_undecided(None), work.next_undecided(1), work.next_undecided(2)) == (1, 2, 1)
    work.decide_all(False)
    assert not work.mask.any() and work.decisions == {1: False, 2: False} and work.next_undecided(None) is None
    work.decide_all(True)
    np.testing.assert_array_equal(work.mask, work.base)
    assert work.has_edits  # two decision steps to undo, though the mask is the proposal again


def test_strokes_pending_when_cosmics_are_decided_become_their_own_undo_step():
    work, _ = _proposal_session()
    stroke = work.mask.copy()
    stroke[15, 15] = True
    work.edited = stroke
    work.decide({1: False})
    expected = stroke.copy()
    expected[2, 2] = False
    np.testing.assert_array_equal(work.mask, expected)
    work.undo()
    np.testing.assert_array_equal(work.mask, stroke)  # the decision undone, the stroke kept
    work.undo()
    np.testing.assert_array_equal(work.mask, work.base)


def test_clicks_are_handled_once_per_canvas():
    work, _ = _proposal_session()
    assert work.new_clicks(3, [(1, 1)]) == [(1, 1)]
    assert work.new_clicks(3, [(1, 1), (2, 2)]) == [(2, 2)]
    assert work.new_clicks(4, [(5, 5)]) == [(5, 5)]  # a new canvas counts afresh
