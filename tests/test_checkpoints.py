"""mmaction2 checkpoints: strict detector loads, recognizer loads, bad checkpoints, the
project's own format and the ``checkpoint`` command. Checkpoints are written in mmaction2's
layout (``{"meta": ..., "state_dict": ...}``) from the independent expected key lists."""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import InputError
from pipeline.models.config import ModelConfig
from pipeline.models.detector import Detector
from pipeline.models.presets import PRESETS
from pipeline.models.checkpoint import (BankRecipe, build_detector_from_checkpoint, convert,
                                        inspect_state_dict, load_into,
                                        load_mmaction2_checkpoint, load_stad_checkpoint,
                                        read_stad_checkpoint, save_stad_checkpoint)
from pipeline.models.command import add_checkpoint_command
from helpers.zoo_layout import expected_layout, random_state

SLOWFAST_8X8 = "slowfast_kinetics400-pretrained-r50_8xb8-8x8x1-20e_ava21-rgb"


@dataclass
class HistoryBuffer:
    """Stands for mmengine's logging buffer, a non-tensor object inside ``message_hub``."""

    values: np.ndarray




def write_mmaction2(path: Path, state: dict, *, plain_meta: bool = False) -> Path:
    """An mmengine-style checkpoint: state_dict plus meta/message_hub with non-tensor objects."""
    meta = {"mmengine_version": "0.8.4", "epoch": 20, "seed": 0}
    checkpoint = {"meta": meta, "state_dict": state}
    if not plain_meta:
        checkpoint["message_hub"] = {"log_scalars": {"train/loss": HistoryBuffer(np.arange(3.0))}}
    torch.save(checkpoint, path)
    return path


def recognizer_state(name: str, seed: int = 0) -> OrderedDict:
    layout = {k: s for k, s in expected_layout(name).items() if k.startswith("backbone.")}
    channels = next(s[1] for k, s in expected_layout(name).items() if k.endswith("fc_cls.weight"))
    layout["cls_head.fc_cls.weight"] = (400, channels)
    layout["cls_head.fc_cls.bias"] = (400,)
    return random_state(layout, seed)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="stad")
    add_checkpoint_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


# ---------------------------------------------------------------- loading

def test_detector_checkpoint_with_mmengine_extras_loads_strictly(tmp_path):
    state = random_state(expected_layout("tiny"))
    path = write_mmaction2(tmp_path / "det.pth", state)
    with pytest.raises(pickle.UnpicklingError):  # the extras really need the safe fallback
        torch.load(path, weights_only=True)
    loaded = load_mmaction2_checkpoint(path)
    model = Detector(PRESETS["tiny"])
    report = load_into(model, loaded, path=path)
    assert report.ok and report.kind == "detector" and report.num_tensors == len(state)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_full_size_zoo_layout_inspects_clean_via_command(tmp_path, capsys):
    path = write_mmaction2(tmp_path / "sf.pth", random_state(expected_layout(SLOWFAST_8X8)))
    assert run_cli("checkpoint", "inspect", str(path), "--preset", SLOWFAST_8X8) == 0
    out = capsys.readouterr().out
    assert "detector checkpoint" in out and out.strip().endswith("OK")
    # the same file does not fit the 4x16 preset: lateral kernels are 5 there, not 7
    other = "slowfast_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb"
    assert run_cli("checkpoint", "inspect", str(path), "--preset", other) == 1
    out = capsys.readouterr().out
    assert "backbone.slow_path.conv1_lateral.conv.weight [16, 8, 7, 1, 1] vs [16, 8, 5, 1, 1]" in out


def test_recognizer_checkpoint_loads_backbone_and_drops_cls_head(tmp_path):
    state = recognizer_state("tiny")
    path = write_mmaction2(tmp_path / "k400.pth", state)
    torch.manual_seed(0)
    model = Detector(PRESETS["tiny"])
    head_before = model.roi_head.bbox_head.fc_cls.weight.clone()
    report = load_into(model, load_mmaction2_checkpoint(path))
    assert report.ok and report.kind == "recognizer"
    assert report.ignored == ["cls_head.fc_cls.bias", "cls_head.fc_cls.weight"]
    assert report.fresh == ["roi_head.bbox_head.fc_cls.bias", "roi_head.bbox_head.fc_cls.weight"]
    assert torch.equal(model.backbone.conv1.conv.weight, state["backbone.conv1.conv.weight"])
    assert torch.equal(model.roi_head.bbox_head.fc_cls.weight, head_before)


@pytest.mark.parametrize("damage", ["missing", "extra", "shape"])
def test_bad_checkpoint_is_reported_and_exits_nonzero(tmp_path, capsys, damage):
    state = random_state(expected_layout("tiny"))
    key = "backbone.layer3.0.conv1.conv.weight"
    if damage == "missing":
        del state[key]
    elif damage == "extra":
        state["backbone.layer5.0.conv1.conv.weight"] = torch.zeros(1)
    else:
        state[key] = torch.zeros(32, 64, 1, 1, 1)  # not inflated: wrong temporal kernel
    path = write_mmaction2(tmp_path / "bad.pth", state)

    report = inspect_state_dict(load_mmaction2_checkpoint(path), Detector(PRESETS["tiny"]))
    assert not report.ok
    if damage == "missing":
        assert report.missing == [key]
    elif damage == "extra":
        assert report.unexpected == ["backbone.layer5.0.conv1.conv.weight"]
    else:
        assert report.mismatched == [(key, (32, 64, 1, 1, 1), (32, 64, 3, 1, 1))]

    assert run_cli("checkpoint", "inspect", str(path), "--preset", "tiny") == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and ("layer5" in out if damage == "extra" else key in out)

    out_path = tmp_path / "converted.pth"
    with pytest.raises(InputError, match="does not fit"):
        run_cli("checkpoint", "convert", str(path), "--preset", "tiny", "--out", str(out_path))
    assert not out_path.exists() and not (tmp_path / "converted.pth.partial").exists()
    with pytest.raises(InputError, match="bad.pth"):
        load_into(Detector(PRESETS["tiny"]), load_mmaction2_checkpoint(path), path=path)


def test_unreadable_and_missing_files_name_the_path(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(InputError, match="garbage.pth"):
        load_mmaction2_checkpoint(garbage)
    with pytest.raises(InputError, match="not found"):
        load_mmaction2_checkpoint(tmp_path / "absent.pth")
    not_tensors = tmp_path / "list.pth"
    torch.save({"state_dict": {"backbone.x": [1, 2]}}, not_tensors)
    with pytest.raises(InputError, match="backbone.x"):
        load_mmaction2_checkpoint(not_tensors)


class CallsOnLoad:
    """Unpickles by calling ``function(*args)``: what a malicious checkpoint would do."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def test_checkpoint_code_never_runs_on_load(tmp_path):
    source = tmp_path / "source.txt"
    source.write_text("x")
    copied = tmp_path / "copied.txt"
    path = tmp_path / "sneaky.pth"
    torch.save({"meta": {"hook": CallsOnLoad(shutil.copyfile, str(source), str(copied))},
                "state_dict": {"w": torch.ones(1)}}, path)
    assert torch.equal(load_mmaction2_checkpoint(path)["w"], torch.ones(1))
    assert not copied.exists()

    blocked = tmp_path / "blocked.pth"
    made = tmp_path / "made"
    torch.save({"meta": CallsOnLoad(os.makedirs, str(made)), "state_dict": {}}, blocked)
    with pytest.raises(InputError, match="blocked.pth"):
        load_mmaction2_checkpoint(blocked)
    assert not made.exists()


def test_unknown_preset_in_command_lists_valid_names(tmp_path):
    path = write_mmaction2(tmp_path / "det.pth", random_state(expected_layout("tiny")),
                           plain_meta=True)
    with pytest.raises(InputError) as info:
        run_cli("checkpoint", "inspect", str(path), "--preset", "slowonly_r50")
    assert "slowonly_r50" in str(info.value) and "tiny" in str(info.value)
    assert SLOWFAST_8X8 in str(info.value)


# ---------------------------------------------------------------- project format

def test_convert_writes_stad_format_that_rebuilds_the_model(tmp_path, capsys):
    state = random_state(expected_layout("tiny"))
    source = write_mmaction2(tmp_path / "det.pth", state)
    out = tmp_path / "out" / "tiny.pth"
    assert run_cli("checkpoint", "convert", str(source), "--preset", "tiny", "--out", str(out)) == 0
    assert "wrote" in capsys.readouterr().out

    raw = torch.load(out, weights_only=True)
    assert raw["format"] == "stad-v1" and raw["preset"] == "tiny"
    config, state_dict, preset = load_stad_checkpoint(out)
    assert config == PRESETS["tiny"] and preset == "tiny"
    assert all(torch.equal(state_dict[k], v) for k, v in state.items())

    model = build_detector_from_checkpoint(out).eval()
    reference = Detector(PRESETS["tiny"]).eval()
    load_into(reference, state)
    clips, rois = torch.randn(1, 3, 8, 64, 64), torch.tensor([[0, 2.0, 2.0, 40.0, 60.0]])
    assert torch.allclose(model(clips, rois), reference(clips, rois))
    assert all(p.requires_grad and p.device.type == "cpu" for p in model.parameters())


def test_convert_from_recognizer_is_deterministic(tmp_path):
    source = write_mmaction2(tmp_path / "k400.pth", recognizer_state("tiny"))
    first = convert(source, preset="tiny", out=tmp_path / "a.pth")
    convert(source, preset="tiny", out=tmp_path / "b.pth")
    assert first.kind == "recognizer"
    _, a, _ = load_stad_checkpoint(tmp_path / "a.pth")
    _, b, _ = load_stad_checkpoint(tmp_path / "b.pth")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_stad_loader_rejects_mmaction2_files(tmp_path):
    source = write_mmaction2(tmp_path / "det.pth", random_state(expected_layout("tiny")))
    with pytest.raises(InputError, match="format"):
        load_stad_checkpoint(source)


def test_stad_file_with_the_earlier_config_field_names_reads_as_today(tmp_path):
    """A file whose configs (the model's and its bank recipe's baseline) store ``classifier``
    and ``relation`` as ``head`` and ``shared_head`` reads as the same configs."""
    config = replace(PRESETS["tiny"], num_classes=6, classifier="mlp", relation="lfb_max",
                     lfb_channels=256, lfb_num_lt_feat=4)
    baseline = replace(PRESETS["tiny"], num_classes=6)
    recipe = BankRecipe(baseline_config=baseline, baseline_backbone=None, dtype="float16",
                        min_proposal_score=0.9, max_proposals=100, short_side=64,
                        window_seconds=2, max_per_second=2)
    path = tmp_path / "head.pth"
    save_stad_checkpoint(path, model=Detector(config), preset=None, bank=recipe)
    raw = torch.load(path, weights_only=True)

    def earlier(values: dict) -> dict:
        out = {"head" if k == "classifier" else "shared_head" if k == "relation" else k: v
               for k, v in values.items()}
        assert "head" in out and "classifier" not in out   # the file really is the old layout
        return out

    raw["config"] = earlier(raw["config"])
    raw["bank"]["baseline_config"] = earlier(raw["bank"]["baseline_config"])
    old = tmp_path / "earlier.pth"
    torch.save(raw, old)
    read = read_stad_checkpoint(old)
    assert read.config == config and read.bank.baseline_config == baseline
    assert build_detector_from_checkpoint(old).config.relation == "lfb_max"
    # today's names and an unknown one are still checked
    raw["config"]["shared_head"] = "fbo"
    torch.save(raw, old)
    with pytest.raises(InputError, match=r"ModelConfig\.relation='fbo'"):
        read_stad_checkpoint(old)
    with pytest.raises(ValueError, match="no field"):
        ModelConfig.from_dict({"head": "mlp"})   # only stored files map the earlier names
