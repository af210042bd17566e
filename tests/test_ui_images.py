"""ui.images: pictures for the pages."""

import numpy as np

from ui.images import enlarge


def test_enlarge_repeats_pixels_by_a_whole_factor():
    image = np.arange(6, dtype=np.uint8).reshape(2, 3)
    big = enlarge(image, at_least=7)
    assert big.shape == (6, 9)
    assert (big[::3, ::3] == image).all()
    assert enlarge(image, at_least=2) is image
