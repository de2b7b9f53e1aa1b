"""The frame store: a Zarr v3 group, one (K, T, H, W, 3) uint8 array of keyframe clips per video.

Layout (written by :func:`pipeline.frames.extract.extract_frames`):

- group attributes: the :class:`FrameSpec` fields under ``spec``, plus ``clip_len``,
  ``frame_interval``, ``short_side``, ``timestamp_start``, ``convention``, ``offsets`` (frame
  offsets of the stored frames relative to the keyframe), ``keyframe_position``, ``fps`` (the
  common rate frame indices count, or null when videos differ) and ``timeline_fps`` when the
  frames lie on a fixed-rate timeline (AVA: 30); absent, they are each video's own frames;
  ``train_jitter`` and ``jitter_offsets`` when videos with train keyframes hold the stride-1
  span temporal jitter reaches instead of the clip (``frames.train_jitter``);
- one array per video, named by the video id: ``K`` keyframes (sorted by timestamp) x ``T =
  clip_len`` frames, RGB; chunk = one clip, shard = ``shard_clips`` clips, Blosc/zstd;
- array attributes: ``fps`` and ``num_frames`` (of the timeline), ``source_fps`` and
  ``source_frames`` (the file's own, on a fixed-rate timeline only), ``offsets`` and
  ``keyframe_position`` (only where they differ from the group's: a jitter span),
  ``source_width``/``source_height``, ``source_bytes``, ``timestamps`` and ``splits`` (row
  order), ``times`` and ``timestamp_start`` (only for a video on its own clock: the keyframes'
  exact times where they are not the whole-second keys, its start where it is not the
  group's; :mod:`pipeline.ava.clock`), ``complete`` (written last).

The keyframe index (``keyframes.parquet``) is the same table as :attr:`FrameStore.index`:
one row per keyframe sorted by (video_id, timestamp), ``row`` indexing that video's array.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import zarr

from pipeline.errors import InputError

INDEX_SCHEMA = pa.schema([
    ("video_id", pa.string()),
    ("timestamp", pa.int32()),
    ("split", pa.string()),
    ("row", pa.int32()),
    ("height", pa.int32()),
    ("width", pa.int32()),
])


def index_from_group(group: zarr.Group) -> pd.DataFrame:
    """The keyframe index of a (complete) store, rebuilt from its arrays' attributes."""
    parts = []
    for video_id in sorted(group.array_keys()):
        array = group[video_id]
        timestamps = array.attrs["timestamps"]
        parts.append(pd.DataFrame({
            "video_id": video_id,
            "timestamp": np.asarray(timestamps, dtype=np.int32),
            "split": array.attrs["splits"],
            "row": np.arange(len(timestamps), dtype=np.int32),
            "height": np.int32(array.shape[2]),
            "width": np.int32(array.shape[3]),
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


class FrameStore:
    """Read keyframe clips from a frame store written by ``extract_frames``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "zarr.json").is_file():
            raise InputError("not a frame store (no zarr.json); run frame extraction first",
                             path=self.path)
        self.group = zarr.open_group(self.path, mode="r")
        self.attrs = dict(self.group.attrs)
        self.index = index_from_group(self.group)
        self._arrays: dict[str, zarr.Array] = {}

    @property
    def keyframe_position(self) -> int:
        """Index of the keyframe's frame inside each stored clip."""
        return int(self.attrs["keyframe_position"])

    @property
    def offsets(self) -> np.ndarray:
        """Frame offsets of the stored frames relative to the keyframe."""
        return np.asarray(self.attrs["offsets"])

    def offsets_of(self, video_id: str) -> np.ndarray:
        """Frame offsets from the keyframe of the frames stored for ``video_id``'s clips."""
        return np.asarray(self.array(video_id).attrs.get("offsets", self.attrs["offsets"]))

    def keyframe_position_of(self, video_id: str) -> int:
        """Index of the keyframe's frame inside ``video_id``'s stored clips."""
        return int(self.array(video_id).attrs.get("keyframe_position",
                                                  self.attrs["keyframe_position"]))

    def positions(self, video_id: str, offsets: np.ndarray) -> np.ndarray:
        """Indices, inside ``video_id``'s stored clips, of the frames at ``offsets`` from the
        keyframe; ValueError naming the first one the store does not hold."""
        stored = self.offsets_of(video_id)
        offsets = np.asarray(offsets)
        positions = np.clip(np.searchsorted(stored, offsets), 0, len(stored) - 1)
        missing = stored[positions] != offsets
        if missing.any():
            raise ValueError(f"video '{video_id}' stores {len(stored)} frames at offsets "
                             f"{stored[0]}..{stored[-1]} from the keyframe, not offset "
                             f"{int(offsets[np.argmax(missing)])}")
        return positions

    @property
    def convention(self) -> str:
        """Which frame is the keyframe (``pipeline.ava.clock.CONVENTIONS``)."""
        return str(self.attrs["convention"])

    @property
    def timeline_fps(self) -> int | None:
        """The fixed rate the stored frames were laid on (AVA: 30); None: each video's own."""
        return self.attrs.get("timeline_fps")

    def video_ids(self) -> list[str]:
        return sorted(self.group.array_keys())

    def array(self, video_id: str) -> zarr.Array:
        if video_id not in self._arrays:
            if video_id not in self.group:
                raise InputError(f"video '{video_id}' is not in the frame store", path=self.path)
            self._arrays[video_id] = self.group[video_id]
        return self._arrays[video_id]

    def fps(self, video_id: str) -> float:
        return float(self.array(video_id).attrs["fps"])

    def clip(self, video_id: str, row: int) -> np.ndarray:
        """One stored clip, (T, H, W, 3) uint8 RGB."""
        return self.array(video_id)[int(row)]

    def clips(self, video_id: str, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Several clips of one video, (N, T, H, W, 3) uint8 RGB, in the order of ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        return self.array(video_id).get_orthogonal_selection((rows,))

    def keyframe_images(self, video_id: str, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The keyframe's own frame of several clips, (N, H, W, 3) uint8 RGB."""
        rows = np.asarray(rows, dtype=np.int64)
        return self.array(video_id).get_orthogonal_selection(
            (rows, self.keyframe_position_of(video_id)))

    def summary(self) -> dict:
        """Arrays, shapes, clip count, bytes on disk and file count (for logs and metrics)."""
        total_bytes, files = disk_usage(self.path)
        shapes = {video_id: list(self.array(video_id).shape) for video_id in self.video_ids()}
        return {
            "arrays": len(shapes),
            "clips": int(sum(shape[0] for shape in shapes.values())),
            "shapes": shapes,
            "bytes_on_disk": total_bytes,
            "files": files,
        }
