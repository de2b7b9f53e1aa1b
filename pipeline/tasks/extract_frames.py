"""Stage ``extract_frames``: decode the frames every annotated keyframe's clip can reach into a
sharded Zarr store, each frame once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.ava.annotations import read_annotations
from pipeline.ava.clock import AVA_FPS
from pipeline.boxes import KEYFRAME_KEY
from pipeline.errors import InputError
from pipeline.frames.extract import extract_frames
from pipeline.io import write_json
from pipeline.params.frames import FramesParams
from pipeline.params.schema import Params
from pipeline.sources.manifest import keyframe_clock, read_manifest

# The params keys whose values shape this stage's outputs (see pretrain_baseline.PARAMS).
# The params groups this stage reads, with their schemas (all of PARAMS's groups).
GROUPS = {"frames": FramesParams}
PARAMS = (
    "frames.short_side",
    "frames.convention",
    "frames.timeline_fps",
    "frames.codec",
    "frames.quality",
    "frames.reach",
    "frames.shard_frames",
    "frames.skip_bad_videos",
)
PATHS = ("dataset", "out", "metrics")


def annotated_keyframes(dataset: Path) -> tuple[dict[str, Path], pd.DataFrame]:
    """Video files and the (video_id, timestamp, split) of every annotated keyframe, with its
    video's clock (time, start: :func:`pipeline.sources.manifest.keyframe_clock`)."""
    manifest = read_manifest(dataset)
    tables = []
    for split, files in manifest.splits.items():
        keys = read_annotations(dataset / files.annotations)[KEYFRAME_KEY]
        tables.append(keys.drop_duplicates().assign(split=split))
    keyframes = keyframe_clock(dataset, manifest, pd.concat(tables, ignore_index=True))
    videos = {vid: dataset / path for vid, path in manifest.videos.items()}
    return videos, keyframes


def run(params: Params, *, dataset: Path, out: Path, metrics: Path) -> None:
    """The stage: ``out/frames.zarr`` and ``out/keyframes.parquet``, a summary in ``metrics``."""
    frames = params.frames
    manifest = read_manifest(dataset)
    if manifest.source in ("ava", "ava_kinetics") and frames.timeline_fps != AVA_FPS:
        # AVA's timestamps and mmaction2's frame files count 30-fps frames, whatever the
        # movie's own rate; the native timeline would shift clips of 24 or 25 fps movies
        raise InputError(f"data.source is '{manifest.source}', whose frame indices count "
                         f"{AVA_FPS}-fps "
                         f"frames: set frames.timeline_fps: {AVA_FPS} (got "
                         f"{frames.timeline_fps})", path=Path("params.yaml"),
                         key="frames.timeline_fps")
    videos, keyframes = annotated_keyframes(dataset)
    summary = extract_frames(videos, keyframes, out / "frames.zarr",
                             out / "keyframes.parquet",
                             frames.spec(timestamp_start=manifest.timestamp_start),
                             skip_bad_videos=frames.skip_bad_videos, workers=frames.workers)
    keys = ("videos", "keyframes", "stored_frames", "num_skipped_videos", "skipped_videos",
             "store_bytes", "store_files")
    skipped = keyframes[keyframes["video_id"].isin(summary["skipped_videos"])]
    write_json(metrics, {**{key: summary[key] for key in keys},
                         "skipped_keyframes": {split: int((skipped["split"] == split).sum())
                                               for split in manifest.splits}})
