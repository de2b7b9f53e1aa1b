"""Stage extract_frames: decode every annotated keyframe's clip into a sharded Zarr store.

    python -m stages.extract_frames --dataset data/dataset --out data/frames --metrics metrics/frames.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pipeline.ava.annotations import read_annotations
from pipeline.ava.clock import AVA_FPS
from pipeline.dataset import keyframe_clock, read_manifest
from pipeline.errors import InputError
from pipeline.frames import extract_frames
from pipeline.io import write_json
from pipeline.params import load_params

from stages import run

# The params keys whose values shape this stage's outputs, as dvc.yaml declares them
# (tests/test_params.py checks both); runtime-only keys (pipeline.params.RUNTIME_KEYS)
# are read from the same groups but tracked by no stage.
PARAMS = (
    "frames.clip_len",
    "frames.frame_interval",
    "frames.short_side",
    "frames.convention",
    "frames.timeline_fps",
    "frames.train_jitter",
    "frames.shard_clips",
    "frames.clevel",
    "frames.codec",
    "frames.shuffle",
    "frames.skip_bad_videos",
)


def annotated_keyframes(dataset: Path) -> tuple[dict[str, Path], pd.DataFrame]:
    """Video files and the (video_id, timestamp, split) of every annotated keyframe, with its
    video's clock (time, start: :func:`pipeline.dataset.keyframe_clock`)."""
    manifest = read_manifest(dataset)
    tables = []
    for split, files in manifest.splits.items():
        keys = read_annotations(dataset / files.annotations)[["video_id", "timestamp"]]
        tables.append(keys.drop_duplicates().assign(split=split))
    keyframes = keyframe_clock(dataset, manifest, pd.concat(tables, ignore_index=True))
    videos = {vid: dataset / path for vid, path in manifest.videos.items()}
    return videos, keyframes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    frames = load_params(groups=PARAMS).frames
    manifest = read_manifest(args.dataset)
    if manifest.source in ("ava", "ava_kinetics") and frames.timeline_fps != AVA_FPS:
        # AVA's timestamps and mmaction2's frame files count 30-fps frames, whatever the
        # movie's own rate; the native timeline would shift clips of 24 or 25 fps movies
        raise InputError(f"data.source is '{manifest.source}', whose frame indices count "
                         f"{AVA_FPS}-fps "
                         f"frames: set frames.timeline_fps: {AVA_FPS} (got "
                         f"{frames.timeline_fps})", path=Path("params.yaml"),
                         key="frames.timeline_fps")
    videos, keyframes = annotated_keyframes(args.dataset)
    summary = extract_frames(videos, keyframes, args.out / "frames.zarr",
                             args.out / "keyframes.parquet",
                             frames.spec(timestamp_start=manifest.timestamp_start),
                             skip_bad_videos=frames.skip_bad_videos, workers=frames.workers)
    metrics = ("videos", "clips", "num_skipped_videos", "skipped_videos", "store_bytes",
               "store_files")
    skipped = keyframes[keyframes["video_id"].isin(summary["skipped_videos"])]
    write_json(args.metrics, {**{key: summary[key] for key in metrics},
                              "skipped_keyframes": {split: int((skipped["split"] == split).sum())
                                                    for split in manifest.splits}})


if __name__ == "__main__":
    run(main)
