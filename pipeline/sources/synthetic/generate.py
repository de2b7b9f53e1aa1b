"""``generate_dataset``: the embedded synthetic AVA-format dataset, written atomically.

Layout under ``out_dir``::

    videos/<video_id>.mp4                      H.264 yuv420p, GOP = fps (a keyframe per second)
    annotations/ava_{train,val}_v2.2.csv       one row per (person box, action), as AVA
    annotations/ava_action_list_v2.2_for_activitynet_2019.pbtxt   label_type = class group
    annotations/ava_{train,val}_excluded_timestamps_v2.2.csv
    scene.parquet                              per actor per keyframe: box, visible state,
                                               history, labels (for tests and analysis)

Each video is planned, drawn and encoded from its own seed (``seed``, split, index), so a video
does not depend on how many others are generated or on which worker makes it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from pipeline.ava.annotations import COLUMNS, write_annotations
from pipeline.ava.exclusions import write_exclusions
from pipeline.ava.label_map import write_label_map
from pipeline.boxes import BOX_COLUMNS, KEYFRAME_KEY
from pipeline.io import atomic_output, write_parquet
from pipeline.sources.synthetic.classes import ACTION_CLASSES, synthetic_label_map
from pipeline.sources.synthetic.config import SyntheticConfig
from pipeline.sources.synthetic.video import SPLITS, make_video

logger = logging.getLogger(__name__)

LABEL_MAP_NAME = "ava_action_list_v2.2_for_activitynet_2019.pbtxt"


def annotation_path(out_dir: str | Path, split: str) -> Path:
    return Path(out_dir) / "annotations" / f"ava_{split}_v2.2.csv"


def exclusions_path(out_dir: str | Path, split: str) -> Path:
    return Path(out_dir) / "annotations" / f"ava_{split}_excluded_timestamps_v2.2.csv"


def label_map_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / "annotations" / LABEL_MAP_NAME


def video_id(seed: int, split: str, index: int) -> str:
    """An AVA-style 11-character id ([A-Za-z0-9_-]) derived from the seed."""
    digest = hashlib.blake2b(f"synthetic-ava:{seed}:{split}:{index}".encode(), digest_size=9)
    return base64.urlsafe_b64encode(digest.digest()).decode("ascii")[:11]


@dataclass(frozen=True)
class _VideoJob:
    config: SyntheticConfig
    split: str
    index: int
    video_id: str
    path: Path


def _make_video(job: _VideoJob) -> pd.DataFrame:
    return make_video(job.config, job.split, job.index, job.video_id, job.path)


def _excluded(config: SyntheticConfig, split: str, keyframes: pd.DataFrame) -> pd.DataFrame:
    """A few keyframes per split left out of annotation and evaluation, as AVA has."""
    if config.excluded_fraction == 0:
        return keyframes.iloc[:0]
    rng = np.random.default_rng([config.seed, SPLITS.index(split), 1 << 20])
    n = max(1, round(config.excluded_fraction * len(keyframes)))
    picked = rng.choice(len(keyframes), size=n, replace=False)
    return keyframes.iloc[picked].sort_values(KEYFRAME_KEY).reset_index(drop=True)


def annotation_rows(scene: pd.DataFrame) -> pd.DataFrame:
    """AVA rows (one per person box and action) from scene rows, sorted like AVA's files."""
    parts = []
    for action in ACTION_CLASSES:
        rows = scene.loc[scene[action.key], [*KEYFRAME_KEY, *BOX_COLUMNS, "person_id"]]
        parts.append(rows.assign(action_id=action.id))
    rows = pd.concat(parts, ignore_index=True)
    rows = rows.sort_values([*KEYFRAME_KEY, "person_id", "action_id"], kind="stable")
    return rows[COLUMNS].reset_index(drop=True)


def _run_jobs(jobs: list[_VideoJob], workers: int, progress: bool) -> list[pd.DataFrame]:
    results: list[pd.DataFrame | None] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc="synthetic videos", unit="video", disable=not progress)
    with bar:
        if workers <= 1:
            for k, job in enumerate(jobs):
                results[k] = _make_video(job)
                bar.update()
        else:
            # spawn: workers start clean even if the caller imported threaded libraries.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                futures = {pool.submit(_make_video, job): k for k, job in enumerate(jobs)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
    return results


def generate_dataset(out_dir: str | Path, config: SyntheticConfig, *, workers: int = 2,
                     progress: bool = True) -> dict:
    """Write the whole dataset to ``out_dir`` (replacing it) and return summary counts.

    The output is filled in ``<out_dir>.partial`` and renamed when complete. The same config
    gives byte-identical annotation, label-map, exclusion and scene files and, with the same
    PyAV/x264 build, identical mp4 bytes, whatever ``workers`` is. With ``workers > 1`` the
    videos are made in spawned processes, so a calling script needs the usual
    ``if __name__ == "__main__":`` guard.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    n_videos = {"train": config.n_train_videos, "val": config.n_val_videos}
    with atomic_output(out_dir) as tmp:
        (tmp / "videos").mkdir(parents=True)
        (tmp / "annotations").mkdir()
        jobs = []
        for split in SPLITS:
            for k in range(n_videos[split]):
                vid = video_id(config.seed, split, k)
                jobs.append(_VideoJob(config, split, k, vid, tmp / "videos" / f"{vid}.mp4"))
        if len({job.video_id for job in jobs}) != len(jobs):
            raise RuntimeError(f"video id collision for seed {config.seed}; choose another seed")
        scene = pd.concat(_run_jobs(jobs, workers, progress), ignore_index=True)
        scene.insert(3, "excluded", False)
        summary: dict = {"videos": n_videos, "keyframes": {}, "boxes": {}, "excluded": {},
                         "positives": {}}
        for split in SPLITS:
            for key, value in _write_split(tmp, config, split, scene).items():
                summary[key][split] = value
        write_label_map(label_map_path(tmp), synthetic_label_map())
        write_parquet(tmp / "scene.parquet", _scene_table(scene))
    logger.info("synthetic dataset: %d videos in %.1f s -> %s", len(jobs),
                time.perf_counter() - started, out_dir)
    return summary


def _write_split(root: Path, config: SyntheticConfig, split: str, scene: pd.DataFrame) -> dict:
    """Write one split's annotations and exclusions; mark its excluded rows in ``scene``."""
    in_split = scene["split"] == split
    keyframes = scene.loc[in_split, KEYFRAME_KEY].drop_duplicates()
    excluded = _excluded(config, split, keyframes.reset_index(drop=True))
    key = scene["video_id"] + "," + scene["timestamp"].astype(str)
    excluded_keys = set(excluded["video_id"] + "," + excluded["timestamp"].astype(str))
    scene.loc[in_split & key.isin(excluded_keys), "excluded"] = True
    annotated = scene[in_split & ~scene["excluded"]]
    rows = annotation_rows(annotated)
    write_annotations(annotation_path(root, split), rows)
    write_exclusions(exclusions_path(root, split), excluded)
    counts = rows["action_id"].value_counts()
    return {"keyframes": int(len(keyframes)), "boxes": int(len(annotated)),
            "excluded": int(len(excluded)),
            "positives": {c.id: int(counts.get(c.id, 0)) for c in ACTION_CLASSES}}


def _scene_table(scene: pd.DataFrame) -> pa.Table:
    """Narrow, explicit types so the Parquet bytes do not depend on pandas' inference."""
    table = pa.Table.from_pandas(scene, preserve_index=False)
    types = {"timestamp": pa.int32(), "person_id": pa.int32(), "facing": pa.int8(),
             "lane": pa.int8()}
    fields = [pa.field(f.name, types.get(f.name, pa.float32() if pa.types.is_floating(f.type)
                                         else f.type)) for f in table.schema]
    return table.cast(pa.schema(fields))
