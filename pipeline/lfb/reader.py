"""The feature bank format, and reading windows of it around keyframes.

A bank is a folder (written by ``writer.py``):

- ``features.zarr``: a Zarr v3 array ``[N, D]`` (float16 or float32), one row per box,
  chunked (the read unit) and sharded (the write unit) along the row axis, raw or Blosc/zstd;
- ``index.parquet``: one row per bank row, sorted by (video_id, timestamp, box_index), with
  columns ``row, video_id, timestamp, box_index, x1, y1, x2, y2, score, split, source``
  (``layout.INDEX_SCHEMA``);
- ``bank.json``: storage settings, row/shard/video counts, the layout fingerprint and the
  writer's provenance (which checkpoint produced the features).

Window convention (as mmaction2 and the LFB paper): for a keyframe at second ``t`` and
``window_seconds = w``, the window holds the boxes of seconds ``t - w ... t + w - 1`` (``2w``
seconds, the keyframe's own second included), at most ``max_per_second = m`` boxes per
second, in ``S = 2 * w * m`` slots: slot ``(s - (t - w)) * m + k`` holds the ``k``-th box
chosen in second ``s``. With w = 30, m = 5 the output is mmaction2's ``[300, D]`` layout, so
its checkpoints see the same slots; unlike mmaction2 a mask marks the filled slots.

Choosing the boxes of a second with more than ``m``: a random subset when an ``rng`` is given
(training), the ``m`` highest-scoring ones (ties: first in the keyframe) without one (testing),
so test outputs never depend on a seed or on the rest of the batch (mmaction2 samples randomly at
test time too).

Only the rows of the requested windows are read from Zarr, one contiguous slice per run of
overlapping windows (rows are sorted by video and time); the per-second choice is vectorised
over the whole batch. ``in_memory=True`` loads the whole array once instead (small banks).
This module imports neither pandas nor torch, to keep data-loader workers small.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import zarr

from pipeline.boxes import BOX_COLUMNS, KEYFRAME_KEY
from pipeline.errors import InputError
from pipeline.io import open_zarr

FEATURES_NAME = "features.zarr"
INDEX_NAME = "index.parquet"
META_NAME = "bank.json"

_TIME_OFFSET = 1 << 31   # keeps (video code, timestamp) keys ordered for negative timestamps


def num_slots(window_seconds: int, max_per_second: int) -> int:
    """Slots in one window: ``2 * window_seconds * max_per_second``."""
    return 2 * window_seconds * max_per_second


def _check_window(window_seconds: int, max_per_second: int) -> None:
    for name, value in (("window_seconds", window_seconds), ("max_per_second", max_per_second)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InputError(f"{name}={value!r} must be a positive integer", key=name)


class FeatureBank:
    """A finished bank: its index lives in memory (a few numbers per box), features on disk."""

    def __init__(self, path: str | Path, *, in_memory: bool = False):
        self.path = Path(path)
        for name in (META_NAME, INDEX_NAME, FEATURES_NAME):
            if not (self.path / name).exists():
                raise InputError(f"not a feature bank: {name} is missing (was the bank "
                                 f"finalized?)", path=self.path)
        self.meta = json.loads((self.path / META_NAME).read_text())
        storage = self.meta["storage"]
        self.dim: int = storage["dim"]
        self.dtype: str = storage["dtype"]
        self.num_rows: int = self.meta["num_rows"]

        # ParquetFile.read, single-threaded: pq.read_table's dataset machinery costs ~50 MB RSS
        columns = pq.ParquetFile(self.path / INDEX_NAME).read(
            columns=[*KEYFRAME_KEY, "box_index", "score", *BOX_COLUMNS],
            use_threads=False)
        if columns.num_rows != self.num_rows:
            raise InputError(f"index has {columns.num_rows} rows, bank.json says "
                             f"{self.num_rows}", path=self.path / INDEX_NAME)
        videos = columns.column("video_id").combine_chunks().dictionary_encode()
        codes = videos.indices.to_numpy().astype(np.int64)
        self.video_ids: list[str] = videos.dictionary.to_pylist()
        self._video_code = {video_id: code for code, video_id in enumerate(self.video_ids)}
        self._timestamps = columns.column("timestamp").to_numpy().astype(np.int64)
        # rows are sorted by (video, timestamp), video codes follow first appearance, so these
        # keys are sorted and one searchsorted finds every window's row range
        self._keys = (codes << 32) | (self._timestamps + _TIME_OFFSET)
        if np.any(np.diff(self._keys) < 0):
            raise InputError("index rows are not sorted by (video_id, timestamp)",
                             path=self.path / INDEX_NAME)
        self._score = columns.column("score").to_numpy()
        self._box_index = columns.column("box_index").to_numpy()
        self._boxes = np.stack([columns.column(c).to_numpy().astype(np.float32)
                                for c in BOX_COLUMNS], axis=1)
        self._array: zarr.Array | None = None
        array = self._open_array()      # now, so an array zarr cannot read fails up front
        self._data: np.ndarray | None = array[:] if in_memory else None

    def _open_array(self) -> zarr.Array:
        if self._array is None:
            self._array = open_zarr(self.path / FEATURES_NAME, array=True)
        return self._array

    def __getstate__(self) -> dict:
        """Data-loader workers reopen the Zarr array themselves."""
        return {**self.__dict__, "_array": None}

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as stored (float16 or float32)."""
        if self._data is not None:
            return self._data[start:stop]
        return self._open_array()[start:stop]

    def window_rows(self, video_ids: Sequence[str], timestamps: Sequence[int] | np.ndarray,
                    window_seconds: int) -> tuple[np.ndarray, np.ndarray]:
        """Per keyframe, the row range ``[lo, hi)`` of seconds ``t - w ... t + w - 1``."""
        codes = np.empty(len(video_ids), dtype=np.int64)
        for i, video_id in enumerate(video_ids):
            code = self._video_code.get(video_id)
            if code is None:
                raise InputError(f"video '{video_id}' has no boxes in this bank", path=self.path,
                                 key=video_id)
            codes[i] = code
        t = np.asarray(timestamps, dtype=np.int64)
        lo = np.searchsorted(self._keys, (codes << 32) | (t - window_seconds + _TIME_OFFSET))
        hi = np.searchsorted(self._keys, (codes << 32) | (t + window_seconds + _TIME_OFFSET))
        return lo, hi

    def _read_ranges(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                     np.ndarray]:
        """Read the union of (not all empty) row ranges, merged into contiguous runs.

        Returns the rows stacked run after run, each run's first row and its offset in that
        stack (to map a row to its position).
        """
        order = np.argsort(lo, kind="stable")
        runs: list[list[int]] = []
        for a, b in zip(lo[order].tolist(), hi[order].tolist()):
            if a == b:
                continue
            if runs and a <= runs[-1][1]:
                runs[-1][1] = max(runs[-1][1], b)
            else:
                runs.append([a, b])
        blocks = [self.read_rows(a, b) for a, b in runs]
        starts = np.array([a for a, _ in runs], dtype=np.int64)
        offsets = np.cumsum([0] + [b - a for a, b in runs[:-1]])
        return np.concatenate(blocks), starts, offsets

    def windows(self, video_ids: Sequence[str], timestamps: Sequence[int] | np.ndarray, *,
                window_seconds: int, max_per_second: int,
                rng: np.random.Generator | None = None, with_geometry: bool = False
                ) -> tuple[np.ndarray, ...]:
        """The windows around a batch of keyframes.

        Returns ``features`` (float32 ``[B, S, D]``, zeros in empty slots) and ``mask`` (bool
        ``[B, S]``, True where a slot holds a box); ``S = num_slots(window_seconds,
        max_per_second)``. ``rng`` given: random choice within crowded seconds (training);
        None: the highest-scoring boxes (testing, deterministic). ``with_geometry`` adds a
        third array ``[B, S, 5]``: each slot's normalised box (x1, y1, x2, y2) and its second
        relative to the keyframe (zeros in empty slots), for heads that embed where and when a
        bank feature was seen.
        """
        _check_window(window_seconds, max_per_second)
        t = np.asarray(timestamps, dtype=np.int64)
        if len(video_ids) != len(t):
            raise ValueError(f"{len(video_ids)} video ids but {len(t)} timestamps")
        batch, slots = len(t), num_slots(window_seconds, max_per_second)
        features = np.zeros((batch, slots, self.dim), dtype=np.float32)
        mask = np.zeros((batch, slots), dtype=bool)
        geometry = np.zeros((batch, slots, 5), dtype=np.float32)
        done = (features, mask, geometry) if with_geometry else (features, mask)
        lo, hi = self.window_rows(video_ids, t, window_seconds)
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            return done

        # one entry per (keyframe, row in its window)
        key = np.repeat(np.arange(batch), counts)
        rows = np.arange(total) - np.repeat(np.cumsum(counts) - counts - lo, counts)
        second = self._timestamps[rows] - (t[key] - window_seconds)
        if rng is None:
            order = np.lexsort((self._box_index[rows], -self._score[rows], second, key))
        else:
            order = np.lexsort((rng.random(total), second, key))
        # rank of each entry within its (keyframe, second) group, in the chosen order
        group = (key * 2 * window_seconds + second)[order]
        is_first = np.r_[True, group[1:] != group[:-1]]
        first = np.maximum.accumulate(np.where(is_first, np.arange(total), 0))
        rank = np.arange(total) - first
        keep = order[rank < max_per_second]
        kept_rank = rank[rank < max_per_second]

        block, starts, offsets = self._read_ranges(lo, hi)
        run = np.searchsorted(starts, rows[keep], side="right") - 1
        position = offsets[run] + rows[keep] - starts[run]
        slot = second[keep] * max_per_second + kept_rank
        # one row index into [B * S, D] copies whole rows (faster than a (key, slot) pair)
        features.reshape(batch * slots, self.dim)[key[keep] * slots + slot] = block[position]
        mask.reshape(-1)[key[keep] * slots + slot] = True
        if with_geometry:
            flat = geometry.reshape(batch * slots, 5)
            flat[key[keep] * slots + slot, :4] = self._boxes[rows[keep]]
            flat[key[keep] * slots + slot, 4] = second[keep] - window_seconds
        return done

    def window(self, video_id: str, timestamp: int, *, window_seconds: int,
               max_per_second: int, rng: np.random.Generator | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """One keyframe's window: ``features [S, D]`` float32 and ``mask [S]``."""
        features, mask = self.windows([video_id], [timestamp], window_seconds=window_seconds,
                                      max_per_second=max_per_second, rng=rng)
        return features[0], mask[0]

    def summary(self) -> dict:
        """What ``bank inspect`` shows."""
        return {
            "path": str(self.path),
            "rows": self.num_rows,
            "videos": len(self.video_ids),
            "dim": self.dim,
            "dtype": self.dtype,
            "chunk_rows": self.meta["storage"]["chunk_rows"],
            "shard_rows": self.meta["storage"]["shard_rows"],
            "provenance": self.meta["provenance"],
        }
