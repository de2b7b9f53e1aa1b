"""Relations (mmaction2's shared heads): ACRN and the feature-bank operators (non-local, max,
avg), their zoo presets against mmaction2's key layout, bank masking, and strict checkpoint
inspection.

References below are written from the mmaction2 formulas in the facts file (5D conv layouts,
``[N, C, S, 1, 1]`` bank tensors, unmasked softmax / pooling), not from the model code."""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace

import pytest
import torch
import torch.nn.functional as F

from pipeline.models.config import ModelConfig
from pipeline.models.detector import Detector
from pipeline.models.presets import PRESETS
from pipeline.models.acrn import ACRN
from pipeline.models.checkpoint import (build_detector_from_checkpoint, load_into,
                                        save_stad_checkpoint)
from pipeline.models.command import add_checkpoint_command
from pipeline.models.fbo import (BOX_EMBEDDING, TIME_EMBEDDING, LFBAvg, LFBRelation, LFBMax,
                                LFBNonLocal, box_embedding, time_embedding)
from pipeline.models.roi_head import RoIExtractor3d
from helpers.zoo_layout import expected_layout, random_state

ACRN21 = "slowfast-acrn_kinetics400-pretrained-r50_8xb8-8x8x1-cosine-10e_ava21-rgb"
ACRN22 = "slowfast-acrn_kinetics400-pretrained-r50_8xb8-8x8x1-cosine-10e_ava22-rgb"
LFB_NL = "slowonly-lfb-nl_kinetics400-pretrained-r50_8xb12-4x16x1-20e_ava21-rgb"
LFB_MAX = "slowonly-lfb-max_kinetics400-pretrained-r50_8xb12-4x16x1-20e_ava21-rgb"
LFB_INFER = "slowonly-lfb_ava-pretrained-r50_infer-4x16x1_ava21-rgb"
SLOWONLY_4X16 = "slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb"
SLOTS = 6




def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="stad")
    add_checkpoint_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def tiny(**changes) -> ModelConfig:
    """The CPU default with small bank settings (bank width = its own 256-d RoI vector)."""
    return replace(PRESETS["tiny"], lfb_latent_channels=16, lfb_num_lt_feat=SLOTS, **changes)


def rois_for(batch: int, size: int) -> torch.Tensor:
    rows = []
    for b in range(batch):
        rows += [[b, 2.0, 3.0, size * 0.6, size - 1.0],
                 [b, size * 0.3, 0.0, size - 1.0, size * 0.5]]
    return torch.tensor(rows)


def bank_mask(rows: int, slots: int, real: list[int]) -> torch.Tensor:
    """``real[i]`` leading slots of row i are real features, the rest padding."""
    return torch.arange(slots)[None, :] < torch.tensor(real)[:, None]


# ---------------------------------------------------------------- presets and key layout

@pytest.mark.parametrize("name", [ACRN21, ACRN22, LFB_NL, LFB_MAX, LFB_INFER])
def test_zoo_relation_presets_match_mmaction2_layout(name):
    with torch.device("meta"):  # shapes only; test_models runs every preset for real
        model = Detector(PRESETS[name])
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected_layout(name)


def test_relation_presets_encode_their_configs():
    acrn = PRESETS[ACRN21]
    assert (acrn.backbone, acrn.clip_len, acrn.frame_interval, acrn.fusion_kernel,
            acrn.relation, acrn.acrn_out_channels, acrn.acrn_stride,
            acrn.acrn_num_convs) == ("slowfast", 32, 2, 7, "acrn", 2304, 1, 1)
    assert PRESETS[ACRN22] == acrn
    nl = PRESETS[LFB_NL]
    assert (nl.backbone, nl.clip_len, nl.frame_interval, nl.temporal_pool, nl.relation,
            nl.lfb_channels, nl.lfb_num_lt_feat, nl.lfb_latent_channels, nl.lfb_num_layers,
            nl.lfb_st_dropout, nl.lfb_lt_dropout, nl.lfb_nl_dropout, nl.lfb_pre_activate,
            nl.lfb_layer_norm, nl.lfb_zero_init_out_conv) == \
        ("slowonly", 4, 16, "avg", "lfb_nl", 2048, 300, 512, 2, 0.2, 0.2, 0.2, True, True, False)
    assert PRESETS[LFB_MAX].relation == "lfb_max" and PRESETS[LFB_MAX].uses_bank
    # mmaction2's zero-filled bank window, read in full (the project's default masks it)
    assert nl.lfb_include_empty_slots and PRESETS[LFB_MAX].lfb_include_empty_slots
    assert not PRESETS["tiny"].lfb_include_empty_slots
    # The bank is filled by the plain SlowOnly 4x16 AVA detector, whose features() width is
    # the bank width the LFB presets expect.
    assert PRESETS[LFB_INFER] == PRESETS[SLOWONLY_4X16] and not PRESETS[LFB_INFER].uses_bank
    with torch.device("meta"):
        assert Detector(PRESETS[LFB_INFER]).feature_channels == Detector(nl).bank_channels == 2048


# ---------------------------------------------------------------- every head, forward + backward

HEAD_CASES = [
    ("linear", "none", False), ("mlp", "none", False), ("linear", "none", True),
    ("mlp", "none", True), ("linear", "acrn", False), ("mlp", "acrn", False),
    ("linear", "lfb_nl", False), ("mlp", "lfb_nl", True), ("linear", "lfb_max", False),
    ("mlp", "lfb_max", True), ("linear", "lfb_avg", False), ("linear", "lfb_avg", True),
]


@pytest.mark.parametrize("classifier, relation, context", HEAD_CASES)
def test_head_forward_backward_on_tiny_backbone(classifier, relation, context):
    torch.manual_seed(0)
    model = Detector(tiny(classifier=classifier, relation=relation, with_context=context)).train()
    rois = rois_for(2, 32)
    bank = mask = None
    if model.config.uses_bank:
        assert model.bank_channels == model.feature_channels == 256 * (2 if context else 1)
        bank = torch.rand(4, SLOTS, model.bank_channels)
        mask = bank_mask(4, SLOTS, [6, 3, 1, 0])   # full, partial, single, empty window
    logits = model(torch.randn(2, 3, 8, 32, 32), rois, bank, mask)
    assert logits.shape == (4, 81) and torch.isfinite(logits).all()
    targets = torch.zeros(4, 81)
    targets[:, 5] = targets[1, 9] = targets[3, 80] = 1.0
    model.loss(logits, targets).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert model.backbone.conv1.conv.weight.grad.abs().sum() > 0
    # Every head module learns. (Not every tensor: at this tiny latent width mmaction2's
    # kaiming init saturates the second non-local softmax, whose query/key grads underflow;
    # the operator tests check those gradients at moderate scale.)
    for module in (model.roi_head.shared_head, model.roi_head.bbox_head):
        if module is not None and any(True for _ in module.parameters()):
            assert sum(p.grad.abs().sum() for p in module.parameters()) > 0
    expected_in = {"none": 256, "acrn": 256, "lfb_nl": 256 + 16, "lfb_max": 2 * 256,
                   "lfb_avg": 2 * 256}[relation]
    if relation in ("none", "lfb_nl") and context:
        expected_in += 256
    if relation in ("lfb_max", "lfb_avg") and context:
        expected_in *= 2
    fc = model.roi_head.bbox_head.fc_cls
    assert (fc[0] if classifier == "mlp" else fc).in_features == expected_in


def test_roi_head_parameters_are_exactly_the_roi_head_keys():
    model = Detector(tiny(relation="lfb_nl"))
    names = {id(p): n for n, p in model.named_parameters()}
    head = {names[id(p)] for p in model.roi_head_parameters()}
    backbone = {names[id(p)] for p in model.backbone_parameters()}
    assert head == {n for n in names.values() if n.startswith("roi_head.")}
    assert any(n.startswith("roi_head.shared_head.fbo.non_local_layer_2.") for n in head)
    assert backbone == {n for n in names.values() if n.startswith("backbone.")}
    assert head | backbone == set(names.values())


# ---------------------------------------------------------------- ACRN

def bn_eval(x: torch.Tensor, bn: torch.nn.BatchNorm3d) -> torch.Tensor:
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def test_acrn_matches_tile_concat_conv_reference_and_uses_each_rois_clip():
    torch.manual_seed(0)
    acrn = ACRN(in_channels=4, out_channels=6, stride=2, num_convs=2).eval()
    assert sorted(k for k in acrn.state_dict() if k.endswith("conv.weight")) == \
        ["conv1.conv.weight", "conv2.conv.weight", "convs.0.conv.weight"]
    for bn in (acrn.conv1.bn, acrn.conv2.bn, acrn.convs[0].bn):   # non-trivial statistics
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.normal_()
        bn.bias.data.normal_()
    roi_maps = torch.randn(3, 4, 2, 2)
    frame = torch.randn(2, 4, 5, 7)
    batch_index = torch.tensor([1, 0, 1])
    out = acrn(roi_maps, frame, batch_index)
    assert out.shape == (3, 6, 3, 4)   # (1,3,3) conv with stride 2, padding 1

    # mmaction2 layout: RoI feats [N, C, 1, S, S], clip map [B, C, 1, h, w].
    actor = F.adaptive_max_pool3d(roi_maps.unsqueeze(2), 1).repeat(1, 1, 1, 5, 7)
    x = torch.cat([actor, frame.unsqueeze(2)[batch_index]], dim=1)
    x = F.relu(bn_eval(F.conv3d(x, acrn.conv1.conv.weight), acrn.conv1.bn))
    x = F.relu(bn_eval(F.conv3d(x, acrn.conv2.conv.weight, stride=(1, 2, 2), padding=(0, 1, 1)),
                       acrn.conv2.bn))
    x = F.relu(bn_eval(F.conv3d(x, acrn.convs[0].conv.weight, padding=(0, 1, 1)),
                       acrn.convs[0].bn))
    assert torch.allclose(out, x.squeeze(2), atol=1e-5)


def test_roi_extractor_returns_the_time_pooled_clip_map_for_acrn():
    extractor = RoIExtractor3d(stride=16, output_size=2, temporal_pool="max")
    features = (torch.randn(2, 3, 4, 4, 4), torch.randn(2, 5, 8, 4, 4))
    rois = torch.tensor([[1, 0.0, 0.0, 32.0, 32.0]])
    result = extractor.extract(features, rois)
    slow = features[0].repeat_interleave(2, dim=2).amax(dim=2)
    assert torch.equal(result.frame, torch.cat([slow, features[1].amax(dim=2)], dim=1))
    assert torch.equal(result.maps, extractor(features, rois))


# ---------------------------------------------------------------- feature-bank operators

def mmaction2_non_local(op: LFBNonLocal, st: torch.Tensor, lt: torch.Tensor) -> torch.Tensor:
    """mmaction2's FBONonLocal in eval mode on ``st [N, C]``, ``lt [N, S, D]``: 5D tensors,
    an unmasked softmax over all S slots. S may be 0 (no feature), giving a zero attention."""
    n, slots = st.shape[0], lt.shape[1]
    s5 = F.conv3d(st[:, :, None, None, None], op.st_feat_conv.weight, op.st_feat_conv.bias)
    if slots:
        l5 = F.conv3d(lt.permute(0, 2, 1)[..., None, None], op.lt_feat_conv.weight,
                      op.lt_feat_conv.bias)
    for name in op.layer_names:
        layer = getattr(op, name)
        c = layer.st_feat_conv.conv.weight.shape[0]
        if slots:
            theta = F.conv3d(s5, layer.st_feat_conv.conv.weight, layer.st_feat_conv.conv.bias)
            phi = F.conv3d(l5, layer.lt_feat_conv.conv.weight, layer.lt_feat_conv.conv.bias)
            g = F.conv3d(l5, layer.global_conv.conv.weight, layer.global_conv.conv.bias)
            theta, phi, g = theta.view(n, c, 1), phi.view(n, c, slots), g.view(n, c, slots)
            p = torch.softmax(theta.permute(0, 2, 1) @ phi / c ** 0.5, dim=-1)
            y = (g @ p.permute(0, 2, 1)).view(n, c, 1, 1, 1)
        else:
            y = torch.zeros(n, c, 1, 1, 1)
        ln = lambda t: F.layer_norm(t, [c, 1, 1, 1], layer.ln.weight, layer.ln.bias)  # noqa: E731
        if op.pre_activate:
            y = F.conv3d(F.relu(ln(y)), layer.out_conv.conv.weight, layer.out_conv.conv.bias)
            s5 = s5 + y
        else:
            y = ln(F.conv3d(y, layer.out_conv.conv.weight, layer.out_conv.conv.bias))
            s5 = F.relu(s5 + y)
    return s5.flatten(1)


def randomised(op: LFBNonLocal) -> LFBNonLocal:
    """Non-trivial LayerNorm affine parameters (they start at 1 and 0)."""
    for name in op.layer_names:
        getattr(op, name).ln.weight.data.normal_()
        getattr(op, name).ln.bias.data.normal_()
    return op.eval()


@pytest.mark.parametrize("pre_activate", [True, False])
def test_non_local_with_all_slots_real_equals_mmaction2(pre_activate):
    torch.manual_seed(0)
    op = randomised(LFBNonLocal(st_channels=6, lt_channels=5, latent_channels=4, num_layers=2,
                                pre_activate=pre_activate))
    st, lt = torch.randn(3, 6), torch.randn(3, 7, 5)
    out = op(st, lt, torch.ones(3, 7, dtype=torch.bool))
    assert out.shape == (3, 4)
    assert torch.allclose(out, mmaction2_non_local(op, st, lt), atol=1e-5)
    (out * torch.randn(3, 4)).sum().backward()
    for name, param in op.named_parameters():
        assert param.grad.abs().sum() > 0, name
    relation = LFBRelation(op, st_channels=6, lt_channels=5).eval()
    roi_maps = torch.randn(3, 6, 2, 2)
    combined = relation(roi_maps, lt, torch.ones(3, 7, dtype=torch.bool))
    st = roi_maps.amax(dim=(2, 3))
    assert torch.allclose(combined, torch.cat([st, mmaction2_non_local(op, st, lt)], 1), atol=1e-5)


def test_non_local_ignores_padded_slots_and_empty_windows_stay_finite():
    torch.manual_seed(0)
    op = randomised(LFBNonLocal(st_channels=6, lt_channels=5, latent_channels=4, num_layers=2))
    relation = LFBRelation(op, st_channels=6, lt_channels=5).eval()
    real = [7, 4, 1, 0]
    mask = bank_mask(4, 7, real)
    roi_maps = torch.randn(4, 6, 2, 2, requires_grad=True)
    lt = torch.randn(4, 7, 5)
    out = relation(roi_maps, lt, mask)
    st = roi_maps.detach().amax(dim=(2, 3))
    for i, k in enumerate(real):   # each row = mmaction2 on its real slots only
        expected = mmaction2_non_local(op, st[i:i + 1], lt[i:i + 1, :k])
        assert torch.allclose(out[i, 6:], expected[0], atol=1e-5), i
    # Anything in the padding, even NaN or inf, changes nothing.
    garbage = lt.clone()
    garbage[~mask] = float("nan")
    garbage[1, 5] = float("inf")
    assert torch.allclose(relation(roi_maps, garbage, mask), out, atol=1e-6)
    # Gradients stay finite through the empty window.
    out.sum().backward()
    assert torch.isfinite(roi_maps.grad).all() and roi_maps.grad[3].abs().sum() > 0
    # An unmasked softmax would have let the padding in.
    unmasked = relation(roi_maps, lt, torch.ones(4, 7, dtype=torch.bool))
    assert not torch.allclose(unmasked[1], out[1], atol=1e-4)


@pytest.mark.parametrize("pre_activate", [True, False])
def test_include_empty_slots_is_mmaction2s_zero_filled_window(pre_activate):
    """mmaction2's LFB window: all S slots, zeros where no box was seen, no mask; FBONonLocal's
    softmax runs over all of them. ``include_empty_slots`` must give exactly that; the masked
    operator must differ wherever a window has empty slots."""
    torch.manual_seed(0)
    op = randomised(LFBNonLocal(st_channels=6, lt_channels=5, latent_channels=4, num_layers=2,
                                pre_activate=pre_activate))
    for name, param in op.named_parameters():   # trained biases: a zero slot projects to them
        if name.endswith("bias") and ".ln." not in name:
            param.data.normal_()
    exact = LFBRelation(op, st_channels=6, lt_channels=5, include_empty_slots=True).eval()
    masked = LFBRelation(op, st_channels=6, lt_channels=5).eval()
    real = [7, 4, 1, 0]
    mask = bank_mask(4, 7, real)
    roi_maps = torch.randn(4, 6, 2, 2)
    lt = torch.randn(4, 7, 5).abs()      # bank features are pooled ReLU outputs
    garbage = lt.clone()
    garbage[~mask] = float("nan")        # whatever the reader leaves there: zeros are used
    st = roi_maps.amax(dim=(2, 3))
    zero_filled = lt.masked_fill(~mask[..., None], 0.0)
    want = torch.cat([st, mmaction2_non_local(op, st, zero_filled)], dim=1)
    got = exact(roi_maps, garbage, mask)
    assert torch.allclose(got, want, atol=1e-5)
    other = masked(roi_maps, garbage, mask)
    assert torch.allclose(other[0], got[0], atol=1e-6)                  # a full window: same
    assert ((other - got)[1:].abs().amax(dim=1) > 1e-3).all()          # empty slots: not


def test_include_empty_slots_max_and_avg_pool_zeros_as_mmaction2():
    """FBOMax/FBOAvg pool all S slots of the zero-filled window: the mean divides by S, the max
    includes the zeros (only visible for negative features; bank features are >= 0)."""
    torch.manual_seed(0)
    lt = -torch.rand(4, 5, 3)
    mask = bank_mask(4, 5, [5, 2, 1, 0])
    zero_filled = lt.masked_fill(~mask[..., None], 0.0).permute(0, 2, 1)[..., None, None]
    roi_maps = torch.randn(4, 2, 2, 2)
    garbage = lt.masked_fill(~mask[..., None], float("nan"))
    for operator, pool in ((LFBMax, F.adaptive_max_pool3d), (LFBAvg, F.adaptive_avg_pool3d)):
        want = pool(zero_filled, (1, None, None)).flatten(1)            # mmaction2: [N, D, S, 1, 1]
        exact = LFBRelation(operator(lt_channels=3), st_channels=2, lt_channels=3,
                        include_empty_slots=True)
        got = exact(roi_maps, garbage, mask)[:, 2:]
        assert torch.allclose(got, want, atol=1e-6), operator.__name__
        masked = LFBRelation(operator(lt_channels=3), st_channels=2, lt_channels=3)
        other = masked(roi_maps, garbage, mask)[:, 2:]
        assert torch.equal(other[0], got[0])
        assert ((other - got)[1:3].abs().amax(dim=1) > 1e-3).all(), operator.__name__
    # the config switch reaches the head
    for relation in ("lfb_nl", "lfb_max", "lfb_avg"):
        model = Detector(tiny(relation=relation, lfb_include_empty_slots=True))
        assert model.roi_head.shared_head.include_empty_slots
        assert not Detector(tiny(relation=relation)).roi_head.shared_head.include_empty_slots


def test_non_local_zero_init_out_conv_starts_as_projection_only():
    torch.manual_seed(0)
    op = LFBNonLocal(st_channels=6, lt_channels=5, latent_channels=4,
                     zero_init_out_conv=True).eval()
    st = torch.randn(2, 6)
    out = op(st, torch.randn(2, 3, 5), torch.ones(2, 3, dtype=torch.bool))
    assert torch.allclose(out, F.linear(st, op.st_feat_conv.weight.flatten(1),
                                        op.st_feat_conv.bias), atol=1e-6)
    no_ln = LFBNonLocal(st_channels=6, lt_channels=5, latent_channels=4, layer_norm=False)
    assert not any(".ln." in k for k in no_ln.state_dict())


def test_box_embeddings_are_most_similar_for_the_same_place():
    """The sinusoids make "same box" a dot-product maximum, which attention can find."""
    boxes = torch.tensor([[0.2, 0.6, 0.3, 0.95], [0.21, 0.6, 0.31, 0.95], [0.2, 0.4, 0.3, 0.775],
                          [0.7, 0.2, 0.8, 0.6]])
    emb = box_embedding(boxes)
    assert emb.shape == (4, BOX_EMBEDDING)
    similarity = emb @ emb[0]
    assert similarity.argmax() == 0 and similarity[1] > similarity[2] > similarity[3]
    assert time_embedding(torch.tensor([0.0, -5.0])).shape == (2, TIME_EMBEDDING)


def test_position_embeddings_change_the_output_and_are_required():
    torch.manual_seed(0)
    op = LFBNonLocal(st_channels=6, lt_channels=5, latent_channels=8, position=True).eval()
    assert {"st_position.weight", "lt_position.weight"} <= set(op.state_dict())
    st, lt = torch.randn(2, 6), torch.randn(2, 3, 5)
    mask = torch.ones(2, 3, dtype=torch.bool)
    boxes = torch.tensor([[0.1, 0.2, 0.3, 0.9], [0.5, 0.2, 0.7, 0.9]])
    geometry = torch.cat([boxes[:, None].expand(2, 3, 4), torch.tensor(
        [-2.0, 0.0, 1.0]).expand(2, 3)[..., None]], dim=-1)
    out = op(st, lt, mask, boxes, geometry)
    moved = geometry.clone()
    moved[..., 4] -= 3.0   # the same features, seen three seconds earlier
    assert not torch.allclose(out, op(st, lt, mask, boxes, moved))
    with pytest.raises(ValueError, match="st_boxes and lt_geometry"):
        op(st, lt, mask)
    plain = LFBNonLocal(st_channels=6, lt_channels=5, latent_channels=8)
    assert not any("position" in k for k in plain.state_dict())   # mmaction2's keys only


def test_max_and_avg_pool_real_slots_and_equal_mmaction2_when_all_real():
    torch.manual_seed(0)
    lt = torch.randn(4, 5, 3)
    everything = torch.ones(4, 5, dtype=torch.bool)
    as_5d = lt.permute(0, 2, 1)[..., None, None]                  # mmaction2's [N, D, S, 1, 1]
    mm_max = F.adaptive_max_pool3d(as_5d, (1, None, None)).flatten(1)
    mm_avg = F.adaptive_avg_pool3d(as_5d, (1, None, None)).flatten(1)
    st = torch.randn(4, 2)
    assert torch.equal(LFBMax(lt_channels=3)(st, lt, everything), mm_max)
    assert torch.allclose(LFBAvg(lt_channels=3)(st, lt, everything), mm_avg, atol=1e-6)

    real = [5, 2, 1, 0]
    mask = bank_mask(4, 5, real)
    got_max = LFBMax(lt_channels=3)(st, lt, mask)
    got_avg = LFBAvg(lt_channels=3)(st, lt, mask)
    for i, k in enumerate(real):
        want_max = lt[i, :k].amax(dim=0) if k else torch.zeros(3)
        want_avg = lt[i, :k].mean(dim=0) if k else torch.zeros(3)
        assert torch.equal(got_max[i], want_max) and torch.allclose(got_avg[i], want_avg), i
    # mmaction2 averages its zero padding in: a different number whenever a window is short.
    padded = lt * mask[..., None]
    assert not torch.allclose(got_avg[1], padded[1].mean(dim=0))


def test_lfb_max_detector_is_classifier_over_roi_vector_then_bank_max():
    torch.manual_seed(0)
    model = Detector(tiny(relation="lfb_max")).eval()
    clips, rois = torch.randn(2, 3, 8, 32, 32), rois_for(2, 32)
    bank = torch.rand(4, SLOTS, 256)
    mask = bank_mask(4, SLOTS, [6, 2, 1, 0])
    st = model.features(clips, rois)
    pooled = torch.stack([bank[i, :k].amax(dim=0) if k else torch.zeros(256)
                          for i, k in enumerate([6, 2, 1, 0])])
    expected = model.roi_head.bbox_head.fc_cls(torch.cat([st, pooled], dim=1))
    assert torch.allclose(model(clips, rois, bank, mask), expected, atol=1e-5)
    # A half-precision bank is accepted; no mask means every slot is real.
    assert torch.allclose(model(clips, rois, bank.half(), None),
                          model(clips, rois, bank.half().float(), torch.ones(4, SLOTS).bool()))
    assert torch.allclose(model.predict(clips, rois, bank, mask), torch.sigmoid(expected),
                          atol=1e-5)


def test_detector_checks_bank_inputs():
    clips, rois = torch.randn(1, 3, 8, 32, 32), rois_for(1, 32)
    lfb = Detector(tiny(relation="lfb_avg"))
    with pytest.raises(ValueError, match=r"needs lt_features \[R, S, D\] = \(2, 6, 256\)"):
        lfb(clips, rois)
    with pytest.raises(ValueError, match="needs lt_features"):
        lfb(clips, rois, torch.rand(2, 5, 256))
    with pytest.raises(ValueError, match="needs lt_features"):
        lfb(clips, rois, torch.rand(2, 6, 128))
    with pytest.raises(ValueError, match="lt_mask must be bool"):
        lfb(clips, rois, torch.rand(2, 6, 256), torch.ones(2, 6))
    with pytest.raises(ValueError, match="takes no bank features"):
        Detector(tiny(relation="acrn"))(clips, rois, torch.rand(2, 6, 256))
    narrow = Detector(tiny(relation="lfb_nl", lfb_channels=32))
    assert narrow.bank_channels == 32 and narrow.feature_channels == 256
    assert narrow.roi_head.shared_head.fbo.lt_feat_conv.weight.shape == (16, 32, 1, 1, 1)


# ---------------------------------------------------------------- config

@pytest.mark.parametrize("field, value", [
    ("relation", "fbo"), ("classifier", "fbo"), ("acrn_out_channels", 0), ("acrn_stride", 0),
    ("acrn_num_convs", 0),
    ("lfb_channels", 0), ("lfb_num_lt_feat", 0), ("lfb_latent_channels", 0),
    ("lfb_num_layers", 0), ("lfb_st_dropout", 1.0), ("lfb_lt_dropout", -0.1),
    ("lfb_nl_dropout", 1.5),
])
def test_config_rejects_bad_relation_values(field, value):
    with pytest.raises(ValueError, match=rf"ModelConfig\.{field}="):
        ModelConfig(**{field: value})


def test_acrn_refuses_frame_context_and_configs_round_trip():
    with pytest.raises(ValueError, match=r"ModelConfig\.with_context=.*acrn"):
        ModelConfig(relation="acrn", with_context=True)
    for config in (PRESETS[ACRN21], PRESETS[LFB_NL], tiny(relation="lfb_avg")):
        as_lists = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
        assert ModelConfig.from_dict(as_lists) == config


# ---------------------------------------------------------------- checkpoints

def test_zoo_acrn_and_lfb_checkpoints_inspect_strictly(tmp_path, capsys):
    for name in (ACRN21, LFB_NL):
        path = tmp_path / f"{name}.pth"
        torch.save({"meta": {"epoch": 10}, "state_dict": random_state(expected_layout(name))},
                   path)
        assert run_cli("checkpoint", "inspect", str(path), "--preset", name) == 0
        out = capsys.readouterr().out
        assert "detector checkpoint" in out and out.strip().endswith("OK"), out
    # The LFB-NL file does not fit LFB-max: the non-local keys are extra, the classifier narrower.
    assert run_cli("checkpoint", "inspect", str(path), "--preset", LFB_MAX) == 1
    out = capsys.readouterr().out
    assert "roi_head.shared_head.fbo.non_local_layer_2.ln.weight" in out
    assert "roi_head.bbox_head.fc_cls.weight [81, 2560] vs [81, 4096]" in out


def test_tiny_lfb_checkpoint_loads_strictly_and_round_trips_the_stad_format(tmp_path):
    config = tiny(relation="lfb_nl")
    model = Detector(config)
    state = random_state({k: tuple(v.shape) for k, v in model.state_dict().items()}, seed=3)
    assert load_into(model, state).ok
    save_stad_checkpoint(tmp_path / "stad.pth", model=model, preset=None)
    rebuilt = build_detector_from_checkpoint(tmp_path / "stad.pth").eval()
    assert rebuilt.config == config
    for key, value in rebuilt.state_dict().items():
        assert torch.equal(value, state[key]), key
    bank = torch.rand(2, SLOTS, 256)
    logits = rebuilt(torch.randn(1, 3, 8, 32, 32), rois_for(1, 32), bank)
    assert torch.isfinite(logits).all()
