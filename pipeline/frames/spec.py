"""What frame extraction stores: clip length, spacing, size and compression of the clips."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.ava.clock import CONVENTIONS, jitter_span
from pipeline.errors import InputError

SHUFFLES = ("noshuffle", "shuffle", "bitshuffle")
CODECS = ("zstd", "lz4")
"""Blosc compressors: zstd packs smaller, lz4 costs a fraction of zstd's time to write and read
(``bench/bench_frames.py``); ``clevel`` 0 stores the pixels uncompressed with either."""


@dataclass(frozen=True)
class FrameSpec:
    """How many frames to store around each keyframe, at what size, and how to compress them.

    The stored clip is ``clip_len`` frames ``frame_interval`` apart with the keyframe at position
    ``clip_len // 2``; store a superset of what the models need (e.g. 32 frames at interval 2
    serves SlowFast 8x8 and, taking every 4th or 8th frame, SlowOnly 8x8 and 4x16).
    ``timeline_fps`` sets what frame indices count: frames of a timeline at that rate, each the
    source frame shown then (AVA: 30, as mmaction2's ``ffmpeg -r 30`` frames), or the video's
    own frames (None). ``train_jitter`` stores the clips of videos with train keyframes at
    stride 1 over every frame mmaction2's per-frame temporal jitter can reach
    (:func:`pipeline.ava.clock.jitter_span`, ``clip_len * frame_interval`` frames), so that
    training can draw a fresh jitter each epoch. ``short_side=None`` keeps the source
    resolution. One Zarr chunk holds one clip; one shard
    file holds ``shard_clips`` clips (fewer files for DVC to hash, more memory per write),
    compressed with Blosc ``codec`` at ``clevel``.
    Errors name the ``frames.*`` params key of the bad field.
    """

    clip_len: int
    frame_interval: int
    short_side: int | None
    timestamp_start: float
    convention: str = "pyslowfast"
    shard_clips: int = 16
    clevel: int = 3
    shuffle: str = "noshuffle"
    codec: str = "zstd"
    timeline_fps: int | None = None
    train_jitter: bool = False

    def __post_init__(self) -> None:
        for name in ("clip_len", "frame_interval", "shard_clips"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"must be a positive integer, got {value!r}", key=f"frames.{name}")
        if self.short_side is not None and (not isinstance(self.short_side, int)
                                            or self.short_side < 2 or self.short_side % 2):
            raise InputError(f"must be an even integer >= 2 or null (keep the source size), "
                             f"got {self.short_side!r}", key="frames.short_side")
        if self.timeline_fps is not None and (not isinstance(self.timeline_fps, int)
                                              or isinstance(self.timeline_fps, bool)
                                              or self.timeline_fps < 1):
            raise InputError(f"must be a positive integer (frames per second) or null (the "
                             f"video's own frames), got {self.timeline_fps!r}",
                             key="frames.timeline_fps")
        if not isinstance(self.train_jitter, bool):
            raise InputError(f"must be true or false, got {self.train_jitter!r}",
                             key="frames.train_jitter")
        if self.convention not in CONVENTIONS:
            raise InputError(f"must be one of {CONVENTIONS}, got {self.convention!r}",
                             key="frames.convention")
        if not isinstance(self.clevel, int) or not 0 <= self.clevel <= 9:
            raise InputError(f"must be an integer in 0..9, got {self.clevel!r}",
                             key="frames.clevel")
        if self.codec not in CODECS:
            raise InputError(f"must be one of {CODECS}, got {self.codec!r}", key="frames.codec")
        if self.shuffle not in SHUFFLES:
            raise InputError(f"must be one of {SHUFFLES}, got {self.shuffle!r}",
                             key="frames.shuffle")

    @property
    def keyframe_position(self) -> int:
        """Index of the keyframe inside a stored clip."""
        return self.clip_len // 2

    @property
    def offsets(self) -> np.ndarray:
        """Frame offsets of the stored clip relative to the keyframe (before edge clamping)."""
        return (np.arange(self.clip_len) - self.keyframe_position) * self.frame_interval

    @property
    def jitter_offsets(self) -> np.ndarray:
        """Frame offsets of a train clip stored for temporal jitter (stride 1)."""
        return jitter_span(self.clip_len, self.frame_interval)

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of stored frames (:func:`decoded_size`)."""
        return decoded_size(width, height, self.short_side)


def decoded_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) frames are decoded to, for the store and ``stad detect`` alike: short
    side ``short_side``, aspect kept, long side rounded to an even number; None keeps the
    source size."""
    if short_side is None:
        return width, height
    short, long = min(width, height), max(width, height)
    long_out = max(2, int(round(long * short_side / short / 2)) * 2)
    return (short_side, long_out) if width <= height else (long_out, short_side)
