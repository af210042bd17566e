"""Whole-cosmic decisions on a proposal and the changes counted against it, checked against scikit-image's labels."""

import numpy as np
import pytest
from skimage.measure import label

from segcore.components import apply_decisions, component_at, extent_at, proposal_changes
from segcore.metrics import label_cosmics


def _proposal():
    mask = np.zeros((12, 12), bool)
    mask[1, 1] = True  # a one-pixel hit
    mask[4:6, 4:8] = True  # a track
    mask[9, 9] = mask[10, 10] = True  # a diagonal pair: one cosmic with 8-connectivity
    return mask


def test_accepted_components_are_whole_and_rejected_ones_gone():
    mask = _proposal()
    n, labels = label_cosmics(mask)
    reference = label(mask, connectivity=2)
    assert n == reference.max() == 3
    edited = mask.copy()
    edited[4, 4] = False  # an erased pixel of the track, restored by accepting it
    track, pair = labels[4, 5], labels[9, 9]

    result = apply_decisions(edited, labels, {track: True, pair: False})

    np.testing.assert_array_equal(result, np.isin(reference, [reference[1, 1], reference[4, 5]]))
    np.testing.assert_array_equal(apply_decisions(edited, labels, {}), edited)


def test_a_click_finds_the_component_under_it_or_the_nearest_within_reach():
    _, labels = label_cosmics(_proposal())
    assert component_at(labels, 5, 6) == labels[4, 4]
    assert component_at(labels, 2, 2) == labels[1, 1]  # diagonal neighbour of a one-pixel hit
    assert component_at(labels, 1, 11) == 0  # nothing near
    assert component_at(labels, -1, 3) == 0


@pytest.mark.parametrize(
    "edit, pixels, cosmics",
    [
        (lambda m: m, 0, 0),
        (lambda m: np.where(np.arange(12)[None, :] >= 9, False, m), 2, 1),  # the pair rejected
        (lambda m: m & ~np.pad(np.ones((1, 1), bool), ((4, 7), (4, 7))), 1, 1),  # the track trimmed: one change
        (lambda m: m | np.pad(np.ones((1, 1), bool), ((0, 11), (11, 0))), 1, 1),  # a new hit drawn far away
        (lambda m: m | np.pad(np.ones((1, 1), bool), ((3, 8), (4, 7))), 1, 1),  # the track grown
    ],
)
def test_changes_from_the_proposal_count_pixels_and_cosmics(edit, pixels, cosmics):
    proposal = _proposal()
    changes = proposal_changes(proposal, edit(proposal.copy()))
    assert (changes.pixels, changes.cosmics) == (pixels, cosmics)


def test_changes_refuse_masks_of_different_sizes():
    with pytest.raises(ValueError, match="proposal is"):
        proposal_changes(np.zeros((4, 4)), np.zeros((4, 5)))


def _rings():
    """Significance 10 at the centre (5, 5), 4 on the ring around it, 2 on the next ring, 0 beyond."""
    significance = np.zeros((11, 11), np.float32)
    significance[3:8, 3:8] = 2
    significance[4:7, 4:7] = 4
    significance[5, 5] = 10
    labels = np.zeros((11, 11), np.int32)
    labels[5, 5] = labels[5, 6] = 1  # the proposed cosmic: the centre and one ring pixel
    return significance, labels


@pytest.mark.parametrize("k, pixels", [(1.0, 25), (3.0, 9), (5.0, 1), (20.0, 1)])
def test_a_cosmic_grows_or_shrinks_to_its_signal_above_k(k, pixels):
    significance, labels = _rings()
    extent = extent_at(significance, labels, 1, k)
    assert extent.sum() == pixels
    assert extent[5, 5]  # the most significant pixel stays, even above every k
    assert extent.sum() == (significance > k).sum() or k == 20.0


def test_growth_stops_at_its_reach():
    significance = np.full((40, 40), 5.0, np.float32)  # signal everywhere: only the reach limits it
    labels = np.zeros((40, 40), np.int32)
    labels[20, 20] = 1
    extent = extent_at(significance, labels, 1, 3.0, reach=2)
    rows, cols = np.nonzero(extent)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (18, 22, 18, 22)
