"""Indexing an AVA download (``data.source: ava``): what is copied, found and refused.

Each bad input of a real download gives an InputError naming the file, line, key or video:
a 6-column CSV row, a timestamp outside 902..1798, an action id outside 1..80, proposals for a
video the split does not have, a missing, unreadable or too-short video. Short videos
(``video_start`` 1760) keep these tests fast; the movie-length case runs in
test_ava_conformance.py.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.ava_fixture import LABELS, TRAIN_IDS, VAL_IDS, make_ava_fixture
from pipeline.ava.annotations import read_annotations
from pipeline.ava.label_map import read_label_map
from pipeline.sources.ava_download import index_download
from pipeline.errors import InputError
from helpers.video import write_video

START = 1760
TRAIN_CSV = "annotations/ava_train_v2.2.csv"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return make_ava_fixture(tmp_path_factory.mktemp("ava"), every=10, video_start=START).root


@pytest.fixture
def download(pristine, tmp_path) -> Path:
    root = tmp_path / "ava"
    shutil.copytree(pristine, root)
    return root


def index(root: Path, out: Path, **kwargs):
    return index_download(root, out, version="2.2", video_start=START, progress=False,
                          **kwargs)


def test_a_good_download_is_indexed_and_its_annotations_copied(download, tmp_path):
    manifest, report = index(download, tmp_path / "out")
    assert set(manifest.videos) == {*TRAIN_IDS, *VAL_IDS}
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in manifest.videos.values())
    assert manifest.timestamp_start == START
    assert (tmp_path / "out" / TRAIN_CSV).read_bytes() == (download / TRAIN_CSV).read_bytes()
    assert manifest.proposals["val"].endswith("ava_dense_proposals_val.FAIR.recall_93.9.pkl")
    assert manifest.fingerprints[VAL_IDS[0]]["frames"] == (1801 - START) * 30
    assert report.to_json()["num_skipped_videos"] == 0
    assert report.videos == {"train": len(TRAIN_IDS), "val": len(VAL_IDS)}
    # AVA's other 20 actions are kept in the copy (neither trained nor scored), and counted
    table = read_annotations(download / TRAIN_CSV)
    assert report.rows_outside_label_map["train"] == (~table["action_id"].isin(LABELS)).sum() > 0
    # AVA's evaluated list has no label_type; the dataset's copy records AVA's groups
    copied = read_label_map(tmp_path / "out" / manifest.label_map)
    assert copied == read_label_map(download / manifest.label_map).with_ava_groups()
    assert copied.group_names() == ("movement", "object", "interaction")


def _append(path: Path, line: str) -> int:
    """Append a line; returns its 1-based line number."""
    text = path.read_text()
    path.write_text(text + line + "\n")
    return text.count("\n") + 1


@pytest.mark.parametrize("row, message", [
    (f"{TRAIN_IDS[0]},1790,0.1,0.2,0.3,0.4,12,0", None),   # a good row
    (f"{TRAIN_IDS[0]},1790,0.1,0.2,0.3,0.4", "expected 8 columns, found 6"),
    (f"{TRAIN_IDS[0]},1790,0.1,0.2,0.3,0.4,12", "expected 8 columns, found 7"),
    (f"{TRAIN_IDS[0]},1799,0.1,0.2,0.3,0.4,12,0", "timestamp=1799 is outside [902, 1798]"),
    (f"{TRAIN_IDS[0]},0901,0.1,0.2,0.3,0.4,12,0", "timestamp=901 is outside [902, 1798]"),
    (f"{TRAIN_IDS[0]},1790,0.1,0.2,0.3,0.4,81,0", "action_id=81 is outside [1, 80]"),
    (f"{TRAIN_IDS[0]},1790,0.1,0.2,1.3,0.4,12,0", "x2=1.3"),
])
def test_bad_annotation_rows_name_file_and_line(download, tmp_path, row, message):
    line = _append(download / TRAIN_CSV, row)
    if message is None:
        index(download, tmp_path / "out")
        return
    with pytest.raises(InputError) as error:
        index(download, tmp_path / "out")
    text = str(error.value)
    assert message in text and f"ava_train_v2.2.csv:{line}" in text, text


def test_proposals_for_a_video_not_in_the_split_name_the_key(download, tmp_path):
    path = download / "annotations/ava_dense_proposals_val.FAIR.recall_93.9.pkl"
    proposals = pickle.loads(path.read_bytes())
    proposals[f"{TRAIN_IDS[1]},1770"] = np.array([[0.1, 0.1, 0.5, 0.9, 0.99]], np.float32)
    path.write_bytes(pickle.dumps(proposals))
    with pytest.raises(InputError) as error:
        index(download, tmp_path / "out")
    text = str(error.value)
    assert path.name in text and f"{TRAIN_IDS[1]},1770" in text, text


def test_missing_and_short_videos_are_listed_together(download, tmp_path):
    (download / "videos" / f"{TRAIN_IDS[0]}.mp4").unlink()
    write_video(download / "videos" / f"{VAL_IDS[0]}.mp4", num_frames=300, fps=30)
    with pytest.raises(InputError) as error:
        index(download, tmp_path / "out")
    text = str(error.value)
    assert f"2 of {len(TRAIN_IDS) + len(VAL_IDS)} annotated videos" in text
    assert f"{TRAIN_IDS[0]} (train): missing" in text
    assert f"{VAL_IDS[0]} (val): too short: 300 frames" in text and "1798 s" in text


def test_an_undecodable_video_is_named(download, tmp_path):
    (download / "videos" / f"{TRAIN_IDS[1]}.mp4").write_bytes(b"not a video at all" * 100)
    with pytest.raises(InputError) as error:
        index(download, tmp_path / "out")
    assert f"{TRAIN_IDS[1]} (train): unreadable" in str(error.value)


def test_skipping_leaves_out_the_videos_rows_and_counts_them(download, tmp_path):
    (download / "videos" / f"{TRAIN_IDS[0]}.mp4").unlink()
    manifest, report = index(download, tmp_path / "out", skip_missing_videos=True)
    assert TRAIN_IDS[0] not in manifest.videos
    assert report.to_json()["skipped_videos"] == {TRAIN_IDS[0]: "missing"}
    copied = (tmp_path / "out" / TRAIN_CSV).read_text()
    assert TRAIN_IDS[0] not in copied and TRAIN_IDS[1] in copied
    rows = read_annotations(download / TRAIN_CSV).query(f"video_id == '{TRAIN_IDS[0]}'")
    assert report.to_json()["skipped_keyframes"] == {"train": rows["timestamp"].nunique(),
                                                     "val": 0}
    assert report.to_json()["skipped_annotation_rows"] == {"train": len(rows), "val": 0}


def test_the_full_action_list_bounds_the_action_ids(download, tmp_path):
    """With AVA's full list (``ava_action_list_v2.2.pbtxt``) in the download, an id it lacks is
    an error naming file and line; ids it has but the label map lacks are fine."""
    full = download / "annotations/ava_action_list_v2.2.pbtxt"
    text = full.read_text()
    start = text.index('label {\n  name: "crawl"')
    full.write_text(text[:start] + text[text.index("label {", start + 1):])   # no id 2
    rows = read_annotations(download / TRAIN_CSV)
    line = int((rows["action_id"] == 2).to_numpy().argmax()) + 1   # the fixture has all 80
    with pytest.raises(InputError) as error:
        index(download, tmp_path / "out")
    text = str(error.value)
    assert "action_id=2 is neither in the label map nor in the full action list" in text
    assert f"ava_train_v2.2.csv:{line}" in text, text


def test_the_stage_exits_non_zero_with_the_message(download, tmp_path):
    """``make_dataset`` on a download with a missing video: exit 2, one line naming it."""
    (download / "videos" / f"{VAL_IDS[0]}.mp4").unlink()
    repo = Path(__file__).resolve().parents[1]
    params = (repo / "params.yaml").read_text()
    params = params.replace("source: synthetic ", "source: ava ", 1)
    params = params.replace('root: ""', f"root: {download}", 1)
    params = params.replace("video_start: 900", f"video_start: {START}", 1)
    (tmp_path / "params.yaml").write_text(params)
    result = subprocess.run([sys.executable, "-m", "stages.make_dataset", "--out",
                             str(tmp_path / "dataset"), "--metrics", str(tmp_path / "m.json")],
                            cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2, result.stderr
    assert f"{VAL_IDS[0]} (val): missing" in result.stderr
    assert not (tmp_path / "dataset").exists() and not (tmp_path / "m.json").exists()


def test_frames_of_an_ava_download_need_its_30fps_timeline(download, tmp_path):
    """``extract_frames`` refuses ``data.source: ava`` on the native timeline (a 24 or 25 fps
    movie would be indexed at its own rate): exit 2, naming frames.timeline_fps."""
    repo = Path(__file__).resolve().parents[1]
    params = (repo / "params.yaml").read_text()
    params = params.replace("source: synthetic ", "source: ava ", 1)
    params = params.replace('root: ""', f"root: {download}", 1)
    params = params.replace("video_start: 900", f"video_start: {START}", 1)
    assert "timeline_fps: null" in params
    (tmp_path / "params.yaml").write_text(params)
    env = {"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-m", "stages.make_dataset", "--out",
                    str(tmp_path / "dataset"), "--metrics", str(tmp_path / "m.json")],
                   cwd=tmp_path, capture_output=True, text=True, env=env, check=True)
    result = subprocess.run([sys.executable, "-m", "stages.extract_frames", "--dataset",
                             str(tmp_path / "dataset"), "--out", str(tmp_path / "frames"),
                             "--metrics", str(tmp_path / "f.json")],
                            cwd=tmp_path, capture_output=True, text=True, env=env)
    assert result.returncode == 2, result.stderr
    assert "frames.timeline_fps" in result.stderr and "30" in result.stderr
    assert not (tmp_path / "frames").exists()
