"""The backbone seam (``pipeline.models.backbones``): one table of plain classes, an unknown
name refused, every backbone answering the same interface, and a toy backbone added with one
module (tests/helpers/toy_backbone.py) plus one table entry, trained by the baseline stage."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from helpers.toy_backbone import ToyBackbone
from pipeline.errors import InputError
from pipeline.models.backbones import BACKBONES, build_backbone
from pipeline.models.checkpoint import read_stad_checkpoint
from pipeline.models.config import ModelConfig
from pipeline.models.detector import Detector
from pipeline.models.presets import PRESETS
from pipeline.params.all import load_all
from pipeline.params.overlay import apply_overlay
from pipeline.tasks import extract_frames, make_dataset, pretrain_baseline, proposals

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_unknown_backbone_is_an_error_naming_the_table():
    with pytest.raises(ValueError, match=r"ModelConfig\.backbone='i3d': must be one of "
                                         r"slowonly, slowfast, vit"):
        Detector(ModelConfig(backbone="i3d"))


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_answers_the_seam(name):
    config = {"slowonly": PRESETS["tiny"], "slowfast": ModelConfig(backbone="slowfast", clip_len=8,
              resample_rate=4, speed_ratio=4, base_channels=8),
              "vit": PRESETS["tiny-vit"]}[name]
    backbone = build_backbone(config)
    assert type(backbone) is BACKBONES[name]
    clips = torch.randn(1, 3, config.clip_len, 64, 96)
    maps = backbone(clips)
    assert isinstance(maps, tuple)
    assert len(maps) == len(backbone.output_channels) == len(backbone.temporal_strides)
    for feature, channels, stride in zip(maps, backbone.output_channels,
                                         backbone.temporal_strides):
        assert feature.shape == (1, channels, config.clip_len // stride,
                                 64 // backbone.output_stride, 96 // backbone.output_stride)
    layers = {backbone.lr_layer_id(n) for n, _ in backbone.named_parameters()}
    assert layers <= set(range(backbone.num_lr_layers))
    for key in backbone.recognizer_only_keys:
        assert not any(k.startswith(key) for k in backbone.state_dict())
    for key in backbone.detector_only_keys:
        assert any(k.startswith(key) for k in backbone.state_dict())


def test_cnn_backbones_have_no_layer_decay():
    for backbone in (build_backbone(PRESETS["tiny"]),):
        assert backbone.num_lr_layers == 1
        assert all(backbone.lr_layer_id(n) == 0 and not backbone.no_weight_decay(n, p)
                   for n, p in backbone.named_parameters())


@pytest.fixture
def toy_in_table(monkeypatch):
    """The one table entry that adds the toy backbone."""
    monkeypatch.setitem(BACKBONES, "toy", ToyBackbone)


def test_toy_backbone_trains_through_the_baseline_stage(toy_in_table, tmp_path, monkeypatch):
    """The smoke preset's DAG inputs, made by their own stages, then ``pretrain_baseline.run``
    with ``baseline.backbone: toy``: a trained checkpoint of the toy's layout and val scores."""
    params_file = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params_file)
    apply_overlay(params_file, REPO / "presets" / "smoke.yaml")
    overlay = tmp_path / "toy.yaml"
    overlay.write_text("baseline:\n  backbone: toy\n  train:\n    epochs: 1\n")
    apply_overlay(params_file, overlay)
    params = load_all(params_file)
    assert params.baseline.backbone == "toy"

    dataset, frames = tmp_path / "dataset", tmp_path / "frames"
    props = tmp_path / "proposals.parquet"
    make_dataset.run(params, out=dataset, metrics=tmp_path / "dataset.json")
    extract_frames.run(params, dataset=dataset, out=frames, metrics=tmp_path / "frames.json")
    proposals.run(params, dataset=dataset, frames=frames, out=props,
                  metrics=tmp_path / "proposals.json")
    out = tmp_path / "baseline"
    pretrain_baseline.run(params, dataset=dataset, frames=frames, proposals=props, out=out,
                          checkpoints=tmp_path / "checkpoints")

    checkpoint = read_stad_checkpoint(out / "model.pt")
    assert checkpoint.config.backbone == "toy"
    assert sorted(k for k in checkpoint.state_dict if k.startswith("backbone.")) == [
        "backbone.conv.bias", "backbone.conv.weight"]
    report = json.loads((out / "report.json").read_text())
    assert report["epochs"] == 1 and math.isfinite(report["train_loss"])
    assert 0.0 <= json.loads((out / "metrics.json").read_text())["val_mAP"] <= 1.0


@pytest.mark.parametrize("edits, key, message", [
    ({"backbone": "i3d"}, "baseline.backbone", "must be one of slowonly, slowfast, vit"),
    ({"backbone": "vit", "model": {"clip_len": 5}}, "baseline.model.clip_len",
     "not a multiple of tubelet_size=2"),
    ({"backbone": "slowfast", "model": {"clip_len": 4}}, "baseline.model.clip_len",
     "multiple of resample_rate"),
])
def test_params_loading_leaves_the_backbone_to_the_stage_which_names_the_key(
        tmp_path, edits, key, message):
    """Params load without torch, so a backbone's own checks run when the stage asks
    (``BaselineParams.check_backbone``); the error names the params key."""
    params_file = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params_file)
    overlay = tmp_path / "edit.yaml"
    overlay.write_text(yaml.safe_dump({"baseline": edits}))
    apply_overlay(params_file, overlay)
    baseline = load_all(params_file).baseline
    with pytest.raises(InputError, match=message) as info:
        baseline.check_backbone(baseline.model_config(num_classes=81))
    assert info.value.key == key
    shutil.copy(REPO / "params.yaml", params_file)
    baseline = load_all(params_file).baseline
    baseline.check_backbone(baseline.model_config(num_classes=81))   # the default is fine


def test_the_baseline_stage_names_a_bad_backbone_key_before_reading_data(tmp_path):
    params_file = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params_file)
    overlay = tmp_path / "edit.yaml"
    overlay.write_text(yaml.safe_dump({"baseline": {"backbone": "vit", "model": {"clip_len": 5}}}))
    apply_overlay(params_file, overlay)
    missing = tmp_path / "not-made-yet"
    with pytest.raises(InputError, match="tubelet_size") as info:
        pretrain_baseline.run(load_all(params_file), dataset=missing, frames=missing,
                              proposals=missing / "proposals.parquet", out=tmp_path / "out",
                              checkpoints=tmp_path / "checkpoints")
    assert info.value.key == "baseline.model.clip_len"
