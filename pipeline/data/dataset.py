"""Training and test samples: one per keyframe, clip from the Zarr frame store, boxes from Parquet.

No video is decoded here: the frames stage already stored one uint8 clip per keyframe. Boxes
on disk are normalised xyxy; the dataset turns them into pixels of the stored clip and lets the
transform move them. Box tables are packed into flat arrays with per-sample offsets (CSR) so
forked workers share them without copying millions of small Python objects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from pipeline.ava.clock import jitter_bounds, jitter_span
from pipeline.boxes import BOX_COLUMNS
from pipeline.data.transforms import ClipSample
from pipeline.errors import InputError
from pipeline.frames.store import FrameStore
from pipeline.proposals.table import filter_proposals

if TYPE_CHECKING:
    from pipeline.models.config import ModelConfig

log = logging.getLogger(__name__)

KEY_COLUMNS = ["video_id", "timestamp"]


def clip_frame_subset(stored_len: int, frames_per_clip: int, frame_stride: int,
                      keyframe_position: int | None = None) -> np.ndarray:
    """Positions, inside a stored clip, of the frames a model reads.

    A store of 16 frames spaced 2 serves SlowOnly 8x4 with stride 2 (every 2nd stored frame);
    the keyframe (stored at ``keyframe_position``, default ``stored_len // 2``) stays at
    position ``frames_per_clip // 2`` of the result.
    """
    center = stored_len // 2 if keyframe_position is None else keyframe_position
    positions = center + (np.arange(frames_per_clip) - frames_per_clip // 2) * frame_stride
    if frames_per_clip < 1 or frame_stride < 1 or positions[0] < 0 or positions[-1] >= stored_len:
        raise ValueError(f"{frames_per_clip} frames with stride {frame_stride} do not fit in a stored "
                         f"clip of {stored_len} frames centred on the keyframe")
    return positions


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
    keys = _normalise_keys(annotations[KEY_COLUMNS])
    stored = _normalise_keys(keyframes[KEY_COLUMNS]).drop_duplicates()
    inside = keys.merge(stored, on=KEY_COLUMNS, how="left", indicator=True)["_merge"]
    inside = (inside == "both").to_numpy()
    dropped = annotations[~inside]
    summary = {"videos": sorted(map(str, dropped["video_id"].unique())),
               "keyframes": int(len(dropped[KEY_COLUMNS].drop_duplicates())),
               "boxes": int(len(dropped[KEY_COLUMNS + BOX_COLUMNS].drop_duplicates())),
               "rows": int(len(dropped))}
    if len(dropped):
        log.warning("%s: %d annotated keyframes (%d boxes) of %d videos are not in the frame "
                    "store, so neither trained nor scored: %s", split, summary["keyframes"],
                    summary["boxes"], len(summary["videos"]), ", ".join(summary["videos"]))
    return annotations[inside].reset_index(drop=True), summary


def _normalise_keys(table: pd.DataFrame) -> pd.DataFrame:
    """Same key dtypes everywhere (Parquet may give category/int16), so merges match."""
    return table.assign(video_id=table["video_id"].astype(str),
                        timestamp=table["timestamp"].astype(np.int64))


def _pack(table: pd.DataFrame, keys: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Order of ``table`` rows grouped by sample, and per-sample offsets into that order."""
    sample_of_row = table[KEY_COLUMNS].merge(keys.reset_index(names="_sample"), on=KEY_COLUMNS,
                                             how="left")["_sample"]
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
        frames_per_clip, frame_stride: the subset of the stored clip the model reads.
        temporal_jitter: move each frame by its own random offset, as mmaction2's train-time
            ``SampleAVAFrames`` (``pipeline.ava.clock.jitter_bounds`` of the model's raw frame
            interval); the store must hold the jitter span (``frames.train_jitter``).
        transform: called as ``transform(ClipSample, rng)``.
        num_classes: width of the label rows (needed when ``labels`` is None).
    """

    def __init__(self, frames_dir: str | Path, keyframes: pd.DataFrame, *,
                 boxes: pd.DataFrame | None, labels: np.ndarray | None,
                 proposals: pd.DataFrame | None, exclusions: pd.DataFrame | None = None,
                 split: str | None, frames_per_clip: int, frame_stride: int,
                 transform: Callable[[ClipSample, np.random.Generator], ClipSample],
                 num_classes: int, min_proposal_score: float = 0.9,
                 max_proposals: int = 1000, temporal_jitter: bool = False):
        self.frames_dir = Path(frames_dir)
        self.frames_per_clip = frames_per_clip
        self.frame_stride = frame_stride
        self.temporal_jitter = temporal_jitter
        self.transform = transform
        self.num_classes = num_classes
        self._frame_store: FrameStore | None = None  # opened lazily, once per worker process

        keyframes = _normalise_keys(keyframes)
        index = keyframes if split is None else keyframes[keyframes["split"] == split]
        index = index[KEY_COLUMNS + ["row"]].drop_duplicates(KEY_COLUMNS)
        if boxes is not None:
            if labels is None or len(labels) != len(boxes):
                raise ValueError("labels must be given with boxes, one row per box")
            if labels.shape[1] != num_classes:
                raise ValueError(f"labels have {labels.shape[1]} columns, num_classes is {num_classes}")
            boxes = _normalise_keys(boxes)
            wanted = boxes[KEY_COLUMNS].drop_duplicates()
            keys = wanted.merge(index, on=KEY_COLUMNS, how="left")
            missing = keys[keys["row"].isna()]
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
            excluded = keys[KEY_COLUMNS].merge(_normalise_keys(exclusions)[KEY_COLUMNS].drop_duplicates(),
                                               on=KEY_COLUMNS, how="left", indicator=True)
            keys = keys[(excluded["_merge"] == "left_only").to_numpy()]
        keys = keys.sort_values(KEY_COLUMNS, kind="stable").reset_index(drop=True)
        self.video_ids = keys["video_id"].astype(str).to_numpy(dtype=object)
        self.timestamps = keys["timestamp"].to_numpy(np.int64)
        self.rows = keys["row"].to_numpy(np.int64)

        if boxes is not None:
            order, self._gt_offsets = _pack(boxes, keys[KEY_COLUMNS])
            self._gt_boxes = boxes[BOX_COLUMNS].to_numpy(np.float32)[order]
            self._gt_labels = np.ascontiguousarray(labels[order], dtype=np.uint8)
        else:
            self._gt_offsets = np.zeros(len(keys) + 1, dtype=np.int64)
            self._gt_boxes = np.zeros((0, 4), np.float32)
            self._gt_labels = np.zeros((0, num_classes), np.uint8)
        if proposals is None:
            proposals = pd.DataFrame({c: [] for c in KEY_COLUMNS + BOX_COLUMNS + ["score"]})
        proposals = filter_proposals(_normalise_keys(proposals), min_score=min_proposal_score,
                                     max_per_keyframe=max_proposals)
        order, self._prop_offsets = _pack(proposals, keys[KEY_COLUMNS])
        self._proposals = proposals[BOX_COLUMNS].to_numpy(np.float32)[order]
        self._prop_scores = proposals["score"].to_numpy(np.float32)[order]

    def __len__(self) -> int:
        return len(self.rows)

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
        each frame's offset in raw frames, read from the store's jitter span."""
        store = self.frame_store()
        video_id = str(self.video_ids[index])
        stored = store.clip(video_id, int(self.rows[index]))
        if jitter is None and "offsets" not in store.array(video_id).attrs:
            positions = clip_frame_subset(stored.shape[0], self.frames_per_clip,
                                          self.frame_stride, store.keyframe_position)
        else:
            nominal = (np.arange(self.frames_per_clip) - self.frames_per_clip // 2) * self.interval
            positions = store.positions(video_id, nominal + (0 if jitter is None else jitter))
        return stored[positions]

    @property
    def interval(self) -> int:
        """Raw frames between two of the model's frames."""
        return self.frame_stride * int(self.frame_store().attrs["frame_interval"])

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """``key`` is an index, or (index, epoch_seed) from ``EpochBatchSampler``: the
        augmentation draws from a generator seeded by (epoch_seed, index), whatever the worker."""
        index, epoch_seed = key if isinstance(key, tuple) else (key, 0)
        rng = np.random.default_rng([epoch_seed, index])
        jitter = None
        if self.temporal_jitter:
            jitter = rng.integers(*jitter_bounds(self.interval), size=self.frames_per_clip)
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


def frame_stride(store: FrameStore, model_config: ModelConfig,
                 temporal_jitter: bool = False) -> int:
    """Stored frames between two model frames (the model's raw-frame interval / the store's);
    checks that the model's clip fits in the stored one, and with ``temporal_jitter`` that the
    store holds every frame the jitter reaches, before any worker starts."""
    stored = int(store.attrs["frame_interval"])
    if model_config.frame_interval % stored:
        raise InputError(f"the model reads every {model_config.frame_interval}th frame but the "
                         f"store keeps every {stored}th; re-extract with a divisor of "
                         f"{model_config.frame_interval}", path=store.path, key="frame_interval")
    stride = model_config.frame_interval // stored
    try:
        clip_frame_subset(int(store.attrs["clip_len"]), model_config.clip_len, stride,
                          store.keyframe_position)
    except ValueError as e:
        raise InputError(f"the model's {model_config.clip_len}x{model_config.frame_interval} clip "
                         f"is not inside the stored clips: {e}", path=store.path, key="clip_len") from e
    if temporal_jitter:
        needed = jitter_span(model_config.clip_len, model_config.frame_interval)
        held = np.asarray(store.attrs.get("jitter_offsets", []))
        if not store.attrs.get("train_jitter") or not np.isin(needed, held).all():
            raise InputError(f"temporal jitter of the model's {model_config.clip_len}x"
                             f"{model_config.frame_interval} clip reaches frames "
                             f"{needed[0]}..{needed[-1]} from the keyframe; the store's train "
                             "clips do not hold them: extract with frames.train_jitter: true "
                             "and the model's clip_len and frame_interval",
                             path=store.path, key="train_jitter")
    return stride
