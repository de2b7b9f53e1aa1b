"""Person proposals: table, pickle source, simulated and torchvision detectors, metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from torchvision.models import detection

from pipeline.ava.proposals import write_proposal_pickle
from pipeline.errors import InputError
from pipeline.frames.extract import extract_frames
from pipeline.frames.spec import FrameSpec
from pipeline.frames.store import FrameStore
from pipeline.proposals.metrics import proposal_metrics
from pipeline.proposals.pickle_source import proposals_from_pickle
from pipeline.proposals.simulate import SimulatedDetector
from pipeline.proposals.table import PROPOSAL_SCHEMA, read_proposals, write_proposals
from pipeline.boxes import paired_iou
from pipeline.proposals.torchvision_detector import COCO_PERSON, detect_persons
from helpers.video import write_video

BOXES = ["x1", "y1", "x2", "y2"]


def _gt(rng: np.random.Generator, n_keyframes: int = 40, per_frame: int = 3) -> pd.DataFrame:
    rows = []
    for k in range(n_keyframes):
        for _ in range(per_frame):
            x1, y1 = rng.uniform(0, 0.6, 2)
            w, h = rng.uniform(0.1, 0.4, 2)
            rows.append((f"v{k % 4}", 900 + k, x1, y1, x1 + w, y1 + h))
    return pd.DataFrame(rows, columns=["video_id", "timestamp", *BOXES])


def _table(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["video_id", "timestamp", *BOXES, "score"])


def test_iou_pairs_against_hand_computed_values():
    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=float)
    b = np.array([[1, 1, 3, 3], [0, 0, 1, 1], [2, 2, 3, 3]], dtype=float)
    np.testing.assert_allclose(paired_iou(a, b), [1 / 7, 1.0, 0.0])


def test_metrics_count_recall_and_boxes_per_keyframe():
    gt = pd.DataFrame([("a", 1, 0.1, 0.1, 0.5, 0.5), ("a", 1, 0.1, 0.1, 0.5, 0.5),  # same person
                       ("a", 1, 0.6, 0.6, 0.9, 0.9), ("b", 2, 0.0, 0.0, 1.0, 1.0)],
                      columns=["video_id", "timestamp", *BOXES])
    proposals = _table([("a", 1, 0.1, 0.1, 0.5, 0.45, 0.9),   # IoU 0.875 with the first person
                        ("a", 1, 0.6, 0.6, 0.7, 0.7, 0.8),    # IoU 0.11 with the second
                        ("a", 1, 0.0, 0.0, 0.1, 0.1, 0.1),
                        ("a", 2, 0.6, 0.6, 0.9, 0.9, 0.9)])   # another keyframe: no match
    metrics = proposal_metrics(proposals, gt)
    assert metrics["gt_boxes"] == 3 and metrics["gt_keyframes"] == 2
    assert metrics["recall"] == pytest.approx(1 / 3)
    assert metrics["mean_boxes_per_keyframe"] == pytest.approx(1.5)
    assert metrics["max_boxes_per_keyframe"] == 3
    assert metrics["keyframes_without_proposals"] == 1
    assert proposal_metrics(proposals, gt, iou=0.1)["recall"] == pytest.approx(2 / 3)


def test_proposals_table_round_trip_is_sorted_and_typed(tmp_path):
    table = _table([("b", 3, 0.1, 0.1, 0.2, 0.2, 0.5), ("a", 7, 0.1, 0.1, 0.2, 0.2, 0.4),
                    ("a", 7, 0.3, 0.3, 0.4, 0.4, 0.9), ("a", 2, 0.0, 0.0, 1.0, 1.0, 0.1)])
    write_proposals(tmp_path / "p.parquet", table)
    assert pq.read_schema(tmp_path / "p.parquet").equals(PROPOSAL_SCHEMA, check_metadata=False)
    back = read_proposals(tmp_path / "p.parquet")
    scores = back["score"].astype(float).round(2)
    assert list(zip(back["video_id"], back["timestamp"], scores)) == [
        ("a", 2, 0.1), ("a", 7, 0.9), ("a", 7, 0.4), ("b", 3, 0.5)]
    with pytest.raises(InputError, match="row 0"):
        write_proposals(tmp_path / "bad.parquet", _table([("a", 1, 0.5, 0.1, 0.4, 0.2, 0.3)]))
    assert not (tmp_path / "bad.parquet").exists()


def test_pickle_source_applies_threshold_with_top1_fallback(tmp_path):
    rows = _table([("vid-1", 902, 0.1, 0.1, 0.2, 0.2, 0.95),
                   ("vid-1", 902, 0.3, 0.3, 0.4, 0.4, 0.5),
                   ("vid-1", 903, 0.1, 0.1, 0.2, 0.2, 0.3),
                   ("vid-1", 903, 0.5, 0.5, 0.6, 0.6, 0.6),
                   ("-x", 904, 0.1, 0.1, 0.9, 0.9, 0.92), ("-x", 904, 0.2, 0.2, 0.8, 0.8, 0.99)])
    write_proposal_pickle(tmp_path / "dense.pkl", rows)
    proposals = proposals_from_pickle(tmp_path / "dense.pkl", score_thr=0.9, max_per_frame=1000)
    got = list(zip(proposals["video_id"], proposals["timestamp"],
                   proposals["score"].astype(float).round(2)))
    # 902 keeps its box above 0.9; 903 has none above 0.9 and keeps only its best (0.6).
    assert got == [("-x", 904, 0.99), ("-x", 904, 0.92), ("vid-1", 902, 0.95),
                   ("vid-1", 903, 0.6)]
    assert proposals_from_pickle(tmp_path / "dense.pkl", score_thr=0.9, max_per_frame=1)[
        "score"].astype(float).round(2).tolist() == [0.99, 0.95, 0.6]


def test_simulated_detector_follows_its_parameters():
    gt = _gt(np.random.default_rng(0), n_keyframes=400, per_frame=3)
    detector = SimulatedDetector(recall=0.7, box_noise=0.02, false_positives_per_frame=2.0,
                                 score_mean_tp=0.9, score_mean_fp=0.2, score_spread=0.5, seed=3)
    proposals = detector.detect(gt)
    pd.testing.assert_frame_equal(proposals, detector.detect(gt.sample(frac=1, random_state=1)))
    boxes = proposals[BOXES].to_numpy()
    assert ((boxes >= 0) & (boxes <= 1)).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert proposals.dtypes["score"] == np.float32 and proposals.dtypes["timestamp"] == np.int32
    # ~70% of 1200 persons found plus ~2 x 400 false positives.
    assert abs(len(proposals) - (0.7 * 1200 + 2.0 * 400)) < 100
    metrics = proposal_metrics(proposals, gt)
    assert 0.64 < metrics["recall"] < 0.76
    assert (proposals["score"] > 0.5).mean() == pytest.approx(0.7 * 1200 / len(proposals), abs=0.06)
    perfect = SimulatedDetector(recall=1.0, box_noise=0.0, false_positives_per_frame=0.0).detect(gt)
    assert proposal_metrics(perfect, gt, iou=0.99)["recall"] == 1.0
    assert len(perfect) == len(gt)
    # Lowering recall drops boxes without moving the rest.
    fewer = SimulatedDetector(recall=0.5, box_noise=0.02, false_positives_per_frame=0.0,
                              score_mean_tp=0.9, score_mean_fp=0.2, score_spread=0.5,
                              seed=3).detect(gt)
    merged = fewer.merge(proposals, on=["video_id", "timestamp", *BOXES, "score"])
    assert len(merged) == len(fewer)


def test_simulated_detector_rejects_bad_parameters():
    with pytest.raises(InputError) as info:
        SimulatedDetector(recall=1.5)
    assert info.value.key == "proposals.simulated.recall"
    with pytest.raises(InputError, match="lacks columns"):
        SimulatedDetector().detect(pd.DataFrame({"video_id": ["a"], "timestamp": [1]}))


@pytest.fixture(scope="module")
def frame_store(tmp_path_factory) -> FrameStore:
    root = tmp_path_factory.mktemp("detector")
    videos = {"a": write_video(root / "a.mp4", num_frames=40, fps=10),
              "b": write_video(root / "b.mp4", num_frames=40, fps=10)}
    keyframes = pd.DataFrame({"video_id": ["a", "a", "a", "b", "b"],
                              "timestamp": [1, 2, 3, 1, 2], "split": "val"})
    spec = FrameSpec(short_side=32, timestamp_start=0, reach=(4, 3), shard_frames=16)
    extract_frames(videos, keyframes, root / "frames.zarr", root / "keyframes.parquet", spec,
                   progress=False)
    return FrameStore(root / "frames.zarr")


@pytest.fixture(scope="module")
def person_weights(tmp_path_factory):
    """A random mobilenet Faster R-CNN whose classifier favours 'person' (plumbing only)."""
    torch.manual_seed(0)
    model = detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None,
                                                            num_classes=91)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.bias[COCO_PERSON] = 8.0
    path = tmp_path_factory.mktemp("weights") / "detector.pth"
    torch.save(model.state_dict(), path)
    return path


def test_torchvision_detector_output_format_and_resume(tmp_path, frame_store, person_weights):
    arch = "fasterrcnn_mobilenet_v3_large_320_fpn"
    proposals = detect_persons(frame_store, weights_path=person_weights, arch=arch,
                               score_thr=0.5, batch_size=2, device="cpu", progress=False,
                               checkpoint_dir=tmp_path / "ckpt")
    assert list(proposals.columns) == PROPOSAL_SCHEMA.names
    assert proposals.dtypes["score"] == np.float32
    keys = set(zip(proposals["video_id"], proposals["timestamp"]))
    assert keys == {("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2)}
    boxes = proposals[BOXES].to_numpy()
    assert ((boxes >= 0) & (boxes <= 1)).all() and (proposals["score"] >= 0.5).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    order = proposals.sort_values(["video_id", "timestamp", "score"],
                                  ascending=[True, True, False], kind="stable")
    assert order.index.tolist() == list(range(len(proposals)))
    write_proposals(tmp_path / "p.parquet", proposals)
    # A rerun with the same settings reads the finished videos back instead of detecting.
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("*.parquet")) == ["a.parquet",
                                                                             "b.parquet"]
    marker = _table([("a", 1, 0.0, 0.0, 1.0, 1.0, 0.77)]).astype(
        {"timestamp": np.int32, **{c: np.float32 for c in [*BOXES, "score"]}})
    marker.to_parquet(tmp_path / "ckpt" / "a.parquet")
    again = detect_persons(frame_store, weights_path=person_weights, arch=arch, score_thr=0.5,
                           batch_size=2, device="cpu", progress=False,
                           checkpoint_dir=tmp_path / "ckpt")
    assert again[again["video_id"] == "a"]["score"].tolist() == pytest.approx([0.77])
    pd.testing.assert_frame_equal(again[again["video_id"] == "b"].reset_index(drop=True),
                                  proposals[proposals["video_id"] == "b"].reset_index(drop=True))
    # A subset of keyframes, and a threshold nothing passes.
    subset = detect_persons(frame_store, weights_path=person_weights, arch=arch, score_thr=1.0,
                            device="cpu", progress=False,
                            keyframes=pd.DataFrame({"video_id": ["b"], "timestamp": [2]}))
    assert len(subset) == 0 and list(subset.columns) == PROPOSAL_SCHEMA.names


def test_torchvision_detector_input_errors(tmp_path, frame_store, person_weights):
    with pytest.raises(InputError) as info:
        detect_persons(frame_store, weights_path=tmp_path / "none.pth", device="cpu")
    assert info.value.path == str(tmp_path / "none.pth")
    with pytest.raises(InputError, match="not a state dict of fasterrcnn_resnet50_fpn"):
        detect_persons(frame_store, weights_path=person_weights, device="cpu", progress=False)
    with pytest.raises(InputError, match="unknown architecture"):
        detect_persons(frame_store, weights_path=person_weights, arch="yolo", device="cpu")
    with pytest.raises(InputError, match="not in the frame store"):
        detect_persons(frame_store, weights_path=person_weights,
                       arch="fasterrcnn_mobilenet_v3_large_320_fpn", device="cpu", progress=False,
                       keyframes=pd.DataFrame({"video_id": ["a"], "timestamp": [9]}))
    if not torch.cuda.is_available():
        with pytest.raises(InputError) as info:
            detect_persons(frame_store, weights_path=person_weights, device="cuda")
        assert info.value.key == "proposals.detector.device"
