"""Write a feature bank shard by shard, resumably and from several ranks at once.

The bank is filled at ``<bank>.partial`` and renamed into place by :meth:`BankWriter.finalize`,
so the final path never holds a half bank. Shards are Zarr's write unit: two writers touching
one shard lose data (zarr-python#3682), so every shard is written whole, by exactly one rank
(rank ``r`` of ``W`` owns shards ``r, r + W, ...``), and a ``done/<shard>`` marker is written
after it. A rerun that opens the same ``.partial`` with the same layout, settings and
provenance skips the shards already marked; anything else starts over.

Multi-rank use (torchrun)::

    writer = BankWriter(path, boxes, ..., create=(rank == 0))   # rank 0 first, then a barrier
    fill_bank(writer, compute, rank=rank, world_size=world_size)
    # barrier
    if rank == 0:
        writer.finalize()
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import zarr
from tqdm import tqdm
from zarr.codecs import BloscCodec, BloscShuffle

from pipeline.errors import InputError
from pipeline.io import commit_partial, partial_path, remove_path, write_json, write_parquet
from pipeline.lfb.layout import INDEX_SCHEMA, bank_layout, layout_fingerprint
from pipeline.lfb.reader import FEATURES_NAME, INDEX_NAME, META_NAME

DONE_NAME = "done"
DTYPES = ("float16", "float32")
COMPRESSORS = ("none", "zstd")


@dataclasses.dataclass(frozen=True)
class BankStorage:
    """How the feature array is stored: dtype, rows per chunk (read unit), rows per shard (write
    unit, and the unit of work and of resume), and the compressor.

    Features are float mantissas that barely compress: at AVA's size Blosc/zstd saved 13% of the
    disk on synthetic post-ReLU-like float16 features but made window reads 2.6x slower
    (bench/bench_lfb.py), hence no compression by default.
    """

    dim: int
    dtype: Literal["float16", "float32"] = "float16"
    chunk_rows: int = 64
    shard_rows: int = 8192
    compressor: Literal["none", "zstd"] = "none"
    clevel: int = 3

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InputError(f"dtype {self.dtype!r} is not one of {list(DTYPES)}", key="dtype")
        for name in ("dim", "chunk_rows", "shard_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name}={value!r} must be a positive integer", key=name)
        if self.shard_rows % self.chunk_rows:
            raise InputError(f"shard_rows={self.shard_rows} is not a multiple of chunk_rows="
                             f"{self.chunk_rows} (Zarr shards hold whole chunks)",
                             key="shard_rows")
        if self.compressor not in COMPRESSORS:
            raise InputError(f"compressor {self.compressor!r} is not one of "
                             f"{list(COMPRESSORS)}", key="compressor")
        if not 0 <= self.clevel <= 9:
            raise InputError(f"clevel={self.clevel} is outside [0, 9]", key="clevel")


class BankWriter:
    """Owns the row layout of one bank and writes whole shards of it.

    ``boxes`` is the box table of :func:`pipeline.lfb.layout.bank_layout`; ``provenance`` is
    whatever identifies the producer of the features (checkpoint hash, params): a rerun with a
    different provenance does not reuse shards written by the old one. ``create=False`` attaches
    to a ``.partial`` that another rank created (it must match) instead of (re)creating it.
    """

    def __init__(self, path: str | Path, boxes: pd.DataFrame, storage: BankStorage, *,
                 provenance: dict | None = None, create: bool = True):
        self.path = Path(path)
        self.tmp = partial_path(self.path)
        self.storage = storage
        self.index = bank_layout(boxes)
        self.provenance = dict(provenance or {})
        self.num_rows = len(self.index)
        self.num_shards = -(-self.num_rows // storage.shard_rows)
        self.meta = {
            "format": "lfb-bank/1",
            "num_rows": self.num_rows,
            "num_shards": self.num_shards,
            "num_videos": int(self.index["video_id"].nunique()),
            "storage": dataclasses.asdict(storage),
            "provenance": self.provenance,
        }
        self.meta["fingerprint"] = layout_fingerprint(self.index, self.meta)
        self.resumed_shards = 0
        if create:
            self._create_or_reuse()
        elif self._stored_fingerprint() != self.meta["fingerprint"]:
            raise InputError("no matching partial bank to attach to (create it on rank 0 "
                             "first)", path=self.tmp)
        self.array = zarr.open_array(self.tmp / FEATURES_NAME, mode="r+")

    def _stored_fingerprint(self) -> str | None:
        meta_path = self.tmp / META_NAME
        if not meta_path.is_file():
            return None
        return json.loads(meta_path.read_text()).get("fingerprint")

    def _create_or_reuse(self) -> None:
        if self._stored_fingerprint() == self.meta["fingerprint"]:
            for leftover in (self.tmp / FEATURES_NAME).rglob("*.partial"):  # a killed write
                leftover.unlink()
            self.resumed_shards = self.num_shards - len(self.pending_shards())
            return
        remove_path(self.tmp)
        self.tmp.mkdir(parents=True)
        storage = self.storage
        zarr.create_array(
            self.tmp / FEATURES_NAME, shape=(self.num_rows, storage.dim), dtype=storage.dtype,
            chunks=(storage.chunk_rows, storage.dim), shards=(storage.shard_rows, storage.dim),
            compressors=None if storage.compressor == "none" else BloscCodec(
                cname="zstd", clevel=storage.clevel, shuffle=BloscShuffle.shuffle),
            fill_value=float("nan"))   # NaN marks rows never written
        (self.tmp / DONE_NAME).mkdir()
        write_parquet(self.tmp / INDEX_NAME, self.index, schema=INDEX_SCHEMA)
        write_json(self.tmp / META_NAME, self.meta)   # last: the fingerprint says "set up"

    def _marker(self, shard: int) -> Path:
        return self.tmp / DONE_NAME / f"{shard:06d}"

    def is_done(self, shard: int) -> bool:
        return self._marker(shard).is_file()

    def pending_shards(self, rank: int = 0, world_size: int = 1) -> list[int]:
        """This rank's shards (``rank, rank + world_size, ...``) that are not written yet."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside [0, {world_size})")
        return [s for s in range(rank, self.num_shards, world_size) if not self.is_done(s)]

    def rows_of_shard(self, shard: int) -> tuple[int, int]:
        """The half-open row range ``[start, stop)`` one shard holds."""
        if not 0 <= shard < self.num_shards:
            raise ValueError(f"shard {shard} is outside [0, {self.num_shards})")
        start = shard * self.storage.shard_rows
        return start, min(start + self.storage.shard_rows, self.num_rows)

    def shard_boxes(self, shard: int) -> pd.DataFrame:
        """The index rows (boxes) whose features one shard holds, in row order."""
        start, stop = self.rows_of_shard(shard)
        return self.index.iloc[start:stop]

    def write_shard(self, shard: int, features: np.ndarray) -> None:
        """Write one whole shard (``[rows, dim]``), then mark it done."""
        start, stop = self.rows_of_shard(shard)
        features = np.asarray(features)
        expected = (stop - start, self.storage.dim)
        if features.shape != expected:
            raise ValueError(f"shard {shard} needs features of shape {expected}, got "
                             f"{features.shape}")
        with np.errstate(over="ignore"):   # reported below, with the row
            stored = features.astype(self.storage.dtype)
        if not np.isfinite(stored).all():
            row = start + int(np.argmax(~np.isfinite(stored).all(axis=1)))
            hint = (" (beyond float16's range? store float32)"
                    if np.isfinite(features[row - start]).all() else "")
            raise ValueError(f"shard {shard}: the features of row {row} are not finite{hint}")
        self.array[start:stop] = stored
        self._marker(shard).touch()

    def finalize(self) -> dict:
        """Check every shard is written and move the bank into place (rank 0, after a barrier).

        Returns a summary for logs and metrics.
        """
        missing = [s for s in range(self.num_shards) if not self.is_done(s)]
        if missing:
            raise RuntimeError(f"{len(missing)} of {self.num_shards} shards are not written "
                               f"yet (first: {missing[:5]}); run every rank to completion")
        remove_path(self.tmp / DONE_NAME)
        commit_partial(self.tmp, self.path)
        return {
            "rows": self.num_rows,
            "videos": self.meta["num_videos"],
            "shards": self.num_shards,
            "resumed_shards": self.resumed_shards,
            "dtype": self.storage.dtype,
            "dim": self.storage.dim,
            "bytes": sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file()),
        }


def fill_bank(writer: BankWriter, compute: Callable[[pd.DataFrame], np.ndarray], *,
              rank: int = 0, world_size: int = 1, progress: bool = True) -> list[int]:
    """Compute and write this rank's pending shards; return the shards written.

    ``compute(boxes)`` gets the index rows of one shard (video_id, timestamp, box, ...) and
    returns their features ``[len(boxes), dim]`` in the same order. A keyframe whose boxes
    straddle two shards is seen by both calls, each with its own boxes.
    """
    shards = writer.pending_shards(rank, world_size)
    rows = sum(stop - start for start, stop in map(writer.rows_of_shard, shards))
    written = []
    with tqdm(total=rows, unit="box", desc=f"feature bank (rank {rank})",
              disable=not progress) as bar:
        for shard in shards:
            boxes = writer.shard_boxes(shard)
            writer.write_shard(shard, compute(boxes))
            written.append(shard)
            bar.update(len(boxes))
    return written
