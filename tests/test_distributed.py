"""The training entry point under torchrun: 2 CPU ranks over gloo, from the same code path."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from pipeline.ava.results import read_results
from pipeline.proposals.table import filter_proposals
from pipeline.engine.checkpoint import checkpoint_files, finished_runs
from pipeline.engine.train import parameter_digest
from pipeline.models.checkpoint import build_detector_from_checkpoint
from pipeline.frames.spec import clip_reach
from helpers.tiny_data import build_tiny_data
from helpers.tiny_training import baseline_group, stage_command

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One 2-rank run: 11 train keyframes, 2 clips per rank and step -> 3 steps in 1 epoch,
    a checkpoint after each step (the 2 newest kept), validation sharded over both ranks."""
    root = tmp_path_factory.mktemp("ddp")
    data = build_tiny_data(root / "data", videos=3, seconds=8, width=64, height=48,
                           reach=clip_reach(8, 8, False))
    group = baseline_group(epochs=1, batch_size=2, checkpoint_every_steps=1, device="cpu",
                           deterministic=False)
    command, cwd = stage_command(data, root, group, launcher=(
        "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_both_ranks_hold_the_same_weights_after_each_step(run):
    assert checkpoint_files(run / "checkpoints") == []     # a finished run moves aside
    checkpoints = checkpoint_files(finished_runs(run / "checkpoints")[-1])
    assert [p.name for p in checkpoints] == ["step_000000002.pt", "step_000000003.pt"]
    for path in checkpoints:
        state = torch.load(path, weights_only=False)
        assert len(state["replica_digests"]) == 2 and len(state["rng"]) == 2
        assert state["replica_digests"][0] == state["replica_digests"][1]
        model = build_detector_from_checkpoint(run / "out" / "model.pt")
        model.load_state_dict(state["model"])
        assert parameter_digest(model) == state["replica_digests"][0]
    first = torch.load(checkpoints[0], weights_only=False)["model"]
    last = torch.load(checkpoints[1], weights_only=False)["model"]
    assert any(not torch.equal(first[k], last[k]) for k in first)    # the second step moved them
    final = build_detector_from_checkpoint(run / "out" / "model.pt")
    assert parameter_digest(final) == state["replica_digests"][0]


def test_sharded_validation_scores_every_val_keyframe_once(run):
    data_root = run / "data"
    detections = read_results(run / "out" / "val_detections.parquet")
    val = pd.read_csv(data_root / "ava_val.csv", header=None, names=["video_id", "timestamp"],
                      usecols=[0, 1]).drop_duplicates()
    excluded = pd.read_csv(data_root / "ava_val_excluded.csv", header=None,
                           names=["video_id", "timestamp"])
    val = val[~val["timestamp"].isin(excluded["timestamp"])]
    proposals = filter_proposals(pd.read_parquet(data_root / "proposals.parquet"), min_score=0.9,
                                 max_per_keyframe=1000)
    # The stage keeps (box, class) rows scoring above MIN_ACTION_SCORE, as mmaction2 writes
    # them: every val keyframe appears, each (box, class) once (no padded duplicates), and
    # only its own proposals' boxes.
    per_keyframe = detections.groupby(["video_id", "timestamp"], observed=True)
    assert sorted(per_keyframe.groups) == sorted(zip(val["video_id"], val["timestamp"]))
    assert not detections.duplicated(["video_id", "timestamp", "x1", "y1", "x2", "y2",
                                      "action_id"]).any()
    for (video_id, timestamp), rows in per_keyframe:
        boxes = proposals[(proposals["video_id"] == video_id) & (proposals["timestamp"] == timestamp)]
        assert len(rows) <= 3 * len(boxes)
        own = {tuple(b) for b in boxes[["x1", "y1", "x2", "y2"]].to_numpy("float32").round(4)}
        assert {tuple(b) for b in rows[["x1", "y1", "x2", "y2"]].to_numpy("float32").round(4)} <= own
    report = json.loads((run / "out" / "report.json").read_text())
    assert report["val_clips"] == len(val) and report["steps"] == 3
    assert len(pd.read_csv(run / "out" / "steps.csv")) == 3
