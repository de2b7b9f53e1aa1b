"""The dataset manifest: where a dataset's videos and AVA-format files are.

``make_dataset`` writes ``dataset.json`` next to the files it generates (or, for a real AVA
download, indexes). Later stages read the manifest instead of guessing file names, so the same
stages run on the synthetic dataset and on AVA. Paths inside are relative to the manifest's
directory, so the dataset folder can be moved or cached by DVC as a whole.

Each video has its own clock (:mod:`pipeline.ava.clock`): ``timestamp_start``, the annotation
second at the first frame of every video, unless ``video_starts`` gives the video its own
(Kinetics windows); the CSVs in the folder hold whole-second keys, and ``keyframe_times``, when
the source's timestamps were fractional, names a Parquet table of each key's exact time.
:func:`keyframe_clock` is the one place that joins them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.boxes import KEYFRAME_KEY, normalise_keys
from pipeline.errors import InputError
from pipeline.io import write_json

MANIFEST_NAME = "dataset.json"
SPLITS = ("train", "val")


@dataclass(frozen=True)
class SplitFiles:
    annotations: str
    exclusions: str | None


@dataclass(frozen=True)
class DatasetManifest:
    source: str
    timestamp_start: float  # the clock's second at each video's first frame
    label_map: str
    splits: dict[str, SplitFiles]
    videos: dict[str, str]  # video id -> video file
    video_splits: dict[str, str] = field(default_factory=dict)  # video id -> split
    proposals: dict[str, str] = field(default_factory=dict)  # split -> proposal pickle
    # size, mtime (and probe results) of files outside the dataset folder, so that a replaced
    # video or pickle changes the manifest and with it every stage downstream
    fingerprints: dict[str, dict] = field(default_factory=dict)
    # video id -> its own clock's second at its first frame, where not timestamp_start
    video_starts: dict[str, float] = field(default_factory=dict)
    # Parquet (video_id, timestamp, time): the exact time of each whole-second key, for sources
    # whose timestamps are fractional (custom, Kinetics); None: every key is its own time
    keyframe_times: str | None = None

    def start_of(self, video_id: str) -> float:
        """The annotation second at the video's first frame."""
        return float(self.video_starts.get(video_id, self.timestamp_start))

    def path(self, root: str | Path, relative: str | None) -> Path | None:
        return None if relative is None else Path(root) / relative


KEYFRAME_TIMES_COLUMNS = [*KEYFRAME_KEY, "time"]


def write_manifest(root: str | Path, manifest: DatasetManifest) -> None:
    """Write ``dataset.json``; the per-video clock fields only where set, so a manifest of
    one common clock (AVA, synthetic) reads as it did before they existed."""
    fields = asdict(manifest)
    if not manifest.video_starts:
        del fields["video_starts"]
    if manifest.keyframe_times is None:
        del fields["keyframe_times"]
    write_json(Path(root) / MANIFEST_NAME, fields)


def keyframe_clock(root: str | Path, manifest: DatasetManifest, keyframes):
    """``keyframes`` (columns video_id, timestamp: whole-second keys) with two more: ``time``,
    the keyframe's exact annotation time, and ``start``, its video's clock at frame 0; the
    keyframe's frame is ``fps * (time - start)`` (:func:`pipeline.ava.clock.keyframe_frame_index`).
    A key the times table lacks is an error naming it."""
    import numpy as np
    import pandas as pd

    table = keyframes.assign(time=keyframes["timestamp"].astype(np.float64),
                             start=[manifest.start_of(v) for v in keyframes["video_id"]])
    if manifest.keyframe_times is None:
        return table
    path = Path(root) / manifest.keyframe_times
    if not path.is_file():
        raise InputError("keyframe times table not found", path=path)
    times = pd.read_parquet(path, columns=KEYFRAME_TIMES_COLUMNS)
    joined = table.drop(columns="time").merge(normalise_keys(times), on=KEYFRAME_KEY,
                                              how="left", validate="many_to_one")
    if joined["time"].isna().any():
        row = joined[joined["time"].isna()].iloc[0]
        raise InputError(f"keyframe ({row['video_id']}, {int(row['timestamp'])}) has no exact "
                         "time", path=path, key=f"{row['video_id']},{int(row['timestamp'])}")
    return joined


def read_manifest(root: str | Path) -> DatasetManifest:
    path = Path(root) / MANIFEST_NAME
    if not path.exists():
        raise InputError("dataset manifest not found (run the make_dataset stage first)", path=path)
    try:
        raw = json.loads(path.read_text())
        splits = {name: SplitFiles(**files) for name, files in raw.pop("splits").items()}
        return DatasetManifest(splits=splits, **raw)
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(f"malformed dataset manifest: {exc}", path=path) from exc


AVA_FILES = {
    "2.1": {"label_map": "ava_action_list_v2.1_for_activitynet_2018.pbtxt",
            "action_list": "ava_action_list_v2.1.pbtxt",   # all 80 actions (optional)
            "annotations": "ava_{split}_v2.1.csv",
            "exclusions": "ava_{split}_excluded_timestamps_v2.1.csv"},
    "2.2": {"label_map": "ava_action_list_v2.2_for_activitynet_2019.pbtxt",
            "action_list": "ava_action_list_v2.2.pbtxt",
            "annotations": "ava_{split}_v2.2.csv",
            "exclusions": "ava_{split}_excluded_timestamps_v2.2.csv"},
}
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")


def video_files(folder: Path) -> dict[str, Path]:
    """video id (file stem) -> file, for every file with a video suffix."""
    return {p.stem: p for p in sorted(folder.glob("*")) if p.suffix.lower() in VIDEO_SUFFIXES}


@dataclass(frozen=True)
class AvaLayout:
    """Where a folder laid out as AVA's download keeps its files: the official names of one
    version under ``annotations_dir``, one file per video id under ``videos_dir``. The one
    reader of that layout, for the synthetic dataset and for a real download."""

    root: Path
    version: str
    annotations_dir: str = "annotations"
    videos_dir: str = "videos"

    def name(self, kind: str, split: str = "") -> str:
        """Path of file ``kind`` (label_map, action_list, annotations, exclusions) relative
        to ``root``."""
        return f"{self.annotations_dir}/{AVA_FILES[self.version][kind].format(split=split)}"

    def video_files(self) -> dict[str, Path]:
        """Video id (the file's stem) -> file, for every container FFmpeg reads."""
        return video_files(self.root / self.videos_dir)


def ava_layout(root: str | Path, version: str, *, key: str, annotations_dir: str = "annotations",
               videos_dir: str = "videos") -> AvaLayout:
    """The layout of ``root`` for AVA ``version``; an unknown version is an error naming
    ``key``."""
    if version not in AVA_FILES:
        raise InputError(f"unknown AVA version {version!r}; expected one of {sorted(AVA_FILES)}",
                         key=key)
    return AvaLayout(Path(root), version, annotations_dir, videos_dir)


def index_ava_layout(root: str | Path, *, source: str, version: str, timestamp_start: int,
                     annotations_dir: str = "annotations", videos_dir: str = "videos"
                     ) -> DatasetManifest:
    """Build the manifest of a dataset laid out as AVA's official files.

    ``root/annotations`` holds the official CSV and pbtxt names of ``version``; ``root/videos``
    holds one file per video id, in any container FFmpeg reads. A split's video list is the
    set of ids in its annotation CSV; a listed video without a file is an error naming it.
    """
    from pipeline.ava.annotations import read_annotations

    layout = ava_layout(root, version, key="data.version", annotations_dir=annotations_dir,
                        videos_dir=videos_dir)
    root = layout.root
    label_map = layout.name("label_map")
    if not (root / label_map).exists():
        raise InputError("label map not found", path=root / label_map)
    files = layout.video_files()
    splits, video_splits = {}, {}
    for split in SPLITS:
        annotations = layout.name("annotations", split)
        if not (root / annotations).exists():
            raise InputError("annotation file not found", path=root / annotations)
        exclusions = layout.name("exclusions", split)
        splits[split] = SplitFiles(annotations,
                                   exclusions if (root / exclusions).exists() else None)
        for video_id in sorted(read_annotations(root / annotations)["video_id"].unique()):
            if video_id not in files:
                raise InputError(f"video {video_id} of the {split} annotations has no file in "
                                 f"{root / videos_dir}", path=root / annotations)
            video_splits[video_id] = split
    videos = {vid: str(files[vid].relative_to(root)) for vid in sorted(video_splits)}
    return DatasetManifest(source=source, timestamp_start=timestamp_start, label_map=label_map,
                           splits=splits, videos=videos, video_splits=video_splits)
