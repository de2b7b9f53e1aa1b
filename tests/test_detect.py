"""`stad detect` end to end: a real mp4, a checkpoint trained by the baseline trainer on the smoke
preset's sizes, proposals from a pickle or a torchvision detector; and its bad-input errors."""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from pathlib import Path

import decord
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torchvision.models import detection

from pipeline.ava.clock import clip_frame_indices
from pipeline.ava.proposals import write_proposal_pickle
from pipeline.ava.results import read_results
from pipeline.cli import main
from pipeline.data.config import DataConfig
from pipeline.data.inputs import DatasetFiles
from pipeline.engine.config import TrainConfig
from pipeline.tasks.pretrain_baseline import train_baseline
from pipeline.errors import InputError
from pipeline.frames.video import VideoSource
from pipeline.models.config import ModelConfig
from pipeline.models.detector import Detector
from pipeline.models.presets import get_preset
from pipeline.models.checkpoint import save_stad_checkpoint
from pipeline.proposals.torchvision_detector import COCO_PERSON
from helpers.tiny_data import FPS, TinyData, build_tiny_data, files_of
from helpers.video import ffmpeg_rate_numbers, read_frame_number, write_video

REPO = Path(__file__).resolve().parents[1]
SECONDS = 6                  # 4 train keyframes (1..4): one batch of the smoke size
BOXES = ["x1", "y1", "x2", "y2"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _merged(base: dict, overlay: dict) -> dict:
    return {key: _merged(base[key], overlay[key]) if isinstance(overlay.get(key), dict)
            else overlay.get(key, base[key]) for key in base}


def smoke_settings(num_classes: int) -> tuple[dict, dict, ModelConfig, TrainConfig, DataConfig]:
    """The sizes and settings of params.yaml with presets/smoke.yaml applied, read as plain
    YAML (only the keys used here, so params keys being added elsewhere do not matter)."""
    params = _merged(yaml.safe_load((REPO / "params.yaml").read_text()),
                     yaml.safe_load((REPO / "presets" / "smoke.yaml").read_text()))
    baseline = params["baseline"]
    model = ModelConfig.from_dict({**asdict(get_preset(baseline["preset"])), **baseline["model"],
                                   "backbone": baseline["backbone"], "num_classes": num_classes})
    train = replace(_config(TrainConfig, baseline["train"]), num_workers=0, device="cpu")
    return params["data"]["synthetic"], params["frames"], model, train, _config(DataConfig,
                                                                                baseline["data"])


def _config(cls, values: dict):
    """``cls`` from the params keys it has (lists as tuples); the others keep their defaults."""
    names = {f.name for f in fields(cls)}
    return cls(**{key: tuple(value) if isinstance(value, list) else value
                  for key, value in values.items() if key in names})


def _files(data: TinyData) -> DatasetFiles:
    """The tiny data's files without its exclusion lists."""
    return replace(files_of(data), train_exclusions=None, val_exclusions=None)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[TinyData, Path, int]:
    """Tiny videos at the smoke preset's size and rate, and a baseline checkpoint trained on
    them for one epoch with the smoke preset's model, train and data settings."""
    root = tmp_path_factory.mktemp("detect")
    synthetic, frames, model, train, data_config = smoke_settings(num_classes=6)
    assert synthetic["fps"] == FPS
    data = build_tiny_data(root / "data", videos=2, seconds=SECONDS, width=synthetic["width"],
                           height=synthetic["height"], reach=tuple(frames["reach"]))
    assert max(data.label_map.ids) + 1 == model.num_classes
    train_baseline(files=_files(data), out_dir=root / "baseline",
                   checkpoint_dir=root / "checkpoints", model_config=model, train_config=train,
                   data_config=data_config, preset="tiny")
    return data, root / "baseline" / "model.pt", data_config.test_short_side


def _proposals(video_id: str) -> pd.DataFrame:
    """Two confident people per second of ``video_id``, a weak box the person threshold drops,
    and another video's keyframe that must be ignored."""
    rows = []
    for t in range(SECONDS):
        rows += [(video_id, t, 0.1, 0.2, 0.45, 0.9, 0.98), (video_id, t, 0.5, 0.1, 0.9, 0.8, 0.95),
                 (video_id, t, 0.0, 0.0, 0.2, 0.2, 0.3)]
    rows.append(("other", 3, 0.1, 0.1, 0.5, 0.5, 0.99))
    return pd.DataFrame(rows, columns=["video_id", "timestamp", *BOXES, "score"])


def _check_tables(out: Path, video_id: str) -> pd.DataFrame:
    """The CSV and the Parquet hold the same rows (CSV at 4 decimals), boxes normalised."""
    csv, table = read_results(out / "detections.csv"), read_results(out / "detections.parquet")
    assert len(csv) == len(table) > 0
    assert (csv["video_id"].astype(str) == video_id).all()
    assert csv["timestamp"].tolist() == table["timestamp"].tolist()
    assert csv["action_id"].tolist() == table["action_id"].tolist()
    for column in [*BOXES, "score"]:
        np.testing.assert_allclose(csv[column], table[column], atol=5.1e-5)
    boxes = table[BOXES].to_numpy()
    assert ((boxes >= 0) & (boxes <= 1)).all()
    assert (table["score"] >= 0.002).all()
    return table


def _check_video(path: Path, num_frames: int, size: tuple[int, int]) -> np.ndarray:
    reader = decord.VideoReader(str(path))
    assert len(reader) == num_frames
    frames = reader.get_batch(list(range(num_frames))).asnumpy()
    assert frames.shape == (num_frames, size[1], size[0], 3)
    return frames


def test_detect_with_proposal_pickle_writes_consistent_outputs(smoke, tmp_path, capsys):
    data, checkpoint, short_side = smoke
    video = data.root / "vid1.mp4"
    pickle_path = tmp_path / "proposals.pkl"
    write_proposal_pickle(pickle_path, _proposals("vid1"))
    out = tmp_path / "out"
    code = main(["detect", str(video), "--checkpoint", str(checkpoint), "--proposals",
                 str(pickle_path), "--label-map", str(data.label_map_path), "--out", str(out),
                 "--short-side", str(short_side), "--score-threshold", "0", "--device", "cpu"])
    assert code == 0
    assert f"{SECONDS} keyframes" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["annotated.mp4", "detections.csv",
                                                     "detections.parquet"]
    table = _check_tables(out, "vid1")
    # Keyframes at every whole second from 0; each one's two confident boxes (the weak one is
    # below the person threshold, the other video's key is ignored), label-map classes only.
    assert sorted(set(table["timestamp"])) == list(range(SECONDS))
    assert set(table["action_id"]) <= set(data.label_map.ids)
    boxes = {tuple(np.round(b, 4)) for b in table[BOXES].to_numpy(np.float64)}
    assert boxes == {(0.1, 0.2, 0.45, 0.9), (0.5, 0.1, 0.9, 0.8)}
    assert len(table) <= SECONDS * 2 * data.label_map.num_classes

    # The whole video, enlarged 4x (72 px short side -> 288), the boxes drawn in yellow.
    frames = _check_video(out / "annotated.mp4", SECONDS * FPS, (384, 288))
    frame = frames[2 * FPS + 5].astype(int)            # held from keyframe 2
    left_edge = frame[100:240, round(0.5 * 384)]      # the second box's left side
    assert (left_edge[:, 0] > 160).mean() > 0.9 and (left_edge[:, 2] < 110).mean() > 0.9


def test_detect_with_person_detector_and_no_label_map(smoke, tmp_path):
    data, checkpoint, short_side = smoke
    torch.manual_seed(0)
    person = detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None,
                                                             num_classes=91)
    with torch.no_grad():
        person.roi_heads.box_predictor.cls_score.bias[COCO_PERSON] = 8.0
    weights = tmp_path / "detector.pth"
    torch.save(person.state_dict(), weights)
    out = tmp_path / "out"
    code = main(["detect", str(data.root / "vid0.mp4"), "--checkpoint", str(checkpoint),
                 "--detector-weights", str(weights), "--detector-arch",
                 "fasterrcnn_mobilenet_v3_large_320_fpn", "--person-threshold", "0.5",
                 "--rate", "0.5", "--short-side", str(short_side), "--out", str(out),
                 "--device", "cpu"])
    assert code == 0
    table = _check_tables(out, "vid0")
    assert set(table["timestamp"]) <= set(range(0, SECONDS, 2))
    # Without --label-map, the classes the checkpoint was trained on (it records them).
    assert set(table["action_id"]) <= set(data.label_map.ids)
    assert len(set(table["action_id"])) > 1
    _check_video(out / "annotated.mp4", SECONDS * FPS, (384, 288))


def test_detect_with_proposals_parquet_follows_the_clock(smoke, tmp_path, capsys):
    """The pipeline's proposals table works too; its keyframes (1..4 s) are matched on the
    clock that --timestamp-start sets, and a clock that matches none of them is an error."""
    data, checkpoint, short_side = smoke
    args = ["detect", str(data.root / "vid1.mp4"), "--checkpoint", str(checkpoint),
            "--proposals", str(data.proposals_path), "--short-side", str(short_side),
            "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    table = _check_tables(tmp_path / "out", "vid1")
    assert sorted(set(table["timestamp"])) == [1, 2, 3, 4]
    capsys.readouterr()
    assert main([*args, "--timestamp-start", "900", "--out", str(tmp_path / "ava")]) == 2
    err = capsys.readouterr().err
    assert str(data.proposals_path) in err and "900..905" in err
    assert not (tmp_path / "ava").exists()


@pytest.fixture(scope="module")
def film(tmp_path_factory) -> Path:
    """5 s of numbered frames at 25 fps, the rate of many AVA movies."""
    return write_video(tmp_path_factory.mktemp("film") / "film.mp4", num_frames=125, fps=25)


AVA_CLOCK = {"frame_convention": "mmaction2", "timeline_fps": 30}


@pytest.mark.parametrize("recorded, flags, convention, timeline_fps", [
    (AVA_CLOCK, [], "mmaction2", 30),                   # an AVA preset's checkpoint
    ({}, [], "pyslowfast", None),                       # a checkpoint that records no clock
    ({"frame_convention": "pyslowfast", "timeline_fps": None}, ["--timeline-fps", "30"],
     "pyslowfast", 30),
    (AVA_CLOCK, ["--convention", "pyslowfast", "--native-timeline"], "pyslowfast", None),
])
def test_detect_reads_the_frames_of_the_checkpoints_clock(film, tmp_path, monkeypatch, recorded,
                                                          flags, convention, timeline_fps):
    """Each keyframe's clip is the one the checkpoint's frame store held: on a 25 fps film an
    AVA checkpoint reads the frames ffmpeg -r 30 gives (libavfilter's fps filter as the
    reference), its keyframe one frame late; the annotated video is on the same timeline."""
    config = replace(get_preset("tiny"), num_classes=6)
    checkpoint = tmp_path / "model.pt"
    save_stad_checkpoint(checkpoint, model=Detector(config), preset=None, **recorded)
    pickle_path = tmp_path / "proposals.pkl"
    write_proposal_pickle(pickle_path, _proposals("film"))
    shown: list[list[int]] = []
    iter_clips = VideoSource.iter_clips

    def spy(self, indices, **kwargs):
        for clip in iter_clips(self, indices, **kwargs):
            shown.append([read_frame_number(frame) for frame in clip])
            yield clip

    monkeypatch.setattr(VideoSource, "iter_clips", spy)
    out = tmp_path / "out"
    assert main(["detect", str(film), "--checkpoint", str(checkpoint), "--proposals",
                 str(pickle_path), "--short-side", "48", "--device", "cpu", "--out", str(out),
                 *flags]) == 0
    frames = ffmpeg_rate_numbers(film, 30) if timeline_fps else list(range(125))
    assert len(frames) == (150 if timeline_fps else 125)
    assert len(shown) == 5        # keyframes at 0..4 s
    for t, clip in enumerate(shown):
        wanted = clip_frame_indices(t, fps=timeline_fps or 25, timestamp_start=0,
                                    clip_len=config.clip_len,
                                    frame_interval=config.frame_interval,
                                    convention=convention, num_frames=len(frames))
        assert clip == [frames[k] for k in wanted], (t, clip)
    # the annotated video is the source's: its frames, at its rate
    annotated = decord.VideoReader(str(out / "annotated.mp4"))
    assert len(annotated) == 125 and annotated.get_avg_fps() == pytest.approx(25)


@pytest.fixture(scope="module")
def lfb_checkpoint(tmp_path_factory) -> Path:
    config = replace(get_preset("tiny"), num_classes=6, relation="lfb_max", lfb_channels=16,
                     lfb_num_lt_feat=4)
    path = tmp_path_factory.mktemp("lfb") / "head.pt"
    save_stad_checkpoint(path, model=Detector(config), preset=None)
    return path


@pytest.mark.parametrize("case", ["neither", "both", "missing_video", "unreadable_video",
                                  "missing_checkpoint", "other_video_proposals", "lfb_head",
                                  "rate"])
def test_detect_bad_input_is_one_line_and_exit_2(case, smoke, lfb_checkpoint, tmp_path, capsys):
    data, checkpoint, _ = smoke
    video = data.root / "vid1.mp4"
    pickle_path = tmp_path / "proposals.pkl"
    write_proposal_pickle(pickle_path, _proposals("another_video"))
    source = ["--proposals", str(pickle_path)]
    extra, named = [], None
    if case == "neither":
        source, named = [], "exactly one"
    elif case == "both":
        source, named = source + ["--detector-weights", str(tmp_path / "w.pth")], "exactly one"
    elif case == "missing_video":
        video = named = tmp_path / "nothing.mp4"
    elif case == "unreadable_video":
        video = named = tmp_path / "broken.mp4"
        video.write_bytes(b"not a video")
    elif case == "missing_checkpoint":
        checkpoint = named = tmp_path / "none.pt"
    elif case == "other_video_proposals":
        named = pickle_path
    elif case == "lfb_head":
        checkpoint, named = lfb_checkpoint, "lfb_max"
    elif case == "rate":
        extra, named = ["--rate", "2"], "1/N"
    out = tmp_path / "out"
    code = main(["detect", str(video), "--checkpoint", str(checkpoint), *source,
                 "--out", str(out), "--device", "cpu", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert str(named) in err and "Traceback" not in err
    if case == "lfb_head":
        assert "feature bank" in err
    assert not out.exists()


def test_zero_epochs_scores_the_initial_checkpoint_as_is(smoke, tmp_path):
    """``baseline.train.epochs: 0`` scores ``init_checkpoint`` without training (how a released
    checkpoint is evaluated): the same detections as the run that trained it."""
    data, checkpoint, _ = smoke
    _, _, model, train, data_config = smoke_settings(num_classes=6)
    kwargs = dict(files=_files(data), out_dir=tmp_path / "scored",
                  checkpoint_dir=tmp_path / "checkpoints", model_config=model,
                  train_config=replace(train, epochs=0), data_config=data_config, preset="tiny")
    with pytest.raises(InputError, match="init_checkpoint"):
        train_baseline(**kwargs)
    metrics = train_baseline(**kwargs, init_checkpoint=checkpoint)
    assert metrics["epochs"] == 0 and metrics["train_loss"] is None
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "scored/val_detections.parquet"),
                                  pd.read_parquet(checkpoint.parent / "val_detections.parquet"))
    assert (tmp_path / "scored/steps.csv").read_text().startswith("step,")
