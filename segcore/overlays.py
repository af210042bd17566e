"""Pictures of a prediction: a frame in gray with true positives, false positives and misses
coloured, and the predicted cosmics numbered."""

from __future__ import annotations

import cv2
import numpy as np

from . import metrics
from .inference import check_frame
from .preprocess import display_image

# Overlay colours, RGB.
TRUE_POSITIVE_COLOR = (0, 255, 0)  # green: cosmic found
FALSE_POSITIVE_COLOR = (255, 0, 0)  # red: predicted, not in the true mask
FALSE_NEGATIVE_COLOR = (30, 144, 255)  # blue: in the true mask, missed
PREDICTED_COLOR = (255, 140, 0)  # orange: predicted cosmic on a frame without a true mask
LABEL_COLOR = (255, 255, 0)  # yellow numbers, drawn over a black outline
LABEL_OUTLINE_COLOR = (0, 0, 0)
#: Weight of the colour over the gray frame on marked pixels.
OVERLAY_ALPHA = 0.6


def _blend(rgb: np.ndarray, where: np.ndarray, color) -> None:
    mixed = (1.0 - OVERLAY_ALPHA) * rgb[where] + OVERLAY_ALPHA * np.asarray(color, np.float64)
    rgb[where] = np.round(mixed).astype(np.uint8)


def _draw_numbers(rgb: np.ndarray, pred: np.ndarray) -> None:
    height, width = pred.shape
    font = cv2.FONT_HERSHEY_SIMPLEX
    # Readable on 64 px thumbnails and on 4k frames alike.
    scale = float(np.clip(min(height, width) / 1000.0, 0.3, 1.5))
    thickness = 1
    for number, cosmic in enumerate(metrics.find_cosmics(pred), start=1):
        text = str(number)
        (text_w, text_h), _ = cv2.getTextSize(text, font, scale, thickness)
        row0, col0, _, col1 = cosmic.bbox
        # Right of the cosmic, top-aligned with it; left of it if no room.
        x = col1 + 1 if col1 + 1 + text_w <= width else col0 - 1 - text_w
        x = int(np.clip(x, 0, max(width - text_w, 0)))
        y = int(np.clip(row0 + text_h, text_h, height - 1))
        cv2.putText(rgb, text, (x, y), font, scale, LABEL_OUTLINE_COLOR, thickness + 2, cv2.LINE_AA)
        cv2.putText(rgb, text, (x, y), font, scale, LABEL_COLOR, thickness, cv2.LINE_AA)


def overlay(frame, true_mask, pred_mask, numbers: bool = True) -> np.ndarray:
    """Render a frame in gray with the prediction compared to the truth.

    Parameters
    ----------
    frame : 2-D array of detector values, shown with
        :func:`segcore.preprocess.display_image`.
    true_mask : 2-D mask of the frame's shape, or None for a frame without one.
    pred_mask : 2-D predicted mask of the frame's shape.
    numbers : write 1..n beside the predicted cosmics, in the order of
        :func:`segcore.metrics.find_cosmics`.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8 RGB. Marked pixels are blended with
    weight :data:`OVERLAY_ALPHA`: true positives :data:`TRUE_POSITIVE_COLOR`,
    false positives :data:`FALSE_POSITIVE_COLOR`, false negatives
    :data:`FALSE_NEGATIVE_COLOR`; without a true mask, predicted pixels
    :data:`PREDICTED_COLOR`.
    """
    frame = check_frame(frame)
    pred = metrics.check_mask(pred_mask, frame.shape, "pred_mask")
    rgb = np.repeat(display_image(frame)[..., None], 3, axis=-1)
    if true_mask is None:
        _blend(rgb, pred, PREDICTED_COLOR)
    else:
        true = metrics.check_mask(true_mask, frame.shape, "true_mask")
        _blend(rgb, true & pred, TRUE_POSITIVE_COLOR)
        _blend(rgb, ~true & pred, FALSE_POSITIVE_COLOR)
        _blend(rgb, true & ~pred, FALSE_NEGATIVE_COLOR)
    if numbers:
        _draw_numbers(rgb, pred)
    return rgb


def prediction_overlay(frame, pred_mask, numbers: bool = True) -> np.ndarray:
    """The frame with its predicted cosmics marked and numbered (no true mask)."""
    return overlay(frame, None, pred_mask, numbers=numbers)
