"""The frame store: a Zarr v3 group holding, once each, the frames any keyframe's clip can reach.

Layout (written by :func:`pipeline.frames.extract.extract_frames`):

- group attributes: ``layout`` (:data:`LAYOUT`), ``spec`` (:meth:`FrameSpec.as_attrs`: short
  side, timeline, keyframe convention, codec, quality, reach, shard size) and ``fps`` (the
  common timeline rate, or null when videos differ);
- one group per video, named by its id, holding ``timeline`` (int32, the timeline frame of
  each stored frame, ascending) and ``frames`` (the stored frames in that order, encoded as
  :mod:`pipeline.frames.codecs` describes; every chunk checksummed);
- video attributes: ``fps`` and ``num_frames`` (of the timeline), ``height``/``width`` (stored
  frames), ``source_fps``/``source_frames`` (the file's own, on a fixed-rate timeline only),
  ``source_width``/``source_height``, ``source`` (the file's fingerprint), ``timestamps``,
  ``splits`` and ``keyframe_frames`` (each keyframe's timeline frame, same order), ``times`` and
  ``timestamp_start`` (only for a video on its own clock, :mod:`pipeline.ava.clock`),
  ``complete`` (written last).

The keyframe index (``keyframes.parquet``) is the same table as :attr:`FrameStore.index`: one
row per keyframe sorted by (video_id, timestamp), ``frame`` its keyframe's timeline frame.

Reading a clip reads its frames one at a time (a chunk each; an H.264 group once for all its
frames a clip uses) and decodes them in the calling process: a loader worker reads 4 frames
for a 4x16 clip, wherever temporal jitter moves them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import zarr

from pipeline.ava.clock import keyframe_frame_index
from pipeline.errors import InputError
from pipeline.frames.codecs import frame_codec
from pipeline.frames.spec import FrameSpec, clip_offsets
from pipeline.io import open_zarr

LAYOUT = "frames-once-v1"
"""The layout this code writes and reads; a store without it (an older extraction) is refused."""

INDEX_SCHEMA = pa.schema([
    ("video_id", pa.string()),
    ("timestamp", pa.int32()),
    ("split", pa.string()),
    ("frame", pa.int32()),
    ("height", pa.int32()),
    ("width", pa.int32()),
])


def index_from_group(group: zarr.Group) -> pd.DataFrame:
    """The keyframe index of a (complete) store, rebuilt from its videos' attributes."""
    parts = []
    for video_id in sorted(group.group_keys()):
        attrs = group[video_id].attrs
        parts.append(pd.DataFrame({
            "video_id": video_id,
            "timestamp": np.asarray(attrs["timestamps"], dtype=np.int32),
            "split": attrs["splits"],
            "frame": np.asarray(attrs["keyframe_frames"], dtype=np.int32),
            "height": np.int32(attrs["height"]),
            "width": np.int32(attrs["width"]),
        }))
    if not parts:
        return pa.Table.from_pylist([], schema=INDEX_SCHEMA).to_pandas()
    index = pd.concat(parts, ignore_index=True)
    return pa.Table.from_pandas(index, schema=INDEX_SCHEMA, preserve_index=False).to_pandas()


def disk_usage(path: str | Path) -> tuple[int, int]:
    """(bytes, files) under ``path``: what DVC hashes and stores."""
    total_bytes, files = 0, 0
    for root, _, names in os.walk(path):
        for name in names:
            total_bytes += os.path.getsize(os.path.join(root, name))
            files += 1
    return total_bytes, files


class StoredVideo:
    """One video of the store: its timeline and its stored frames."""

    def __init__(self, store_path: Path, video_id: str, group: zarr.Group, spec: FrameSpec):
        self.store_path, self.video_id = store_path, video_id
        self.attrs = dict(group.attrs)
        self.fps = float(self.attrs["fps"])
        self.num_frames = int(self.attrs["num_frames"])
        self.height, self.width = int(self.attrs["height"]), int(self.attrs["width"])
        self._codec = frame_codec(spec)
        with warnings.catch_warnings():   # zarr's note on variable-length bytes (codecs.py)
            warnings.simplefilter("ignore")
            self._frames = open_zarr(store_path, f"{video_id}/frames", array=True)
            timeline = open_zarr(store_path, f"{video_id}/timeline", array=True)
        self.timeline = self._checked(lambda: timeline[:], lambda: "its frame index")

    def frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Timeline frames at ``indices`` (any order, repeats allowed; clamped to the video, as
        mmaction2 repeats the first and last frames), (N, H, W, 3) uint8 RGB."""
        indices = np.clip(np.asarray(indices, dtype=np.int64), 0, self.num_frames - 1)
        positions = np.searchsorted(self.timeline, indices)
        held = positions < len(self.timeline)
        held[held] = self.timeline[positions[held]] == indices[held]
        if not held.all():
            missing = int(indices[np.argmin(held)])
            raise InputError(f"video '{self.video_id}': timeline frame {missing} is not in the "
                             "store; it keeps frames.reach frames around each keyframe "
                             f"({self.timeline[0]}..{self.timeline[-1]} and between)",
                             path=self.store_path, key="frames.reach")
        unique, inverse = np.unique(positions, return_inverse=True)
        decoded = self._checked(lambda: self._codec.read(self._frames, unique),
                                lambda: f"frames {', '.join(map(str, self.timeline[unique]))}")
        return np.stack([decoded[i] for i in inverse])   # one copy (a clip is megabytes)

    def clip(self, keyframe_frame: int, offsets: np.ndarray) -> np.ndarray:
        """The frames at ``offsets`` from a keyframe's frame, (T, H, W, 3) uint8 RGB."""
        return self.frames(int(keyframe_frame) + np.asarray(offsets, dtype=np.int64))

    def _checked(self, read: Callable[[], Any], what: Callable[[], str]) -> Any:
        """Run a read; a corrupt or unreadable chunk becomes one line naming store, video and
        frames (never wrong pixels). ``what`` is formatted only on failure: reads are the
        loader's hot path."""
        try:
            return read()
        except InputError:
            raise
        except Exception as err:   # zarr, Blosc, the checksum and the decoders raise their own
            raise InputError(f"video '{self.video_id}': cannot read {what()}: "
                             f"{type(err).__name__}: {err} (the store is damaged: run "
                             "`dvc checkout` or `dvc repro -f extract_frames`)",
                             path=self.store_path) from err


class FrameStore:
    """Read frames and keyframe clips from a frame store written by ``extract_frames``.

    ``FrameStore("data/frames/frames.zarr").clip(video_id, timestamp, clip_len=8,
    frame_interval=8)`` is a keyframe's clip as a (T, H, W, 3) uint8 array, whatever the codec.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "zarr.json").is_file():
            raise InputError("not a frame store (no zarr.json); run frame extraction first",
                             path=self.path)
        try:
            self.group = zarr.open_group(self.path, mode="r")
            self.attrs = dict(self.group.attrs)
        except Exception as err:
            raise InputError(f"cannot open the frame store: {type(err).__name__}: {err}",
                             path=self.path) from err
        if self.attrs.get("layout") != LAYOUT:
            raise InputError("this frame store was written by an older version of the pipeline "
                             "(one clip per keyframe); run `dvc repro -f extract_frames` to "
                             "extract it again in the current layout", path=self.path)
        spec = dict(self.attrs["spec"])
        spec["reach"] = tuple(spec["reach"])
        self.spec = FrameSpec(**spec)
        self.index = index_from_group(self.group)
        self._videos: dict[str, StoredVideo] = {}
        self._keyframe_frames = {(v, int(t)): int(f) for v, t, f in zip(
            self.index["video_id"], self.index["timestamp"], self.index["frame"])}

    @property
    def convention(self) -> str:
        """Which frame is the keyframe (``pipeline.ava.clock.CONVENTIONS``)."""
        return self.spec.convention

    @property
    def timeline_fps(self) -> int | None:
        """The fixed rate the stored frames were laid on (AVA: 30); None: each video's own."""
        return self.spec.timeline_fps

    @property
    def reach(self) -> tuple[int, int]:
        """Frames stored before and after every keyframe's frame."""
        return self.spec.reach

    def video_ids(self) -> list[str]:
        return sorted(self.group.group_keys())

    def video(self, video_id: str) -> StoredVideo:
        if video_id not in self._videos:
            if video_id not in self.group:
                raise InputError(f"video '{video_id}' is not in the frame store", path=self.path)
            self._videos[video_id] = StoredVideo(self.path, video_id, self.group[video_id],
                                                 self.spec)
        return self._videos[video_id]

    def keyframe_frame(self, video_id: str, timestamp: int) -> int:
        """The timeline frame of an extracted keyframe."""
        try:
            return self._keyframe_frames[(video_id, int(timestamp))]
        except KeyError:
            raise InputError(f"keyframe ({video_id}, {timestamp}) is not in the frame store",
                             path=self.path) from None

    def frame_of(self, video_id: str, seconds: float) -> int:
        """The timeline frame shown at ``seconds`` on the video's clock (keyframe convention
        applied): for any second, extracted as a keyframe or not."""
        video = self.video(video_id)
        start = video.attrs.get("timestamp_start", self.spec.timestamp_start)
        return int(keyframe_frame_index(seconds, fps=video.fps, timestamp_start=start,
                                        convention=self.spec.convention))

    def clip(self, video_id: str, timestamp: int, *, clip_len: int,
             frame_interval: int) -> np.ndarray:
        """The ``clip_len`` x ``frame_interval`` clip around an extracted keyframe, (T, H, W, 3)
        uint8 RGB, the keyframe at position ``clip_len // 2``."""
        return self.video(video_id).clip(self.keyframe_frame(video_id, timestamp),
                                         clip_offsets(clip_len, frame_interval))

    def keyframe_images(self, video_id: str, timestamps: Sequence[int]) -> np.ndarray:
        """The keyframe's own frame at each of ``timestamps``, (N, H, W, 3) uint8 RGB."""
        frames = [self.keyframe_frame(video_id, t) for t in timestamps]
        return self.video(video_id).frames(frames)

    def summary(self) -> dict:
        """Videos, keyframes, stored frames, bytes on disk and file count (logs, metrics)."""
        total_bytes, files = disk_usage(self.path)
        return {
            "videos": len(self.video_ids()),
            "keyframes": len(self.index),
            "stored_frames": int(sum(self.group[v]["timeline"].shape[0]
                                     for v in self.video_ids())),
            "codec": self.spec.codec,
            "bytes_on_disk": total_bytes,
            "files": files,
        }
