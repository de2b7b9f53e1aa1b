"""Decode the frames every keyframe's clip can reach into a sharded Zarr store, resumably.

Each video's frames are decoded once, in order, and each needed frame is stored once
(:mod:`pipeline.frames.store` describes the layout). The store is filled at
``<store>.partial`` and renamed only when every video is in, so the final path never holds a
half store. A video's group gets ``complete: true`` after its last shard; a rerun after a
failure or interruption keeps the complete videos whose spec, keyframes and source file
(size, modification time and the hash of its first and last MiB) still match, and decodes
only the rest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from tqdm import tqdm
from zarr.codecs import BloscCodec, Crc32cCodec

from pipeline.ava.clock import keyframe_frame_index
from pipeline.boxes import KEYFRAME_KEY, whole_second_keys
from pipeline.errors import InputError, check_columns
from pipeline.frames.codecs import frame_codec
from pipeline.frames.spec import FrameSpec
from pipeline.frames.store import INDEX_SCHEMA, LAYOUT, disk_usage, index_from_group
from pipeline.frames.video import open_video
from pipeline.io import commit_partial, partial_path, remove_path, write_parquet

KEYFRAME_COLUMNS = [*KEYFRAME_KEY, "split"]


@dataclasses.dataclass(frozen=True)
class VideoPlan:
    """The keyframes one video must provide, sorted by timestamp."""

    video_id: str
    path: Path | None
    timestamps: list[int]
    splits: list[str]
    # the video's own clock (pipeline.ava.clock): exact keyframe times and its start; None:
    # the keys are the times and the spec's timestamp_start the start (AVA, synthetic)
    times: list[float] | None = None
    start: float | None = None


def plan_videos(videos: dict[str, Path], keyframes: pd.DataFrame) -> list[VideoPlan]:
    """Check the keyframe table and group it per video (sorted by video id, then timestamp).

    Optional columns ``time`` and ``start`` (:func:`pipeline.sources.manifest.keyframe_clock`) give each
    keyframe's exact time and its video's clock; a video whose times are its keys and whose
    start is the spec's gets neither, so its array reads as before per-video clocks."""
    check_columns(keyframes.columns, KEYFRAME_COLUMNS, what="keyframe table")
    clock = [c for c in ("time", "start") if c in keyframes.columns]
    table = keyframes.loc[:, [*KEYFRAME_COLUMNS, *clock]]
    timestamps = whole_second_keys(table, KEYFRAME_COLUMNS, what="keyframe table")
    table = table.assign(video_id=table["video_id"].astype(str), split=table["split"].astype(str),
                         timestamp=timestamps)
    duplicated = table.duplicated(KEYFRAME_KEY)
    if duplicated.any():
        row = table[duplicated].iloc[0]
        raise InputError(f"keyframe ({row['video_id']}, {row['timestamp']}) is listed twice",
                         key="timestamp")
    table = table.sort_values(KEYFRAME_KEY, kind="stable")
    plans = []
    for video_id, rows in table.groupby("video_id", sort=True):
        path = videos.get(video_id)
        times = rows["time"].astype(float).tolist() if "time" in clock else None
        starts = set(rows["start"].astype(float)) if "start" in clock else set()
        if len(starts) > 1:
            raise InputError(f"video '{video_id}' has keyframes on {len(starts)} clocks",
                             key=video_id)
        plans.append(VideoPlan(video_id=video_id, path=None if path is None else Path(path),
                               timestamps=rows["timestamp"].tolist(),
                               splits=rows["split"].tolist(), times=times,
                               start=starts.pop() if starts else None))
    return plans


def _own_clock(plan: VideoPlan, spec: FrameSpec) -> tuple[list[float] | None, float | None]:
    """The plan's times and start where they differ from its keys and the spec's start."""
    times = plan.times if plan.times is not None and plan.times != [
        float(t) for t in plan.timestamps] else None
    start = plan.start if plan.start is not None and plan.start != spec.timestamp_start else None
    return times, start


def source_fingerprint(path: Path, *, edge_bytes: int = 1 << 20) -> dict:
    """What identifies a video file's content cheaply: its size and a hash of its first and
    last ``edge_bytes`` (a re-encoded or replaced file of the same size still differs there).
    It is stored in the store's attributes, so it holds content only: a modification time
    would make the store's bytes depend on when the videos were written."""
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(edge_bytes))
        if stat.st_size > edge_bytes:
            f.seek(max(edge_bytes, stat.st_size - edge_bytes))
            digest.update(f.read(edge_bytes))
    return {"bytes": stat.st_size, "edges_sha256": digest.hexdigest()}


def _open_partial_store(tmp: Path, spec: FrameSpec) -> zarr.Group:
    """Reopen a leftover partial store of this layout written with the same spec, or start
    an empty one (the partial path is this stage's own)."""
    if (tmp / "zarr.json").is_file():
        try:
            group = zarr.open_group(tmp, mode="r+")
            same = (group.attrs.get("layout") == LAYOUT
                    and group.attrs.get("spec") == spec.as_attrs())
        except (ValueError, KeyError, OSError):   # unreadable leftovers: start again
            same = False
        if same:
            for leftover in tmp.rglob("*.partial"):   # zarr's temp files from a killed write
                leftover.unlink()
            return group
    remove_path(tmp)
    return zarr.open_group(tmp, mode="w", attributes={"layout": LAYOUT,
                                                      "spec": spec.as_attrs()})


def _is_done(group: zarr.Group, plan: VideoPlan, spec: FrameSpec) -> bool:
    if plan.video_id not in group or plan.path is None or not plan.path.is_file():
        return False
    attrs = group[plan.video_id].attrs
    times, start = _own_clock(plan, spec)
    return (attrs.get("complete") is True and attrs.get("timestamps") == plan.timestamps
            and attrs.get("times") == times and attrs.get("timestamp_start") == start
            and attrs.get("splits") == plan.splits
            and attrs.get("source") == source_fingerprint(plan.path))


def stored_frames(centers: np.ndarray, reach: tuple[int, int], num_frames: int) -> np.ndarray:
    """Sorted timeline frames within ``reach`` (before, after) of any keyframe frame in
    ``centers``, clamped to the video: what the store keeps of one video."""
    before, after = reach
    keep = np.zeros(num_frames + 1, np.int64)
    np.add.at(keep, np.clip(centers - before, 0, num_frames), 1)
    np.add.at(keep, np.clip(centers + after + 1, 0, num_frames), -1)
    return np.flatnonzero(np.cumsum(keep)[:num_frames] > 0)


def _extract_video(group: zarr.Group, plan: VideoPlan, spec: FrameSpec, progress: tqdm,
                   lock: threading.Lock) -> None:
    """Decode one video's needed frames in order and write them a shard at a time (encoded by
    a writer thread while the next shard decodes), then mark the video complete."""
    if plan.path is None:
        raise InputError(f"video '{plan.video_id}' has keyframes but no video file was given",
                         key=plan.video_id)
    # open first: a missing or unreadable file is an InputError naming the video
    video = open_video(plan.video_id, plan.path, spec.output_size, spec.timeline_fps)
    fingerprint = source_fingerprint(plan.path)
    times, start = _own_clock(plan, spec)
    centers = np.atleast_1d(keyframe_frame_index(
        np.asarray(plan.timestamps if times is None else times),
        fps=video.fps, timestamp_start=spec.timestamp_start if start is None else start,
        convention=spec.convention))
    outside = (centers < 0) | (centers >= video.num_frames)
    if outside.any():
        i = int(np.argmax(outside))
        at = plan.timestamps[i] if times is None else f"{times[i]:.6f}"
        raise InputError(f"video '{plan.video_id}' has {video.num_frames} frames at "
                         f"{video.fps:g} fps{_on_timeline(video)}, but keyframe "
                         f"{at} s needs frame {centers[i]} (truncated video "
                         "or wrong timestamp_start?)",
                         path=plan.path)
    timeline = stored_frames(centers, spec.reach, video.num_frames)
    extra = {} if video.source_index is None else {"source_fps": video.source_fps,
                                                   "source_frames": video.source_frames}
    if times is not None:
        extra["times"] = times
    if start is not None:
        extra["timestamp_start"] = start
    video_group = group.create_group(plan.video_id, overwrite=True, attributes={
        "fps": video.fps, "num_frames": video.num_frames, "height": video.height,
        "width": video.width, "source_width": video.source_width,
        "source_height": video.source_height, "source": fingerprint,
        "timestamps": plan.timestamps, "splits": plan.splits,
        "keyframe_frames": centers.tolist(), **extra, "complete": False})
    video_group.create_array("timeline", data=timeline.astype(np.int32), chunks=(1 << 16,),
                             compressors=[BloscCodec(cname="zstd", clevel=5), Crc32cCodec()])
    codec = frame_codec(spec)
    array = codec.create(video_group, len(timeline), video.height, video.width,
                         spec.shard_frames)

    def write(start: int, frames: np.ndarray) -> None:
        codec.write(array, start, frames)
        with lock:
            progress.update(len(frames))

    # Writer threads encode and write shard k while this thread decodes shard k + 1: at most
    # three shards in memory, and the video is complete only after its last write.
    block = np.empty((min(spec.shard_frames, len(timeline)), video.height, video.width, 3),
                     np.uint8)
    pending: list = []
    filled = 0   # stored frames decoded so far
    with ThreadPoolExecutor(max_workers=2) as writers:
        def flush(count: int) -> None:
            nonlocal block
            while len(pending) >= 2:
                pending.pop(0).result()
            start = filled - count
            pending.append(writers.submit(write, start, block[:count]))
            block = np.empty_like(block)

        for shown, frame in video.iter_frames(timeline):
            for _ in shown:   # timeline frames are consecutive stored positions
                block[filled % len(block)] = frame
                filled += 1
                if filled % len(block) == 0:
                    flush(len(block))
        if filled % len(block):
            flush(filled % len(block))
        for future in pending:
            future.result()
    video_group.attrs["complete"] = True


def _on_timeline(video) -> str:
    if video.source_index is None:
        return ""
    return f" on its timeline ({video.source_frames} source frames at {video.source_fps:g} fps)"


def extract_frames(videos: dict[str, Path], keyframes: pd.DataFrame, store_path: str | Path,
                   index_path: str | Path, spec: FrameSpec, *, skip_bad_videos: bool = False,
                   workers: int = 1, progress: bool = True) -> dict:
    """Write the frame store and its keyframe index; return a summary for logs and metrics.

    ``videos`` maps video id -> file; ``keyframes`` has columns video_id, timestamp (whole
    seconds), split. A missing, unreadable or truncated video raises InputError naming it and
    leaves ``<store>.partial`` for a resumable rerun; with ``skip_bad_videos`` it is left out
    and listed in the summary. Videos without keyframes are ignored. ``workers`` videos are
    decoded at once (threads; FFmpeg, the encoders and Blosc release the GIL).
    """
    plans = plan_videos(videos, keyframes)
    if not plans:
        raise InputError("keyframe table is empty", key="timestamp")
    store_path, index_path = Path(store_path), Path(index_path)
    store_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(store_path)
    group = _open_partial_store(tmp, spec)
    wanted = {plan.video_id for plan in plans}
    for stale in set(group.group_keys()) - wanted:
        del group[stale]
    resumed = [plan.video_id for plan in plans if _is_done(group, plan, spec)]
    todo = [plan for plan in plans if plan.video_id not in resumed]

    errors: dict[str, InputError] = {}
    decoded: list[str] = []
    lock = threading.Lock()
    bar = tqdm(unit="frame", desc="extract frames", disable=not progress)
    with bar, ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(_extract_video, group, plan, spec, bar, lock): plan.video_id
                   for plan in todo}
        try:
            for future in as_completed(futures):
                video_id = futures[future]
                try:
                    future.result()
                    decoded.append(video_id)
                except InputError as err:
                    errors[video_id] = err
                    if not skip_bad_videos:
                        break
        finally:   # on a failure or Ctrl-C, start no further video; running ones finish
            for future in futures:
                future.cancel()
    if errors and not skip_bad_videos:
        raise errors[min(errors)]
    for video_id in errors:
        if video_id in group:
            del group[video_id]
    if not any(True for _ in group.group_keys()):
        raise InputError(f"no video could be read; skipped: {sorted(errors)}",
                         key=min(errors) if errors else None)

    fps_values = {float(group[video_id].attrs["fps"]) for video_id in group.group_keys()}
    group.attrs["fps"] = fps_values.pop() if len(fps_values) == 1 else None
    index = index_from_group(group)
    stored = sum(group[video_id]["timeline"].shape[0] for video_id in group.group_keys())
    write_parquet(index_path, index, schema=INDEX_SCHEMA)
    commit_partial(tmp, store_path)
    total_bytes, files = disk_usage(store_path)
    return {
        "videos": int(index["video_id"].nunique()),
        "keyframes": len(index),
        "stored_frames": int(stored),
        "decoded_videos": sorted(decoded),
        "resumed_videos": sorted(resumed),
        "skipped_videos": sorted(errors),
        "num_skipped_videos": len(errors),
        "skip_reasons": {video_id: str(errors[video_id]) for video_id in sorted(errors)},
        "store_bytes": total_bytes,
        "store_files": files,
    }
