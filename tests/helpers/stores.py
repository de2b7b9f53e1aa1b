"""Zarr stores in tests: a frame store checked frame by frame against a clock (the custom, AVA
and AVA-Kinetics DAG tests), written out independently of ``pipeline.frames.extract``; an
array made to name a codec this install lacks (the frame store and bank reader tests)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from helpers.video import read_frame_number
from pipeline.frames.store import FrameStore


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


def name_an_unknown_codec(array_dir: Path) -> None:
    """Rewrite an array's ``zarr.json`` as a zarr with another codec would write it."""
    meta = json.loads((array_dir / "zarr.json").read_text())
    codecs = meta["codecs"][0]["configuration"]["codecs"] if meta["codecs"][0]["name"] == \
        "sharding_indexed" else meta["codecs"]
    codecs[-1]["name"] = "codec_this_install_lacks"
    (array_dir / "zarr.json").write_text(json.dumps(meta))
