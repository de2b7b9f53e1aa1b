"""A frame store checked frame by frame against a clock (the custom, AVA and AVA-Kinetics DAG
tests): written out independently of ``pipeline.frames.extract``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from pipeline.frames.store import FrameStore
from video_utils import read_frame_number


def frames_within_reach(centers: Iterable[int], reach: Sequence[int],
                        num_frames: int) -> list[int]:
    """Every timeline frame within ``reach`` (before, after) of a keyframe's frame, clamped to
    the video, once, ascending: what the store must hold of a video."""
    before, after = reach
    keep: set[int] = set()
    for center in centers:
        keep.update(range(max(0, center - before), min(num_frames, center + after + 1)))
    return sorted(keep)


def check_video(store: FrameStore, video_id: str, centers: dict[int, int],
                reference: Sequence[int | None]) -> int:
    """Check one video of ``store``: its keyframes (timestamp -> timeline frame) are
    ``centers``, it holds exactly the frames within ``store.reach`` of them, and stored frame
    ``k`` shows the number ``reference[k]`` (the source frame the clock puts at timeline frame
    ``k``). Returns the number of frames checked."""
    index = store.index[store.index["video_id"] == video_id]
    assert dict(zip(index["timestamp"].astype(int), index["frame"].astype(int))) == centers, \
        video_id
    video = store.video(video_id)
    wanted = frames_within_reach(centers.values(), store.reach, video.num_frames)
    assert video.timeline.tolist() == wanted, (video_id, video.timeline.tolist(), wanted)
    shown = [read_frame_number(frame) for frame in video.frames(np.asarray(wanted))]
    expected = [reference[k] for k in wanted]
    assert shown == expected, (video_id, shown, expected)
    return len(wanted)
