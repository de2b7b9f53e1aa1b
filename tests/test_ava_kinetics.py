"""``data.source: ava_kinetics``: a short AVA download plus a Kinetics-shaped one
(``tests/helpers/kinetics_fixture.py``: 10-s clips at 25 and 30 fps, cut windows and a full
clip, the 7-column CSV with fractional timestamps, a missing clip) through a real ``dvc repro``,
every stored frame of both parts checked against the frame ``ffmpeg -r 30`` gives at the index
the clock names: AVA's ``30 * (t - 900)``, a Kinetics keyframe's
``round(30 * (t - clip start))`` in its own clip."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from helpers.ava_fixture import FPS, VAL_IDS, TRAIN_IDS, make_ava_fixture
from helpers.kinetics_fixture import CLIPS, MISSING, make_kinetics_fixture
from pipeline.sources.ava_kinetics import index_ava_kinetics
from pipeline.errors import InputError
from pipeline.frames.store import FrameStore
from helpers.dvc_project import project_copy, repro_from_scratch
from helpers.stores import check_video, frames_within_reach
from helpers.video import ffmpeg_rate_numbers

AVA_START = 1780   # short AVA videos: seconds 1780..1801, keyframes 1782..1798


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    ava = make_ava_fixture(tmp_path_factory.mktemp("ava"), version="2.2", every=8,
                           video_start=AVA_START)
    return ava, make_kinetics_fixture(tmp_path_factory.mktemp("kinetics"))


def test_missing_clips_are_listed_then_skipped_by_param(fixtures, tmp_path):
    ava, kinetics = fixtures
    with pytest.raises(InputError) as error:
        index_ava_kinetics(ava.root, kinetics.root, tmp_path / "a", video_start=AVA_START,
                           skip_missing_videos=False, skip_missing_clips=False, use_val=False,
                           progress=False)
    assert f"{MISSING[0]},{MISSING[1]:.6f}: missing" in str(error.value)
    assert "skip_missing_clips" in str(error.value)
    manifest, report = index_ava_kinetics(
        ava.root, kinetics.root, tmp_path / "b", video_start=AVA_START,
        skip_missing_videos=False, skip_missing_clips=True, use_val=False, progress=False)
    assert report["kinetics"]["skipped_keyframes"] == {
        f"{MISSING[0]},{MISSING[1]:.6f}": "missing (no clip holds it)"}
    assert report["kinetics"]["val"] == "ava" and report["kinetics"]["clips"] == {"train": 3}
    assert manifest.splits["val"].annotations == "annotations/ava_val_v2.2.csv"
    assert manifest.start_of("o3lCwWyyc_s_000012_000022") == 12
    assert manifest.start_of("b9Yd2Lq3VwE") == 0 and manifest.start_of(TRAIN_IDS[0]) == AVA_START


@pytest.fixture(scope="module")
def ava_kinetics_repo(fixtures, tmp_path_factory):
    ava, kinetics = fixtures
    overlay = tmp_path_factory.mktemp("overlay") / "ava-kinetics-fixture.yaml"
    overlay.write_text(f"""
data:
  source: ava_kinetics
  ava:
    root: {ava.root}
    version: "2.2"
    video_start: {AVA_START}
    skip_missing_videos: false
  kinetics:
    root: {kinetics.root}
    skip_missing_clips: true
    use_val: true
frames:
  timeline_fps: 30
proposals:
  source: pickle
lfb:
  dtype: float32
""")
    root = tmp_path_factory.mktemp("ava_kinetics_repo")
    return root, project_copy(root, "smoke", overlay)


@pytest.mark.slow
def test_ava_kinetics_runs_through_the_dag_on_one_30fps_timeline(fixtures, ava_kinetics_repo):
    ava, kinetics = fixtures
    root, env = ava_kinetics_repo
    repro_from_scratch(root, env)
    dataset = json.loads((root / "metrics/dataset.json").read_text())
    assert dataset["source"] == "ava_kinetics"
    assert dataset["kinetics"]["num_skipped_keyframes"] == 1
    assert dataset["kinetics"]["clips"] == {"train": 3, "val": 1}

    index = pd.read_parquet(root / "data/frames/keyframes.parquet")
    store = FrameStore(root / "data/frames/frames.zarr")
    assert store.timeline_fps == FPS and store.spec.timestamp_start == AVA_START
    checked = {}
    for video_id, rows in index.groupby("video_id"):
        video = store.video(video_id)
        if video_id in CLIPS:   # a Kinetics clip, on its own clock
            split, _, start, rate, times = CLIPS[video_id]
            path = kinetics.root / "videos" / f"{video_id}.mp4"
            assert video.attrs["timestamp_start"] == start and video.attrs["times"] == list(times)
            centers = {int(t): round(FPS * (t - start)) for t in times}
        else:                   # an AVA video: AVA's clock, as before
            split = "train" if video_id in TRAIN_IDS else "val"
            path = ava.root / "videos" / f"{video_id}.mp4"
            assert "times" not in video.attrs and "timestamp_start" not in video.attrs
            centers = {int(t): FPS * (int(t) - AVA_START) for t in rows["timestamp"]}
        assert set(rows["split"]) == {split}
        stored = frames_within_reach(centers.values(), store.reach, video.num_frames)
        reference = ffmpeg_rate_numbers(path, FPS, at=stored)
        assert len(reference) == video.num_frames
        kind = "kinetics" if video_id in CLIPS else "ava"
        checked[kind] = checked.get(kind, 0) + check_video(store, video_id, centers, reference)
    # 8 frames per Kinetics keyframe: the smoke reach [4, 3] around it (its clip's keyframes
    # are seconds apart, none within 4 frames of the clip's ends)
    n_kinetics = sum(len(c[4]) for c in CLIPS.values())
    assert store.reach == (4, 3) and checked["kinetics"] == n_kinetics * 8
    assert set(index["video_id"]) == set(CLIPS) | set(TRAIN_IDS) | set(VAL_IDS)

    proposals = pd.read_parquet(root / "data/proposals/proposals.parquet")
    assert set(CLIPS) <= set(proposals["video_id"])   # the Kinetics pickles, re-keyed
    results = pd.read_csv(root / "results/val_results.csv", header=None)
    assert set(results[0]) <= set(VAL_IDS) | {"Hq8yVb1xYcM_000030_000040"}
    evaluation = json.loads((root / "results/eval_report.json").read_text())
    assert evaluation["not_in_frame_store"]["keyframes"] == 0
