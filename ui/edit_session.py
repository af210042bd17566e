"""The Label page's unsaved work on one frame: :class:`EditSession`, kept in ``st.session_state``
per frame and start (saved mask or a proposal), so going to another frame and back loses nothing.

Plain NumPy; no Streamlit and no store here (tested on its own in ``tests/test_edit_session.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segcore.components import apply_decisions, extent_at

#: Undo steps kept per frame (each is a full-resolution mask).
MAX_UNDO = 30


@dataclass
class EditSession:
    """One frame's mask as being edited.

    ``base``: the mask it started from (the saved mask or a proposal); ``saved``: the frame's saved
    mask (what changes are counted against); ``mask``: the mask as edited so far; ``edited``: the
    mask with the drawing canvas' strokes not yet committed, or None; ``proposal``: the proposal it
    started from (a ``db.Proposal``) or None; ``labels``: the proposal's cosmics labelled 1..n (None
    without a proposal), ``decisions``: label -> True accepted / False rejected.
    """

    key: tuple
    name: str
    base: np.ndarray
    saved: np.ndarray
    revision: int | None = None
    proposal: Any = None
    labels: np.ndarray | None = None
    mask: np.ndarray = None  # type: ignore[assignment]
    edited: np.ndarray | None = None
    decisions: dict[int, bool] = field(default_factory=dict)
    #: earlier (mask, decisions, labels) states, oldest first
    history: list[tuple] = field(default_factory=list)
    #: the view and tool the canvas was drawn with; a change commits the strokes
    params: tuple | None = None
    #: (canvas id, clicks already handled) for the *Pick cosmics* tool
    clicks_seen: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        self.base = np.asarray(self.base, bool)
        self.saved = np.asarray(self.saved, bool)
        if self.mask is None:
            self.mask = self.base.copy()
        self.base_labels = self.labels

    # --- what the page shows -------------------------------------------------------------

    @property
    def from_proposal(self) -> bool:
        return self.proposal is not None

    @property
    def current(self) -> np.ndarray:
        """The mask as it looks now, strokes not yet committed included."""
        return self.edited if self.edited is not None else self.mask

    @property
    def can_undo(self) -> bool:
        return bool(self.history) or self.edited is not None

    @property
    def has_edits(self) -> bool:
        """Anything changed since it started (strokes, decisions, extents)."""
        return self.can_undo or not np.array_equal(self.mask, self.base)

    @property
    def proposed(self) -> int:
        """How many cosmics the proposal has (0 without one)."""
        return 0 if self.labels is None else int(self.labels.max())

    def added_removed(self) -> tuple[int, int]:
        """Pixels added and removed against the saved mask."""
        current = self.current
        return int(np.count_nonzero(current & ~self.saved)), int(np.count_nonzero(self.saved & ~current))

    # --- editing -----------------------------------------------------------------------------

    def _remember(self) -> None:
        self.history = (self.history + [(self.mask, dict(self.decisions), self.labels)])[-MAX_UNDO:]

    def commit_strokes(self) -> None:
        """Strokes on the canvas become part of the mask (one undo step)."""
        if self.edited is not None and not np.array_equal(self.edited, self.mask):
            self._remember()
            self.mask = self.edited
        self.edited = None

    def undo(self) -> None:
        """Drop the strokes not committed yet; without any, go back one step."""
        if self.edited is not None and not np.array_equal(self.edited, self.mask):
            self.edited = None
        elif self.history:
            self.mask, self.decisions, self.labels = self.history.pop()
            self.edited = None

    def discard(self) -> None:
        """Back to the mask it started from, its cosmics as proposed and none decided."""
        self.mask, self.history, self.edited, self.decisions = self.base.copy(), [], None, {}
        self.labels = self.base_labels

    def decide(self, decisions: dict[int, bool]) -> None:
        """Accept (True) or reject (False) whole proposed cosmics."""
        self.commit_strokes()
        self._remember()
        self.mask = apply_decisions(self.mask, self.labels, decisions)
        self.decisions = {**self.decisions, **decisions}

    def decide_all(self, keep: bool) -> None:
        self.decide({k: keep for k in range(1, self.proposed + 1)})

    def resize_cosmic(self, significance: np.ndarray, label: int, k: float) -> None:
        """Grow or shrink a proposed cosmic to its signal above ``k`` sigma; it counts as accepted."""
        self.commit_strokes()
        self._remember()
        old = self.labels == label
        new = extent_at(significance, self.labels, label, k)
        self.mask = (self.mask & ~old) | new
        labels = self.labels.copy()
        labels[old] = 0
        labels[new] = label
        self.labels = labels
        self.decisions = {**self.decisions, label: True}

    def next_undecided(self, chosen: int | None) -> int | None:
        """The first undecided proposed cosmic after ``chosen`` (wrapping round), or None when all are decided."""
        undecided = [k for k in range(1, self.proposed + 1) if k not in self.decisions]
        if not undecided:
            return None
        return next((k for k in undecided if k > (chosen or 0)), undecided[0])

    def new_clicks(self, canvas_id: int, clicks: list) -> list:
        """The canvas clicks not handled yet (a new canvas starts counting afresh); marks them handled."""
        seen = self.clicks_seen[1] if self.clicks_seen[0] == canvas_id else 0
        self.clicks_seen = (canvas_id, len(clicks))
        return clicks[seen:]
