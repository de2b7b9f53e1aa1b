"""Clip augmentations that move the boxes in the same call, and the on-device normalisation.

Transforms work on a ``ClipSample`` (uint8 frames plus pixel boxes) and draw randomness only
from the ``rng`` they are given, so a sample's augmentation depends on (seed, epoch, index)
and not on which worker loaded it: a resumed run sees exactly the same crops and flips.
Frames stay uint8 until they reach the device, where ``normalize_clips`` converts them:
uint8 batches are 4x smaller to copy than float ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

# ImageNet RGB statistics on the 0-255 scale, as mmaction2's AVA configs use.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class ClipSample:
    """One keyframe's clip and boxes, in the pixel frame of ``clip``.

    clip (Tensor[T, H, W, 3] uint8); gt_boxes (Tensor[n, 4] float32 xyxy px) with gt_labels
    (Tensor[n, C] uint8 multi-hot) row-aligned; proposals (Tensor[m, 4]) with
    proposal_scores (Tensor[m]) row-aligned.
    """

    clip: torch.Tensor
    gt_boxes: torch.Tensor
    gt_labels: torch.Tensor
    proposals: torch.Tensor
    proposal_scores: torch.Tensor

    @property
    def height(self) -> int:
        return int(self.clip.shape[1])

    @property
    def width(self) -> int:
        return int(self.clip.shape[2])


def rescaled_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(h, w) with the short side set to ``short_side`` and the aspect ratio kept."""
    scale = short_side / min(height, width)
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def resize_sample(sample: ClipSample, height: int, width: int) -> ClipSample:
    """Bilinear resize of every frame, boxes scaled to match.

    Uses torch's uint8 kernel (fixed-point weights, no antialias, like OpenCV): it is fast and,
    unlike the float kernel, gives the same bytes whatever the thread count, so a sample is
    identical in a single-threaded worker and in the main process.
    """
    if (height, width) == (sample.height, sample.width):
        return sample
    frames = sample.clip.permute(0, 3, 1, 2)  # [T, 3, H, W], channels-last in memory
    frames = F.interpolate(frames, size=(height, width), mode="bilinear", align_corners=False,
                           antialias=False)
    clip = frames.permute(0, 2, 3, 1).contiguous()
    scale = torch.tensor([width / sample.width, height / sample.height] * 2)
    return replace(sample, clip=clip, gt_boxes=sample.gt_boxes * scale,
                   proposals=sample.proposals * scale)


class Rescale:
    """Test-time resize: short side fixed (256 in mmaction2's AVA configs), no crop or flip."""

    def __init__(self, short_side: int):
        self.short_side = short_side

    def __call__(self, sample: ClipSample, rng: np.random.Generator) -> ClipSample:
        return resize_sample(sample, *rescaled_size(sample.height, sample.width, self.short_side))

    def __repr__(self) -> str:
        return f"Rescale(short_side={self.short_side})"


class RandomRescale:
    """Short side drawn uniformly from the integers in [low, high] (mmaction2: 256..320)."""

    def __init__(self, short_side_range: tuple[int, int]):
        low, high = short_side_range
        if not 0 < low <= high:
            raise ValueError(f"short_side_range must satisfy 0 < low <= high, got {short_side_range}")
        self.short_side_range = (int(low), int(high))

    def __call__(self, sample: ClipSample, rng: np.random.Generator) -> ClipSample:
        short_side = int(rng.integers(self.short_side_range[0], self.short_side_range[1] + 1))
        return resize_sample(sample, *rescaled_size(sample.height, sample.width, short_side))

    def __repr__(self) -> str:
        return f"RandomRescale(short_side_range={self.short_side_range})"


def _keep_valid(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    return ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)


class RandomCrop:
    """Square crop at a random position; boxes are shifted, clipped to the crop, and dropped
    when narrower or shorter than ``min_box_size`` px (mmaction2 keeps such degenerate boxes,
    which then train on empty regions)."""

    def __init__(self, size: int, min_box_size: float = 1.0):
        self.size = size
        self.min_box_size = min_box_size

    def __call__(self, sample: ClipSample, rng: np.random.Generator) -> ClipSample:
        crop_h, crop_w = min(self.size, sample.height), min(self.size, sample.width)
        top = int(rng.integers(0, sample.height - crop_h + 1))
        left = int(rng.integers(0, sample.width - crop_w + 1))
        clip = sample.clip[:, top:top + crop_h, left:left + crop_w].contiguous()
        offset = torch.tensor([left, top, left, top], dtype=torch.float32)
        upper = torch.tensor([crop_w, crop_h, crop_w, crop_h], dtype=torch.float32)

        def move(boxes: torch.Tensor) -> torch.Tensor:
            return torch.minimum((boxes - offset).clamp(min=0), upper)

        gt_boxes, proposals = move(sample.gt_boxes), move(sample.proposals)
        keep_gt = _keep_valid(gt_boxes, self.min_box_size)
        keep_prop = _keep_valid(proposals, self.min_box_size)
        return ClipSample(clip=clip, gt_boxes=gt_boxes[keep_gt], gt_labels=sample.gt_labels[keep_gt],
                          proposals=proposals[keep_prop],
                          proposal_scores=sample.proposal_scores[keep_prop])

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, min_box_size={self.min_box_size})"


def _flip_boxes(boxes: torch.Tensor, width: int) -> torch.Tensor:
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)


class Flip:
    """Horizontal flip with probability ``p``; x -> W - x for the boxes."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, sample: ClipSample, rng: np.random.Generator) -> ClipSample:
        if rng.random() >= self.p:
            return sample
        return replace(sample, clip=sample.clip.flip(2).contiguous(),
                       gt_boxes=_flip_boxes(sample.gt_boxes, sample.width),
                       proposals=_flip_boxes(sample.proposals, sample.width))

    def __repr__(self) -> str:
        return f"Flip(p={self.p})"


class Compose:
    """Apply transforms in order, all drawing from the same per-sample generator."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, sample: ClipSample, rng: np.random.Generator) -> ClipSample:
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


def train_transform(*, short_side_range: tuple[int, int] = (256, 320), crop_size: int = 256,
                    flip_p: float = 0.5, min_box_size: float = 1.0) -> Compose:
    """mmaction2's AVA training augmentation, minus its degenerate boxes."""
    return Compose([RandomRescale(short_side_range), RandomCrop(crop_size, min_box_size), Flip(flip_p)])


def eval_transform(*, short_side: int = 256) -> Compose:
    """mmaction2's AVA test view: whole frame, short side fixed."""
    return Compose([Rescale(short_side)])


def normalize_clips(clips: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """uint8 clips [B, T, H, W, 3] RGB -> float [B, 3, T, H, W], (x - mean) / std per channel.

    Run it on the device after the copy, so the loader moves uint8.
    """
    mean_t = torch.tensor(mean, dtype=torch.float32, device=clips.device).view(1, 3, 1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=clips.device).view(1, 3, 1, 1, 1)
    return (clips.permute(0, 4, 1, 2, 3).float() - mean_t) / std_t
