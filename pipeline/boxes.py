"""Box conventions shared by every table and op: the column names of a normalised
(x1, y1, x2, y2) box and the IoU of row-aligned box pairs (numpy; the model's IoU matrix is
``torchvision.ops.box_iou``, see ``pipeline.models.assign``)."""

from __future__ import annotations

import numpy as np

BOX_COLUMNS = ["x1", "y1", "x2", "y2"]


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of row-aligned box pairs ``[K, 4]`` (x1, y1, x2, y2), no ``+1``; NaN where both boxes
    are empty (compares False with any threshold).

    Rounding as the AVA references compute it: side lengths and areas in the boxes' dtype
    (float32 for mmaction2's results), the clipped intersection sides and everything after in
    float64, as ``np_box_ops.iou`` does when it takes ``np.maximum`` with float64 zeros.
    """
    height = np.maximum(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]),
                        np.float64(0))
    width = np.maximum(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]),
                       np.float64(0))
    intersection = height.astype(np.float64) * width.astype(np.float64)
    area_a = (a[:, 3] - a[:, 1]) * (a[:, 2] - a[:, 0])
    area_b = (b[:, 3] - b[:, 1]) * (b[:, 2] - b[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        return intersection / ((area_a + area_b) - intersection)
