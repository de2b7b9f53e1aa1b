"""Training targets for RoIs: IoU assignment of proposals to ground truth, and RoI sampling.

Mirrors the zoo's ``MaxIoUAssignerAVA`` + ``RandomSampler(add_gt_as_proposals=True)``: every
ground-truth box becomes a RoI of its own, and a proposal whose best IoU with a ground-truth box
reaches the threshold inherits that box's whole multi-hot label row; the rest are negatives
(all-zero rows). Boxes may be in any unit as long as proposals and ground truth agree (the zoo
uses pixels of the augmented clip).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision
from torch import Tensor

def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU matrix ``[N, M]`` of (x1, y1, x2, y2) boxes (``torchvision.ops.box_iou``); pairs of
    empty boxes give 0, not NaN, so they are never assigned."""
    return torch.nan_to_num(torchvision.ops.box_iou(boxes1, boxes2), nan=0.0)


@dataclass
class Assignment:
    """RoIs of one clip with their targets; the ground-truth boxes come first."""

    boxes: Tensor       # [G + P, 4]
    labels: Tensor      # [G + P, C] multi-hot, all zero for negatives
    gt_index: Tensor    # [G + P] int64, matched ground-truth row or -1

    @property
    def is_positive(self) -> Tensor:
        return self.gt_index >= 0


def assign_targets(proposals: Tensor, gt_boxes: Tensor, gt_labels: Tensor, *,
                   iou_threshold: float = 0.9) -> Assignment:
    """Assign each proposal the labels of its best-overlapping ground truth if IoU >= threshold.

    ``proposals`` ``[P, 4]``, ``gt_boxes`` ``[G, 4]``, ``gt_labels`` ``[G, C]``. As in mmdet's
    max-IoU assigner (which the zoo uses with all thresholds equal), a proposal that is some
    ground truth's best match at or above the threshold goes to that ground truth, later ground
    truths winning ties.
    """
    if proposals.ndim != 2 or proposals.shape[1] != 4 or gt_boxes.ndim != 2 \
            or gt_boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [N, 4]: proposals {tuple(proposals.shape)}, "
                         f"gt_boxes {tuple(gt_boxes.shape)}")
    if gt_labels.ndim != 2 or gt_labels.shape[0] != gt_boxes.shape[0]:
        raise ValueError(f"gt_labels {tuple(gt_labels.shape)} must be [G, C] with "
                         f"G = {gt_boxes.shape[0]} ground-truth boxes")
    num_gt = gt_boxes.shape[0]
    matched = torch.full((proposals.shape[0],), -1, dtype=torch.long, device=proposals.device)
    if num_gt and proposals.shape[0]:
        iou = box_iou(gt_boxes.to(proposals.dtype), proposals)             # [G, P]
        best_iou, best_gt = iou.max(dim=0)
        positive = best_iou >= iou_threshold
        matched[positive] = best_gt[positive]
        gt_best = iou.max(dim=1).values
        for gt in range(num_gt):
            if gt_best[gt] >= iou_threshold:
                matched[iou[gt] == gt_best[gt]] = gt
    gt_index = torch.cat([torch.arange(num_gt, device=matched.device), matched])
    labels = torch.zeros((gt_index.shape[0], gt_labels.shape[1]), dtype=gt_labels.dtype,
                         device=gt_labels.device)
    labels[gt_index >= 0] = gt_labels[gt_index[gt_index >= 0]]
    boxes = torch.cat([gt_boxes.to(proposals.dtype), proposals])
    return Assignment(boxes=boxes, labels=labels, gt_index=gt_index)


def sample_rois(is_positive: Tensor, *, num: int = 32,
                generator: torch.Generator | None = None) -> Tensor:
    """Indices of at most ``num`` RoIs: a random subset of positives, topped up with negatives.

    The zoo's ``RandomSampler(num=32, pos_fraction=1, neg_pos_ub=-1)``: positives take every
    slot they can; remaining slots are filled with random negatives (which the loss then drops
    unless it trains on negatives). Positives come first in the result.
    """
    positives = torch.nonzero(is_positive, as_tuple=False).flatten()
    negatives = torch.nonzero(~is_positive, as_tuple=False).flatten()
    device = is_positive.device
    if positives.numel() > num:
        positives = positives[torch.randperm(positives.numel(), generator=generator)
                              .to(device)[:num]]
    free = num - positives.numel()
    if negatives.numel() > free:
        negatives = negatives[torch.randperm(negatives.numel(), generator=generator)
                              .to(device)[:free]]
    return torch.cat([positives, negatives])
