"""Index and validate a real AVA download (``data.source: ava``).

The download is read where it lies, never copied wholesale: ``root/annotations`` holds the
official files of one version (train/val CSVs, the 60-class action list, excluded timestamps,
FAIR's dense proposal pickles) and ``root/videos`` one file per video id in any container FFmpeg
reads. ``index_download`` checks everything a later stage would trip over, and reports every
problem of a kind at once (all missing videos, not the first):

- annotation rows: column count, numbers, boxes in [0, 1], timestamps inside AVA's 902..1798,
  action ids inside AVA's 1..80, or inside the full action list (``ava_action_list_v2.2.pbtxt``)
  when the download has it (ids outside the 60-class label map are kept in the CSV, neither
  trained nor scored; mmaction2's AVA configs train all 80);
- videos: a file per annotated id that FFmpeg (PyAV) opens, long enough for its last annotated
  keyframe (a truncated download is the usual cause of a short video);
- proposal pickles: every key's video belongs to the pickle's split.

Missing, unreadable and short videos are an error listing them, or, with
``skip_missing_videos``, left out: their rows are dropped from the copied CSVs and the ids are
listed in the returned report (the stage's metrics). The CSVs, label map and exclusions (a few
MB) are copied into the dataset folder so that DVC hashes them; videos and pickles are referred
to by absolute path, with their size and modification time in the manifest so that a replaced
file changes the manifest.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.ava._csv import check_integral
from pipeline.ava.annotations import check_action_ids, read_annotations
from pipeline.ava.clock import keyframe_frame_index
from pipeline.ava.label_map import LabelMap, read_label_map, write_label_map
from pipeline.ava.proposals import read_proposal_pickle
from pipeline.boxes import KEYFRAME_KEY, count_keyframes
from pipeline.sources.manifest import SPLITS, DatasetManifest, SplitFiles, ava_layout
from pipeline.errors import InputError

FIRST_KEYFRAME, LAST_KEYFRAME = 902, 1798   # AVA's annotated seconds of each movie
MAX_ACTION_ID = 80
PROPOSAL_PICKLE = "ava_dense_proposals_{split}.FAIR.recall_93.9.pkl"


@dataclass
class DownloadReport:
    """What ``index_download`` found: counts per split and the videos it left out (by reason)."""

    videos: dict[str, int] = field(default_factory=dict)
    keyframes: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    rows_outside_label_map: dict[str, int] = field(default_factory=dict)  # kept, not scored
    skipped_videos: dict[str, str] = field(default_factory=dict)   # video id -> reason
    skipped_keyframes: dict[str, int] = field(default_factory=dict)   # per split
    skipped_rows: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"videos": self.videos, "keyframes": self.keyframes, "annotation_rows": self.rows,
                "annotation_rows_outside_label_map": self.rows_outside_label_map,
                "num_skipped_videos": len(self.skipped_videos),
                "skipped_videos": dict(sorted(self.skipped_videos.items())),
                "skipped_keyframes": self.skipped_keyframes,
                "skipped_annotation_rows": self.skipped_rows}


def probe_video(path: Path) -> tuple[int, float]:
    """(frame count, fps) from the container's packets and header, as frame extraction reads
    them (:func:`pipeline.frames.video.open_video`); InputError if unreadable."""
    from pipeline.frames.video import open_video

    video = open_video(path.stem, path, lambda width, height: (width, height))
    return video.source_frames, video.source_fps


def probe_videos(needs: dict[str, tuple[Path | None, float, float]], *, progress: bool
                 ) -> tuple[dict[str, tuple[int, float]], dict[str, str]]:
    """Probe each video: ``needs`` maps id -> (file or None, its clock's start, its last
    keyframe's time; an int for AVA's whole seconds). Returns (frames, fps) of the usable ones
    and the reason of each other: missing, unreadable, or too short for its last keyframe
    under both frame conventions. The one probe of every dataset source."""
    from tqdm import tqdm

    probes, problems = {}, {}
    for video_id in tqdm(sorted(needs), desc="probe videos", unit="video", disable=not progress):
        path, start, last = needs[video_id]
        if path is None:
            problems[video_id] = "missing"
            continue
        try:
            frames, fps = probe_video(path)
        except InputError as error:
            problems[video_id] = f"unreadable ({error.reason})"
            continue
        needed = keyframe_frame_index(last, fps=fps, timestamp_start=start,
                                      convention="mmaction2") + 1
        if frames < needed:
            shown = f"{last:.6f}" if isinstance(last, float) else f"{last}"
            problems[video_id] = (f"too short: {frames} frames at {fps:g} fps, but the "
                                  f"keyframe at {shown} s needs {needed}")
            continue
        probes[video_id] = (frames, fps)
    return probes, problems


def _fingerprint(path: Path) -> dict:
    stat = path.stat()
    return {"path": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _read_split(path: Path, label_map: LabelMap, action_list: LabelMap | None) -> pd.DataFrame:
    table = read_annotations(path)
    check_integral(path, "timestamp", table["timestamp"].to_numpy(), FIRST_KEYFRAME,
                   LAST_KEYFRAME)
    check_integral(path, "action_id", table["action_id"].to_numpy(), 1, MAX_ACTION_ID)
    check_action_ids(path, table["action_id"].to_numpy(), label_map, action_list)
    return table


def _read_action_list(path: Path, label_map: LabelMap, label_map_path: Path) -> LabelMap | None:
    """The download's full action list (all 80 actions), when it has one."""
    if not path.is_file():
        return None
    action_list = read_label_map(path)
    if max(action_list.ids) > MAX_ACTION_ID:
        raise InputError(f"action id {max(action_list.ids)} is outside AVA's 1..80", path=path)
    missing = sorted(set(label_map.ids) - set(action_list.ids))
    if missing:
        raise InputError(f"label map ids {missing} are not in the full action list {path.name}",
                         path=label_map_path)
    return action_list


def _copy_without(source: Path, target: Path, skipped: set[str]) -> None:
    """Copy a CSV, leaving out the lines of skipped videos (the others byte for byte)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not skipped:
        shutil.copyfile(source, target)
        return
    with open(source, encoding="utf-8", newline="") as src, \
            open(target, "w", encoding="utf-8", newline="") as dst:
        for line in src:
            if line.split(",", 1)[0] not in skipped:
                dst.write(line)


def index_download(root: str | Path, out: str | Path, *, version: str, video_start: float,
                   skip_missing_videos: bool = False,
                   annotations_dir: str = "annotations", videos_dir: str = "videos",
                   progress: bool = True) -> tuple[DatasetManifest, DownloadReport]:
    """Validate the download at ``root`` and copy its annotation files into ``out``.

    ``video_start``: the movie second at each video's first frame (900 for mmaction2's cut
    15-minute clips, 0 for full movies). A video must hold its last annotated keyframe under
    both frame conventions (the later one, mmaction2 1.x's, reads one frame further).
    Returns the manifest (to write into ``out``) and the report (for the stage's metrics).
    """
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise InputError("AVA root folder not found", path=root, key="data.ava.root")
    layout = ava_layout(root, version, key="data.ava.version", annotations_dir=annotations_dir,
                        videos_dir=videos_dir)
    label_map_path = root / layout.name("label_map")
    label_map = read_label_map(label_map_path)
    if max(label_map.ids) > MAX_ACTION_ID:
        raise InputError(f"label map id {max(label_map.ids)} is outside AVA's 1..80",
                         path=label_map_path)

    action_list = _read_action_list(root / layout.name("action_list"), label_map,
                                    label_map_path)

    tables, split_of = {}, {}
    for split in SPLITS:
        path = root / layout.name("annotations", split)
        tables[split] = _read_split(path, label_map, action_list)
        for video_id in tables[split]["video_id"].unique():
            if split_of.setdefault(video_id, split) != split:
                raise InputError(f"video {video_id} is annotated in both train and val",
                                 path=path, key=video_id)

    files = layout.video_files()
    last_keyframe = pd.concat(tables.values()).groupby("video_id")["timestamp"].max()
    probes, problems = probe_videos(
        {vid: (files.get(vid), video_start, int(last_keyframe[vid])) for vid in split_of},
        progress=progress)
    if problems and not skip_missing_videos:
        listed = "\n  ".join(f"{vid} ({split_of[vid]}): {why}"
                             for vid, why in sorted(problems.items()))
        raise InputError(f"{len(problems)} of {len(split_of)} annotated videos cannot be used "
                         f"(set data.ava.skip_missing_videos: true to leave them out):\n  {listed}",
                         path=root / videos_dir)
    kept = set(split_of) - set(problems)
    if not kept:
        raise InputError("no usable video: every annotated video is missing, unreadable or "
                         "too short", path=root / videos_dir)

    proposals: dict[str, dict] = {}
    for split in SPLITS:
        path = root / annotations_dir / PROPOSAL_PICKLE.format(split=split)
        if not path.exists():
            continue
        keys = read_proposal_pickle(path)[KEYFRAME_KEY].drop_duplicates()
        ours = [video_id for video_id, s in split_of.items() if s == split]
        foreign = keys[~keys["video_id"].isin(ours)]
        if len(foreign):
            videos = sorted(foreign["video_id"].unique())
            first = foreign.iloc[0]
            raise InputError(f"proposals for {len(videos)} video(s) that the {split} "
                             f"annotations do not have: {', '.join(videos[:10])}", path=path,
                             key=f"{first['video_id']},{int(first['timestamp']):04d}")
        proposals[split] = _fingerprint(path)

    skipped = set(problems)
    splits, report = {}, DownloadReport(skipped_videos=dict(problems))
    for split in SPLITS:
        csv = layout.name("annotations", split)
        _copy_without(root / csv, out / csv, skipped)
        exclusions = layout.name("exclusions", split)
        has_exclusions = (root / exclusions).exists()
        if has_exclusions:
            _copy_without(root / exclusions, out / exclusions, skipped)
        splits[split] = SplitFiles(csv, exclusions if has_exclusions else None)
        left_out = tables[split]["video_id"].isin(skipped)
        table = tables[split][~left_out]
        report.videos[split] = int(table["video_id"].nunique())
        report.keyframes[split] = count_keyframes(table)
        report.rows[split] = int(len(table))
        report.rows_outside_label_map[split] = int(
            (~table["action_id"].isin(label_map.ids)).sum())
        report.skipped_keyframes[split] = count_keyframes(tables[split][left_out])
        report.skipped_rows[split] = int(left_out.sum())
    # AVA's evaluated list has no label_type: its classes' groups are AVA's id ranges
    write_label_map(out / layout.name("label_map"), label_map.with_ava_groups())

    videos = {vid: str(files[vid].resolve()) for vid in sorted(kept)}
    manifest = DatasetManifest(
        source="ava", timestamp_start=video_start,
        label_map=layout.name("label_map"), splits=splits, videos=videos,
        video_splits={vid: split_of[vid] for vid in sorted(kept)},
        proposals={split: info["path"] for split, info in proposals.items()},
        fingerprints={
            **{vid: {**_fingerprint(files[vid]), "frames": probes[vid][0], "fps": probes[vid][1]}
               for vid in sorted(kept)},
            **{f"proposals/{split}": info for split, info in proposals.items()}})
    return manifest, report
