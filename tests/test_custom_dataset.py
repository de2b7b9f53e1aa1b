"""``data.source: custom``: a folder of mp4 files at 10 and 24 fps with AVA-format CSVs whose
timestamps count seconds from each video's first frame (``tests/helpers/custom_fixture.py``):
the up-front checks, and the whole DAG through a real ``dvc repro`` with every stored frame
checked against the clock (keyframe at ``t`` s = frame ``round(t * fps)`` of its own video)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.custom_fixture import (EXCLUDED, FPS_OF, LABELS, TIMES, expected_keyframe_frame,
                                    make_custom_fixture)
from pipeline.ava.annotations import read_annotations
from pipeline.sources.custom import index_custom
from pipeline.ava.label_map import read_label_map
from pipeline.errors import InputError
from pipeline.frames.store import FrameStore
from helpers.dvc_project import project_copy, repro_from_scratch
from helpers.stores import check_video
from helpers.video import read_frame_number, write_video


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return make_custom_fixture(tmp_path_factory.mktemp("custom"))


def _copy(fixture, tmp_path: Path) -> Path:
    """A writable copy of the fixture folder (videos linked, annotations copied)."""
    root = tmp_path / "mine"
    for path in fixture.root.rglob("*"):
        target = root / path.relative_to(fixture.root)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.suffix == ".mp4":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    return root


def test_index_writes_whole_second_keys_and_exact_times(fixture, tmp_path):
    manifest, report = index_custom(fixture.root, tmp_path / "out", progress=False)
    assert manifest.source == "custom" and manifest.timestamp_start == 0
    assert report.videos == {"train": 2, "val": 2} and not report.label_map_derived
    assert report.keyframes == {"train": 2 * len(TIMES), "val": 2 * len(TIMES)}
    times = pd.read_parquet(tmp_path / "out" / manifest.keyframe_times)
    assert sorted(set(times["time"])) == sorted(TIMES)
    assert (times["timestamp"] == np.floor(times["time"])).all()
    train = read_annotations(tmp_path / "out/annotations/train.csv")
    val = read_annotations(tmp_path / "out/annotations/val.csv")
    assert (train["person_id"] >= 0).all() and (val["person_id"] == -1).all()
    assert set(train["timestamp"]) == {int(t) for t in TIMES}
    proposals = pd.read_parquet(tmp_path / "out" / manifest.proposals["val"])
    assert set(proposals["video_id"]) == {"kitchen_cam3", "yard_cam4"}
    excluded = (tmp_path / "out/annotations/val_excluded_timestamps.csv").read_text()
    assert excluded == f"{EXCLUDED[0]},{int(EXCLUDED[1]):04d}\n"


def test_label_map_is_derived_with_a_warning(fixture, tmp_path, caplog):
    root = _copy(fixture, tmp_path)
    (root / "annotations/label_map.pbtxt").unlink()
    with caplog.at_level(logging.WARNING):
        manifest, report = index_custom(root, tmp_path / "out", progress=False)
    assert report.label_map_derived and "derived" in caplog.text
    derived = read_label_map(tmp_path / "out" / manifest.label_map)
    assert derived.ids == tuple(sorted(LABELS))


def test_every_problem_of_a_kind_is_reported_at_once(fixture, tmp_path):
    root = _copy(fixture, tmp_path)
    (root / "videos/kitchen_cam1.mp4").unlink()
    (root / "videos/yard_cam4.mp4").unlink()
    write_video(root / "videos/yard_cam4.mp4", num_frames=20, fps=24)   # < 6.7 s
    with pytest.raises(InputError) as error:
        index_custom(root, tmp_path / "out", progress=False)
    assert "2 of 4 annotated videos" in str(error.value)
    assert "kitchen_cam1 (train): missing" in str(error.value)
    assert "yard_cam4 (val): too short" in str(error.value)
    manifest, report = index_custom(root, tmp_path / "out", skip_missing_videos=True,
                                    progress=False)
    assert set(report.skipped_videos) == {"kitchen_cam1", "yard_cam4"}
    assert set(manifest.videos) == {"yard_cam2", "kitchen_cam3"}

    csv = root / "annotations/train.csv"
    text = csv.read_text()
    csv.write_text(text + "yard_cam2,1.5,0.1,0.1,0.5,0.5,3,0\n"     # second 1 twice
                   "yard_cam2,2.9,0.1,0.1,0.5,0.5,3,0\n"             # second 2 twice
                   "kitchen_cam3,1.0,0.1,0.1,0.5,0.5,3,0\n")          # also in val
    with pytest.raises(InputError, match="1 video.* both train and val"):
        index_custom(root, tmp_path / "out", skip_missing_videos=True, progress=False)
    csv.write_text(text + "yard_cam2,1.5,0.1,0.1,0.5,0.5,3,0\n"
                   "yard_cam2,2.9,0.1,0.1,0.5,0.5,3,0\n"
                   "yard_cam2,3.0,0.1,0.1,0.5,0.5,99,0\nyard_cam2,3.0,0.1,0.1,0.5,0.5,98,0\n")
    with pytest.raises(InputError, match=r"2 action id\(s\)") as error:
        index_custom(root, tmp_path / "out", skip_missing_videos=True, progress=False)
    assert "action_id 98" in str(error.value) and "action_id 99" in str(error.value)
    csv.write_text(text + "yard_cam2,1.5,0.1,0.1,0.5,0.5,3,0\n"
                   "yard_cam2,2.9,0.1,0.1,0.5,0.5,3,0\n")
    with pytest.raises(InputError, match=r"2 whole second\(s\)") as error:
        index_custom(root, tmp_path / "out", skip_missing_videos=True, progress=False)
    assert "yard_cam2 second 1: keyframes at 1.000000, 1.500000" in str(error.value)


def _append(path: Path, line: str) -> int:
    """Append a line; returns its 1-based line number."""
    text = path.read_text()
    path.write_text(text + line + "\n")
    return text.count("\n") + 1


@pytest.mark.parametrize("video_id", [".", ".."])
def test_a_video_id_that_cannot_name_a_file_is_refused_with_file_and_line(fixture, tmp_path,
                                                                           video_id):
    """``videos/..mp4`` and ``videos/...mp4`` exist, so only the id stops them."""
    root = _copy(fixture, tmp_path)
    (root / "videos" / f"{video_id}.mp4").symlink_to(fixture.root / "videos/kitchen_cam1.mp4")
    csv = root / "annotations/train.csv"
    line = _append(csv, f"{video_id},1.0,0.1,0.1,0.5,0.5,3,0")
    with pytest.raises(InputError, match=f"video_id '{re.escape(video_id)}' cannot name a "
                                         "video file") as error:
        index_custom(root, tmp_path / "out", progress=False)
    assert error.value.path == str(csv) and error.value.line == line


def test_a_row_with_a_wrong_column_count_says_which_counts_are_accepted(fixture, tmp_path):
    """the val CSV's rows have 7 columns, the train CSV's 8; either is fine."""
    root = _copy(fixture, tmp_path)
    csv = root / "annotations/train.csv"
    line = _append(csv, "yard_cam2,1.0,0.1,0.1,0.5,0.5")
    with pytest.raises(InputError, match="found 6 .*7 or 8 are accepted") as error:
        index_custom(root, tmp_path / "out", progress=False)
    assert error.value.path == str(csv) and error.value.line == line


def test_a_split_without_keyframes_is_an_error_naming_its_file(fixture, tmp_path):
    """an empty val.csv, or a val split whose every video is left out."""
    root = _copy(fixture, tmp_path)
    val = root / "annotations/val.csv"
    rows = val.read_text()
    val.write_text("")
    with pytest.raises(InputError, match="no keyframe: the val split") as error:
        index_custom(root, tmp_path / "out", progress=False)
    assert error.value.path == str(val)
    val.write_text(rows)
    for video_id in ("kitchen_cam3", "yard_cam4"):
        (root / "videos" / f"{video_id}.mp4").unlink()
    with pytest.raises(InputError, match="no keyframe left in the val split") as error:
        index_custom(root, tmp_path / "out", skip_missing_videos=True, progress=False)
    assert error.value.path == str(val)


@pytest.fixture(scope="module")
def custom_repo(fixture, tmp_path_factory):
    overlay = tmp_path_factory.mktemp("overlay") / "custom-fixture.yaml"
    overlay.write_text(f"""
data:
  source: custom
  custom:
    root: {fixture.root}
    skip_missing_videos: false
proposals:
  source: pickle
lfb:
  dtype: float32
""")
    root = tmp_path_factory.mktemp("custom_repo")
    return root, project_copy(root, "smoke", overlay)


@pytest.mark.slow
def test_custom_dataset_runs_through_the_dag_on_each_videos_clock(fixture, custom_repo):
    root, env = custom_repo
    repro_from_scratch(root, env)
    dataset = json.loads((root / "metrics/dataset.json").read_text())
    assert dataset["source"] == "custom" and dataset["num_skipped_videos"] == 0

    # the clock, frame by frame: the keyframe at t s is frame round(t * fps) of its own video,
    # and every stored frame (all within frames.reach of a keyframe, once) is the one it names
    store = FrameStore(root / "data/frames/frames.zarr")
    assert store.reach == (4, 3)                 # the smoke preset's
    checked = {}
    for video_id in store.video_ids():
        fps, video = FPS_OF[video_id], store.video(video_id)
        assert video.fps == float(fps) and video.num_frames == 8 * fps
        times = video.attrs["times"]
        assert sorted(times) == sorted(TIMES)
        assert video.attrs["timestamps"] == [int(t) for t in times]
        centers = {int(t): expected_keyframe_frame(t, fps) for t in times}
        count = check_video(store, video_id, centers, reference=range(video.num_frames))
        checked[str(fps)] = checked.get(str(fps), 0) + count
    assert set(checked) == {"10", "24"}
    assert len(store.index) == len(fixture.keyframes)
    # the clip the smoke baseline read (4 frames 2 apart) is there for every keyframe
    for video_id, timestamp, frame in store.index[["video_id", "timestamp", "frame"]].itertuples(
            index=False):
        clip = store.clip(video_id, timestamp, clip_len=4, frame_interval=2)
        wanted = np.clip(frame + np.array([-4, -2, 0, 2]), 0, int(8 * FPS_OF[video_id]) - 1)
        assert [read_frame_number(f) for f in clip] == wanted.tolist()

    proposals = json.loads((root / "metrics/proposals.json").read_text())
    assert proposals["val"]["recall"] == 1.0   # the dataset's own boxes are the true ones
    evaluation = json.loads((root / "results/eval_report.json").read_text())
    assert evaluation["counts"]["classes"] == len(LABELS)
    per_class = pd.read_csv(root / "plots/per_class_ap.csv")
    assert set(per_class["class"]) == {f"{i} {n}" for i, n in LABELS.items()}
    results = pd.read_csv(root / "results/val_results.csv", header=None)
    assert set(results[0]) == {"kitchen_cam3", "yard_cam4"}
    assert set(results[1]) <= {int(t) for t in TIMES}
