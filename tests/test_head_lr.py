"""The head's lr against the scale of the frozen features it trains on (``model.lr_feature_norm``)."""

from __future__ import annotations

import pytest
import torch

from pipeline.data.collate import boxes_to_rois
from pipeline.engine.maps import KeyframeMaps, as_features
from pipeline.models.detector import Detector
from pipeline.models.presets import get_preset
from pipeline.tasks.train_head import roi_feature_norm, scaled_lr

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_scaled_lr_only_shrinks_the_lr_of_features_above_the_reference():
    assert scaled_lr(0.2, 13.0, 25.0) == 0.2
    assert scaled_lr(0.2, 25.0, 25.0) == 0.2
    assert scaled_lr(0.2, 100.0, 25.0) == pytest.approx(0.2 / 16)
    assert scaled_lr(0.2, 100.0, None) == 0.2


def maps_with_boxes(scale: float, *, keyframes: int = 6) -> tuple[Detector, KeyframeMaps]:
    torch.manual_seed(0)
    model = Detector(get_preset("tiny")).eval()
    channels = model.roi_head.bbox_head.fc_cls.in_features
    maps = torch.rand(keyframes, channels, 8, 8) * scale
    boxes = [torch.tensor([[4.0, 4.0, 30.0, 40.0], [20.0, 8.0, 50.0, 60.0]])] * (keyframes - 1)
    boxes.append(torch.zeros(0, 4))     # a keyframe without GT boxes
    return model, KeyframeMaps(video_ids=["v"] * keyframes,
                               timestamps=torch.arange(keyframes).numpy(), maps=maps,
                               image_sizes=torch.tensor([[64, 64]] * keyframes),
                               gt_boxes=boxes, gt_labels=[None] * keyframes,
                               proposals=[torch.zeros(0, 4)] * keyframes)


def test_roi_feature_norm_follows_the_scale_of_the_maps():
    model, small = maps_with_boxes(1.0)
    _, large = maps_with_boxes(8.0)
    norm = roi_feature_norm(model, small, batch_size=4)
    assert norm > 0
    assert roi_feature_norm(model, large, batch_size=4) == pytest.approx(8 * norm, rel=1e-4)
