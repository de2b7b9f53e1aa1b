"""Training and test samples: one per keyframe, clip from the Zarr frame store, boxes from Parquet.

No video is decoded here: the frames stage stored every frame a clip can reach, and a sample
reads just the frames its clip uses (:class:`pipeline.frames.store.FrameStore`). Boxes
on disk are normalised xyxy; the dataset turns them into pixels of the stored clip and lets the
transform move them. Box tables are packed into flat arrays with per-sample offsets (CSR) so
forked workers share them without copying millions of small Python objects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.ava.clock import jitter_bounds
from pipeline.boxes import BOX_COLUMNS, KEYFRAME_KEY, count_keyframes, normalise_keys
from pipeline.data.transforms import ClipSample
from pipeline.errors import InputError
from pipeline.frames.spec import clip_offsets, clip_reach
from pipeline.frames.store import FrameStore
from pipeline.proposals.table import filter_proposals

log = logging.getLogger(__name__)


def stored_annotations(annotations: pd.DataFrame, keyframes: pd.DataFrame, split: str
                       ) -> tuple[pd.DataFrame, dict]:
    """The annotation rows whose keyframe the frame store holds, and a count of the others.

    The store's keyframe index is the one record of which keyframes are usable: a video that
    ``make_dataset`` left out (``data.ava.skip_missing_videos``) or ``extract_frames`` could not
    read (``frames.skip_bad_videos``) has no clips, so its rows are neither trained nor scored
    (mmaction2, reading frames from disk, would not have them either); its proposals and
    exclusions are then never looked up. Every stage reads its ground truth through here, so
    training, validation and evaluation agree on the keyframes. The count (videos, keyframes,
    boxes, rows) goes into the stages' metrics.
    """
    keys = normalise_keys(annotations[KEYFRAME_KEY])
    stored = normalise_keys(keyframes[KEYFRAME_KEY]).drop_duplicates()
    inside = keys.merge(stored, on=KEYFRAME_KEY, how="left", indicator=True)["_merge"]
    inside = (inside == "both").to_numpy()
    dropped = annotations[~inside]
    summary = {"videos": sorted(map(str, dropped["video_id"].unique())),
               "keyframes": count_keyframes(dropped),
               "boxes": int(len(dropped[KEYFRAME_KEY + BOX_COLUMNS].drop_duplicates())),
               "rows": int(len(dropped))}
    if len(dropped):
        log.warning("%s: %d annotated keyframes (%d boxes) of %d videos are not in the frame "
                    "store, so neither trained nor scored: %s", split, summary["keyframes"],
                    summary["boxes"], len(summary["videos"]), ", ".join(summary["videos"]))
    return annotations[inside].reset_index(drop=True), summary


def _pack(table: pd.DataFrame, keys: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Order of ``table`` rows grouped by sample, and per-sample offsets into that order."""
    sample_of_row = table[KEYFRAME_KEY].merge(keys.reset_index(names="_sample"),
                                              on=KEYFRAME_KEY, how="left")["_sample"]
    sample_of_row = sample_of_row.fillna(-1).to_numpy(np.int64)
    inside = np.flatnonzero(sample_of_row >= 0)
    order = inside[np.argsort(sample_of_row[inside], kind="stable")]
    counts = np.bincount(sample_of_row[inside], minlength=len(keys))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return order, offsets


class KeyframeDataset(torch.utils.data.Dataset):
    """Samples for the keyframes of one split.

    Args:
        frames_dir: the Zarr frame store (``pipeline.frames.FrameStore``), opened lazily in
            each worker process.
        keyframes: the store's index table (video_id, timestamp, split, row, ...).
        boxes, labels: ground truth from ``pipeline.ava.merge_boxes`` (one row per person box,
            normalised xyxy, and its multi-hot uint8 [n, num_classes] row). When given, the
            samples are the annotated keyframes (as mmaction2 does for train and val); when
            None, every keyframe of the split in the store.
        proposals: detector boxes (video_id, timestamp, x1..y2, score, normalised), filtered by
            ``filter_proposals``; a keyframe without any gets the whole frame (mmaction2).
        exclusions: (video_id, timestamp) keyframes to drop.
        split: keep index rows of this split (None: all).
        frames_per_clip, frame_interval: the model's clip, ``frames_per_clip`` timeline frames
            ``frame_interval`` apart around the keyframe.
        temporal_jitter: move each frame by its own random offset, as mmaction2's train-time
            ``SampleAVAFrames`` (``pipeline.ava.clock.jitter_bounds`` of the frame interval);
            the store's ``frames.reach`` must cover it (:func:`check_clip_reach`).
        transform: called as ``transform(ClipSample, rng)``.
        num_classes: width of the label rows (needed when ``labels`` is None).
    """

    def __init__(self, frames_dir: str | Path, keyframes: pd.DataFrame, *,
                 boxes: pd.DataFrame | None, labels: np.ndarray | None,
                 proposals: pd.DataFrame | None, exclusions: pd.DataFrame | None = None,
                 split: str | None, frames_per_clip: int, frame_interval: int,
                 transform: Callable[[ClipSample, np.random.Generator], ClipSample],
                 num_classes: int, min_proposal_score: float = 0.9,
                 max_proposals: int = 1000, temporal_jitter: bool = False):
        self.frames_dir = Path(frames_dir)
        self.frames_per_clip = frames_per_clip
        self.frame_interval = frame_interval
        self.temporal_jitter = temporal_jitter
        self.transform = transform
        self.num_classes = num_classes
        self._frame_store: FrameStore | None = None  # opened lazily, once per worker process

        keyframes = normalise_keys(keyframes)
        index = keyframes if split is None else keyframes[keyframes["split"] == split]
        index = index[KEYFRAME_KEY + ["frame"]].drop_duplicates(KEYFRAME_KEY)
        if boxes is not None:
            if labels is None or len(labels) != len(boxes):
                raise ValueError("labels must be given with boxes, one row per box")
            if labels.shape[1] != num_classes:
                raise ValueError(f"labels have {labels.shape[1]} columns, num_classes is {num_classes}")
            boxes = normalise_keys(boxes)
            wanted = boxes[KEYFRAME_KEY].drop_duplicates()
            keys = wanted.merge(index, on=KEYFRAME_KEY, how="left")
            missing = keys[keys["frame"].isna()]
            if len(missing):
                first = missing.iloc[0]
                raise InputError(f"{len(missing)} annotated keyframes are not in the frame store, "
                                 f"e.g. {first['video_id']},{int(first['timestamp'])}"
                                 + ("" if split is None else f" (split {split!r})")
                                 + "; pass the annotations through stored_annotations first",
                                 path=self.frames_dir)
        else:
            keys = index
        if exclusions is not None and len(exclusions):
            excluded_keys = normalise_keys(exclusions)[KEYFRAME_KEY].drop_duplicates()
            excluded = keys[KEYFRAME_KEY].merge(excluded_keys, on=KEYFRAME_KEY, how="left",
                                                indicator=True)
            keys = keys[(excluded["_merge"] == "left_only").to_numpy()]
        keys = keys.sort_values(KEYFRAME_KEY, kind="stable").reset_index(drop=True)
        self.video_ids = keys["video_id"].astype(str).to_numpy(dtype=object)
        self.timestamps = keys["timestamp"].to_numpy(np.int64)
        self.keyframe_frames = keys["frame"].to_numpy(np.int64)

        if boxes is not None:
            order, self._gt_offsets = _pack(boxes, keys[KEYFRAME_KEY])
            self._gt_boxes = boxes[BOX_COLUMNS].to_numpy(np.float32)[order]
            self._gt_labels = np.ascontiguousarray(labels[order], dtype=np.uint8)
        else:
            self._gt_offsets = np.zeros(len(keys) + 1, dtype=np.int64)
            self._gt_boxes = np.zeros((0, 4), np.float32)
            self._gt_labels = np.zeros((0, num_classes), np.uint8)
        if proposals is None:
            proposals = pd.DataFrame({c: [] for c in KEYFRAME_KEY + BOX_COLUMNS + ["score"]})
        proposals = filter_proposals(normalise_keys(proposals), min_score=min_proposal_score,
                                     max_per_keyframe=max_proposals)
        order, self._prop_offsets = _pack(proposals, keys[KEYFRAME_KEY])
        self._proposals = proposals[BOX_COLUMNS].to_numpy(np.float32)[order]
        self._prop_scores = proposals["score"].to_numpy(np.float32)[order]

    def __len__(self) -> int:
        return len(self.keyframe_frames)

    def frame_store(self) -> FrameStore:
        if self._frame_store is None:
            self._frame_store = FrameStore(self.frames_dir)
        return self._frame_store

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_frame_store"] = None  # never ship an open store to another process
        return state

    def read_clip(self, index: int, jitter: np.ndarray | None = None) -> np.ndarray:
        """The model's frames of sample ``index``: uint8 [frames_per_clip, H, W, 3]; ``jitter``:
        each frame's offset in timeline frames."""
        offsets = clip_offsets(self.frames_per_clip, self.frame_interval)
        if jitter is not None:
            offsets = offsets + jitter
        video = self.frame_store().video(str(self.video_ids[index]))
        return video.clip(int(self.keyframe_frames[index]), offsets)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """``key`` is an index, or (index, epoch_seed) from ``EpochBatchSampler``: the
        augmentation draws from a generator seeded by (epoch_seed, index), whatever the worker."""
        index, epoch_seed = key if isinstance(key, tuple) else (key, 0)
        rng = np.random.default_rng([epoch_seed, index])
        jitter = None
        if self.temporal_jitter:
            jitter = rng.integers(*jitter_bounds(self.frame_interval), size=self.frames_per_clip)
        clip = torch.from_numpy(np.ascontiguousarray(self.read_clip(index, jitter)))
        height, width = clip.shape[1], clip.shape[2]
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        g0, g1 = self._gt_offsets[index], self._gt_offsets[index + 1]
        p0, p1 = self._prop_offsets[index], self._prop_offsets[index + 1]
        if p1 > p0:
            proposals = torch.from_numpy(self._proposals[p0:p1])
            scores = torch.from_numpy(self._prop_scores[p0:p1])
        else:
            proposals = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
            scores = torch.ones(1)
        sample = ClipSample(clip=clip, gt_boxes=torch.from_numpy(self._gt_boxes[g0:g1]) * scale,
                            gt_labels=torch.from_numpy(self._gt_labels[g0:g1]),
                            proposals=proposals * scale, proposal_scores=scores.clone())
        sample = self.transform(sample, rng)
        return {"clip": sample.clip, "gt_boxes": sample.gt_boxes, "gt_labels": sample.gt_labels,
                "proposals": sample.proposals, "proposal_scores": sample.proposal_scores,
                "video_id": str(self.video_ids[index]), "timestamp": int(self.timestamps[index]),
                "index": index}


def check_clip_reach(store: FrameStore, clip_len: int, frame_interval: int,
                     temporal_jitter: bool = False) -> None:
    """Refuse, before any worker starts, a model whose clip (with its temporal jitter) reaches
    further from the keyframe than the store's ``frames.reach``."""
    needed = clip_reach(clip_len, frame_interval, temporal_jitter)
    if needed[0] > store.reach[0] or needed[1] > store.reach[1]:
        raise InputError(f"the model's {clip_len}x{frame_interval} "
                         f"clip{' with temporal jitter' if temporal_jitter else ''} reads "
                         f"{needed[0]} frames before and {needed[1]} after the keyframe; the "
                         f"store keeps frames.reach {list(store.reach)}: extract with a larger "
                         "frames.reach", path=store.path, key="frames.reach")
