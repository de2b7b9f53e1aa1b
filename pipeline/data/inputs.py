"""The files a training or inference stage reads, and the keyframe datasets built on them.

``LoadedInputs.dataset`` uses the test-time transform (short side fixed, no crop or flip):
scoring, and the head stages' backbone maps computed once per keyframe, which is only exact
without augmentation. ``LoadedInputs.train_dataset`` is the augmented train split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.ava.annotations import merge_boxes, read_annotations
from pipeline.ava.exclusions import read_exclusions
from pipeline.ava.label_map import LabelMap, read_label_map
from pipeline.boxes import KEYFRAME_KEY
from pipeline.data.config import DataConfig
from pipeline.data.dataset import KeyframeDataset, stored_annotations
from pipeline.sources.manifest import read_manifest
from pipeline.data.transforms import eval_transform, train_transform
from pipeline.errors import InputError
from pipeline.frames.store import FrameStore
from pipeline.proposals.table import read_proposals


@dataclass(frozen=True)
class DatasetFiles:
    """Paths of the frame store, keyframe index, proposals and per-split AVA files."""

    frames_dir: Path
    keyframes_index: Path
    proposals: Path
    label_map: Path
    train_annotations: Path
    val_annotations: Path
    train_exclusions: Path | None = None
    val_exclusions: Path | None = None

    @classmethod
    def from_dag(cls, *, dataset: Path, frames: Path, proposals: Path) -> DatasetFiles:
        """The DAG's layout: ``make_dataset``'s folder (manifest), ``extract_frames``' folder."""
        manifest = read_manifest(dataset)
        train, val = manifest.splits["train"], manifest.splits["val"]
        return cls(frames_dir=frames / "frames.zarr", keyframes_index=frames / "keyframes.parquet",
                   proposals=proposals, label_map=manifest.path(dataset, manifest.label_map),
                   train_annotations=manifest.path(dataset, train.annotations),
                   val_annotations=manifest.path(dataset, val.annotations),
                   train_exclusions=manifest.path(dataset, train.exclusions),
                   val_exclusions=manifest.path(dataset, val.exclusions))

    def annotations(self, split: str) -> Path:
        return {"train": self.train_annotations, "val": self.val_annotations}[split]

    def exclusions(self, split: str) -> Path | None:
        return {"train": self.train_exclusions, "val": self.val_exclusions}[split]


class LoadedInputs:
    """The tables of ``DatasetFiles``, read once."""

    def __init__(self, files: DatasetFiles):
        self.files = files
        if not Path(files.keyframes_index).is_file():
            raise InputError("keyframe index not found (run extract_frames first)",
                             path=files.keyframes_index)
        self.label_map: LabelMap = read_label_map(files.label_map)
        self.keyframes = pd.read_parquet(files.keyframes_index)
        self.proposals = read_proposals(files.proposals)
        self.store = FrameStore(files.frames_dir)
        self._gt: dict[str, tuple[pd.DataFrame, dict]] = {}

    def gt(self, split: str) -> pd.DataFrame:
        """The split's annotations of stored keyframes (one row per box and action)."""
        if split not in self._gt:
            self._gt[split] = stored_annotations(
                read_annotations(self.files.annotations(split), self.label_map), self.keyframes,
                split)
        return self._gt[split][0]

    def not_in_store(self, split: str) -> dict:
        """What :meth:`gt` left out: videos, keyframes, boxes and rows the store lacks."""
        self.gt(split)
        return self._gt[split][1]

    def exclusions(self, split: str) -> pd.DataFrame | None:
        path = self.files.exclusions(split)
        return read_exclusions(path) if path else None

    def dataset(self, split: str, *, frames_per_clip: int, frame_interval: int,
                short_side: int, min_proposal_score: float, max_proposals: int,
                keyframes: pd.DataFrame | None = None) -> KeyframeDataset:
        """Test-time samples of the split's annotated keyframes (exclusions dropped), with GT
        boxes and filtered proposals; ``keyframes`` given: exactly those keyframes instead."""
        if keyframes is None:
            boxes, labels = merge_boxes(self.gt(split), self.label_map)
            exclusions = self.exclusions(split)
            index = self.keyframes
        else:
            boxes, labels, exclusions = None, None, None
            index = self.keyframes.merge(keyframes[KEYFRAME_KEY].drop_duplicates(),
                                         on=KEYFRAME_KEY)
        return KeyframeDataset(self.files.frames_dir, index, boxes=boxes, labels=labels,
                               proposals=self.proposals, exclusions=exclusions,
                               split=split if keyframes is None else None,
                               frames_per_clip=frames_per_clip, frame_interval=frame_interval,
                               transform=eval_transform(short_side=short_side),
                               num_classes=self.label_map.num_classes,
                               min_proposal_score=min_proposal_score,
                               max_proposals=max_proposals)

    def train_dataset(self, *, frames_per_clip: int, frame_interval: int,
                      data: DataConfig) -> KeyframeDataset:
        """The train split's annotated keyframes as training samples: ``data``'s augmentation
        (rescale, crop, flip, temporal jitter) and train proposal filter."""
        boxes, labels = merge_boxes(self.gt("train"), self.label_map)
        return KeyframeDataset(
            self.files.frames_dir, self.keyframes, boxes=boxes, labels=labels,
            proposals=self.proposals, exclusions=self.exclusions("train"), split="train",
            frames_per_clip=frames_per_clip, frame_interval=frame_interval,
            transform=train_transform(short_side_range=data.short_side_range,
                                      crop_size=data.crop_size, flip_p=data.flip_p,
                                      min_box_size=data.min_box_size),
            num_classes=self.label_map.num_classes,
            min_proposal_score=data.train_min_proposal_score,
            max_proposals=data.max_proposals, temporal_jitter=data.temporal_jitter)
