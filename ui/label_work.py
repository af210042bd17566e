"""The Label page's unsaved work on one frame: a dict kept in ``st.session_state`` per frame and start.

Keys: ``base`` (the mask it started from: the saved mask or a proposal), ``saved`` (the frame's saved
mask), ``mask`` (the mask as edited so far), ``edited`` (the mask with the canvas' strokes not yet
folded in, or None), ``undo`` (earlier (mask, decisions, labels) states), ``proposal`` (the proposal
it started from, or None), ``labels`` (the proposal's cosmics, labelled; None without a proposal),
``base_labels`` (them as first labelled), ``decisions`` (label -> True accepted / False rejected). Plain NumPy; no Streamlit here.
"""

from __future__ import annotations

import numpy as np

from segcore.components import apply_decisions, extent_at

#: Undo steps kept per frame (each is a full-resolution mask).
MAX_UNDO = 30


def has_edits(work: dict) -> bool:
    if work["undo"] or work["edited"] is not None:
        return True
    return not np.array_equal(work["mask"], work["base"])


def keep_for_undo(work: dict, limit: int = MAX_UNDO) -> None:
    work["undo"] = (work["undo"] + [(work["mask"], dict(work["decisions"]), work["labels"])])[-limit:]


def fold_strokes(work: dict) -> None:
    """Strokes on the canvas become part of the mask (an undo step)."""
    if work["edited"] is not None and not np.array_equal(work["edited"], work["mask"]):
        keep_for_undo(work)
        work["mask"] = work["edited"]
    work["edited"] = None


def undo_last(work: dict) -> None:
    """Drop the strokes not folded in yet; without any, go back one step."""
    if work["edited"] is not None and not np.array_equal(work["edited"], work["mask"]):
        work["edited"] = None
    elif work["undo"]:
        work["mask"], work["decisions"], work["labels"] = work["undo"].pop()
        work["edited"] = None


def discard_edits(work: dict) -> None:
    """Back to the mask it started from, its cosmics as proposed and none decided."""
    work.update(mask=work["base"].copy(), undo=[], edited=None, decisions={}, labels=work["base_labels"])


def decide_cosmics(work: dict, decisions: dict[int, bool]) -> None:
    """Accept (True) or reject (False) whole proposed cosmics."""
    fold_strokes(work)
    keep_for_undo(work)
    work["mask"] = apply_decisions(work["mask"], work["labels"], decisions)
    work["decisions"] = {**work["decisions"], **decisions}


def resize_cosmic(work: dict, significance: np.ndarray, label: int, k: float) -> None:
    """Grow or shrink a proposed cosmic to its signal above ``k`` sigma; it counts as accepted."""
    fold_strokes(work)
    keep_for_undo(work)
    old = work["labels"] == label
    new = extent_at(significance, work["labels"], label, k)
    work["mask"] = (work["mask"] & ~old) | new
    labels = work["labels"].copy()
    labels[old] = 0
    labels[new] = label
    work["labels"] = labels
    work["decisions"] = {**work["decisions"], label: True}


def next_undecided(work: dict, chosen: int | None) -> int | None:
    """The first undecided proposed cosmic after ``chosen`` (wrapping round), or None when all are decided."""
    undecided = [k for k in range(1, int(work["labels"].max()) + 1) if k not in work["decisions"]]
    if not undecided:
        return None
    return next((k for k in undecided if k > (chosen or 0)), undecided[0])
