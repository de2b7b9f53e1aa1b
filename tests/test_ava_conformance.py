"""The whole DAG on an AVA-shaped download (``tests/helpers/ava_fixture.py``) through a real
``dvc repro``: official layout and names, movie-length videos at 24, 25, 29.97 and 30 fps,
AVA's clock checked frame-exactly in the stored clips under both frame index conventions: every
stored frame is the one ``ffmpeg -r 30`` gives at its index (libavfilter's fps filter as the
reference)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from helpers.ava_fixture import (ACTIONS, FPS, FPS_OF, FRAMES, LABELS, MISSING_ID, TRAIN_IDS,
                                 VAL_IDS, expected_keyframe_frame, make_ava_fixture)
from pipeline.ava.annotations import read_annotations
from pipeline.cli import main as stad
from pipeline.frames.store import FrameStore
from helpers.dvc_project import project_copy, ran_stages, repro_from_scratch, sh
from helpers.stores import check_video, frames_within_reach
from helpers.video import ffmpeg_rate_numbers


pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def ava_repo(tmp_path_factory):
    """The fixture download, and a project copy whose params point at it (smoke sizes)."""
    fixture = make_ava_fixture(tmp_path_factory.mktemp("ava"), version="2.2", every=60,
                               missing_video=True)
    overlay = tmp_path_factory.mktemp("overlay") / "ava-fixture.yaml"
    overlay.write_text(f"""
data:
  source: ava
  ava:
    root: {fixture.root}
    version: "2.2"
    video_start: 900
    skip_missing_videos: true
frames:
  timeline_fps: 30
  reach: [5, 2]     # the smoke baseline's 4x2 clip with temporal jitter (each frame -1 or 0)
proposals:
  source: pickle
baseline:
  data:
    temporal_jitter: true
lfb:
  dtype: float32   # one smoke epoch on painted digits leaves BN statistics raw: features > 65504
""")
    root = tmp_path_factory.mktemp("ava_repo")
    env = project_copy(root, "smoke", overlay)
    return fixture, root, env


def _check_clock(root: Path, fixture, convention: str) -> dict[str, int]:
    """Every stored frame shows the source frame ``ffmpeg -r 30`` gives at the index AVA's clock
    gives it; every video, train or val, holds the frames within frames.reach [5, 2] of each
    keyframe (what the 4x2 clip reads with temporal jitter) and no other. Returns the frames
    checked per video rate."""
    index = pd.read_parquet(root / "data/frames/keyframes.parquet")
    store = FrameStore(root / "data/frames/frames.zarr")
    assert store.convention == convention and store.spec.timestamp_start == 900
    assert store.timeline_fps == FPS and store.reach == (5, 2)
    checked = {}
    for video_id, rows in index.groupby("video_id"):
        assert store.video(video_id).num_frames == FRAMES
        centers = {int(t): expected_keyframe_frame(int(t), convention) for t in rows["timestamp"]}
        stored = frames_within_reach(centers.values(), store.reach, FRAMES)
        reference = ffmpeg_rate_numbers(fixture.root / "videos" / f"{video_id}.mp4", FPS,
                                        at=stored)
        assert len(reference) == FRAMES, (video_id, len(reference))
        rate = str(FPS_OF[video_id])
        checked[rate] = checked.get(rate, 0) + check_video(store, video_id, centers, reference)
    print(f"{convention}: frames checked against ffmpeg -r 30, by source rate: {checked}")
    return checked


def test_ava_download_runs_through_the_dag_with_ava_clock(ava_repo):
    fixture, root, env = ava_repo
    repro_from_scratch(root, env)

    dataset = json.loads((root / "metrics/dataset.json").read_text())
    assert dataset["source"] == "ava" and dataset["skipped_videos"] == {MISSING_ID: "missing"}
    assert dataset["videos"] == {"train": len(TRAIN_IDS), "val": len(VAL_IDS)}
    assert dataset["skipped_keyframes"] == {"train": 16, "val": 0}
    for split in ("train", "val"):   # all 80 actions kept in the copies, 60 of them scored
        copy = read_annotations(root / f"data/dataset/annotations/ava_{split}_v2.2.csv")
        assert set(copy["action_id"]) == set(ACTIONS) and MISSING_ID not in set(copy["video_id"])
        assert dataset["annotation_rows_outside_label_map"][split] == \
            (~copy["action_id"].isin(LABELS)).sum()
    manifest = json.loads((root / "data/dataset/dataset.json").read_text())
    assert manifest["timestamp_start"] == 900
    assert set(manifest["proposals"]) == {"train", "val"}

    checked = _check_clock(root, fixture, "pyslowfast")
    assert set(checked) == {"24", "25", "30000/1001", "30"}
    # 8 frames per keyframe, train and val alike (keyframes 60 s apart: no frame shared)
    assert sum(checked.values()) == 8 * len(fixture.keyframes)
    index = pd.read_parquet(root / "data/frames/keyframes.parquet")
    assert index["timestamp"].max() == 1798   # the last keyframe of AVA's clock is stored

    baseline = json.loads((root / "models/baseline/report.json").read_text())
    assert baseline["not_in_frame_store"]["train"]["keyframes"] == 0   # left out upstream
    evaluation = json.loads((root / "results/eval_report.json").read_text())
    assert evaluation["counts"]["classes"] == len(LABELS)
    per_class = pd.read_csv(root / "plots/per_class_ap.csv")
    assert set(per_class["class"]) == {f"{i} {n}" for i, n in LABELS.items()}
    assert evaluation["not_in_frame_store"]["keyframes"] == 0
    results = pd.read_csv(root / "results/val_results.csv", header=None)
    assert set(results[0]) == set(VAL_IDS) and results[1].between(902, 1798).all()
    assert len(list((root / "results/keyframes").glob("*.png"))) == 2

    # the stad commands read the same files
    ann = root / "data/dataset/annotations"
    assert stad(["show", str(root / "data/frames"), VAL_IDS[0], "962", "--dataset",
                 str(root / "data/dataset"), "--out", str(root / "kf.png"), "--clip-len", "4",
                 "--frame-interval", "2"]) == 0
    assert stad(["eval", str(ann / "ava_val_v2.2.csv"), str(root / "results/val_results.csv"),
                 "--label-map", str(ann / "ava_action_list_v2.2_for_activitynet_2019.pbtxt"),
                 "--exclusions", str(ann / "ava_val_excluded_timestamps_v2.2.csv")]) == 0


def test_mmaction2_convention_reads_one_frame_later(ava_repo):
    fixture, root, env = ava_repo
    sh(["dvc", "repro"], root, env)
    params = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(params.replace("convention: pyslowfast",
                                                     "convention: mmaction2"))
    try:
        result = sh(["dvc", "repro", "-s", "extract_frames"], root, env)
        assert ran_stages(result.stdout) == ["extract_frames"], result.stdout
        checked = _check_clock(root, fixture, "mmaction2")
        assert sum(checked.values()) == 8 * len(fixture.keyframes)
    finally:
        (root / "params.yaml").write_text(params)
