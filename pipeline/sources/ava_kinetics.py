"""Index and validate the Kinetics part of AVA-Kinetics (``data.source: ava_kinetics``).

Layout under ``data.kinetics.root`` (see docs/ava-kinetics.md)::

    annotations/kinetics_train_v1.0.csv   youtube_id, timestamp, x1, y1, x2, y2, action_id:
                                          7 columns, no person id, timestamp = float seconds
                                          of the YouTube video (``17.010000``)
    annotations/kinetics_val_v1.0.csv     optional (``data.kinetics.use_val``)
    videos/{youtube_id}.mp4               a full clip, whose first frame is second 0, or
    videos/{youtube_id}_{start:06d}_{end:06d}.mp4
                                          a cut window (Kinetics-700's 10-s clips, mmaction2's
                                          cuts), whose first frame is second ``start``

Each keyframe is read from the clip that holds it (a full clip, else the first window with
``start <= t < end``), at its own time on the same 30-fps timeline as AVA's
(``frames.timeline_fps: 30``): its clip is the pipeline's video (id = the file stem), the
clip's start its clock (``video_starts``), ``t`` its exact time (``keyframe_times``) and
``int(t)`` its key, as mmaction2 keys them. Keyframes without a clip, clips FFmpeg cannot open
and clips too short for their keyframe (the common damage of a Kinetics download) are an error
listing all of them, or, with ``skip_missing_clips``, left out and listed in the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.ava._csv import check_integral
from pipeline.ava.annotations import COLUMNS, read_annotations
from pipeline.boxes import count_keyframes
from pipeline.sources.ava_download import probe_videos
from pipeline.sources.custom import keyed, listing
from pipeline.sources.manifest import video_files
from pipeline.errors import InputError

CSV = "kinetics_{split}_v1.0.csv"
MAX_ACTION_ID = 80   # AVA's actions, which the Kinetics part is annotated with
_WINDOW = re.compile(r"(?P<youtube_id>.+)_(?P<start>\d{6})_(?P<end>\d{6})")


@dataclass
class KineticsPart:
    """The Kinetics rows (whole-second keys, ``time``, and the clip as ``video_id``) per split,
    their clips, and what was left out."""

    tables: dict[str, pd.DataFrame]
    videos: dict[str, Path]                   # clip id (file stem) -> file
    starts: dict[str, float]                  # clip id -> second of its first frame
    probes: dict[str, tuple[int, float]]
    skipped: dict[str, str] = field(default_factory=dict)   # "youtube_id,time" -> reason
    skipped_rows: dict[str, int] = field(default_factory=dict)


def _clips(folder: Path) -> dict[str, list[tuple[float, float, str]]]:
    """youtube id -> its clips as (start, end, stem), full clips as (0, inf), sorted."""
    clips: dict[str, list[tuple[float, float, str]]] = {}
    for stem in video_files(folder):
        match = _WINDOW.fullmatch(stem)
        if match:
            clips.setdefault(match["youtube_id"], []).append(
                (float(match["start"]), float(match["end"]), stem))
        else:
            clips.setdefault(stem, []).append((0.0, float("inf"), stem))
    return {yid: sorted(found, key=lambda c: (c[1] != float("inf"), c[0])) for yid, found in
            clips.items()}


def _clip_of(clips: list[tuple[float, float, str]], time: float) -> tuple[str, float] | None:
    for start, end, stem in clips:
        if start <= time < end:
            return stem, start
    return None


def index_kinetics(root: str | Path, *, splits: tuple[str, ...], ava_ids: set[str],
                   skip_missing_clips: bool, progress: bool = True) -> KineticsPart:
    """Read and check the Kinetics CSVs of ``splits``, find and probe each keyframe's clip."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("Kinetics folder not found", path=root, key="data.kinetics.root")
    files = video_files(root / "videos")
    clips = _clips(root / "videos")
    tables, starts, needs, where = {}, {}, {}, {}
    missing: dict[str, str] = {}
    for split in splits:
        path = root / "annotations" / CSV.format(split=split)
        table = read_annotations(path, fractional=True)
        check_integral(path, "action_id", table["action_id"].to_numpy(), 1, MAX_ACTION_ID)
        table = table.rename(columns={"video_id": "youtube_id"})
        clip_ids, clip_starts = [], []
        for youtube_id, time in zip(table["youtube_id"], table["timestamp"]):
            found = _clip_of(clips.get(youtube_id, []), float(time))
            if found is None:
                missing[f"{youtube_id},{time:.6f}"] = "missing (no clip holds it)"
                clip_ids.append(None)
                clip_starts.append(np.nan)
            else:
                clip_ids.append(found[0])
                clip_starts.append(found[1])
        table = table.assign(video_id=clip_ids, start=clip_starts)
        clashing = sorted(set(table["video_id"].dropna()) & ava_ids)
        if clashing:
            raise InputError(f"{len(clashing)} Kinetics clip(s) have the id of an AVA video:"
                             f"{listing(clashing)}", path=root / "videos")
        found = table.dropna(subset=["video_id"])
        for clip, rows in found.groupby("video_id"):
            starts[clip] = float(rows["start"].iloc[0])
            last = float(rows["timestamp"].max())
            previous = needs.get(clip, (files[clip], starts[clip], last))
            needs[clip] = (files[clip], starts[clip], max(last, previous[2]))
            where.setdefault(clip, split)
        tables[split] = (path, table)
    probes, problems = probe_videos(needs, progress=progress)
    skipped = dict(missing)
    for split, (_, table) in tables.items():
        for clip in sorted(set(problems) & set(table["video_id"].dropna())):
            for youtube_id, time in table.loc[table["video_id"] == clip,
                                              ["youtube_id", "timestamp"]].drop_duplicates(
                                                  ).itertuples(index=False):
                skipped[f"{youtube_id},{time:.6f}"] = f"clip {clip}: {problems[clip]}"
    if skipped and not skip_missing_clips:
        raise InputError(f"{len(skipped)} Kinetics keyframe(s) have no usable clip (set "
                         f"data.kinetics.skip_missing_clips: true to leave them out):"
                         f"{listing([f'{k}: {why}' for k, why in sorted(skipped.items())])}",
                         path=root / "videos")
    part = KineticsPart(tables={}, videos={}, starts={}, probes=probes, skipped=skipped)
    for split, (path, table) in tables.items():
        usable = table["video_id"].notna() & ~table["video_id"].isin(set(problems))
        part.skipped_rows[split] = int((~usable).sum())
        kept = keyed(table.loc[usable, COLUMNS], path)
        part.tables[split] = kept
        for clip in kept["video_id"].unique():
            part.videos[clip] = files[clip]
            part.starts[clip] = starts[clip]
    if not any(len(t) for t in part.tables.values()):
        raise InputError("no Kinetics keyframe has a usable clip", path=root / "videos")
    return part


PROPOSALS = "kinetics_proposals_{split}.pkl"


def _kinetics_proposals(path: Path, table: pd.DataFrame) -> pd.DataFrame:
    """mmaction2's Kinetics proposal pickle (keys ``"{youtube_id},{int(t):04d}"``, as its
    ``fetch_proposal.py`` writes them) under the pipeline's keys (clip id, whole second); keys
    of no kept keyframe are dropped (their clips may have been left out)."""
    from pipeline.ava.proposals import read_proposal_pickle

    raw = read_proposal_pickle(path).rename(columns={"video_id": "youtube_id"})
    clips = table[["youtube_id", "timestamp", "video_id"]].drop_duplicates()
    return raw.merge(clips, on=["youtube_id", "timestamp"], how="inner")


def index_ava_kinetics(ava_root: str | Path, kinetics_root: str | Path, out: str | Path, *,
                       video_start: float, skip_missing_videos: bool, skip_missing_clips: bool,
                       use_val: bool, progress: bool = True):
    """AVA v2.2 (:func:`pipeline.sources.ava_download.index_download`) plus the Kinetics part, merged:
    train = AVA train + Kinetics train; val = AVA v2.2 val, or with ``use_val`` AVA-Kinetics
    val (+ Kinetics val). Returns the manifest and the metrics report (a dict)."""
    from dataclasses import replace

    from pipeline.ava._csv import write_csv
    from pipeline.sources.custom import fingerprint, write_keyframe_times
    from pipeline.sources.ava_download import index_download
    from pipeline.sources.manifest import SplitFiles
    from pipeline.proposals.table import proposals_from_rows, write_proposals

    out = Path(out)
    manifest, report = index_download(ava_root, out, version="2.2", video_start=video_start,
                                       skip_missing_videos=skip_missing_videos,
                                       progress=progress)
    ava_ids = set(manifest.videos) | set(report.skipped_videos)
    splits = ("train", "val") if use_val else ("train",)
    part = index_kinetics(kinetics_root, splits=splits, ava_ids=ava_ids,
                          skip_missing_clips=skip_missing_clips, progress=progress)
    kinetics_root = Path(kinetics_root)
    proposals = dict(manifest.proposals)
    times, new_splits = [], dict(manifest.splits)
    for split, files in manifest.splits.items():
        ava = read_annotations(out / files.annotations)
        times.append(ava.assign(time=ava["timestamp"].astype(np.float64)))
        if split not in part.tables:
            continue
        kinetics = part.tables[split]
        times.append(kinetics)
        merged = f"annotations/ava_kinetics_{split}_v1.0.csv"
        rows = out / f"annotations/.kinetics_{split}.csv"
        write_csv(rows, kinetics[COLUMNS], float_decimals=6)
        with open(out / merged, "w", encoding="utf-8", newline="") as target:
            for source in (out / files.annotations, rows):   # AVA rows first, then Kinetics'
                target.write(source.read_text(encoding="utf-8"))
        rows.unlink()
        new_splits[split] = SplitFiles(merged, files.exclusions)
        pickle = kinetics_root / "annotations" / PROPOSALS.format(split=split)
        if pickle.is_file() and split in proposals:
            boxes = pd.concat([_read_any(proposals[split]),
                               _kinetics_proposals(pickle, _with_youtube_ids(kinetics, part))],
                              ignore_index=True)
            proposals[split] = f"proposals/{split}.parquet"
            write_proposals(out / proposals[split], proposals_from_rows(boxes))
    write_keyframe_times(out / "keyframe_times.parquet", times)
    clip_splits = {clip: split for split, table in part.tables.items()
                   for clip in table["video_id"].unique()}
    manifest = replace(
        manifest, source="ava_kinetics", splits=new_splits,
        videos={**manifest.videos, **{c: str(p.resolve()) for c, p in sorted(part.videos.items())}},
        video_splits={**manifest.video_splits, **dict(sorted(clip_splits.items()))},
        proposals=proposals,
        fingerprints={**manifest.fingerprints, **{
            c: {**fingerprint(p), "frames": part.probes[c][0], "fps": part.probes[c][1]}
            for c, p in sorted(part.videos.items())}},
        video_starts=dict(sorted(part.starts.items())), keyframe_times="keyframe_times.parquet")
    kinetics_report = {
        "clips": {s: int(t["video_id"].nunique()) for s, t in part.tables.items()},
        "keyframes": {s: count_keyframes(t) for s, t in part.tables.items()},
        "annotation_rows": {s: int(len(t)) for s, t in part.tables.items()},
        "num_skipped_keyframes": len(part.skipped),
        "skipped_keyframes": dict(sorted(part.skipped.items())),
        "skipped_annotation_rows": part.skipped_rows,
        "val": "ava_kinetics" if use_val else "ava"}
    return manifest, {**report.to_json(), "kinetics": kinetics_report}


def _with_youtube_ids(table: pd.DataFrame, part: KineticsPart) -> pd.DataFrame:
    """The clip rows with the youtube id their clip names (a window's stem less its times)."""
    youtube = [(_WINDOW.fullmatch(c)["youtube_id"] if _WINDOW.fullmatch(c) else c)
               for c in table["video_id"]]
    return table.assign(youtube_id=youtube)


def _read_any(path: str) -> pd.DataFrame:
    from pipeline.ava.proposals import read_proposal_pickle

    return read_proposal_pickle(path)
