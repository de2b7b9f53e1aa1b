"""A small synthetic AVA-style dataset with a real frame store: mp4 files whose frames paint
their number (``helpers.video``), extracted by ``extract_frames``, with annotations,
exclusions, proposals and a label map (the data, engine, head, detect and torchrun tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.video import write_video
from pipeline.ava.annotations import write_annotations
from pipeline.ava.label_map import LabelMap, write_label_map
from pipeline.data.inputs import DatasetFiles
from pipeline.frames.extract import extract_frames
from pipeline.frames.spec import FrameSpec
from pipeline.io import write_parquet

FPS = 10


@dataclass
class TinyData:
    """Paths and tables of a small synthetic AVA-style dataset with a real frame store."""

    root: Path
    frames_dir: Path
    keyframes_path: Path
    label_map_path: Path
    annotations: dict[str, Path]     # split -> AVA csv
    exclusions: dict[str, Path]
    proposals_path: Path
    label_map: LabelMap


def build_tiny_data(root: Path, *, videos: int = 2, seconds: int = 8, width: int = 80,
                    height: int = 64, reach: tuple[int, int] = (8, 6),
                    seed: int = 0, val_videos: int = 1,
                    unreadable: tuple[str, ...] = (), short_side: int | None = None,
                    codec: str = "zstd") -> TinyData:
    """Videos 0..n-1-val_videos are train, the others val; 2-3 people per keyframe, 3 classes.

    ``reach``: frames stored before and after each keyframe (``frames.reach``; the default
    holds an 8x2 clip, ``clip_reach(clip_len, frame_interval, jitter)`` any other).
    ``unreadable`` video ids get a corrupt file: extraction skips them
    (``frames.skip_bad_videos``), their annotations stay. ``short_side``: the store's
    decode-time resize (default the source's height: no resize)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ids = [f"vid{v}" for v in range(videos)]
    paths = {vid: write_video(root / f"{vid}.mp4", num_frames=seconds * FPS, fps=FPS,
                              width=width, height=height, gop=FPS) for vid in ids}
    for vid in unreadable:
        paths[vid].write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated download" * 40)
    split_of = {vid: ("val" if v >= videos - val_videos else "train")
                for v, vid in enumerate(ids)}
    timestamps = range(1, seconds - 1)
    keyframes = pd.DataFrame([(vid, t, split_of[vid]) for vid in ids for t in timestamps],
                             columns=["video_id", "timestamp", "split"])
    frames_dir, keyframes_path = root / "frames.zarr", root / "keyframes.parquet"
    extract_frames(paths, keyframes, frames_dir, keyframes_path,
                   FrameSpec(short_side=short_side or height, timestamp_start=0,
                             codec=codec, reach=tuple(reach), shard_frames=16),
                   skip_bad_videos=bool(unreadable), progress=False)
    label_map = LabelMap(ids=(1, 3, 5), names={1: "stand", 3: "sit", 5: "walk"})
    write_label_map(root / "labels.pbtxt", label_map)

    rows, proposals = [], []
    for vid in ids:
        for t in timestamps:
            for person in range(int(rng.integers(2, 4))):
                x1, y1 = rng.uniform(0.0, 0.5, 2)
                x2, y2 = x1 + rng.uniform(0.2, 0.5), y1 + rng.uniform(0.3, 0.5)
                box = np.round([x1, y1, min(x2, 1.0), min(y2, 1.0)], 3)
                for action in rng.choice(label_map.ids, size=int(rng.integers(1, 3)), replace=False):
                    rows.append((vid, t, *box, int(action), person))
                jitter = np.clip(box + rng.normal(0, 0.01, 4), 0, 1)
                proposals.append((vid, t, *jitter, float(rng.uniform(0.9, 1.0))))
            proposals.append((vid, t, 0.6, 0.6, 0.9, 0.95, float(rng.uniform(0.0, 0.5))))
    table = pd.DataFrame(rows, columns=["video_id", "timestamp", "x1", "y1", "x2", "y2",
                                        "action_id", "person_id"])
    annotations, exclusions = {}, {}
    for split in ("train", "val"):
        annotations[split] = root / f"ava_{split}.csv"
        write_annotations(annotations[split], table[table["video_id"].map(split_of) == split])
        exclusions[split] = root / f"ava_{split}_excluded.csv"
        excluded_vid = next(v for v in ids if split_of[v] == split)
        exclusions[split].write_text(f"{excluded_vid},{timestamps[-1]:04d}\n")
    proposals_path = root / "proposals.parquet"
    write_parquet(proposals_path, pd.DataFrame(
        proposals, columns=["video_id", "timestamp", "x1", "y1", "x2", "y2", "score"]))
    return TinyData(root=root, frames_dir=frames_dir, keyframes_path=keyframes_path,
                    label_map_path=root / "labels.pbtxt", annotations=annotations,
                    exclusions=exclusions, proposals_path=proposals_path, label_map=label_map)


def files_of(data: TinyData) -> DatasetFiles:
    return DatasetFiles(frames_dir=data.frames_dir, keyframes_index=data.keyframes_path,
                        proposals=data.proposals_path, label_map=data.label_map_path,
                        train_annotations=data.annotations["train"],
                        val_annotations=data.annotations["val"],
                        train_exclusions=data.exclusions["train"],
                        val_exclusions=data.exclusions["val"])
