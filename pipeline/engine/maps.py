"""The frozen backbone's output per keyframe, computed once, and the RoI head run on it.

A detector's RoI head only ever sees the backbone's maps pooled over time
(``RoIExtractor3d.pool_time``): ``[C, h, w]`` per keyframe. With a frozen backbone and the
test-time transform those maps never change, so the head stages compute them once and feed the
head ``(map[:, :, None],)`` (a one-frame "clip" that pools back to itself): exactly what the head
sees behind the full model, at a fraction of the cost. Bank features come from the same maps
(``RoIHead.features``), so bank rows and the short-term feature of a training RoI agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.data.collate import Batch, boxes_to_rois
from pipeline.data.dataset import KeyframeDataset
from pipeline.data.transforms import normalize_clips
from pipeline.engine.detection import split_predictions
from pipeline.engine.distributed import DistContext
from pipeline.engine.inference import run_inference
from pipeline.engine.precision import autocast
from pipeline.lfb.reader import FeatureBank
from pipeline.lfb.window import BankWindow
from pipeline.models.detector import Detector
from pipeline.models.roi_head import RoIHead


@dataclass
class KeyframeMaps:
    """Per keyframe: the time-pooled backbone map and the boxes, in the pixels of the
    test-time clip. ``maps`` is ``[N, C, h, w]`` float32 (zero-padded bottom/right where clip
    sizes differ); boxes are lists of ``[n_i, 4]`` tensors."""

    video_ids: list[str]
    timestamps: np.ndarray
    maps: Tensor
    image_sizes: Tensor              # [N, 2] (h, w)
    gt_boxes: list[Tensor]
    gt_labels: list[Tensor]          # [n_i, K] uint8, label-map order
    proposals: list[Tensor]

    def __len__(self) -> int:
        return len(self.video_ids)


def pooled_maps(model: Detector, clips_uint8: Tensor) -> Tensor:
    """``[B, C, h, w]``: the backbone's maps of normalised clips, pooled over time."""
    clips = normalize_clips(clips_uint8)
    return model.roi_head.roi_extractor.pool_time(model.backbone(clips))


def compute_maps(model: Detector, dataset: KeyframeDataset, *, batch_size: int,
                 num_workers: int, ctx: DistContext, desc: str = "maps",
                 amp_dtype: torch.dtype | None = None) -> KeyframeMaps | None:
    """Maps of every sample of ``dataset`` (test-time transform, autocast to ``amp_dtype``,
    stored as float32), on the main rank; None on the others. Ranks share the keyframes
    (``run_inference``)."""
    device = ctx.device

    def predict(m: nn.Module, batch: Batch) -> list[dict[str, Any]]:
        maps = pooled_maps(model, batch.clips.to(device)).float().cpu()
        return [{"index": batch.indices[i], "key": batch.keys[i], "map": maps[i],
                 "size": batch.image_sizes[i], "gt_boxes": batch.gt_boxes[i],
                 "gt_labels": batch.gt_labels[i], "proposals": batch.proposals[i]}
                for i in range(len(batch))]

    model.to(device)
    results = run_inference(model, dataset, predict_batch=predict, batch_size=batch_size,
                            num_workers=num_workers, ctx=ctx, desc=desc, amp_dtype=amp_dtype)
    if results is None:
        return None
    height = max(r["map"].shape[1] for r in results)
    width = max(r["map"].shape[2] for r in results)
    maps = torch.stack([F.pad(r["map"], (0, width - r["map"].shape[2],
                                         0, height - r["map"].shape[1])) for r in results])
    return KeyframeMaps(
        video_ids=[r["key"][0] for r in results],
        timestamps=np.array([r["key"][1] for r in results], dtype=np.int64),
        maps=maps, image_sizes=torch.stack([r["size"] for r in results]),
        gt_boxes=[r["gt_boxes"] for r in results], gt_labels=[r["gt_labels"] for r in results],
        proposals=[r["proposals"] for r in results])


def as_features(maps: Tensor) -> tuple[Tensor]:
    """Pooled maps ``[B, C, h, w]`` in the backbone-output form the RoI head takes."""
    return (maps[:, :, None],)


def roi_windows(bank: FeatureBank | None, window: BankWindow | None, video_ids: list[str],
                timestamps: np.ndarray, batch_index: Tensor,
                rng: np.random.Generator | None
                ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Each RoI's bank window ``[R, S, D]``, mask ``[R, S]`` and slot geometry ``[R, S, 5]``
    (boxes and seconds from the keyframe); all None without a bank.

    The window of a keyframe includes its own second, so the RoI's own bank row (and those of
    the other people in the frame) are part of what it attends to, as in the LFB paper.
    """
    if bank is None or window is None:
        return None, None, None
    features, mask, geometry = bank.windows(
        video_ids, timestamps, window_seconds=window.window_seconds,
        max_per_second=window.max_per_second, rng=rng, with_geometry=True)
    index = batch_index.long().cpu().numpy()
    return (torch.from_numpy(features[index]), torch.from_numpy(mask[index]),
            torch.from_numpy(geometry[index]))


def head_scores(roi_head: RoIHead, maps: Tensor, proposals: list[Tensor], video_ids: list[str],
                timestamps: np.ndarray, *, columns: Tensor, bank: FeatureBank | None,
                window: BankWindow | None, device: torch.device) -> np.ndarray:
    """Scores ``[R, len(columns)]`` of the stacked pixel ``proposals`` of keyframes whose pooled
    maps are ``maps`` (``[B, C, h, w]``, on ``device``), with their bank windows (the
    deterministic test-time choice): the test-time head of every path, on cached maps or on
    maps just computed."""
    rois = boxes_to_rois(proposals)
    lt, mask, geometry = roi_windows(bank, window, video_ids, timestamps, rois[:, 0], rng=None)
    logits = roi_head(as_features(maps), rois.to(device),
                      *(None if x is None else x.to(device) for x in (lt, mask, geometry)))
    return torch.sigmoid(logits.float())[:, columns.to(device)].cpu().numpy()


@torch.inference_mode()
def score_clips(model: Detector, clips_uint8: Tensor, proposals: list[Tensor],
                keys: list[tuple[str, int]], *, columns: Tensor, bank: FeatureBank | None,
                window: BankWindow | None, device: torch.device) -> np.ndarray:
    """Scores ``[R, len(columns)]`` of the stacked pixel ``proposals`` of a batch of test-time
    clips (uint8 ``[B, T, H, W, 3]``) of keyframes ``keys``: what ``evaluate`` and
    ``stad detect`` both run."""
    return head_scores(model.roi_head, pooled_maps(model, clips_uint8.to(device)), proposals,
                       [k[0] for k in keys], np.array([k[1] for k in keys]), columns=columns,
                       bank=bank, window=window, device=device)


def predict_streaming(model: Detector, dataset: KeyframeDataset, *, columns: Tensor,
                      bank: FeatureBank | None, window: BankWindow | None, batch_size: int,
                      num_workers: int, ctx: DistContext, desc: str = "val",
                      amp_dtype: torch.dtype | None = None) -> list[dict[str, Any]] | None:
    """``predict_on_maps``' output, with backbone and head run batch by batch: memory stays
    that of one batch whatever the dataset's size (AVA val's maps would not fit in RAM).
    Main rank only (None on the others); ranks share the keyframes."""
    device = ctx.device

    def predict(_model: nn.Module, batch: Batch) -> list[dict[str, Any]]:
        scores = score_clips(model, batch.clips, batch.proposals, batch.keys, columns=columns,
                             bank=bank, window=window, device=device)
        return split_predictions(batch.indices, batch.keys, batch.proposals,
                                 batch.image_sizes, scores)

    model.to(device)
    return run_inference(model, dataset, predict_batch=predict, batch_size=batch_size,
                         num_workers=num_workers, ctx=ctx, desc=desc, amp_dtype=amp_dtype)


@torch.inference_mode()
def predict_on_maps(roi_head: RoIHead, maps: KeyframeMaps, *, columns: Tensor,
                    bank: FeatureBank | None, window: BankWindow | None, batch_size: int,
                    device: torch.device, amp_dtype: torch.dtype | None = None
                    ) -> list[dict[str, Any]]:
    """Scores of every proposal of every keyframe, in ``detections_table``'s form, the head
    run under autocast to ``amp_dtype`` (None: float32).

    Bank windows are the deterministic test-time choice (highest-scoring boxes per second).
    """
    roi_head.eval()
    out: list[dict[str, Any]] = []
    for start in range(0, len(maps), batch_size):
        keys = range(start, min(start + batch_size, len(maps)))
        proposals = [maps.proposals[i] for i in keys]
        with autocast(device, amp_dtype):
            scores = head_scores(roi_head, maps.maps[list(keys)].to(device), proposals,
                                 [maps.video_ids[i] for i in keys], maps.timestamps[list(keys)],
                                 columns=columns, bank=bank, window=window, device=device)
        out += split_predictions(list(keys),
                                 [(maps.video_ids[i], maps.timestamps[i]) for i in keys],
                                 proposals, maps.image_sizes[list(keys)], scores)
    return out


def box_features(model: Detector, maps: torch.Tensor, image_sizes: torch.Tensor,
                 keyframe: np.ndarray, boxes: np.ndarray, device: torch.device) -> np.ndarray:
    """Bank features ``[N, D]`` float32 of normalised ``boxes`` ``[N, 4]``, box ``i`` on the
    pooled map ``maps[keyframe[i]]`` (``[K, C, h, w]``, ``pooled_maps``)
    of a test-time clip of ``image_sizes[keyframe[i]]`` (h, w) pixels:
    ``RoIHead.features``, 512 boxes at a time."""
    height, width = image_sizes[keyframe].T.float()
    normalised = torch.tensor(np.asarray(boxes, dtype=np.float32))
    pixels = normalised * torch.stack([width, height, width, height], dim=1)
    features = np.empty((len(boxes), model.feature_channels), dtype=np.float32)
    order = np.argsort(keyframe, kind="stable")
    for start in range(0, len(order), 512):
        rows = order[start:start + 512]
        used, local = np.unique(keyframe[rows], return_inverse=True)
        rois = torch.cat([torch.as_tensor(local, dtype=torch.float32)[:, None],
                          pixels[rows]], dim=1)
        out = model.roi_head.features(as_features(maps[used].to(device)), rois.to(device))
        features[rows] = out.float().cpu().numpy()
    return features
