"""The detector-specific steps of training and inference: targets, loss, scores -> AVA rows.

Labels arrive in label-map index order (``merge_boxes``); the detector's columns are AVA ids
(column 0 unused, an mmaction2 checkpoint has 81 columns for ids 1..80), so label-map index k
is model column ``label_map.ids[k]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipeline.ava.results import COLUMNS as RESULT_COLUMNS
from pipeline.data.collate import Batch, boxes_to_rois
from pipeline.data.transforms import normalize_clips
from pipeline.models.assign import assign_targets, sample_rois
from pipeline.models.detector import Detector


def model_targets(labels: torch.Tensor, columns: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Multi-hot rows in label-map order [n, K] -> detector targets [n, num_classes]."""
    targets = torch.zeros((labels.shape[0], num_classes), dtype=torch.float32)
    targets[:, columns] = labels.float()
    return targets


def detection_loss(model: nn.Module, batch: Batch, *, detector: Detector,
                   columns: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Loss of one batch: GT boxes plus proposals assigned at the config's IoU threshold, at
    most ``rois_per_image`` RoIs per clip (positives first), as mmaction2 trains.

    ``model`` is what to call (maybe DDP-wrapped); ``detector`` the plain module behind it.
    """
    config = detector.config
    rois, targets = [], []
    for proposals, gt_boxes, gt_labels in zip(batch.proposals, batch.gt_boxes, batch.gt_labels):
        assigned = assign_targets(proposals, gt_boxes,
                                  model_targets(gt_labels, columns, config.num_classes),
                                  iou_threshold=config.assigner_iou_threshold)
        keep = sample_rois(assigned.is_positive, num=config.rois_per_image)
        rois.append(assigned.boxes[keep])
        targets.append(assigned.labels[keep])
    clips = normalize_clips(batch.clips.to(device, non_blocking=True))
    logits = model(clips, boxes_to_rois(rois).to(device))
    # Only the label map's columns (and the unused column 0, which the loss drops) are scored:
    # an id-indexed head has columns no class uses, and averaging them in would shrink the
    # gradient of the real classes by the ratio of unused to used columns.
    scored = torch.cat([columns.new_zeros(1), columns]).to(device)
    return detector.loss(logits.float()[:, scored], torch.cat(targets).to(device)[:, scored])


def predict_detections(model: nn.Module, batch: Batch, *, columns: torch.Tensor,
                       device: torch.device) -> list[dict[str, Any]]:
    """Scores of every proposal for the label map's classes, one dict per sample with
    normalised boxes [m, 4] and scores [m, K] (label-map order)."""
    clips = normalize_clips(batch.clips.to(device, non_blocking=True))
    logits = model(clips, boxes_to_rois(batch.proposals).to(device))
    scores = torch.sigmoid(logits.float())[:, columns.to(device)].cpu().numpy()
    out, start = [], 0
    for i, proposals in enumerate(batch.proposals):
        height, width = batch.image_sizes[i].tolist()
        boxes = (proposals / torch.tensor([width, height, width, height])).clamp(0, 1)
        out.append({"index": batch.indices[i], "video_id": batch.keys[i][0],
                    "timestamp": batch.keys[i][1], "boxes": boxes.numpy(),
                    "scores": scores[start:start + len(proposals)]})
        start += len(proposals)
    return out


def detections_table(predictions: list[dict[str, Any]], action_ids: tuple[int, ...], *,
                     min_score: float = 0.0) -> pd.DataFrame:
    """AVA result rows (video_id, timestamp, x1..y2, action_id, score): one per (box, class)
    with ``score > min_score``, in sample, box, class order.

    This is the one score threshold of the DAG, where mmaction2 has it: its ``bbox2result``
    keeps ``score > action_thr`` (0.002 by default) when the result CSV is written; its
    ``ava_eval`` then scores every row of the CSV."""
    ids = np.asarray(action_ids, dtype=np.int16)
    parts = []
    for p in predictions:
        box_index, class_index = np.nonzero(p["scores"] > min_score)
        boxes = p["boxes"][box_index].astype(np.float32)
        parts.append(pd.DataFrame({
            "video_id": p["video_id"], "timestamp": np.int32(p["timestamp"]),
            "x1": boxes[:, 0], "y1": boxes[:, 1], "x2": boxes[:, 2], "y2": boxes[:, 3],
            "action_id": ids[class_index],
            "score": p["scores"][box_index, class_index].astype(np.float32)}))
    if not parts:
        return pd.DataFrame({c: [] for c in RESULT_COLUMNS})
    return pd.concat(parts, ignore_index=True)[RESULT_COLUMNS]
