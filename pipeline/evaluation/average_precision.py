"""VOC all-point interpolated average precision, with the references' exact arithmetic."""

from __future__ import annotations

import numpy as np


def rank_detections(scores: np.ndarray) -> np.ndarray:
    """Order in which the references walk a class's detections (best first).

    They call ``np.argsort(scores)`` (numpy's default sort kind) on the class's concatenated
    scores and reverse it; equal scores therefore come out in whatever order that sort leaves
    them, which is reproduced only by making the very same call on the very same array.
    """
    return np.argsort(scores)[::-1]


def average_precision(is_tp_ranked: np.ndarray, num_gt: int) -> tuple[float, np.ndarray,
                                                                       np.ndarray]:
    """AP of ranked hit flags, and the (recall, precision) points it sums over.

    Returns NaN (and empty points) when there is no ground truth, 0.0 when there are no
    detections. Precision is made non-increasing from the right, then the area is summed at
    the points where recall changes, exactly as VOCdevkit and the AVA references do.
    """
    if num_gt == 0:
        return float("nan"), np.zeros(0), np.zeros(0)
    if is_tp_ranked.size == 0:
        return 0.0, np.zeros(0), np.zeros(0)
    cum_tp = np.cumsum(is_tp_ranked.astype(int))
    cum_fp = np.cumsum(1 - is_tp_ranked.astype(int))
    precision = cum_tp.astype(float) / (cum_tp + cum_fp)
    recall = cum_tp.astype(float) / num_gt
    recall = np.concatenate([[0], recall, [1]])
    precision = np.concatenate([[0], precision, [0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    changes = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    ap = float(np.sum((recall[changes] - recall[changes - 1]) * precision[changes]))
    keep = changes[changes < len(recall) - 1]  # drop the artificial (1, 0) end point
    return ap, recall[keep], precision[keep]
