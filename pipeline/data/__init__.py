"""Training and test data: keyframe clips from the Zarr frame store, boxes from Parquet."""

from pipeline.data.collate import Batch, boxes_to_rois, collate_samples
from pipeline.data.config import DataConfig
from pipeline.data.dataset import KeyframeDataset, clip_frame_subset, filter_proposals
from pipeline.data.loader import make_loader
from pipeline.data.sampler import EpochBatchSampler, epoch_seed
from pipeline.data.transforms import (ClipSample, Compose, Flip, RandomCrop, RandomRescale,
                                      Rescale, eval_transform, normalize_clips, train_transform)

__all__ = [
    "Batch", "ClipSample", "Compose", "DataConfig", "EpochBatchSampler", "Flip", "KeyframeDataset",
    "RandomCrop", "RandomRescale", "Rescale", "boxes_to_rois", "clip_frame_subset",
    "collate_samples", "epoch_seed", "eval_transform", "filter_proposals", "make_loader",
    "normalize_clips", "train_transform",
]
