"""Param presets: every overlay in presets/ applies onto params.yaml and validates; the AVA presets
are the recipes of the mmaction2 configs they are named after (model presets, frame sampling,
proposal thresholds, schedules); the learning rate scales with the number of processes."""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from pipeline.ava.clock import jitter_span
from pipeline.cli import main as stad
from pipeline.data.config import DataConfig
from pipeline.engine.config import TrainConfig
from pipeline.frames.spec import clip_reach
from pipeline.engine.distributed import DistContext
from pipeline.engine.train import run_lr, train
from pipeline.errors import InputError
from pipeline.tasks.infer_lfb import bank_boxes
from pipeline.lfb.reader import num_slots
from pipeline.models.config import ModelConfig
from pipeline.models.presets import PRESETS
from pipeline.models.config import BANK_RELATIONS
from pipeline.params.all import load_all
from pipeline.params.overlay import apply_overlay

REPO = Path(__file__).resolve().parents[1]
PRESET_DIR = REPO / "presets"
VIT_PRESETS = sorted(p.stem for p in PRESET_DIR.glob("vit-*_ava-kinetics-rgb.yaml"))
ALL_PRESETS = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
AK_PRESETS = sorted(p.stem for p in PRESET_DIR.glob("slowonly_*_ava-kinetics-rgb.yaml"))
AVA_PRESETS = sorted([p.stem for p in PRESET_DIR.glob("ava2[12]-*.yaml")] + AK_PRESETS)

SO_AVA21_4x16 = "slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb"
SF_AVA21_8x8 = "slowfast_kinetics400-pretrained-r50_8xb8-8x8x1-20e_ava21-rgb"
SF_AVA22_8x8 = "slowfast_kinetics400-pretrained-r50_8xb6-8x8x1-cosine-10e_ava22-rgb"
LFB_INFER = "slowonly-lfb_ava-pretrained-r50_infer-4x16x1_ava21-rgb"
LFB_MAX = "slowonly-lfb-max_kinetics400-pretrained-r50_8xb12-4x16x1-20e_ava21-rgb"

# Preset file -> what it reproduces. ``baseline``: the model preset of pretrain_baseline;
# ``recipe``: the mmaction2 config whose schedule baseline.train is (its stem says GPUs x batch);
# ``head``: the config whose detector and schedule train_head reproduces (None: the baseline's
# own); ``head_change``: fields that differ from that config's preset (lfb-avg has no 1.x config).
ZOO = {
    "ava21-slowonly-r50-4x16": dict(baseline=SO_AVA21_4x16),
    "ava21-slowfast-r50-4x16": dict(
        baseline="slowfast_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb"),
    "ava21-slowfast-r50-context-4x16": dict(
        baseline="slowfast_kinetics400-pretrained-r50-context_8xb16-4x16x1-20e_ava21-rgb"),
    "ava21-slowfast-r50-8x8": dict(baseline=SF_AVA21_8x8),
    "ava21-slowfast-acrn-r50-8x8": dict(
        baseline=SF_AVA21_8x8,
        head="slowfast-acrn_kinetics400-pretrained-r50_8xb8-8x8x1-cosine-10e_ava21-rgb"),
    "ava21-slowonly-lfb-nl-r50-4x16": dict(
        baseline=LFB_INFER, recipe=SO_AVA21_4x16,
        head="slowonly-lfb-nl_kinetics400-pretrained-r50_8xb12-4x16x1-20e_ava21-rgb"),
    "ava21-slowonly-lfb-max-r50-4x16": dict(baseline=LFB_INFER, recipe=SO_AVA21_4x16, head=LFB_MAX),
    "ava21-slowonly-lfb-avg-r50-4x16": dict(baseline=LFB_INFER, recipe=SO_AVA21_4x16, head=LFB_MAX,
                                            head_change={"relation": "lfb_avg"},
                                            stem="lfb_avg_kinetics_pretrained_slowonly_r50_4x16x1_20e_ava_rgb"),
    "ava22-slowonly-r50-4x16": dict(baseline="slowonly_k400-pre-r50_8xb8-4x16x1-10e_ava-kinetics-rgb"),
    "ava22-slowonly-r50-8x8": dict(baseline="slowonly_k400-pre-r50_8xb8-8x8x1-10e_ava-kinetics-rgb"),
    "ava22-slowonly-r50-16x4-tricks": dict(
        baseline="slowonly_k700-pre-r50_8xb8-16x4x1-10e-tricks_ava-kinetics-rgb"),
    "ava22-slowfast-r50-8x8": dict(baseline=SF_AVA22_8x8),
    "ava22-slowfast-r50-temporal-max-8x8": dict(
        baseline="slowfast_kinetics400-pretrained-r50-temporal-max_8xb6-8x8x1-cosine-10e_ava22-rgb"),
    "ava22-slowfast-r50-temporal-max-focal-8x8": dict(
        baseline="slowfast_r50-k400-pre-temporal-max-focal-alpha3-gamma1_8xb6-8x8x1-cosine-10e_ava22-rgb"),
    "ava22-slowfast-acrn-r50-8x8": dict(
        baseline=SF_AVA22_8x8,
        head="slowfast-acrn_kinetics400-pretrained-r50_8xb8-8x8x1-cosine-10e_ava22-rgb"),
}
# The zoo's AVA-Kinetics SlowOnly configs (trained on AVA-Kinetics, scored on AVA 2.2 val):
# preset file = config stem -> (zoo mAP, the recognizer the config starts from)
K400_INIT = "slowonly_imagenet-pretrained-r50_8xb16-{}x1-steplr-150e_kinetics400-rgb_20220901-{}.pth"
K700_INIT = "slowonly_imagenet-pretrained-r50_16xb16-8x8x1-steplr-150e_kinetics700-rgb_20221013-15b93b10.pth"
AVA_KINETICS = {
    "slowonly_k400-pre-r50_8xb8-4x16x1-10e_ava-kinetics-rgb": ("24.53", K400_INIT.format("4x16", "e7b65fad")),
    "slowonly_k700-pre-r50_8xb8-4x16x1-10e_ava-kinetics-rgb": ("25.87", K700_INIT),
    "slowonly_k400-pre-r50_8xb8-8x8x1-10e_ava-kinetics-rgb": ("26.10", K400_INIT.format("8x8", "df42dc84")),
    "slowonly_k700-pre-r50_8xb8-8x8x1-10e_ava-kinetics-rgb": ("27.82", K700_INIT),
    "slowonly_k700-pre-r50-context_8xb8-8x8x1-10e_ava-kinetics-rgb": ("28.31", K700_INIT),
    "slowonly_k700-pre-r50-context-temporal-max_8xb8-8x8x1-10e_ava-kinetics-rgb": ("28.48", K700_INIT),
    "slowonly_k700-pre-r50-context-temporal-max-nl-head_8xb8-8x8x1-10e_ava-kinetics-rgb": ("29.83", K700_INIT),
    "slowonly_k700-pre-r50-context-temporal-max-nl-head_8xb8-8x8x1-focal-10e_ava-kinetics-rgb": ("30.33", K700_INIT),
    "slowonly_k700-pre-r50_8xb8-16x4x1-10e-tricks_ava-kinetics-rgb": ("31.29", K700_INIT),
}
ZOO.update({stem: dict(baseline=stem) for stem in AVA_KINETICS})


def _write_overlay(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def params_file(tmp_path) -> Path:
    """A copy of the repository's params.yaml whose data.ava.root points at a tmp folder (the
    AVA presets need one to validate; the synthetic DAG ignores it)."""
    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    (tmp_path / "ava").mkdir()
    (tmp_path / "kinetics").mkdir()
    apply_overlay(path, _write_overlay(tmp_path / "root.yaml", {"data": {
        "ava": {"root": str(tmp_path / "ava")},
        "kinetics": {"root": str(tmp_path / "kinetics")}}}))
    return path


def applied(params_file: Path, name: str):
    changed = apply_overlay(params_file, PRESET_DIR / f"{name}.yaml")
    assert changed, f"{name} sets nothing"
    return load_all(params_file)


# ------------------------------------------------------------------ learning-rate scaling

@pytest.mark.parametrize("world_size, expected", [(1, 0.025), (2, 0.05), (8, 0.2)])
def test_lr_scales_with_processes_times_batch(world_size, expected):
    config = TrainConfig(lr=0.2, batch_size=16, base_batch_size=128)   # the zoo's 8 x 16
    assert config.effective_lr(world_size) == pytest.approx(expected)
    # a different per-process batch scales too: 8 processes x 8 clips is half the zoo's batch
    half = TrainConfig(lr=0.2, batch_size=8, base_batch_size=128)
    assert half.effective_lr(world_size) == pytest.approx(expected / 2)


@pytest.mark.parametrize("world_size", [1, 2, 8])
def test_lr_is_not_scaled_without_a_base_batch(world_size):
    assert TrainConfig(lr=0.2, batch_size=16).effective_lr(world_size) == 0.2


def test_run_lr_logs_the_rule(caplog):
    config = TrainConfig(lr=0.1, batch_size=8, base_batch_size=64)
    with caplog.at_level(logging.INFO, logger="pipeline.engine.train"):
        assert run_lr(config, 2) == pytest.approx(0.025)
    assert "lr 0.025 = 0.1 x (2 processes x 8 clips) / base batch 64" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pipeline.engine.train"):
        assert run_lr(replace(config, base_batch_size=None), 2) == 0.1
        assert run_lr(config, 2, announce=False) == pytest.approx(0.025)
    assert "not scaled" in caplog.text and caplog.text.count("lr ") == 1


@pytest.mark.parametrize("value", [0, -64, True, 2.5, "64"])
def test_base_batch_size_must_be_a_positive_integer(value):
    with pytest.raises(InputError) as info:
        TrainConfig(base_batch_size=value)
    assert info.value.key == "base_batch_size"


@pytest.mark.parametrize("group", ["baseline", "model"])
@pytest.mark.parametrize("value, message", [(0, "positive integer"), ("64", "no allowed type")])
def test_params_name_a_bad_base_batch_size(params_file, group, value, message):
    raw = yaml.safe_load(params_file.read_text())
    raw[group]["train"]["base_batch_size"] = value
    params_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match=message) as info:
        load_all(params_file)
    assert info.value.key == f"{group}.train.base_batch_size"


def test_repository_params_do_not_scale_lr():
    params = load_all(REPO / "params.yaml")
    assert params.baseline.train.base_batch_size is None
    assert params.model.train.base_batch_size is None
    assert params.lfb.val_min_proposal_score == 0.9


def test_training_runs_at_the_scaled_lr(tmp_path):
    """One process, 2 clips a batch, base batch 8: every step runs at lr / 4."""
    torch.manual_seed(0)
    config = TrainConfig(epochs=2, batch_size=2, lr=0.4, warmup_epochs=0, schedule="step",
                         steps=(), num_workers=0, val_every=0, base_batch_size=8)
    ctx = DistContext(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    inputs = torch.randn(6, 3)

    class Clips(torch.utils.data.Dataset):   # the engine's sampler gives (index, seed) keys
        def __len__(self):
            return len(inputs)

        def __getitem__(self, key):
            return inputs[key[0]]

    history = train(nn.Linear(3, 1), Clips(), config=config,
                    loss_fn=lambda model, batch: model(batch).pow(2).mean(), ctx=ctx,
                    checkpoint_dir=tmp_path / "checkpoints", collate_fn=torch.stack)
    assert len(history.steps) == 6
    assert [row["lr"] for row in history.steps] == pytest.approx([0.1] * 6)


# ------------------------------------------------------------------ every preset applies

@pytest.mark.parametrize("name", ALL_PRESETS)
def test_every_preset_applies_and_validates(params_file, name):
    before = load_all(params_file)
    params = applied(params_file, name)
    assert params != before
    assert "# Every stage's configuration" in params_file.read_text()   # comments survive


def test_presets_are_applied_by_name_with_the_cli(params_file, monkeypatch, capsys):
    monkeypatch.chdir(REPO)   # `stad params apply NAME` reads presets/NAME.yaml
    assert stad(["params", "apply", "ava21-slowonly-r50-4x16", "--file", str(params_file)]) == 0
    assert "keys from presets/ava21-slowonly-r50-4x16.yaml" in capsys.readouterr().out
    assert load_all(params_file).data.source == "ava"


def test_ava_presets_need_the_root_set_first(tmp_path, capsys):
    pristine = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", pristine)
    text = pristine.read_text()
    with pytest.raises(InputError, match="data.ava.root is empty") as info:
        apply_overlay(pristine, PRESET_DIR / "ava22-slowfast-r50-8x8.yaml")
    assert info.value.key == "data.ava.root"
    assert pristine.read_text() == text   # nothing written
    assert stad(["params", "apply", str(PRESET_DIR / "ava22-slowfast-r50-8x8.yaml"),
                 "--file", str(pristine)]) == 2
    assert "data.ava.root" in capsys.readouterr().err


@pytest.mark.parametrize("overlay, key", [
    ({"frames": {"clip_length": 8}}, "frames.clip_length"),
    ({"lfb": {"val_min_score": 0.85}}, "lfb.val_min_score"),
    ({"baseline": {"train": {"base_batch": 64}}}, "baseline.train.base_batch"),
    ({"heads": {"head": "acrn"}}, "heads"),
])
def test_overlays_cannot_add_keys(params_file, tmp_path, overlay, key):
    text = params_file.read_text()
    with pytest.raises(InputError, match="does not exist in the params file") as info:
        apply_overlay(params_file, _write_overlay(tmp_path / "bad.yaml", overlay))
    assert info.value.key == key
    assert params_file.read_text() == text


def test_overlay_values_keep_their_spelling(params_file, tmp_path):
    """A float such as 1.0e-4 must not come back as ``1e-04`` (a string to YAML 1.1 readers
    such as PyYAML and DVC), and untouched nulls stay ``null``."""
    overlay = tmp_path / "small.yaml"
    overlay.write_text("baseline:\n  train:\n    lr: 1.0e-4\n    weight_decay: 0.00001\n")
    apply_overlay(params_file, overlay)
    text = params_file.read_text()
    assert "lr: 1.0e-4" in text and "weight_decay: 0.00001" in text
    assert "base_batch_size: null" in text and "checkpoint_every_steps: null" in text
    train_config = load_all(params_file).baseline.train
    assert (train_config.lr, train_config.weight_decay) == (1.0e-4, 1.0e-5)


# ------------------------------------------------------------------ AVA presets = zoo recipes

def test_every_ava_preset_is_registered():
    assert set(AVA_PRESETS) == set(ZOO)
    assert len(AVA_PRESETS) >= 15
    assert set(AK_PRESETS) == set(AVA_KINETICS)


@pytest.mark.parametrize("name", AK_PRESETS)
def test_ava_kinetics_headers_give_the_zoo_map_and_init(name):
    mAP, init = AVA_KINETICS[name]
    text = (PRESET_DIR / f"{name}.yaml").read_text()
    assert f"Zoo val mAP (mmaction2 1.x zoo, 8 GPUs): {mAP}," in text
    assert f"baseline.init_checkpoint {init}" in text
    assert f"`stad params apply {name}`" in text


def _architecture(config: ModelConfig) -> dict:
    """The fields that decide a detector's layout and loss: a relation's settings only when
    that relation is used (the params fill them in for every head)."""
    values = asdict(config)
    nl_only = ("lfb_latent_channels", "lfb_num_layers", "lfb_st_dropout", "lfb_lt_dropout",
               "lfb_nl_dropout", "lfb_pre_activate", "lfb_layer_norm", "lfb_zero_init_out_conv",
               "lfb_position")
    for name in list(values):
        if (name.startswith("acrn_") and config.relation != "acrn"
                or name.startswith("lfb_") and config.relation not in BANK_RELATIONS
                or name in nl_only and config.relation != "lfb_nl"):
            del values[name]
    return values


def _gpus_and_batch(stem: str) -> tuple[int, int]:
    match = re.search(r"_(\d+)xb(\d+)-", stem)
    assert match, stem
    return int(match.group(1)), int(match.group(2))


@pytest.mark.parametrize("name", AVA_PRESETS)
def test_ava_preset_reproduces_its_zoo_config(params_file, name):
    zoo = ZOO[name]
    params = applied(params_file, name)
    text = (PRESET_DIR / f"{name}.yaml").read_text()

    # data: the AVA download of the preset's version (AVA-Kinetics: AVA 2.2 + Kinetics,
    # scored on AVA 2.2 val as the zoo); frames as mmaction2 1.x reads them
    if name in AVA_KINETICS:
        assert params.data.source == "ava_kinetics" and params.data.ava.version == "2.2"
        assert not params.data.kinetics.use_val
    else:
        assert params.data.source == "ava"
        assert params.data.ava.version == {"ava21": "2.1", "ava22": "2.2"}[name[:5]]
    assert params.frames.convention == "mmaction2"
    assert params.frames.short_side >= max(params.baseline.data.short_side_range)
    assert params.frames.timeline_fps == 30
    assert params.baseline.data == DataConfig(test_batch_size=params.baseline.data.test_batch_size,
                                              test_min_proposal_score=params.baseline.data.test_min_proposal_score,
                                              temporal_jitter=True)

    # the baseline is exactly the named zoo preset (mmaction2's keys load strictly into it)
    baseline = params.baseline.model_config(num_classes=81)
    assert baseline == PRESETS[zoo["baseline"]]
    # and the head stage's detector is the named zoo config's
    head_stem = zoo.get("head", zoo["baseline"])
    expected = replace(PRESETS[head_stem], **zoo.get("head_change", {}))
    head = params.model.model_config(
        baseline, num_slots=num_slots(params.lfb.window_seconds, params.lfb.max_per_second),
        bank_dim=baseline.lfb_channels or 2048)
    assert _architecture(head) == _architecture(expected)
    assert params.model.finetune_backbone   # frozen maps of all AVA keyframes do not fit in RAM

    # the store holds every frame the model's clip reads, with every frame mmaction2's temporal
    # jitter reaches (64 for every config), and is the same for every preset: trying another
    # preset never extracts the frames again
    assert params.frames.reach == (40, 32)
    reach = jitter_span(baseline.clip_len, baseline.frame_interval)
    assert len(reach) == 64 and -params.frames.reach[0] <= reach[0]
    assert reach[-1] <= params.frames.reach[1]
    assert clip_reach(baseline.clip_len, baseline.frame_interval, True) == (-reach[0], reach[-1])

    # proposals: the pickles, no box filtered out before a later threshold wants it
    assert params.proposals.source == "pickle"
    wanted = [params.baseline.data.train_min_proposal_score,
              params.baseline.data.test_min_proposal_score]
    if head.uses_bank:
        wanted.append(params.lfb.val_min_proposal_score)
    assert params.proposals.score_threshold <= min(wanted)
    assert params.baseline.data.train_min_proposal_score == 0.9

    # schedules: per-process batch of the zoo, lr of the zoo for its total batch
    for config, stem in ((params.baseline.train, zoo.get("recipe", zoo["baseline"])),
                         (params.model.train, head_stem if "head" in zoo else zoo.get(
                             "recipe", zoo["baseline"]))):
        gpus, batch = _gpus_and_batch(stem)
        assert config.batch_size == batch, stem
        assert config.base_batch_size == gpus * batch, stem
        assert config.effective_lr(gpus) == pytest.approx(config.lr)
        assert config.effective_lr(1) == pytest.approx(config.lr / gpus)
        cosine = "cosine" in stem or "ava-kinetics" in stem
        assert config.schedule == ("cosine" if cosine else "step"), stem
        assert config.epochs == int(re.search(r"-(\d+)e[_-]", stem).group(1)), stem

    # the header names the exact config stems and lists only existing presets as variants
    assert zoo.get("stem", head_stem) in text
    assert (zoo.get("recipe") or zoo["baseline"]) in text
    for variant in re.findall(r"baseline\.preset=(\S+)", text):
        assert variant in PRESETS, variant


def test_lfb_presets_use_mmaction2s_thresholds_and_window(params_file):
    for name in (n for n in AVA_PRESETS if "-lfb-" in n):
        shutil.copy(params_file, params_file.with_suffix(".orig"))
        params = applied(params_file, name)
        assert params.baseline.data.test_min_proposal_score == 0.85   # the head's val boxes
        assert params.lfb.val_min_proposal_score == 0.9               # the bank's val rows
        assert params.lfb.train_boxes == "proposals"
        assert 2 * params.lfb.window_seconds == 60 and params.lfb.max_per_second == 5
        assert params.model.train.grad_clip == 20.0
        assert params.model.lfb.include_empty_slots      # mmaction2's zero-filled window
        assert params.eval.score_threshold == 0.0         # the LFB configs' action_thr
        shutil.copy(params_file.with_suffix(".orig"), params_file)


# ------------------------------------------------------------------ the bank's val threshold

def test_bank_val_rows_follow_their_own_threshold():
    keyframes = pd.DataFrame({"video_id": ["t", "v"], "timestamp": [902, 902],
                              "split": ["train", "val"]})
    proposals = pd.DataFrame({"video_id": ["t"] * 3 + ["v"] * 3, "timestamp": [902] * 6,
                              "x1": 0.1, "y1": 0.1, "x2": 0.5, "y2": 0.9,
                              "score": [0.95, 0.88, 0.5, 0.95, 0.88, 0.5]})

    class Inputs:   # the parts of LoadedInputs that bank_boxes reads
        pass

    inputs = Inputs()
    inputs.keyframes, inputs.proposals = keyframes, proposals
    data = DataConfig(train_min_proposal_score=0.85, test_min_proposal_score=0.5)

    def rows(val_min):
        table = bank_boxes(inputs, train_boxes="proposals", data_config=data,
                           val_min_proposal_score=val_min)
        return table.groupby("split").size().to_dict()

    assert rows(0.9) == {"train": 2, "val": 1}    # test_min_proposal_score plays no part
    assert rows(0.85) == {"train": 2, "val": 2}
    assert rows(1.0) == {"train": 2, "val": 1}    # the best box always stays


def test_infer_lfb_stage_passes_the_val_threshold(params_file, monkeypatch):
    import stages.infer_lfb as stage
    from pipeline.tasks import infer_lfb as task
    from pipeline.data.inputs import DatasetFiles

    raw = yaml.safe_load(params_file.read_text())
    raw["lfb"]["val_min_proposal_score"] = 0.85
    params_file.write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(params_file.parent)
    seen = {}
    monkeypatch.setattr(task, "infer_lfb", lambda **kwargs: seen.update(kwargs))
    monkeypatch.setattr(DatasetFiles, "from_dag", classmethod(lambda cls, **kwargs: None))
    monkeypatch.setattr(task, "setup_distributed", lambda device, key=None: DistContext(
        rank=0, local_rank=0, world_size=1, device=torch.device("cpu")))
    threads = torch.get_num_threads()
    try:
        stage.main(["--dataset", "d", "--frames", "f", "--proposals", "p.parquet",
                    "--baseline", "m.pt", "--out", "o"])
    finally:
        torch.set_num_threads(threads)
    assert seen["val_min_proposal_score"] == 0.85
    assert seen["data_config"].test_min_proposal_score == 0.9


# mmaction2's configs/detection/videomae/<stem>.py (optim_wrapper, param_scheduler, model) and
# metafile.yml (total batch, zoo mAP): stem -> (mAP, lr, layer decay, total batch, init)
VIT_ZOO = {
    "vit-base-p16_videomae-k400-pre_8xb8-16x4x1-20e-adamw_ava-kinetics-rgb": (
        "33.6", 1.25e-4, 0.75, 64,
        "vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400_20221013-860a3cd3.pth"),
    "vit-large-p16_videomae-k400-pre_8xb8-16x4x1-20e-adamw_ava-kinetics-rgb": (
        "38.7", 2.5e-4, 0.8, 128,
        "vit-large-p16_videomae-k400-pre_16x4x1_kinetics-400_20221013-229dbb03.pth"),
}


def test_vit_presets_are_registered():
    assert VIT_PRESETS == sorted(VIT_ZOO)


@pytest.mark.parametrize("name", sorted(VIT_ZOO))
def test_vit_presets_are_the_zoo_recipe(params_file, name):
    """The preset applies and validates, and is the config's recipe: its ViT (16 frames 4
    apart, drop path 0.2, the backbone buildable), AdamW, weight decay 0.05 off 1-D params and
    biases, layer-wise lr decay, 5 warmup epochs then cosine to 20, clip 40, for the baseline
    and the fine-tuned head alike."""
    mAP, lr, decay, total, init = VIT_ZOO[name]
    params = applied(params_file, name)
    assert (params.baseline.preset, params.baseline.backbone) == (name, "vit")
    config = params.baseline.model_config(num_classes=81)
    assert (config.backbone, config.vit_size, config.clip_len, config.frame_interval,
            config.drop_path_rate) == ("vit", name.split("-p16")[0], 16, 4, 0.2)
    params.baseline.check_backbone(config)
    for recipe in (params.baseline.train, params.model.train):
        assert (recipe.optimizer, recipe.lr, recipe.betas, recipe.weight_decay) == (
            "adamw", lr, (0.9, 0.999), 0.05)
        assert (recipe.decay_norm_bias, recipe.layer_decay) == (False, decay)
        assert (recipe.epochs, recipe.warmup_epochs, recipe.warmup_ratio, recipe.schedule) == (
            20, 5.0, 0.1, "cosine")
        assert (recipe.grad_clip, recipe.val_every, recipe.precise_bn_batches) == (40.0, 1, 0)
        assert recipe.base_batch_size == total and total % recipe.batch_size == 0
    data = params.baseline.data
    assert (data.short_side_range, data.crop_size, data.flip_p, data.test_short_side,
            data.temporal_jitter) == ((256, 320), 256, 0.5, 256, True)
    assert (params.model.head, params.model.finetune_backbone, params.model.dropout) == (
        "linear", True, 0.5)
    assert params.data.source == "ava_kinetics" and not params.data.kinetics.use_val
    text = (PRESET_DIR / f"{name}.yaml").read_text()
    assert "Zoo val mAP (mmaction2 1.x zoo, " in text and f"): {mAP}," in text
    assert f"baseline.init_checkpoint {init}" in text
    assert f"`stad params apply {name}`" in text
