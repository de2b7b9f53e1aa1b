"""What the frame store holds: which frames of each video, at what size, in which codec.

The store keeps every frame of a video's timeline that some keyframe's clip can reach, once,
whatever model reads it: ``reach`` frames before and after each keyframe's frame. The model's
sampling (clip length, frame interval, temporal jitter) is chosen at read time, so trying 8x8
after 4x16, or jitter on and off, never extracts again; a clip that reaches further than the
store is refused before training (:func:`clip_reach`, checked in ``pipeline.params.all``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.ava.clock import CONVENTIONS, jitter_bounds
from pipeline.errors import InputError

QUALITY_RANGE = {"zstd": (0, 9), "lz4": (0, 9), "jpeg": (1, 100), "h264": (0, 51)}
"""``frames.codec`` -> the range of ``frames.quality``: the Blosc level of the lossless codecs
(0: uncompressed), the JPEG quality (libjpeg-turbo, 4:2:0), the x264 CRF (lower: larger files)."""
CODECS = tuple(QUALITY_RANGE)
H264_GOP = 16
"""Frames per H.264 group of pictures: a jittered 4x16 clip decodes about 30 frames
(``bench/bench_frames.py``); a GOP of 32 nearly doubles that for 10 % fewer bytes."""


def clip_offsets(clip_len: int, frame_interval: int) -> np.ndarray:
    """Timeline-frame offsets, from the keyframe's frame, of a clip of ``clip_len`` frames
    ``frame_interval`` apart with the keyframe at position ``clip_len // 2`` (mmaction2)."""
    return (np.arange(clip_len) - clip_len // 2) * frame_interval


def clip_reach(clip_len: int, frame_interval: int, temporal_jitter: bool) -> tuple[int, int]:
    """(frames before, frames after) the keyframe's frame that a clip can read; with
    ``temporal_jitter`` every frame may move by mmaction2's per-frame jitter."""
    offsets = clip_offsets(clip_len, frame_interval)
    low, high = jitter_bounds(frame_interval) if temporal_jitter else (0, 1)
    return int(-(offsets[0] + low)), int(offsets[-1] + high - 1)


@dataclass(frozen=True)
class FrameSpec:
    """Which frames to store and how. Errors name the ``frames.*`` params key of the bad field.

    ``timeline_fps`` sets what frame indices count: frames of a timeline at that rate, each the
    source frame shown then (AVA: 30, as mmaction2's ``ffmpeg -r 30`` frames), or the video's
    own frames (None). ``reach``: frames kept before and after each keyframe's frame (clamped
    to the video). ``short_side=None`` keeps the source resolution. ``shard_frames`` frames
    share one file (fewer files for DVC to hash; a multiple of the H.264 GOP).
    """

    short_side: int | None
    timestamp_start: float
    convention: str = "pyslowfast"
    timeline_fps: int | None = None
    codec: str = "zstd"
    quality: int = 3
    reach: tuple[int, int] = (40, 32)
    shard_frames: int = 256

    def __post_init__(self) -> None:
        if self.short_side is not None and (not _is_int(self.short_side)
                                            or self.short_side < 2 or self.short_side % 2):
            raise InputError(f"must be an even integer >= 2 or null (keep the source size), "
                             f"got {self.short_side!r}", key="frames.short_side")
        if self.timeline_fps is not None and (not _is_int(self.timeline_fps)
                                              or self.timeline_fps < 1):
            raise InputError(f"must be a positive integer (frames per second) or null (the "
                             f"video's own frames), got {self.timeline_fps!r}",
                             key="frames.timeline_fps")
        if self.convention not in CONVENTIONS:
            raise InputError(f"must be one of {CONVENTIONS}, got {self.convention!r}",
                             key="frames.convention")
        if self.codec not in CODECS:
            raise InputError(f"must be one of {CODECS}, got {self.codec!r}", key="frames.codec")
        low, high = QUALITY_RANGE[self.codec]
        if not _is_int(self.quality) or not low <= self.quality <= high:
            raise InputError(f"must be an integer in {low}..{high} for codec {self.codec!r}, "
                             f"got {self.quality!r}", key="frames.quality")
        if (len(self.reach) != 2 or not all(_is_int(r) and r >= 0 for r in self.reach)):
            raise InputError(f"must be two integers >= 0 (frames before and after each "
                             f"keyframe), got {list(self.reach)!r}", key="frames.reach")
        if not _is_int(self.shard_frames) or self.shard_frames < 1 or (
                self.shard_frames % H264_GOP):
            raise InputError(f"must be a positive multiple of {H264_GOP}, got "
                             f"{self.shard_frames!r}", key="frames.shard_frames")

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of stored frames (:func:`decoded_size`)."""
        return decoded_size(width, height, self.short_side)

    def as_attrs(self) -> dict:
        """The spec as the store records it (a resumed extraction must match it exactly)."""
        return {"short_side": self.short_side, "timestamp_start": self.timestamp_start,
                "convention": self.convention, "timeline_fps": self.timeline_fps,
                "codec": self.codec, "quality": self.quality, "reach": list(self.reach),
                "shard_frames": self.shard_frames}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def decoded_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) frames are decoded to, for the store and ``stad detect`` alike: short
    side ``short_side``, aspect kept, long side rounded to an even number; None keeps the
    source size."""
    if short_side is None:
        return width, height
    short, long = min(width, height), max(width, height)
    long_out = max(2, int(round(long * short_side / short / 2)) * 2)
    return (short_side, long_out) if width <= height else (long_out, short_side)
