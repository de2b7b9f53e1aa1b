"""The ``frames`` group: the frame store (``extract_frames``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.frames.spec import FrameSpec
from pipeline.params.schema import positive


@dataclass(frozen=True)
class FramesParams:
    """The frame store (``extract_frames``): which frames, what size, which codec; see
    pipeline.frames.FrameSpec. The model's sampling is not here: it is chosen at read time."""

    short_side: int | None
    convention: Literal["pyslowfast", "mmaction2"]
    timeline_fps: int | None
    codec: Literal["zstd", "lz4", "jpeg", "h264"]
    quality: int
    reach: tuple[int, int]
    shard_frames: int
    skip_bad_videos: bool
    workers: int

    def __post_init__(self):
        positive(self, "workers")
        self.spec(timestamp_start=0)  # FrameSpec checks the rest and names the bad key

    def spec(self, timestamp_start: float) -> FrameSpec:
        return FrameSpec(short_side=self.short_side, timestamp_start=timestamp_start,
                         convention=self.convention, timeline_fps=self.timeline_fps,
                         codec=self.codec, quality=self.quality, reach=tuple(self.reach),
                         shard_frames=self.shard_frames)
