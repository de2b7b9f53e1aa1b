"""The VideoMAE ViT as the detector's backbone (``backbone: vit``): mmaction2's feature-map
grid and width, the zoo's ViT checkpoints through ``stad checkpoint inspect/convert`` (written
from the project's own key lists in tests/expected_keys, no mmaction2 code), the seam's lr-decay
answers, and ``stad detect`` with a ViT model."""

from __future__ import annotations

import argparse
from collections import OrderedDict
from pathlib import Path

import pandas as pd
import pytest
import torch

from helpers.video import write_video
from helpers.zoo_layout import expected_layout, random_state
from pipeline.ava.proposals import write_proposal_pickle
from pipeline.ava.results import read_results
from pipeline.cli import main
from pipeline.models.checkpoint import (build_detector_from_checkpoint, load_into,
                                        load_mmaction2_checkpoint, save_stad_checkpoint)
from pipeline.models.command import add_checkpoint_command
from pipeline.models.detector import Detector
from pipeline.models.presets import PRESETS
from pipeline.models.vit import VIT_BASE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VIT_B = "vit-base-p16_videomae-k400-pre_8xb8-16x4x1-20e-adamw_ava-kinetics-rgb"
VIT_L = "vit-large-p16_videomae-k400-pre_8xb8-16x4x1-20e-adamw_ava-kinetics-rgb"
RECOGNIZER_B = "recognizer_vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400"
RECOGNIZER_L = "recognizer_vit-large-p16_videomae-k400-pre_16x4x1_kinetics-400"


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="stad")
    add_checkpoint_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def write_mmaction2(path: Path, state: dict) -> Path:
    torch.save({"meta": {"mmengine_version": "0.8.4"}, "state_dict": state}, path)
    return path


def constant_state(layout: dict[str, tuple[int, ...]]) -> OrderedDict:
    """Every key of ``layout`` at its shape, each a constant broadcast from one stored number:
    a 300 M-parameter layout in a file of a few hundred kB."""
    return OrderedDict((key, torch.full((), float(i)).expand(shape))
                       for i, (key, shape) in enumerate(layout.items()))


def tiny_recognizer_layout() -> dict[str, tuple[int, ...]]:
    """tiny-vit's backbone as a K400 recognizer stores it: ``fc_norm`` for ``norm``, and a
    400-class ``cls_head`` (the same rule as the full-size recognizer key lists)."""
    layout = {key.replace("backbone.norm.", "backbone.fc_norm."): shape
              for key, shape in expected_layout("tiny-vit").items() if key.startswith("backbone.")}
    return {**layout, "cls_head.fc_cls.weight": (400, 64), "cls_head.fc_cls.bias": (400,)}


# ------------------------------------------------------------------------ the feature map

@pytest.mark.parametrize("name, width", [(VIT_B, 768), (VIT_L, 1024)])
def test_feature_map_of_a_256x320_clip_has_mmaction2s_grid_and_width(name, width):
    """mmaction2's ``VisionTransformer.forward`` (mmaction/models/backbones/vit_mae.py):
    ``h //= patch_size; w //= patch_size`` (16: 256 -> 16, 320 -> 20); the tubelet conv's kernel
    and stride (2, 16, 16) give 16 / 2 = 8 token slices; ``return_feat_map`` reshapes the tokens
    to ``(b, -1, h, w, embed_dims)`` and permutes to ``(b, embed_dims, 8, 16, 20)``. Built and run
    on the meta device (shapes only, no memory)."""
    with torch.device("meta"):
        model = Detector(PRESETS[name])
        (feature_map,) = model.backbone(torch.empty(2, 3, 16, 256, 320))
        rois = torch.tensor([[0, 10.0, 20.0, 100.0, 200.0], [1, 0.0, 0.0, 320.0, 256.0]])
        logits = model(torch.empty(2, 3, 16, 256, 320), rois)
    assert feature_map.shape == (2, width, 8, 16, 20)
    assert model.backbone.output_channels == (width,) and model.feature_channels == width
    assert (model.backbone.output_stride, model.backbone.temporal_strides) == (16, (2,))
    assert logits.shape == (2, 81)


def test_tiny_vit_detector_trains_end_to_end_on_a_non_224_clip():
    torch.manual_seed(0)
    model = Detector(PRESETS["tiny-vit"]).train()
    clips = torch.randn(2, 3, 4, 64, 96)
    rois = torch.tensor([[0, 4.0, 4.0, 40.0, 60.0], [1, 30.0, 10.0, 90.0, 60.0]])
    targets = torch.zeros(2, 81)
    targets[:, 3] = 1
    model.loss(model(clips, rois), targets).backward()
    assert model.backbone.patch_embed.projection.weight.grad.abs().sum() > 0
    assert model.backbone.blocks[0].attn.q_bias.grad.abs().sum() > 0


# ------------------------------------------------------------------- the lr-decay contract

def test_vit_lr_layers_and_weight_decay_follow_mmaction2():
    """mmaction2's LearningRateDecayOptimizerConstructor, decay_type 'layer_wise', for a
    VisionTransformer of depth 12 (``num_layers`` 12, so 14 layers): embeddings 0, block i
    i + 1, the rest 13; no weight decay on 1-D parameters and ``.bias``."""
    with torch.device("meta"):
        backbone = Detector(PRESETS[VIT_B]).backbone
    assert backbone.num_lr_layers == VIT_BASE.depth + 2 == 14
    table = {"patch_embed.projection.weight": 0, "patch_embed.projection.bias": 0,
             "blocks.0.attn.qkv.weight": 1, "blocks.0.norm1.weight": 1,
             "blocks.11.mlp.layers.1.bias": 12, "norm.weight": 13, "norm.bias": 13}
    params = dict(backbone.named_parameters())
    assert {name: backbone.lr_layer_id(name) for name in table} == table
    assert set(map(backbone.lr_layer_id, params)) == set(range(14))
    decayed = {name for name, p in params.items() if not backbone.no_weight_decay(name, p)}
    assert decayed == {n for n in params if n.endswith(("qkv.weight", "proj.weight",
                                                       "layers.0.0.weight", "layers.1.weight",
                                                       "projection.weight"))}


def test_optimizer_groups_of_the_vit_b_detector_are_mmaction2s():
    """``pipeline.engine.optimizer.param_groups`` over the real ViT-B detector with the zoo
    recipe (layer decay 0.75, no decay on 1-D params and biases): mmaction2's constructor gives
    a parameter of layer i the lr scale 0.75 ** (13 - i) (``num_layers`` 12 + 1 - i), the RoI
    head scale 1."""
    from dataclasses import replace

    from pipeline.engine.config import TrainConfig
    from pipeline.engine.optimizer import param_groups

    with torch.device("meta"):
        model = Detector(PRESETS[VIT_B])
    config = replace(TrainConfig(), optimizer="adamw", weight_decay=0.05, layer_decay=0.75,
                     decay_norm_bias=False)
    scale_of, decay_of = {}, {}
    for group in param_groups(model, config):
        for name in group["param_names"]:
            scale_of[name], decay_of[name] = group["lr_scale"], group["weight_decay"]
    table = {  # name pattern: (exponent of 0.75, weight decay)
        "backbone.patch_embed.projection.weight": (13, 0.05),
        "backbone.patch_embed.projection.bias": (13, 0.0),
        "backbone.blocks.0.attn.qkv.weight": (12, 0.05),
        "backbone.blocks.0.attn.q_bias": (12, 0.0),
        "backbone.blocks.5.mlp.layers.0.0.weight": (7, 0.05),
        "backbone.blocks.11.norm2.weight": (1, 0.0),
        "backbone.norm.weight": (0, 0.0),
        "roi_head.bbox_head.fc_cls.weight": (0, 0.05),
        "roi_head.bbox_head.fc_cls.bias": (0, 0.0),
    }
    for name, (exponent, decay) in table.items():
        assert scale_of[name] == pytest.approx(0.75 ** exponent), name
        assert decay_of[name] == decay, name
    assert len(scale_of) == len(dict(model.named_parameters()))


# ------------------------------------------------------------------------- checkpoints

@pytest.mark.parametrize("preset, layout", [(VIT_B, VIT_B), (VIT_L, VIT_L),
                                            (VIT_B, RECOGNIZER_B), (VIT_L, RECOGNIZER_L)])
def test_zoo_vit_checkpoints_inspect_clean(preset, layout, tmp_path, capsys):
    """The two VideoMAE detector configs' checkpoints and the two K400 VideoMAE recognizers
    they start from, in mmaction2's layout: ``stad checkpoint inspect`` exits 0."""
    path = write_mmaction2(tmp_path / "vit.pth", constant_state(expected_layout(layout)))
    assert path.stat().st_size < 2_000_000
    assert run_cli("checkpoint", "inspect", str(path), "--preset", preset) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("OK")
    if layout.startswith("recognizer_"):
        assert "recognizer checkpoint" in out
        # dropped: the classification head and the pooled-feature norm; fresh: the RoI head
        # and the detector's own final norm (as mmaction2's non-strict init_cfg load leaves it)
        for key in ("cls_head.fc_cls.weight", "backbone.fc_norm.weight", "backbone.norm.weight",
                    "roi_head.bbox_head.fc_cls.weight"):
            assert f"  {key}\n" in out, key
    else:
        assert "detector checkpoint" in out


def test_vit_b_checkpoint_does_not_fit_the_vit_l_preset(tmp_path, capsys):
    path = write_mmaction2(tmp_path / "vit.pth", constant_state(expected_layout(VIT_B)))
    assert run_cli("checkpoint", "inspect", str(path), "--preset", VIT_L) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "backbone.blocks.12.attn.qkv.weight" in out


def test_detector_checkpoint_loads_strictly_and_converts(tmp_path, capsys):
    state = random_state(expected_layout("tiny-vit"))
    path = write_mmaction2(tmp_path / "det.pth", state)
    model = Detector(PRESETS["tiny-vit"])
    report = load_into(model, load_mmaction2_checkpoint(path))
    assert report.ok and report.kind == "detector" and report.num_tensors == len(state)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key

    out = tmp_path / "tiny-vit.pt"
    assert run_cli("checkpoint", "convert", str(path), "--preset", "tiny-vit",
                   "--out", str(out)) == 0
    converted = build_detector_from_checkpoint(out).eval()
    clips = torch.randn(1, 3, 4, 48, 64)
    rois = torch.tensor([[0, 2.0, 2.0, 30.0, 40.0]])
    assert torch.equal(converted(clips, rois), model.eval()(clips, rois))


def test_recognizer_checkpoint_drops_head_and_fc_norm(tmp_path):
    state = random_state(tiny_recognizer_layout())
    path = write_mmaction2(tmp_path / "k400.pth", state)
    torch.manual_seed(0)
    model = Detector(PRESETS["tiny-vit"])
    report = load_into(model, load_mmaction2_checkpoint(path))
    assert report.ok and report.kind == "recognizer"
    assert report.ignored == ["backbone.fc_norm.bias", "backbone.fc_norm.weight",
                              "cls_head.fc_cls.bias", "cls_head.fc_cls.weight"]
    assert report.fresh == ["backbone.norm.bias", "backbone.norm.weight",
                            "roi_head.bbox_head.fc_cls.bias", "roi_head.bbox_head.fc_cls.weight"]
    assert torch.equal(model.backbone.blocks[1].attn.v_bias, state["backbone.blocks.1.attn.v_bias"])
    assert torch.equal(model.backbone.norm.weight, torch.ones(64))


# ------------------------------------------------------------------------------ detect

def test_detect_runs_a_vit_checkpoint(tmp_path, capsys):
    seconds, fps = 4, 10
    video = write_video(tmp_path / "clip.mp4", num_frames=seconds * fps, fps=fps, width=96,
                        height=72, gop=fps)
    torch.manual_seed(0)
    model = Detector(PRESETS["tiny-vit"].__class__(**{
        **PRESETS["tiny-vit"].__dict__, "num_classes": 6}))
    checkpoint = tmp_path / "vit.pt"
    save_stad_checkpoint(checkpoint, model=model, preset="tiny-vit", test_short_side=48,
                         labels={1: "stand", 3: "sit", 5: "walk"})
    rows = [("clip", t, 0.1, 0.2, 0.5, 0.9, 0.98) for t in range(seconds)]
    proposals = pd.DataFrame(rows, columns=["video_id", "timestamp", "x1", "y1", "x2", "y2",
                                            "score"])
    write_proposal_pickle(tmp_path / "proposals.pkl", proposals)
    out = tmp_path / "out"
    code = main(["detect", str(video), "--checkpoint", str(checkpoint), "--proposals",
                 str(tmp_path / "proposals.pkl"), "--out", str(out), "--short-side", "48",
                 "--score-threshold", "0", "--device", "cpu"])
    assert code == 0, capsys.readouterr()
    table = read_results(out / "detections.csv")
    assert sorted(set(table["timestamp"])) == list(range(seconds))
    assert set(table["action_id"]) == {1, 3, 5}
