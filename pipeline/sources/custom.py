"""Index and validate a folder of your own videos with AVA-format annotations (``data.source:
custom``).

Layout under ``root`` (see docs/custom-videos.md)::

    videos/<video_id>.mp4                      any container FFmpeg reads, any frame rate
    annotations/train.csv, annotations/val.csv AVA rows: video_id, timestamp, x1, y1, x2, y2,
                                               action_id[, person_id]; timestamp = seconds from
                                               the video's first frame, whole or fractional
    annotations/label_map.pbtxt                optional: else derived from the CSVs (a warning)
    annotations/{split}_excluded_timestamps.csv  optional: video_id, timestamp
    proposals/{split}.pkl or {split}.parquet   optional: person boxes per keyframe

Keyframes are whatever the CSVs hold. Each is keyed by its whole second
(:func:`pipeline.ava.clock.whole_second_key`) in the dataset folder's CSVs, proposals and
results, and read at its exact time, kept in ``keyframe_times.parquet``; two keyframes of one
video in the same second are therefore an error. Everything is checked before anything is
written, and every problem of a kind is reported at once: unknown action ids, videos in both
splits, colliding keyframes, missing / unreadable / too short videos (or, with
``skip_missing_videos``, left out and listed), proposals for keyframes the CSVs lack.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.ava.annotations import read_annotations, write_annotations
from pipeline.ava.clock import whole_second_key
from pipeline.sources.ava_download import probe_videos
from pipeline.ava.exclusions import read_exclusions, write_exclusions
from pipeline.ava.label_map import LabelMap, read_label_map, write_label_map
from pipeline.ava.proposals import read_proposal_pickle
from pipeline.boxes import BOX_COLUMNS, KEYFRAME_KEY, count_keyframes
from pipeline.sources.manifest import KEYFRAME_TIMES_COLUMNS, SPLITS, DatasetManifest, SplitFiles
from pipeline.sources.manifest import video_files
from pipeline.errors import InputError, check_columns
from pipeline.io import write_parquet

log = logging.getLogger(__name__)
LABEL_MAP = "label_map.pbtxt"
KEYFRAME_TIMES = "keyframe_times.parquet"
LISTED = 20   # problems named in one error message (the count is always given)


@dataclass
class IndexReport:
    """What an indexer found: counts per split and the videos it left out (by reason)."""

    videos: dict[str, int] = field(default_factory=dict)
    keyframes: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    skipped_videos: dict[str, str] = field(default_factory=dict)   # video id -> reason
    skipped_keyframes: dict[str, int] = field(default_factory=dict)
    skipped_rows: dict[str, int] = field(default_factory=dict)
    label_map_derived: bool = False

    def to_json(self) -> dict:
        return {"videos": self.videos, "keyframes": self.keyframes, "annotation_rows": self.rows,
                "num_skipped_videos": len(self.skipped_videos),
                "skipped_videos": dict(sorted(self.skipped_videos.items())),
                "skipped_keyframes": self.skipped_keyframes,
                "skipped_annotation_rows": self.skipped_rows,
                "label_map_derived": self.label_map_derived}


def listing(items: list[str]) -> str:
    """Problems one per line, at most ``LISTED`` of them and the count of the rest."""
    shown = "\n  ".join(items[:LISTED])
    more = f"\n  ... and {len(items) - LISTED} more" if len(items) > LISTED else ""
    return f"\n  {shown}{more}"


def fingerprint(path: Path) -> dict:
    stat = path.stat()
    return {"path": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def derive_label_map(tables: dict[str, pd.DataFrame], path: Path) -> LabelMap:
    """Every action id the CSVs use, named ``action <id>``: a stand-in that trains and scores
    but names nothing (write a label map to name the classes)."""
    ids = sorted({int(i) for table in tables.values() for i in table["action_id"].unique()})
    if not ids:
        raise InputError("the annotation CSVs hold no rows to derive a label map from", path=path)
    log.warning("no label map at %s: derived one from the CSVs' %d action ids (%s), named "
                "'action <id>'", path, len(ids), ", ".join(map(str, ids[:LISTED])))
    return LabelMap(ids=tuple(ids), names={i: f"action {i}" for i in ids})


def check_action_ids(tables: dict[str, pd.DataFrame], paths: dict[str, Path],
                     label_map: LabelMap) -> None:
    """Every id must be in the label map: all unknown ids of all files in one error."""
    problems = []
    for split, table in tables.items():
        unknown = table[~table["action_id"].isin(label_map.ids)]
        for action_id, rows in unknown.groupby("action_id"):
            problems.append(f"{paths[split]}: action_id {action_id} on {len(rows)} row(s), "
                            f"first line {int(rows.index[0]) + 1}")
    if problems:
        raise InputError(f"{len(problems)} action id(s) are not in the label map "
                         f"{label_map.ids}:{listing(problems)}")


def split_of_videos(tables: dict[str, pd.DataFrame], paths: dict[str, Path]) -> dict[str, str]:
    """video id -> its split; a video annotated in two splits is an error listing all such."""
    split_of: dict[str, str] = {}
    both = []
    for split, table in tables.items():
        for video_id in sorted(table["video_id"].unique()):
            if split_of.setdefault(video_id, split) != split:
                both.append(video_id)
    if both:
        raise InputError(f"{len(both)} video(s) are annotated in both train and val:"
                         f"{listing(sorted(both))}", path=paths["val"])
    return split_of


def keyed(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``table`` with ``time`` (its fractional timestamps) and ``timestamp`` (their
    whole-second keys); two distinct times of a video under one key are an error listing all
    such keyframes."""
    table = table.assign(time=table["timestamp"].astype(np.float64),
                         timestamp=whole_second_key(table["timestamp"].to_numpy()))
    times = table[[*KEYFRAME_KEY, "time"]].drop_duplicates()
    clash = times[times.duplicated(KEYFRAME_KEY, keep=False)]
    if len(clash):
        problems = [f"{video_id} second {key}: keyframes at "
                    f"{', '.join(f'{t:.6f}' for t in sorted(rows['time']))}"
                    for (video_id, key), rows in clash.groupby(KEYFRAME_KEY)]
        raise InputError(f"{len(problems)} whole second(s) hold more than one keyframe of a "
                         f"video (a keyframe is keyed by its whole second in results and "
                         f"proposals: at most one per second):{listing(problems)}", path=path)
    return table


def read_proposal_file(path: Path) -> pd.DataFrame:
    """A pickle (``"vid,2.5" -> N x 5``, mmaction2's form) or a Parquet table (video_id,
    timestamp, x1, y1, x2, y2, score) of person boxes; timestamps in seconds."""
    if path.suffix == ".parquet":
        table = pd.read_parquet(path)
        check_columns(table.columns, [*KEYFRAME_KEY, *BOX_COLUMNS, "score"],
                      what="proposals table", path=path)
        return table.astype({"video_id": str, "timestamp": np.float64})
    return read_proposal_pickle(path, fractional=True)


def keyed_proposals(path: Path, keyframes: pd.DataFrame) -> pd.DataFrame:
    """The file's boxes under whole-second keys; boxes at a time that is no keyframe of the
    split (``keyframes``: video_id, timestamp, time) are an error listing every such key."""
    raw = read_proposal_file(path)
    raw = raw.assign(timestamp=whole_second_key(raw["timestamp"].to_numpy()))
    known = keyframes[KEYFRAME_KEY].drop_duplicates()
    marked = raw.merge(known.assign(_known=True), on=KEYFRAME_KEY, how="left")
    foreign = marked.loc[marked["_known"].isna(), KEYFRAME_KEY].drop_duplicates()
    if len(foreign):
        problems = [f"{v},{t}" for v, t in foreign.itertuples(index=False)]
        raise InputError(f"proposals for {len(problems)} keyframe(s) that the annotations do "
                         f"not have (whole-second keys):{listing(problems)}", path=path)
    return raw


def write_keyframe_times(path: Path, tables: list[pd.DataFrame]) -> None:
    """Every keyframe's whole-second key and exact time (``KEYFRAME_TIMES_COLUMNS``)."""
    times = (pd.concat(tables, ignore_index=True)[KEYFRAME_TIMES_COLUMNS]
             .drop_duplicates(KEYFRAME_KEY)
             .sort_values(KEYFRAME_KEY, kind="stable").reset_index(drop=True))
    write_parquet(path, times.astype({"video_id": str, "timestamp": np.int32,
                                      "time": np.float64}))


def counts(table: pd.DataFrame) -> tuple[int, int, int]:
    """(videos, keyframes, rows) of an annotation table."""
    return int(table["video_id"].nunique()), count_keyframes(table), int(len(table))


def index_custom(root: str | Path, out: str | Path, *, skip_missing_videos: bool = False,
                 progress: bool = True) -> tuple[DatasetManifest, IndexReport]:
    """Validate the folder at ``root`` and write the dataset's own files into ``out``: the CSVs
    with whole-second keys, the label map, exclusions, proposals (Parquet) and the keyframe
    times. Videos are referred to by absolute path, fingerprinted."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise InputError("custom dataset folder not found", path=root, key="data.custom.root")
    ann = root / "annotations"
    paths = {split: ann / f"{split}.csv" for split in SPLITS}
    absent = [str(p) for p in paths.values() if not p.is_file()]
    if absent:
        raise InputError(f"annotation CSV(s) not found:{listing(absent)}", path=ann)
    tables = {split: read_annotations(path, fractional=True) for split, path in paths.items()}
    for split, table in tables.items():
        if table.empty:    # nothing to train on, or nothing to score: never a silent 0
            raise InputError(f"no keyframe: the {split} split needs at least one annotated "
                             "row", path=paths[split])
    report = IndexReport()
    if (ann / LABEL_MAP).is_file():
        label_map = read_label_map(ann / LABEL_MAP)
    else:
        label_map = derive_label_map(tables, ann / LABEL_MAP)
        report.label_map_derived = True
    check_action_ids(tables, paths, label_map)
    split_of = split_of_videos(tables, paths)
    tables = {split: keyed(table, paths[split]) for split, table in tables.items()}

    files = video_files(root / "videos")
    last = pd.concat(tables.values()).groupby("video_id")["time"].max()
    probes, problems = probe_videos(
        {vid: (files.get(vid), 0.0, float(last[vid])) for vid in split_of}, progress=progress)
    if problems and not skip_missing_videos:
        raise InputError(f"{len(problems)} of {len(split_of)} annotated videos cannot be used "
                         f"(set data.custom.skip_missing_videos: true to leave them out):"
                         f"{listing([f'{v} ({split_of[v]}): {why}' for v, why in sorted(problems.items())])}",
                         path=root / "videos")
    if len(problems) == len(split_of):
        raise InputError("no usable video: every annotated video is missing, unreadable or "
                         "too short", path=root / "videos")
    for split, table in tables.items():
        if table["video_id"].isin(set(problems)).all():
            raise InputError(f"no keyframe left in the {split} split: every video it annotates "
                             f"is missing, unreadable or too short", path=paths[split])

    proposals = {}
    for split in SPLITS:
        found = [p for p in (root / "proposals" / f"{split}.pkl",
                             root / "proposals" / f"{split}.parquet") if p.is_file()]
        if len(found) > 1:
            raise InputError(f"two proposal files for {split}: keep one of "
                             f"{[p.name for p in found]}", path=root / "proposals")
        if found:
            proposals[split] = keyed_proposals(found[0], tables[split])

    exclusions = {}
    for split in SPLITS:
        path = ann / f"{split}_excluded_timestamps.csv"
        if path.is_file():
            table = read_exclusions(path, fractional=True)
            exclusions[split] = table.assign(
                timestamp=whole_second_key(table["timestamp"].to_numpy()))

    # everything is checked: write the dataset's files
    from pipeline.proposals.table import proposals_from_rows, write_proposals

    skipped = set(problems)
    report.skipped_videos = dict(problems)
    splits, proposal_paths, kept_tables = {}, {}, []
    for split in SPLITS:
        table = tables[split]
        left_out = table["video_id"].isin(skipped)
        kept = table[~left_out]
        kept_tables.append(kept)
        write_annotations(out / "annotations" / f"{split}.csv", kept, decimals=6)
        report.videos[split], report.keyframes[split], report.rows[split] = counts(kept)
        report.skipped_keyframes[split] = counts(table[left_out])[1]
        report.skipped_rows[split] = int(left_out.sum())
        excluded = None
        if split in exclusions:
            excluded = f"annotations/{split}_excluded_timestamps.csv"
            table = exclusions[split]
            write_exclusions(out / excluded, table[~table["video_id"].isin(skipped)])
        splits[split] = SplitFiles(f"annotations/{split}.csv", excluded)
        if split in proposals:
            boxes = proposals[split]
            boxes = boxes[~boxes["video_id"].isin(skipped)]
            proposal_paths[split] = f"proposals/{split}.parquet"
            write_proposals(out / proposal_paths[split], proposals_from_rows(boxes))
    write_label_map(out / "annotations" / LABEL_MAP, label_map)
    write_keyframe_times(out / KEYFRAME_TIMES, kept_tables)
    kept_ids = sorted(set(split_of) - skipped)
    manifest = DatasetManifest(
        source="custom", timestamp_start=0.0, label_map=f"annotations/{LABEL_MAP}",
        splits=splits, videos={vid: str(files[vid].resolve()) for vid in kept_ids},
        video_splits={vid: split_of[vid] for vid in kept_ids}, proposals=proposal_paths,
        fingerprints={vid: {**fingerprint(files[vid]), "frames": probes[vid][0],
                            "fps": probes[vid][1]} for vid in kept_ids},
        keyframe_times=KEYFRAME_TIMES)
    return manifest, report
