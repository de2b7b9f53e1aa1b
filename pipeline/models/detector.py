"""The spatio-temporal action detector: backbone + RoI head, mmaction2's FastRCNN layout.

State-dict keys are ``backbone.*`` and ``roi_head.bbox_head.fc_cls.*``, exactly as in an
mmaction2 AVA detector checkpoint. Proposals come from outside (a person detector); there is no
box regression.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .losses import action_loss
from .resnet3d import build_backbone
from .roi_head import BBoxHeadAVA, RoIExtractor3d, RoIHead


class Detector(nn.Module):
    """``Detector(config)``; see ``forward`` for the tensor contract."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config)
        roi_channels = sum(self.backbone.output_channels) * (2 if config.with_context else 1)
        self.roi_head = RoIHead(
            extractor=RoIExtractor3d(stride=self.backbone.output_stride,
                                     output_size=config.roi_output_size,
                                     temporal_pool=config.temporal_pool,
                                     with_context=config.with_context),
            bbox_head=BBoxHeadAVA(in_channels=roi_channels, num_classes=config.num_classes,
                                  dropout=config.dropout, mlp=config.head == "mlp"))
        self.feature_channels = roi_channels

    @staticmethod
    def _check_inputs(clips: Tensor, rois: Tensor) -> None:
        if clips.ndim != 5 or clips.shape[1] != 3:
            raise ValueError(f"clips must be [B, 3, T, H, W], got {tuple(clips.shape)}")
        if rois.ndim != 2 or rois.shape[1] != 5:
            raise ValueError(f"rois must be [R, 5] (batch index, x1, y1, x2, y2), "
                             f"got {tuple(rois.shape)}")

    def forward(self, clips: Tensor, rois: Tensor) -> Tensor:
        """Action logits ``[R, num_classes]`` (column 0 unused).

        ``clips``: ``[B, 3, T, H, W]`` RGB normalised with ImageNet mean/std on 0-255;
        for SlowFast T is the full clip (e.g. 32) and the slow input is subsampled here.
        ``rois``: ``[R, 5]`` = (batch index, x1, y1, x2, y2) in input pixels.
        """
        self._check_inputs(clips, rois)
        return self.roi_head(self.backbone(clips), rois)

    def features(self, clips: Tensor, rois: Tensor) -> Tensor:
        """Per-RoI feature vectors ``[R, feature_channels]`` (2048 for R50 without context).

        Time pooled as configured (avg in the zoo's feature-bank setup), then spatial max over
        the RoIAlign grid: the classifier's input, without dropout.
        """
        self._check_inputs(clips, rois)
        return self.roi_head.features(self.backbone(clips), rois)

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Configured BCE or focal loss; ``targets`` ``[R, num_classes]`` multi-hot, column 0
        ignored; all-zero rows dropped unless ``config.train_negatives``."""
        focal = self.config.loss == "focal"
        return action_loss(logits, targets,
                           focal_alpha=self.config.focal_alpha if focal else 1.0,
                           focal_gamma=self.config.focal_gamma if focal else 0.0,
                           train_negatives=self.config.train_negatives)

    @torch.no_grad()
    def predict(self, clips: Tensor, rois: Tensor) -> Tensor:
        """Sigmoid scores ``[R, num_classes]``; call ``eval()`` first (dropout, BN statistics)."""
        return torch.sigmoid(self.forward(clips, rois))
