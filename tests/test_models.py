"""Detection models: zoo presets against mmaction2's key layout, forward passes, RoI pooling,
losses and target assignment."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou as tv_box_iou

from pipeline.errors import InputError
from pipeline.models.assign import assign_targets, box_iou, sample_rois
from pipeline.models.config import ModelConfig
from pipeline.models.detector import Detector
from pipeline.models.losses import action_loss
from pipeline.models.presets import PRESETS, get_preset
from pipeline.models.blocks import NonLocal3d
from pipeline.models.backbones import build_backbone
from pipeline.models.resnet3d import slowfast
from pipeline.models.roi_head import RoIExtractor3d
from helpers.zoo_layout import EXPECTED_KEYS, expected_layout




def rois_for(batch: int, size: int) -> torch.Tensor:
    """Two boxes per clip, in input pixels."""
    rows = []
    for b in range(batch):
        rows += [[b, 2.0, 3.0, size * 0.6, size - 1.0], [b, size * 0.3, 0.0, size - 1.0, size * 0.5]]
    return torch.tensor(rows)


# ---------------------------------------------------------------- presets and key layout

def test_every_preset_has_an_expected_key_list_and_vice_versa():
    listed = {p.stem for p in EXPECTED_KEYS.glob("*.txt") if not p.stem.startswith("recognizer_")}
    assert listed == set(PRESETS)
    # 20 SlowOnly/SlowFast + 2 ACRN + 3 LFB + 2 VideoMAE zoo configs, tiny and tiny-vit
    assert len(PRESETS) == 29


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_matches_mmaction2_layout_and_runs(name):
    """Build once: exact key/shape match with the independent list, then a small forward."""
    config = PRESETS[name]
    torch.manual_seed(0)
    # the full-size ViTs (up to 300 M parameters) on the meta device: shapes only
    big_vit = config.backbone == "vit" and config.vit_size != "tiny"
    with torch.device("meta" if big_vit else "cpu"):
        model = Detector(config).eval()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    want = expected_layout(name)
    assert sorted(set(want) - set(got)) == [], "missing keys"
    assert sorted(set(got) - set(want)) == [], "unexpected keys"
    assert {k: s for k, s in got.items() if s != want[k]} == {}, "shape mismatches"

    # SlowFast: 8 frames is the smallest clip valid for tau 8 and keeps the test fast.
    frames = 8 if config.backbone == "slowfast" else config.clip_len
    device = "meta" if big_vit else "cpu"
    clips = torch.randn(1, 3, frames, 32, 32, device=device)
    bank = None
    if config.uses_bank:  # one bank window per RoI
        bank = torch.rand(2, config.lfb_num_lt_feat, model.bank_channels)
    with torch.no_grad():
        logits = model(clips, rois_for(1, 32).to(device), bank)
    assert logits.shape == (2, 81)
    assert big_vit or torch.isfinite(logits).all()


def test_presets_encode_what_their_names_say():
    so = "slowonly_k700-pre-r50-context-temporal-max-nl-head_8xb8-8x8x1-focal-10e_ava-kinetics-rgb"
    c = PRESETS[so]
    assert (c.with_context, c.temporal_pool, c.classifier, c.loss, c.focal_gamma,
            c.focal_alpha) == (True, "max", "mlp", "focal", 1.0, 1.0)
    assert (c.clip_len, c.frame_interval) == (8, 8)
    sf = PRESETS["slowfast_r50-k400-pre-temporal-max-focal-alpha3-gamma1_8xb6-8x8x1-cosine-10e_ava22-rgb"]
    assert (sf.resample_rate, sf.speed_ratio, sf.fusion_kernel, sf.loss, sf.focal_alpha,
            sf.focal_gamma, sf.temporal_pool) == (4, 4, 7, "focal", 3.0, 1.0, "max")
    sf4 = PRESETS["slowfast_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb"]
    assert (sf4.clip_len, sf4.frame_interval, sf4.resample_rate, sf4.speed_ratio,
            sf4.fusion_kernel) == (32, 2, 8, 8, 5)
    tricks = PRESETS["slowonly_k700-pre-r50_8xb8-16x4x1-10e-tricks_ava-kinetics-rgb"]
    assert (tricks.clip_len, tricks.frame_interval, tricks.classifier) == (16, 4, "mlp")
    base = PRESETS["slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb"]
    assert (base.clip_len, base.frame_interval, base.num_classes, base.dropout,
            base.assigner_iou_threshold, base.train_negatives) == (4, 16, 81, 0.5, 0.9, False)


def test_unknown_preset_lists_valid_names():
    with pytest.raises(InputError) as info:
        get_preset("slowonly_r50_typo", key="model.preset")
    message = str(info.value)
    assert "model.preset" in message and "slowonly_r50_typo" in message
    assert all(name in message for name in PRESETS)


# ---------------------------------------------------------------- config validation

@pytest.mark.parametrize("field, value", [
    ("backbone", ""), ("temporal_pool", "median"), ("classifier", "transformer"), ("dropout", 1.0),
    ("num_classes", 1), ("loss", "softmax"), ("focal_gamma", -1.0), ("focal_alpha", 0.0),
    ("assigner_iou_threshold", 0.0), ("rois_per_image", 0), ("drop_path_rate", 1.0),
])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"ModelConfig\.{field}="):
        ModelConfig(**{field: value})


@pytest.mark.parametrize("backbone, field, value", [
    ("i3d", "backbone", "i3d"),
    ("slowonly", "depth", 34), ("slowonly", "base_channels", 0),
    ("slowonly", "stem_kernel", (1, 6, 7)), ("slowonly", "inflate", (0, 0, 2, 1)),
    ("slowonly", "spatial_strides", (1, 2, 2)), ("slowonly", "non_local", ((1,), (), (), ())),
    ("slowfast", "depth", 34), ("slowfast", "fast_stem_kernel", (4, 7, 7)),
    ("vit", "vit_size", "vit-huge"), ("vit", "clip_len", 5),
])
def test_backbone_rejects_its_bad_fields_naming_them(backbone, field, value):
    """Each backbone checks the fields it uses when it is built (an unknown name too); the
    ResNet fields do not concern a ViT and the other way round."""
    config = ModelConfig(**{"backbone": backbone, "clip_len": 16, field: value})
    with torch.device("meta"), pytest.raises(ValueError, match=rf"ModelConfig\.{field}="):
        build_backbone(config)


def test_backbones_ignore_the_fields_of_other_backbones():
    with torch.device("meta"):
        build_backbone(ModelConfig(backbone="vit", vit_size="tiny", depth=34, clip_len=4))
        build_backbone(ModelConfig(backbone="slowonly", vit_size="no-such-size"))


def test_slowfast_config_checks_clip_and_ratios():
    def build(**fields):
        with torch.device("meta"):
            build_backbone(ModelConfig(backbone="slowfast", **fields))

    with pytest.raises(ValueError, match="clip_len"):
        build(clip_len=30, resample_rate=8, speed_ratio=8)
    with pytest.raises(ValueError, match="resample_rate"):
        build(clip_len=32, resample_rate=4, speed_ratio=8)
    with pytest.raises(ValueError, match="fusion_kernel"):
        build(clip_len=32, fusion_kernel=4)


def test_config_dict_round_trip():
    config = PRESETS["slowonly_kinetics400-pretrained-r50-nl_8xb16-8x8x1-20e_ava21-rgb"]
    as_lists = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
    assert ModelConfig.from_dict(as_lists) == config
    with pytest.raises(ValueError, match="no field"):
        ModelConfig.from_dict({"depht": 50})


# ---------------------------------------------------------------- backbones

def test_tiny_backbone_shapes_and_declared_outputs():
    model = Detector(PRESETS["tiny"])
    (features,) = model.backbone(torch.randn(2, 3, 8, 112, 96))
    assert features.shape == (2, 256, 8, 7, 6)
    assert model.backbone.output_channels == (256,)
    assert model.backbone.output_stride == 16
    assert model.feature_channels == 256


def test_batchnorm_settings():
    bns = [m for m in Detector(PRESETS["tiny"]).modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert bns and all(m.eps == 1e-5 and m.momentum == 0.1 and m.track_running_stats
                       and m.affine for m in bns)


def test_slowfast_pathways_frames_and_channels():
    backbone = slowfast(base_channels=16, channel_ratio=8, resample_rate=4, speed_ratio=4,
                        fusion_kernel=7)
    clips = torch.randn(1, 3, 16, 64, 64)
    seen = {}
    backbone.slow_path.conv1.register_forward_hook(lambda m, i, o: seen.update(slow=i[0]))
    backbone.fast_path.conv1.register_forward_hook(lambda m, i, o: seen.update(fast=i[0]))
    slow, fast = backbone(clips)
    assert slow.shape == (1, 512, 4, 4, 4) and fast.shape == (1, 64, 16, 4, 4)
    assert backbone.output_channels == (512, 64)
    # mmaction2 resamples the slow input by nearest interpolation with scale 1/tau.
    reference = F.interpolate(clips, scale_factor=(1 / 4, 1, 1), mode="nearest")
    assert torch.equal(seen["slow"], reference)
    assert torch.equal(seen["fast"], clips)


def test_slowfast_rejects_clip_not_divisible_by_tau():
    backbone = slowfast(base_channels=16, resample_rate=8, speed_ratio=8)
    with pytest.raises(ValueError, match="resample_rate"):
        backbone(torch.randn(1, 3, 12, 32, 32))


def test_non_local_is_identity_at_init_and_matches_reference_after():
    torch.manual_seed(0)
    block = NonLocal3d(8).eval()
    x = torch.randn(2, 8, 2, 6, 6)
    assert torch.equal(block(x), x)  # zero-initialised BN scale and shift
    # Only the BN affine is set (as after some training); the convs keep their initial weights.
    torch.nn.init.normal_(block.conv_out.bn.weight)
    torch.nn.init.normal_(block.conv_out.bn.bias)
    # Independent reference: embedded Gaussian attention over all positions; keys and values
    # are 1x1x1 convs followed by 2x2 spatial max pooling; scaled by sqrt(inter channels).
    theta = F.conv3d(x, block.theta.conv.weight, block.theta.conv.bias).flatten(2)
    phi = F.max_pool3d(F.conv3d(x, block.phi[0].conv.weight, block.phi[0].conv.bias),
                       (1, 2, 2)).flatten(2)
    g = F.max_pool3d(F.conv3d(x, block.g[0].conv.weight, block.g[0].conv.bias),
                     (1, 2, 2)).flatten(2)
    attention = torch.softmax(torch.einsum("bci,bcj->bij", theta, phi) / 2.0, dim=-1)
    y = torch.einsum("bij,bcj->bci", attention, g).reshape(2, 4, 2, 6, 6)
    bn = block.conv_out.bn
    out = F.batch_norm(F.conv3d(y, block.conv_out.conv.weight), bn.running_mean, bn.running_var,
                       bn.weight, bn.bias, eps=bn.eps)
    assert torch.allclose(block(x), x + out, atol=1e-5)
    assert (block(x) - x).abs().max() > 1e-2   # the attention path is not trivially zero


def test_non_local_learns_from_its_first_step():
    """As mmcv's NonLocal3d: only the output BN's scale starts at zero, so one step of SGD
    already makes the block's residual depend on its input (zeroing conv_out's conv as well
    would leave conv and BN scale at zero gradient forever: only a constant shift learns)."""
    torch.manual_seed(0)
    block = NonLocal3d(8)
    x, target = torch.randn(2, 8, 2, 6, 6), torch.randn(2, 8, 2, 6, 6)
    assert block.conv_out.conv.weight.abs().sum() > 0
    F.mse_loss(block(x), target).backward()
    assert block.conv_out.bn.weight.grad.abs().sum() > 0
    torch.optim.SGD(block.parameters(), lr=0.5).step()
    with torch.no_grad():
        residual = block(x) - x
    # per channel, the residual varies over batch, time and space: it carries attention output
    assert residual.std(dim=(0, 2, 3, 4)).max() > 1e-3


# ---------------------------------------------------------------- RoI pooling and head

def test_roi_extractor_uses_stride_and_batch_index():
    extractor = RoIExtractor3d(stride=16, output_size=4)
    frame = torch.zeros(2, 3, 1, 4, 8)             # a 64 x 128 pixel clip at stride 16
    frame[0, :, :, :, :4] = 1.0                     # clip 0: left half lit
    frame[1, :, :, :, 4:] = 2.0                     # clip 1: right half lit
    rois = torch.tensor([[0, 0.0, 0.0, 64.0, 64.0], [1, 64.0, 0.0, 128.0, 64.0],
                         [0, 64.0, 0.0, 128.0, 64.0]])
    out = extractor((frame,), rois)
    assert out.shape == (3, 3, 4, 4)
    assert torch.allclose(out[0], torch.ones(3, 4, 4))
    assert torch.allclose(out[1], torch.full((3, 4, 4), 2.0))
    assert torch.allclose(out[2], torch.zeros(3, 4, 4))


def test_roi_extractor_temporal_avg_max_and_nearest_repeat():
    slow = torch.arange(3.0).reshape(1, 1, 3, 1, 1).expand(1, 1, 3, 2, 2)   # frames 0, 1, 2
    fast = torch.zeros(1, 1, 8, 2, 2)
    full = torch.tensor([[0, 0.0, 0.0, 32.0, 32.0]])
    avg = RoIExtractor3d(stride=16, output_size=1, temporal_pool="avg")((slow, fast), full)
    mx = RoIExtractor3d(stride=16, output_size=1, temporal_pool="max")((slow, fast), full)
    # Nearest repeat of 3 slow frames to 8: 0,0,0,1,1,1,2,2 -> mean 7/8.
    assert torch.allclose(avg[0, :, 0, 0], torch.tensor([7 / 8, 0.0]))
    assert torch.allclose(mx[0, :, 0, 0], torch.tensor([2.0, 0.0]))


def test_context_appends_whole_frame_feature_of_the_rois_clip():
    extractor = RoIExtractor3d(stride=16, output_size=2, with_context=True)
    features = torch.randn(2, 4, 3, 4, 4)
    rois = torch.tensor([[1, 0.0, 0.0, 16.0, 16.0], [0, 0.0, 0.0, 16.0, 16.0]])
    out = extractor((features,), rois)
    assert out.shape == (2, 8, 2, 2)
    pooled = F.adaptive_avg_pool2d(features.mean(dim=2), 2)
    assert torch.allclose(out[0, 4:], pooled[1]) and torch.allclose(out[1, 4:], pooled[0])


def test_features_are_the_classifier_input_and_heads_differ():
    torch.manual_seed(0)
    model = Detector(PRESETS["tiny"]).eval()
    clips, rois = torch.randn(2, 3, 8, 64, 64), rois_for(2, 64)
    feats = model.features(clips, rois)
    assert feats.shape == (4, 256)
    assert torch.allclose(model.roi_head.bbox_head.fc_cls(feats), model(clips, rois), atol=1e-5)
    mlp = Detector(replace(PRESETS["tiny"], classifier="mlp", with_context=True))
    assert isinstance(mlp.roi_head.bbox_head.fc_cls, torch.nn.Sequential)
    assert mlp.feature_channels == 512
    assert mlp.roi_head.bbox_head.fc_cls[0].weight.shape == (512, 512)


def test_dropout_only_in_training_and_predict_is_sigmoid():
    torch.manual_seed(0)
    model = Detector(PRESETS["tiny"])
    clips, rois = torch.randn(1, 3, 8, 64, 64), rois_for(1, 64)
    model.eval()
    scores = model.predict(clips, rois)
    assert torch.allclose(scores, torch.sigmoid(model(clips, rois)))
    assert not scores.requires_grad and ((scores >= 0) & (scores <= 1)).all()
    feats = model.features(clips, rois)
    model.roi_head.train()  # dropout on, BN untouched
    assert not torch.allclose(model.roi_head.bbox_head(model.roi_head.roi_extractor(
        model.backbone(clips), rois)), model.roi_head.bbox_head.fc_cls(feats))


def test_forward_backward_reaches_backbone_and_head():
    torch.manual_seed(0)
    model = Detector(PRESETS["tiny"])
    targets = torch.zeros(4, 81)
    targets[0, 12] = targets[1, 5] = targets[1, 80] = 1.0
    loss = model.loss(model(torch.randn(2, 3, 8, 64, 64), rois_for(2, 64)), targets)
    loss.backward()
    assert loss.item() > 0
    assert model.backbone.conv1.conv.weight.grad.abs().sum() > 0
    assert model.roi_head.bbox_head.fc_cls.weight.grad.abs().sum() > 0


def test_detector_checks_input_shapes():
    model = Detector(PRESETS["tiny"])
    with pytest.raises(ValueError, match="clips"):
        model(torch.randn(3, 8, 64, 64), rois_for(1, 64))
    with pytest.raises(ValueError, match="rois"):
        model(torch.randn(1, 3, 8, 64, 64), torch.zeros(2, 4))


# ---------------------------------------------------------------- losses

def test_loss_ignores_column_zero_and_negatives():
    logits = torch.randn(3, 5)
    targets = torch.tensor([[1, 1, 0, 0, 1], [1, 0, 0, 0, 0], [0, 0, 1, 0, 0]], dtype=torch.float)
    expected = F.binary_cross_entropy_with_logits(logits[[0, 2], 1:], targets[[0, 2], 1:])
    assert torch.allclose(action_loss(logits, targets), expected)
    changed = logits.clone()
    changed[:, 0] += 10.0
    changed[1] += 5.0  # row 1 has only the background column set: a negative
    assert torch.allclose(action_loss(changed, targets), expected)
    with_negatives = F.binary_cross_entropy_with_logits(logits[:, 1:], targets[:, 1:])
    assert torch.allclose(action_loss(logits, targets, train_negatives=True), with_negatives)


def test_focal_loss_formula():
    logits = torch.randn(4, 6)
    targets = (torch.rand(4, 6) > 0.5).float()
    targets[:, 1] = 1.0
    bce = F.binary_cross_entropy_with_logits(logits[:, 1:], targets[:, 1:], reduction="none")
    p = torch.sigmoid(logits[:, 1:])
    p_t = torch.where(targets[:, 1:] > 0, p, 1 - p)
    expected = (3.0 * (1 - p_t) ** 1.0 * bce).mean()
    assert torch.allclose(action_loss(logits, targets, focal_alpha=3.0, focal_gamma=1.0),
                          expected, atol=1e-6)


def test_loss_without_positive_rows_is_a_connected_zero():
    logits = torch.randn(2, 4, requires_grad=True)
    loss = action_loss(logits, torch.zeros(2, 4))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="targets"):
        action_loss(logits, torch.zeros(2, 5))


def test_detector_loss_follows_config():
    logits = torch.randn(3, 81)
    targets = torch.zeros(3, 81)
    targets[0, 3] = targets[2, 7] = 1.0
    bce = Detector(PRESETS["tiny"]).loss(logits, targets)
    focal = Detector(replace(PRESETS["tiny"], loss="focal", focal_alpha=3.0, focal_gamma=1.0))
    negatives = Detector(replace(PRESETS["tiny"], train_negatives=True))
    assert torch.allclose(bce, action_loss(logits, targets))
    assert torch.allclose(focal.loss(logits, targets),
                          action_loss(logits, targets, focal_alpha=3.0, focal_gamma=1.0))
    assert torch.allclose(negatives.loss(logits, targets),
                          action_loss(logits, targets, train_negatives=True))


# ---------------------------------------------------------------- targets

def test_box_iou_matches_torchvision_and_handles_degenerate_boxes():
    a = torch.tensor([[0.0, 0, 10, 10], [5, 5, 15, 20]])
    b = torch.tensor([[0.0, 0, 10, 10], [2, 3, 8, 9], [20, 20, 30, 30]])
    assert torch.allclose(box_iou(a, b), tv_box_iou(a, b))
    point = torch.tensor([[3.0, 3, 3, 3]])
    assert torch.equal(box_iou(point, point), torch.zeros(1, 1))


def test_assign_targets_gt_first_threshold_and_labels():
    gt = torch.tensor([[0.0, 0, 100, 100], [200, 200, 300, 300]])
    labels = torch.zeros(2, 81)
    labels[0, [3, 12]] = 1.0
    labels[1, 80] = 1.0
    proposals = torch.tensor([[0.0, 0, 100, 95],      # IoU 0.95 with gt 0
                              [0.0, 0, 100, 80],      # IoU 0.80: negative at 0.9
                              [201.0, 200, 300, 300],  # IoU 0.99 with gt 1
                              [500.0, 500, 600, 600]])  # nothing
    result = assign_targets(proposals, gt, labels, iou_threshold=0.9)
    assert torch.equal(result.boxes[:2], gt) and torch.equal(result.boxes[2:], proposals)
    assert result.gt_index.tolist() == [0, 1, 0, -1, 1, -1]
    assert torch.equal(result.labels[2], labels[0]) and torch.equal(result.labels[4], labels[1])
    assert result.labels[[3, 5]].sum() == 0
    assert result.is_positive.tolist() == [True, True, True, False, True, False]
    looser = assign_targets(proposals, gt, labels, iou_threshold=0.75)
    assert looser.gt_index.tolist() == [0, 1, 0, 0, 1, -1]


def test_assign_targets_without_gt_or_proposals():
    none = assign_targets(torch.tensor([[0.0, 0, 5, 5]]), torch.zeros(0, 4), torch.zeros(0, 81))
    assert none.labels.shape == (1, 81) and none.gt_index.tolist() == [-1]
    only_gt = assign_targets(torch.zeros(0, 4), torch.tensor([[0.0, 0, 5, 5]]), torch.ones(1, 81))
    assert only_gt.gt_index.tolist() == [0] and only_gt.labels.sum() == 81
    with pytest.raises(ValueError, match="gt_labels"):
        assign_targets(torch.zeros(1, 4), torch.zeros(2, 4), torch.zeros(3, 81))


def test_sample_rois_positives_first_then_negatives():
    positive = torch.tensor([True, False, True, False, False, True])
    picked = sample_rois(positive, num=4, generator=torch.Generator().manual_seed(0))
    assert picked[:3].sort().values.tolist() == [0, 2, 5]
    assert len(picked) == 4 and not positive[picked[3]]
    many = torch.ones(50, dtype=torch.bool)
    first = sample_rois(many, num=32, generator=torch.Generator().manual_seed(1))
    again = sample_rois(many, num=32, generator=torch.Generator().manual_seed(1))
    assert len(first) == 32 and len(set(first.tolist())) == 32 and torch.equal(first, again)
