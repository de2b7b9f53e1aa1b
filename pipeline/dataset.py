"""The dataset manifest: where a dataset's videos and AVA-format files are.

``make_dataset`` writes ``dataset.json`` next to the files it generates (or, for a real AVA
download, indexes). Later stages read the manifest instead of guessing file names, so the same
stages run on the synthetic dataset and on AVA. Paths inside are relative to the manifest's
directory, so the dataset folder can be moved or cached by DVC as a whole.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

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

    def path(self, root: str | Path, relative: str | None) -> Path | None:
        return None if relative is None else Path(root) / relative


def write_manifest(root: str | Path, manifest: DatasetManifest) -> None:
    write_json(Path(root) / MANIFEST_NAME, asdict(manifest))


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


def index_ava_layout(root: str | Path, *, source: str, version: str, timestamp_start: int,
                     annotations_dir: str = "annotations", videos_dir: str = "videos"
                     ) -> DatasetManifest:
    """Build the manifest of a dataset laid out as AVA's official files.

    ``root/annotations`` holds the official CSV and pbtxt names of ``version``; ``root/videos``
    holds one file per video id, in any container decord reads. A split's video list is the
    set of ids in its annotation CSV; a listed video without a file is an error naming it.
    """
    from pipeline.ava.annotations import read_annotations

    root = Path(root)
    if version not in AVA_FILES:
        raise InputError(f"unknown AVA version {version!r}; expected one of {sorted(AVA_FILES)}",
                         key="data.version")
    names = AVA_FILES[version]
    label_map = f"{annotations_dir}/{names['label_map']}"
    if not (root / label_map).exists():
        raise InputError("label map not found", path=root / label_map)
    files = {p.stem: p for p in sorted((root / videos_dir).glob("*"))
             if p.suffix.lower() in VIDEO_SUFFIXES}
    splits, video_splits = {}, {}
    for split in SPLITS:
        annotations = f"{annotations_dir}/{names['annotations'].format(split=split)}"
        if not (root / annotations).exists():
            raise InputError("annotation file not found", path=root / annotations)
        exclusions = f"{annotations_dir}/{names['exclusions'].format(split=split)}"
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
