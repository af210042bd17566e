"""Correcting a proposed mask cosmic by cosmic: accept or reject whole connected components.

A proposal (a model's or LA Cosmic's mask) is cut into its cosmics, the 8-connected
components that :func:`segcore.metrics.label_cosmics` counts. An expert accepts or rejects
each one whole; :func:`apply_decisions` turns the decisions into a mask, and
:func:`proposal_changes` says how far a saved mask is from the proposal it started from.
NumPy in, NumPy out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .metrics import label_cosmics

__all__ = ["ProposalChanges", "apply_decisions", "component_at", "extent_at", "proposal_changes"]

#: How far (pixels) a cosmic may grow beyond its proposed outline in one step.
GROW_REACH = 8


def _bool_mask(mask, name: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {array.shape}")
    return array.astype(bool)


def apply_decisions(mask, labels, decisions: Mapping[int, bool]) -> np.ndarray:
    """The mask after whole-component decisions.

    Parameters
    ----------
    mask : (H, W) the mask being edited (non-zero = cosmic).
    labels : (H, W) int component labels of the proposal (0 = none), as from ``label_cosmics``.
    decisions : component label -> True (accepted: all its pixels cosmic) or False (rejected:
        none of them); components not named are left as they are in ``mask``.

    Returns
    -------
    bool (H, W), a new array.
    """
    result = _bool_mask(mask, "mask").copy()
    labels = np.asarray(labels)
    if labels.shape != result.shape:
        raise ValueError(f"labels are {labels.shape} but the mask is {result.shape}")
    if not decisions:
        return result
    accepted = [int(k) for k, keep in decisions.items() if keep]
    rejected = [int(k) for k, keep in decisions.items() if not keep]
    if accepted:
        result[np.isin(labels, accepted)] = True
    if rejected:
        result[np.isin(labels, rejected)] = False
    return result


def component_at(labels, row: int, col: int, reach: int = 2) -> int:
    """The component label at (row, col), else the nearest one within ``reach`` pixels
    (Chebyshev distance; a click beside a one-pixel hit still finds it), else 0."""
    labels = np.asarray(labels)
    height, width = labels.shape
    if not (0 <= row < height and 0 <= col < width):
        return 0
    if labels[row, col]:
        return int(labels[row, col])
    r0, r1 = max(0, row - reach), min(height, row + reach + 1)
    c0, c1 = max(0, col - reach), min(width, col + reach + 1)
    window = labels[r0:r1, c0:c1]
    found = np.argwhere(window > 0)
    if not len(found):
        return 0
    distance = np.maximum(np.abs(found[:, 0] + r0 - row), np.abs(found[:, 1] + c0 - col))
    nearest = found[np.argmin(distance)]
    return int(window[nearest[0], nearest[1]])


def extent_at(significance, labels, label: int, k: float, reach: int = GROW_REACH) -> np.ndarray:
    """A cosmic's extent at ``k`` sigma of its local signal: grown or shrunk from its proposed outline.

    Parameters
    ----------
    significance : (H, W) excess over the local background in noise units, as from
        ``segcore.preprocess.excess_significance(frame)``.
    labels : (H, W) component labels of the proposal; ``label`` names the cosmic.
    k : the threshold in noise units: lower grows the cosmic, higher shrinks it.
    reach : it grows at most this many pixels beyond its outline's bounding box.

    Returns
    -------
    bool (H, W): the pixels above ``k`` 8-connected to the cosmic's own pixels above ``k``, within
    ``reach``; the cosmic's most significant pixel alone when none of its pixels is above ``k``.
    """
    from scipy import ndimage

    significance = np.asarray(significance, np.float32)
    labels = np.asarray(labels)
    if significance.shape != labels.shape:
        raise ValueError(f"significance is {significance.shape} but the labels are {labels.shape}")
    cosmic = labels == label
    if not cosmic.any():
        raise ValueError(f"no cosmic labelled {label}")
    rows, cols = np.nonzero(cosmic)
    window = (slice(max(0, rows.min() - reach), rows.max() + reach + 1),
              slice(max(0, cols.min() - reach), cols.max() + reach + 1))
    above = significance[window] > k
    seeds = cosmic[window] & above
    if not seeds.any():
        local = np.where(cosmic[window], significance[window], -np.inf)
        seeds = np.zeros_like(above)
        seeds[np.unravel_index(np.argmax(local), local.shape)] = True
    regions, _ = ndimage.label(above | seeds, structure=np.ones((3, 3), bool))
    result = np.zeros(labels.shape, bool)
    result[window] = np.isin(regions, np.unique(regions[seeds]))
    return result


@dataclass(frozen=True)
class ProposalChanges:
    """How a saved mask differs from the proposal it started from."""

    #: pixels cosmic in the saved mask but not in the proposal
    added_pixels: int
    #: pixels cosmic in the proposal but not in the saved mask
    removed_pixels: int
    #: proposal cosmics not kept exactly as proposed (rejected, trimmed, grown or merged)
    changed_cosmics: int
    #: saved cosmics that share no pixel with the proposal (drawn by the expert)
    new_cosmics: int

    @property
    def pixels(self) -> int:
        return self.added_pixels + self.removed_pixels

    @property
    def cosmics(self) -> int:
        return self.changed_cosmics + self.new_cosmics


def proposal_changes(proposal, saved) -> ProposalChanges:
    """Pixels and cosmics (8-connected components) the expert changed from a proposal.

    A proposal cosmic counts as changed unless the saved mask has a cosmic with exactly its
    pixels; a saved cosmic counts as new when none of its pixels was proposed. A cosmic that
    was trimmed therefore counts once, not as one removed and one added.
    """
    proposal = _bool_mask(proposal, "proposal")
    saved = _bool_mask(saved, "saved mask")
    if proposal.shape != saved.shape:
        raise ValueError(f"proposal is {proposal.shape} but the saved mask is {saved.shape}")
    n_proposed, proposed_labels = label_cosmics(proposal)
    n_saved, saved_labels = label_cosmics(saved)
    kept = 0
    if n_proposed and n_saved:
        # A proposed cosmic lying wholly inside the saved mask lies inside one saved cosmic (it is
        # connected); it is kept when that saved cosmic is no larger than it.
        missing = np.bincount(proposed_labels[proposal & ~saved], minlength=n_proposed + 1)
        sizes_p = np.bincount(proposed_labels.ravel(), minlength=n_proposed + 1)
        sizes_s = np.bincount(saved_labels.ravel(), minlength=n_saved + 1)
        inside = proposal & saved
        host = np.zeros(n_proposed + 1, np.int64)
        host[proposed_labels[inside]] = saved_labels[inside]
        whole = np.flatnonzero((missing == 0) & (host > 0))
        kept = int(np.count_nonzero(sizes_s[host[whole]] == sizes_p[whole]))
    touched = np.unique(saved_labels[proposal & saved])
    new = n_saved - np.count_nonzero(touched)
    return ProposalChanges(
        added_pixels=int(np.count_nonzero(saved & ~proposal)),
        removed_pixels=int(np.count_nonzero(proposal & ~saved)),
        changed_cosmics=int(n_proposed - kept),
        new_cosmics=int(new),
    )
