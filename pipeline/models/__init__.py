"""Detection models compatible with mmaction2's AVA checkpoints (SlowOnly, SlowFast, ACRN, LFB)."""

from .acrn import ACRNHead
from .assign import Assignment, assign_targets, box_iou, sample_rois
from .config import ModelConfig
from .detector import Detector
from .fbo import LFBAvg, LFBHead, LFBMax, LFBNonLocal
from .losses import action_loss
from .presets import PRESETS, get_preset
from .resnet3d import SlowFast, SlowOnly, build_backbone, slowfast, slowonly

__all__ = [
    "PRESETS", "ACRNHead", "Assignment", "Detector", "LFBAvg", "LFBHead", "LFBMax",
    "LFBNonLocal", "ModelConfig", "SlowFast", "SlowOnly", "action_loss", "assign_targets",
    "box_iou", "build_backbone", "get_preset", "sample_rois", "slowfast", "slowonly",
]
