"""Vectorised PASCAL matching of detections to ground truth, one (keyframe, class) per group.

The reference loops over detections in order: each takes the ground-truth box with the highest
IoU (the first one on equal IoU), and is a hit if that IoU is >= 0.5 and the box is unclaimed.
Because a detection never falls back to another box, a detection is a hit exactly when it is
the *first* detection of its group whose best box is that box with IoU >= 0.5. That turns the
loop into: IoU of all (detection, same-group ground truth) pairs, a segmented argmax, and a
first-occurrence test — no Python loop over keyframes or classes.
"""

from __future__ import annotations

import numpy as np

from pipeline.boxes import paired_iou

IOU_THRESHOLD = 0.5
_PAIRS_PER_CHUNK = 1 << 21  # bounds the pair arrays to some tens of MB


def match(det_group: np.ndarray, det_boxes: np.ndarray, gt_group: np.ndarray,
          gt_boxes: np.ndarray) -> np.ndarray:
    """True-positive flags of detections, given as groups sorted in matching order.

    ``det_group`` must be non-decreasing with the detections of a group in the order the
    reference visits them; ``gt_group`` must be non-decreasing with the ground truth of a group
    in the reference's order (it decides equal-IoU ties). Groups are integer ids of
    (keyframe, class).
    """
    n_det = len(det_group)
    start = np.searchsorted(gt_group, det_group, side="left")
    count = np.searchsorted(gt_group, det_group, side="right") - start
    best_gt = np.full(n_det, -1, dtype=np.int64)
    best_iou = np.full(n_det, np.nan)
    cum = np.concatenate([[0], np.cumsum(count)])
    begin = 0
    while begin < n_det:
        # Chunk detections so that each chunk holds about _PAIRS_PER_CHUNK pairs.
        end = int(np.searchsorted(cum, cum[begin] + _PAIRS_PER_CHUNK, side="right")) - 1
        end = min(max(end, begin + 1), n_det)
        _best_in_chunk(begin, end, start, count, cum, det_boxes, gt_boxes, best_gt, best_iou)
        begin = end
    candidate = np.flatnonzero(best_iou >= IOU_THRESHOLD)
    # Ground-truth rows are unique across groups, so the first candidate per row claims it.
    _, first = np.unique(best_gt[candidate], return_index=True)
    is_tp = np.zeros(n_det, dtype=bool)
    is_tp[candidate[first]] = True
    return is_tp


def _best_in_chunk(begin, end, start, count, cum, det_boxes, gt_boxes, best_gt, best_iou):
    det_index = np.arange(begin, end)
    det_index = det_index[count[begin:end] > 0]
    if det_index.size == 0:
        return
    counts = count[det_index]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pair_det = np.repeat(det_index, counts)
    pair_gt = np.repeat(start[det_index] - offsets, counts) + np.arange(counts.sum())
    iou = paired_iou(det_boxes[pair_det], gt_boxes[pair_gt])
    # np.argmax semantics: the first maximum, and a NaN counts as the maximum.
    best = np.maximum.reduceat(iou, offsets)
    best_rep = np.repeat(best, counts)
    is_best = (iou == best_rep) | (np.isnan(iou) & np.isnan(best_rep))
    position = np.where(is_best, np.arange(len(iou)), len(iou))
    first = np.minimum.reduceat(position, offsets)
    best_gt[det_index] = pair_gt[first]
    best_iou[det_index] = iou[first]
