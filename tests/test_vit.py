"""VideoMAE ViT backbone (pipeline/models/vit.py) against mmaction2 1.2.0's layout and maths.

The key table below was written down from mmaction2's ``mmaction/models/backbones/vit_mae.py``
(VisionTransformer, Block, Attention), mmcv 2.x's ``PatchEmbed`` (conv ``projection``) and
``FFN`` (``layers.0.0`` / ``layers.1``), and the ViT-B/L detection configs in
``configs/detection/videomae/``; the lr-decay table from
``mmaction/engine/optimizers/layer_decay_optim_wrapper_constructor.py``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from pipeline.models.vit import (VIT_BASE, VIT_CONFIGS, VIT_LARGE, VIT_TINY, Attention, DropPath,
                                 ViTConfig, VisionTransformer, layer_id, lr_scale,
                                 recognizer_config, state_dict_layout,
                                 uses_weight_decay)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# mmaction2 ViT-B (embed 768, depth 12, mlp 3072, tubelet 2x16x16, 16 frames at 224 px ->
# 8 * 14 * 14 = 1568 tokens). Every block has exactly these 13 entries.
MMACTION2_VIT_B_BLOCK = {
    "norm1.weight": (768,),
    "norm1.bias": (768,),
    "attn.q_bias": (768,),
    "attn.v_bias": (768,),
    "attn.qkv.weight": (2304, 768),
    "attn.proj.weight": (768, 768),
    "attn.proj.bias": (768,),
    "norm2.weight": (768,),
    "norm2.bias": (768,),
    "mlp.layers.0.0.weight": (3072, 768),
    "mlp.layers.0.0.bias": (3072,),
    "mlp.layers.1.weight": (768, 3072),
    "mlp.layers.1.bias": (768,),
}
MMACTION2_VIT_B_OUTSIDE_BLOCKS = {
    "patch_embed.projection.weight": (768, 3, 2, 16, 16),
    "patch_embed.projection.bias": (768,),
    "pos_embed": (1, 1568, 768),  # persistent buffer: it is in the checkpoints
    "norm.weight": (768,),  # use_mean_pooling=False in the detection configs
    "norm.bias": (768,),
}


def mmaction2_vit_b_detector_keys() -> dict[str, tuple[int, ...]]:
    table = {f"backbone.{k}": v for k, v in MMACTION2_VIT_B_OUTSIDE_BLOCKS.items()}
    for i in range(12):
        table.update({f"backbone.blocks.{i}.{k}": v for k, v in MMACTION2_VIT_B_BLOCK.items()})
    return table


def clip(frames: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 3, frames, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny() -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(VIT_TINY).eval()


# ----------------------------------------------------------------- configurations and layout

def test_named_configurations_match_the_mmaction2_configs():
    assert (VIT_BASE.embed_dims, VIT_BASE.depth, VIT_BASE.num_heads) == (768, 12, 12)
    assert (VIT_LARGE.embed_dims, VIT_LARGE.depth, VIT_LARGE.num_heads) == (1024, 24, 16)
    for config in (VIT_BASE, VIT_LARGE):
        assert (config.patch_size, config.tubelet_size, config.img_size, config.num_frames) == (
            16, 2, 224, 16)
        assert config.mlp_ratio == 4 and config.qkv_bias and config.norm_eps == 1e-6
        assert config.drop_path_rate == 0.2
        assert not config.use_mean_pooling and config.return_feat_map
    assert set(VIT_CONFIGS) == {"vit-base", "vit-large", "tiny"}
    assert (VIT_TINY.embed_dims, VIT_TINY.depth, VIT_TINY.num_heads) == (64, 2, 2)


def test_vit_b_layout_is_mmaction2s_exactly():
    layout = state_dict_layout(VIT_BASE, prefix="backbone.")
    assert layout == mmaction2_vit_b_detector_keys()
    blocks = {key.split(".")[2] for key in layout if key.startswith("backbone.blocks.")}
    assert blocks == {str(i) for i in range(12)}
    assert len(layout) == 5 + 12 * 13
    assert "backbone.blocks.0.attn.qkv.bias" not in layout  # no k bias anywhere
    weights = sum(math.prod(s) for k, s in layout.items() if k != "backbone.pos_embed")
    assert weights == 86_227_200


def test_vit_l_and_recognizer_layouts():
    large = state_dict_layout(VIT_LARGE)
    assert len(large) == 5 + 24 * 13
    assert large["pos_embed"] == (1, 1568, 1024)
    assert large["patch_embed.projection.weight"] == (1024, 3, 2, 16, 16)
    assert large["blocks.23.attn.qkv.weight"] == (3072, 1024)
    assert large["blocks.23.mlp.layers.0.0.weight"] == (4096, 1024)
    # The K400 recognizers (use_mean_pooling=True): fc_norm instead of norm, same blocks.
    recognizer = state_dict_layout(recognizer_config(VIT_BASE), prefix="backbone.")
    detector = mmaction2_vit_b_detector_keys()
    assert set(recognizer) - set(detector) == {"backbone.fc_norm.weight", "backbone.fc_norm.bias"}
    assert set(detector) - set(recognizer) == {"backbone.norm.weight", "backbone.norm.bias"}


def test_a_vit_b_checkpoint_in_mmaction2s_layout_loads_strictly():
    """Entries built from the written-down table (meta tensors: no memory) load strict=True."""
    checkpoint = {"backbone." + k: torch.empty(s, device="meta")
                  for k, s in MMACTION2_VIT_B_OUTSIDE_BLOCKS.items()}
    for i in range(12):
        checkpoint.update({f"backbone.blocks.{i}.{k}": torch.empty(s, device="meta")
                           for k, s in MMACTION2_VIT_B_BLOCK.items()})
    checkpoint["roi_head.bbox_head.fc_cls.weight"] = torch.empty(81, 768, device="meta")
    backbone = {k.removeprefix("backbone."): v for k, v in checkpoint.items()
                if k.startswith("backbone.")}
    with torch.device("meta"):
        model = VisionTransformer(VIT_BASE)
    model.load_state_dict(backbone, strict=True, assign=True)
    wrong = dict(backbone, **{"blocks.3.attn.qkv.weight": torch.empty(2304, 1024, device="meta")})
    with pytest.raises(RuntimeError, match="size mismatch"):
        model.load_state_dict(wrong, strict=True, assign=True)


def test_config_validation():
    with pytest.raises(ValueError, match="num_heads"):
        ViTConfig(embed_dims=64, num_heads=3)
    with pytest.raises(ValueError, match="num_frames"):
        ViTConfig(num_frames=15)
    with pytest.raises(ValueError, match="drop_path_rate"):
        ViTConfig(drop_path_rate=1.0)


# ------------------------------------------------------------------------------- forward

def test_feature_map_shapes_at_224_and_at_256x320(tiny):
    with torch.no_grad():
        assert tiny(clip(16, 224, 224)).shape == (1, 64, 8, 14, 14)
        assert tiny(clip(16, 256, 320)).shape == (1, 64, 8, 16, 20)
    assert tiny.output_channels == (64,) and tiny.output_stride == 16
    with pytest.raises(ValueError, match="16 frames"):
        tiny(clip(8, 64, 64))


def test_position_table_is_the_closed_form_sinusoid_at_224(tiny):
    dims = VIT_TINY.embed_dims
    expected = torch.tensor([[math.sin(p / 10000 ** (2 * (j // 2) / dims)) if j % 2 == 0
                              else math.cos(p / 10000 ** (2 * (j // 2) / dims))
                              for j in range(dims)] for p in range(8 * 14 * 14)])
    assert tiny.pos_embed.shape == (1, 1568, dims)
    assert tiny.pos_embed.dtype == torch.float32
    torch.testing.assert_close(tiny.pos_embed[0], expected, atol=1e-6, rtol=0)
    assert "pos_embed" in tiny.state_dict() and "pos_embed" not in dict(tiny.named_parameters())


def test_non_224_input_uses_the_bicubically_resized_table():
    """With no blocks the map is norm(patch conv + table): recompute it by hand, resizing each
    of the 8 temporal 14x14 slices of the table to 16x20 as mmaction2 does."""
    torch.manual_seed(1)
    model = VisionTransformer(replace(VIT_TINY, depth=0)).eval()
    x = clip(16, 256, 320)
    table = model.pos_embed.reshape(8, 14, 14, 64).permute(0, 3, 1, 2)
    table = F.interpolate(table, size=(16, 20), mode="bicubic", align_corners=False)
    table = table.permute(0, 2, 3, 1)  # (T', H', W', C)
    conv = model.patch_embed.projection
    tokens = F.conv3d(x, conv.weight, conv.bias, stride=(2, 16, 16))[0].permute(1, 2, 3, 0)
    expected = F.layer_norm(tokens + table, (64,), model.norm.weight, model.norm.bias, 1e-6)
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(out[0], expected.permute(3, 0, 1, 2), atol=1e-5, rtol=1e-5)
    # At 224 px the stored table is used unchanged.
    assert model.position_table(14, 14) is model.pos_embed
    torch.testing.assert_close(model.position_table(16, 20)[0], table.reshape(-1, 64))


def test_attention_has_q_and_v_biases_and_a_zero_k_bias():
    torch.manual_seed(2)
    attention = Attention(8, num_heads=2)
    with torch.no_grad():
        attention.q_bias.normal_()
        attention.v_bias.normal_()
    x = torch.randn(2, 5, 8)
    q, k, v = (x @ attention.qkv.weight.T).split(8, dim=-1)
    q, v = q + attention.q_bias, v + attention.v_bias
    heads = [t.reshape(2, 5, 2, 4).transpose(1, 2) for t in (q, k, v)]
    weights = ((heads[0] * 4 ** -0.5) @ heads[1].transpose(-2, -1)).softmax(-1)
    expected = attention.proj((weights @ heads[2]).transpose(1, 2).reshape(2, 5, 8))
    torch.testing.assert_close(attention(x), expected, atol=1e-5, rtol=1e-5)


def test_drop_path_rises_linearly_and_is_inactive_in_eval():
    model = VisionTransformer(replace(VIT_TINY, depth=3, drop_path_rate=0.5))
    assert isinstance(model.blocks[0].drop_path, torch.nn.Identity)
    assert [b.drop_path.p for b in model.blocks[1:]] == pytest.approx([0.25, 0.5])
    x = clip(16, 32, 48)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), atol=0, rtol=0)
    model.train()
    torch.manual_seed(3)
    with torch.no_grad():
        first, second = model(torch.cat([x] * 4)), model(torch.cat([x] * 4))
    assert not torch.equal(first, second)
    drop = DropPath(0.5).train()
    kept = drop(torch.ones(1000, 3))
    assert set(kept.unique().tolist()) <= {0.0, 2.0}


def test_gradients_reach_every_parameter():
    model = VisionTransformer(VIT_TINY).train()
    model(clip(16, 32, 48)).square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_state_dict_round_trip_with_weights_only(tiny, tmp_path):
    path = tmp_path / "vit.pth"
    torch.save({"state_dict": OrderedDict(("backbone." + k, v)
                                          for k, v in tiny.state_dict().items())}, path)
    loaded = torch.load(path, weights_only=True)["state_dict"]
    fresh = VisionTransformer(VIT_TINY).eval()
    fresh.load_state_dict({k.removeprefix("backbone."): v for k, v in loaded.items()}, strict=True)
    x = clip(16, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), tiny(x), atol=0, rtol=0)


def test_pooled_recognizer_output():
    model = VisionTransformer(recognizer_config(VIT_TINY)).eval()
    with torch.no_grad():
        assert model(clip(16, 32, 48)).shape == (1, 64)
    assert model.fc_norm is not None and isinstance(model.norm, torch.nn.Identity)


# ---------------------------------------------------------------------- layer-wise lr decay

@pytest.mark.parametrize("name, layer", [
    ("backbone.patch_embed.projection.weight", 0),
    ("backbone.patch_embed.projection.bias", 0),
    ("backbone.pos_embed", 0),
    ("backbone.cls_token", 0),
    ("backbone.blocks.0.attn.q_bias", 1),
    ("backbone.blocks.0.norm1.weight", 1),
    ("backbone.blocks.5.mlp.layers.0.0.weight", 6),
    ("backbone.blocks.11.attn.qkv.weight", 12),
    ("backbone.norm.weight", 13),
    ("backbone.fc_norm.bias", 13),
    ("roi_head.bbox_head.fc_cls.weight", 13),
])
def test_layer_id_for_vit_b(name, layer):
    assert layer_id(name, num_layers=12) == layer


def test_lr_scale_and_weight_decay_groups_for_vit_b():
    # decay_rate ** (num_layers - layer_id + 1): head 1, block 11 0.75, embeddings 0.75 ** 13
    assert lr_scale(13, 12, 0.75) == 1.0
    assert lr_scale(12, 12, 0.75) == 0.75
    assert lr_scale(0, 12, 0.75) == pytest.approx(0.75 ** 13)
    assert layer_id("backbone.blocks.23.norm2.bias", num_layers=24) == 24
    assert lr_scale(layer_id("backbone.patch_embed.projection.weight", 24), 24, 0.8) == \
        pytest.approx(0.8 ** 25)
    two_d, one_d = torch.empty(4, 4), torch.empty(4)
    assert uses_weight_decay("backbone.blocks.0.attn.qkv.weight", two_d)
    assert uses_weight_decay("backbone.patch_embed.projection.weight", torch.empty(4, 3, 2, 2, 2))
    assert not uses_weight_decay("backbone.blocks.0.attn.q_bias", one_d)
    assert not uses_weight_decay("backbone.blocks.0.norm1.weight", one_d)
    assert not uses_weight_decay("backbone.blocks.0.attn.proj.bias", one_d)
