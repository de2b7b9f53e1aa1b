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
from pipeline.boxes import BOX_COLUMNS
from pipeline.data.collate import Batch, boxes_to_rois
from pipeline.data.transforms import normalize_clips
from pipeline.models.assign import assign_targets, sample_rois
from pipeline.models.config import ModelConfig
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
    rois, targets = training_rois(batch.proposals, batch.gt_boxes, batch.gt_labels,
                                  config=detector.config, columns=columns)
    clips = normalize_clips(batch.clips.to(device, non_blocking=True))
    return scored_loss(detector, model(clips, rois.to(device)), targets, columns)


def training_rois(proposals: list[torch.Tensor], gt_boxes: list[torch.Tensor],
                  gt_labels: list[torch.Tensor], *, config: ModelConfig,
                  columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The RoIs ``[R, 5]`` a training step scores and their targets ``[R, num_classes]``: per
    sample, GT boxes plus proposals assigned at ``config.assigner_iou_threshold``, at most
    ``config.rois_per_image`` (positives first). The baseline and every head train on these."""
    boxes, targets = [], []
    for props, gt, labels in zip(proposals, gt_boxes, gt_labels):
        assigned = assign_targets(props, gt, model_targets(labels, columns, config.num_classes),
                                  iou_threshold=config.assigner_iou_threshold)
        keep = sample_rois(assigned.is_positive, num=config.rois_per_image)
        boxes.append(assigned.boxes[keep])
        targets.append(assigned.labels[keep])
    return boxes_to_rois(boxes), torch.cat(targets)


def scored_loss(detector: Detector, logits: torch.Tensor, targets: torch.Tensor,
                columns: torch.Tensor) -> torch.Tensor:
    """The detector's loss over the label map's columns only (and the unused column 0, which
    the loss drops): an id-indexed head has columns no class uses, and averaging them in would
    shrink the gradient of the real classes by the ratio of unused to used columns."""
    scored = torch.cat([columns.new_zeros(1), columns]).to(logits.device)
    return detector.loss(logits.float()[:, scored], targets.to(logits.device)[:, scored])


def split_predictions(indices: list[int], keys: list[tuple[str, int]],
                      proposals: list[torch.Tensor], image_sizes: torch.Tensor,
                      scores: np.ndarray) -> list[dict[str, Any]]:
    """Scores ``[R, K]`` of the stacked pixel ``proposals`` back per sample, as the dicts
    ``detections_table`` reads: index, video_id, timestamp, normalised boxes, scores."""
    out, offset = [], 0
    for index, key, boxes, size in zip(indices, keys, proposals, image_sizes):
        height, width = size.tolist()
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        out.append({"index": index, "video_id": key[0], "timestamp": int(key[1]),
                    "boxes": (boxes.float() / scale).clamp(0, 1).numpy(),
                    "scores": scores[offset:offset + len(boxes)]})
        offset += len(boxes)
    return out


def predict_detections(model: nn.Module, batch: Batch, *, columns: torch.Tensor,
                       device: torch.device) -> list[dict[str, Any]]:
    """Scores of every proposal for the label map's classes, one dict per sample with
    normalised boxes [m, 4] and scores [m, K] (label-map order)."""
    clips = normalize_clips(batch.clips.to(device, non_blocking=True))
    logits = model(clips, boxes_to_rois(batch.proposals).to(device))
    scores = torch.sigmoid(logits.float())[:, columns.to(device)].cpu().numpy()
    return split_predictions(batch.indices, batch.keys, batch.proposals, batch.image_sizes,
                             scores)


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
            **{name: boxes[:, i] for i, name in enumerate(BOX_COLUMNS)},
            "action_id": ids[class_index],
            "score": p["scores"][box_index, class_index].astype(np.float32)}))
    if not parts:
        return pd.DataFrame({c: [] for c in RESULT_COLUMNS})
    return pd.concat(parts, ignore_index=True)[RESULT_COLUMNS]
