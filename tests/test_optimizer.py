"""The optimiser's parameter groups: mmaction2's layer-wise lr decay for ViT-B, the default
single group, and the config checks that name their params key."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, replace

import pytest
import torch
from torch import nn

from pipeline.engine.config import TrainConfig
from pipeline.engine.optimizer import build_optimizer, param_groups
from pipeline.errors import InputError
from pipeline.models import vit
from pipeline.params.schema import build


class ToyDetector(nn.Module):
    def __init__(self, backbone: nn.Module, width: int):
        super().__init__()
        self.backbone = backbone
        self.roi_head = nn.Module()
        self.roi_head.fc_cls = nn.Linear(width, 81)


# mmaction2 1.x LearningRateDecayOptimizerConstructor (decay_type 'layer_wise') with
# paramwise_cfg num_layers=12, as the ViT-B AVA-Kinetics config sets it, read off its code:
# layer id 0 for backbone.patch_embed.* / pos_embed / cls and mask tokens, i + 1 for
# backbone.blocks.i.*, 13 (num_layers + 1) for every other parameter; lr scale
# decay_rate ** (num_layers + 1 - layer id); weight decay 0 for 1-D parameters and names ending
# in ".bias", the optimizer's weight_decay otherwise. Rows: pattern -> (exponent, decays).
# ``{e}`` in an exponent is 12 - i for the block index i the pattern captures.
VIT_B_TABLE = [
    (r"backbone\.patch_embed\.projection\.weight", "13", True),
    (r"backbone\.patch_embed\.projection\.bias", "13", False),
    (r"backbone\.blocks\.(\d+)\.norm[12]\.(weight|bias)", "{e}", False),
    (r"backbone\.blocks\.(\d+)\.attn\.[qv]_bias", "{e}", False),
    (r"backbone\.blocks\.(\d+)\.attn\.qkv\.weight", "{e}", True),
    (r"backbone\.blocks\.(\d+)\.attn\.proj\.weight", "{e}", True),
    (r"backbone\.blocks\.(\d+)\.attn\.proj\.bias", "{e}", False),
    (r"backbone\.blocks\.(\d+)\.mlp\.layers\.(0\.0|1)\.weight", "{e}", True),
    (r"backbone\.blocks\.(\d+)\.mlp\.layers\.(0\.0|1)\.bias", "{e}", False),
    (r"backbone\.norm\.(weight|bias)", "0", False),
    (r"roi_head\.fc_cls\.weight", "0", True),
    (r"roi_head\.fc_cls\.bias", "0", False),
]

VIT_B_RECIPE = TrainConfig(optimizer="adamw", lr=1.25e-4, weight_decay=0.05,
                           decay_norm_bias=False, layer_decay=0.75)


def expected(name: str) -> tuple[int, bool]:
    hits = [(m, exp, decays) for pattern, exp, decays in VIT_B_TABLE
            if (m := re.fullmatch(pattern, name))]
    assert len(hits) == 1, f"{name}: {len(hits)} table rows match"
    match, exponent, decays = hits[0]
    return int(exponent.format(e=12 - int(match.group(1))) if "{e}" in exponent
               else exponent), decays


def test_vit_b_groups_equal_mmaction2_layer_decay():
    with torch.device("meta"):
        model = ToyDetector(vit.ViTBackbone(vit.VIT_BASE), 768)
    optimizer = build_optimizer(model, VIT_B_RECIPE, params_key="baseline.train")
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["betas"] == (0.9, 0.999)
    names = {id(p): n for n, p in model.named_parameters()}
    seen = set()
    for group in optimizer.param_groups:
        for param in group["params"]:
            name = names[id(param)]
            seen.add(name)
            exponent, decays = expected(name)
            assert group["lr_scale"] == pytest.approx(0.75 ** exponent, rel=1e-12), name
            assert group["lr"] == pytest.approx(1.25e-4 * 0.75 ** exponent, rel=1e-12), name
            assert group["weight_decay"] == (0.05 if decays else 0.0), name
    assert seen == set(names.values())
    # mmaction2's groups: layer_<id>_{decay,no_decay} for ids 0..13, all of them non-empty
    assert len(optimizer.param_groups) == 28
    by_scale = sorted({round(g["lr_scale"], 12) for g in optimizer.param_groups})
    assert by_scale == sorted(round(0.75 ** e, 12) for e in range(14))


def test_default_is_one_group_of_every_parameter_with_no_backbone_contract():
    model = ToyDetector(nn.Conv3d(3, 4, 1), 4)     # a backbone without the contract methods
    optimizer = build_optimizer(model, TrainConfig(lr=0.3))
    assert isinstance(optimizer, torch.optim.SGD)
    [group] = optimizer.param_groups
    assert [id(p) for p in group["params"]] == [id(p) for p in model.parameters()]
    assert (group["lr"], group["lr_scale"], group["weight_decay"], group["momentum"]) == (
        0.3, 1.0, 1e-5, 0.9)


def test_layer_decay_needs_the_backbone_contract_and_names_the_key():
    model = ToyDetector(nn.Conv3d(3, 4, 1), 4)
    with pytest.raises(InputError, match="lr_layer_id") as info:
        param_groups(model, replace(TrainConfig(), layer_decay=0.75), params_key="model.train")
    assert info.value.key == "model.train.layer_decay"
    with pytest.raises(InputError, match="no_weight_decay") as info:
        param_groups(model, replace(TrainConfig(), decay_norm_bias=False),
                     params_key="model.train")
    assert info.value.key == "model.train.decay_norm_bias"


def test_head_only_training_skips_the_backbone_rules():
    """The frozen-backbone heads optimise ``roi_head`` alone: no backbone to ask."""
    head = nn.Sequential(nn.Linear(4, 3))
    groups = param_groups(head, replace(VIT_B_RECIPE, layer_decay=0.5))
    assert [(g["lr_scale"], g["weight_decay"], g["param_names"]) for g in groups] == [
        (1.0, 0.05, ["0.weight"]), (1.0, 0.0, ["0.bias"])]


@pytest.mark.parametrize("key, value, message", [
    ("layer_decay", 0.0, "in \\(0, 1\\]"),
    ("layer_decay", 1.5, "in \\(0, 1\\]"),
    ("betas", [0.9, 1.0], "two numbers in \\[0, 1\\)"),
    ("optimizer", "adam", "one of 'sgd', 'adamw'"),
    ("weight_decay", -0.1, ">= 0"),
    ("lr", math.inf, "finite"),
])
def test_config_checked_at_load_naming_the_dotted_key(key, value, message):
    values = {**asdict(TrainConfig()), key: value}
    with pytest.raises(InputError, match=message) as info:
        build(TrainConfig, values, key="baseline.train")
    assert info.value.key == f"baseline.train.{key}"


def test_adamw_step_uses_each_groups_lr():
    """One AdamW step moves a parameter by about its group's lr (Adam's first step is
    lr * sign(grad)), so the scales reach the update, not just the group records."""
    torch.manual_seed(0)
    model = ToyDetector(vit.ViTBackbone(replace(vit.VIT_TINY, drop_path_rate=0.0)), 64)
    config = replace(VIT_B_RECIPE, weight_decay=0.0, lr=1e-3)
    optimizer = build_optimizer(model, config)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    layers = model.backbone.num_lr_layers
    for name, param in model.named_parameters():
        if name.startswith("backbone."):
            layer = model.backbone.lr_layer_id(name.removeprefix("backbone."))
            scale = 0.75 ** (layers - 1 - layer)
        else:
            scale = 1.0
        moved = (before[name] - param.detach()).abs().max().item()
        assert moved == pytest.approx(1e-3 * scale, rel=1e-3), name
