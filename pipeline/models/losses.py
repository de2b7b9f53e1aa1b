"""Multi-label action loss with mmaction2's conventions (column 0 unused, positives only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def action_loss(logits: Tensor, targets: Tensor, *, focal_alpha: float = 1.0,
                focal_gamma: float = 0.0, train_negatives: bool = False) -> Tensor:
    """Mean of ``alpha * (1 - p_t) ** gamma * BCE`` over kept rows x classes 1..C-1.

    ``logits`` and ``targets`` are ``[R, C]``; column 0 (background) is dropped. Rows whose
    target is all zero (negative RoIs) are dropped unless ``train_negatives``, as mmaction2
    does. ``alpha=1, gamma=0`` is plain binary cross-entropy; ``alpha`` is a plain scale, not
    RetinaNet's class balance. With no row left the loss is a graph-connected zero.
    """
    if logits.shape != targets.shape or logits.ndim != 2:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} "
                         "must both be [R, num_classes]")
    logits = logits[:, 1:]
    targets = targets[:, 1:].to(logits.dtype)
    if not train_negatives:
        keep = targets.sum(dim=1) > 0
        logits, targets = logits[keep], targets[keep]
    if logits.numel() == 0:
        return logits.sum() * 0.0
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if focal_gamma == 0.0:
        return focal_alpha * bce.mean()
    p_t = torch.exp(-bce)
    return (focal_alpha * (1.0 - p_t) ** focal_gamma * bce).mean()
