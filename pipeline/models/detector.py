"""The spatio-temporal action detector: backbone + RoI head, mmaction2's FastRCNN layout.

State-dict keys are ``backbone.*``, ``roi_head.shared_head.*`` (the relation: ACRN or a
feature-bank operator, when configured) and ``roi_head.bbox_head.fc_cls.*`` (the classifier),
exactly as in an mmaction2 AVA detector checkpoint. Proposals come from outside (a person
detector); there is no box regression. Training that freezes the backbone optimises
``roi_head_parameters()`` (every ``roi_head.*`` key) and should keep the backbone in ``eval()``
so its BN statistics stay put.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from .acrn import ACRN
from .config import ModelConfig
from .fbo import LFBAvg, LFBMax, LFBNonLocal, LFBRelation
from .losses import action_loss
from .backbones import build_backbone
from .roi_head import ActionClassifier, RoIExtractor3d, RoIHead


def build_relation(config: ModelConfig, roi_channels: int) -> ACRN | LFBRelation | None:
    """The configured relation for RoI features ``roi_channels`` wide (None for "none")."""
    if config.relation == "acrn":
        out = roi_channels if config.acrn_out_channels is None else config.acrn_out_channels
        return ACRN(in_channels=roi_channels, out_channels=out, stride=config.acrn_stride,
                        num_convs=config.acrn_num_convs)
    if not config.uses_bank:
        return None
    lt_channels = roi_channels if config.lfb_channels is None else config.lfb_channels
    operator: LFBNonLocal | LFBMax | LFBAvg
    if config.relation == "lfb_nl":
        operator = LFBNonLocal(
            st_channels=roi_channels, lt_channels=lt_channels,
            latent_channels=config.lfb_latent_channels, num_layers=config.lfb_num_layers,
            st_dropout=config.lfb_st_dropout, lt_dropout=config.lfb_lt_dropout,
            layer_dropout=config.lfb_nl_dropout, pre_activate=config.lfb_pre_activate,
            layer_norm=config.lfb_layer_norm, zero_init_out_conv=config.lfb_zero_init_out_conv,
            position=config.lfb_position)
    elif config.relation == "lfb_max":
        operator = LFBMax(lt_channels=lt_channels)
    else:
        operator = LFBAvg(lt_channels=lt_channels)
    return LFBRelation(operator, st_channels=roi_channels, lt_channels=lt_channels,
                   include_empty_slots=config.lfb_include_empty_slots)


class Detector(nn.Module):
    """``Detector(config)``; see ``forward`` for the tensor contract."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config)
        roi_channels = sum(self.backbone.output_channels) * (2 if config.with_context else 1)
        relation = build_relation(config, roi_channels)
        classifier_channels = roi_channels if relation is None else relation.out_channels
        self.roi_head = RoIHead(
            extractor=RoIExtractor3d(stride=self.backbone.output_stride,
                                     output_size=config.roi_output_size,
                                     temporal_pool=config.temporal_pool,
                                     with_context=config.with_context),
            relation=relation,
            classifier=ActionClassifier(in_channels=classifier_channels,
                                        num_classes=config.num_classes, dropout=config.dropout,
                                        mlp=config.classifier == "mlp"))
        # Width of features(): the short-term RoI vector that a feature bank stores.
        self.feature_channels = roi_channels
        # Width D of the lt_features an LFB relation expects; None without one.
        self.bank_channels = relation.lt_channels if isinstance(relation, LFBRelation) else None

    @staticmethod
    def _check_inputs(clips: Tensor, rois: Tensor) -> None:
        if clips.ndim != 5 or clips.shape[1] != 3:
            raise ValueError(f"clips must be [B, 3, T, H, W], got {tuple(clips.shape)}")
        if rois.ndim != 2 or rois.shape[1] != 5:
            raise ValueError(f"rois must be [R, 5] (batch index, x1, y1, x2, y2), "
                             f"got {tuple(rois.shape)}")

    def _check_bank(self, rois: Tensor, lt_features: Tensor | None,
                    lt_mask: Tensor | None) -> Tensor | None:
        """Validated ``lt_mask`` (all True when not given); errors name the expected shape."""
        if self.bank_channels is None:
            if lt_features is not None or lt_mask is not None:
                raise ValueError(f"relation {self.config.relation!r} takes no bank "
                                 "features (lt_features/lt_mask)")
            return None
        want = (rois.shape[0], self.config.lfb_num_lt_feat, self.bank_channels)
        if lt_features is None or tuple(lt_features.shape) != want:
            got = None if lt_features is None else tuple(lt_features.shape)
            raise ValueError(f"relation {self.config.relation!r} needs lt_features "
                             f"[R, S, D] = {want} (one bank window per RoI), got {got}")
        if lt_mask is None:
            return torch.ones(want[:2], dtype=torch.bool, device=lt_features.device)
        if lt_mask.dtype != torch.bool or tuple(lt_mask.shape) != want[:2]:
            raise ValueError(f"lt_mask must be bool [R, S] = {want[:2]}, got "
                             f"{lt_mask.dtype} {tuple(lt_mask.shape)}")
        return lt_mask

    def forward(self, clips: Tensor, rois: Tensor, lt_features: Tensor | None = None,
                lt_mask: Tensor | None = None, lt_geometry: Tensor | None = None) -> Tensor:
        """Action logits ``[R, num_classes]`` (column 0 unused).

        ``clips``: ``[B, 3, T, H, W]`` RGB normalised with ImageNet mean/std on 0-255;
        for SlowFast T is the full clip (e.g. 32) and the slow input is subsampled here.
        ``rois``: ``[R, 5]`` = (batch index, x1, y1, x2, y2) in input pixels.
        LFB relations only: ``lt_features`` ``[R, lfb_num_lt_feat, bank_channels]`` (the bank
        window of each RoI, any float dtype) and ``lt_mask`` ``[R, lfb_num_lt_feat]`` bool,
        True = real feature, False = padding; None = every slot real (mmaction2's behaviour).
        ``lt_geometry`` ``[R, lfb_num_lt_feat, 5]``: each slot's normalised box and seconds
        from the keyframe (``FeatureBank.windows(with_geometry=True)``), for ``lfb_position``.
        """
        self._check_inputs(clips, rois)
        lt_mask = self._check_bank(rois, lt_features, lt_mask)
        relation = self.roi_head.shared_head
        if isinstance(relation, LFBRelation) and relation.uses_geometry:
            want = (rois.shape[0], self.config.lfb_num_lt_feat, 5)
            if lt_geometry is None or tuple(lt_geometry.shape) != want:
                got = None if lt_geometry is None else tuple(lt_geometry.shape)
                raise ValueError(f"lfb_position needs lt_geometry [R, S, 5] = {want}, got {got}")
        return self.roi_head(self.backbone(clips), rois, lt_features, lt_mask, lt_geometry)

    def features(self, clips: Tensor, rois: Tensor) -> Tensor:
        """Per-RoI feature vectors ``[R, feature_channels]`` (2048 for R50 without context).

        Time pooled as configured (avg in the zoo's feature-bank setup), then spatial max over
        the RoIAlign grid, without dropout: what a long-term feature bank stores, and the
        classifier's input when there is no relation.
        """
        self._check_inputs(clips, rois)
        return self.roi_head.features(self.backbone(clips), rois)

    def roi_head_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters under ``roi_head.*`` (relation and classifier)."""
        return self.roi_head.parameters()

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters under ``backbone.*``."""
        return self.backbone.parameters()

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Configured BCE or focal loss; ``targets`` ``[R, num_classes]`` multi-hot, column 0
        ignored; all-zero rows dropped unless ``config.train_negatives``."""
        focal = self.config.loss == "focal"
        return action_loss(logits, targets,
                           focal_alpha=self.config.focal_alpha if focal else 1.0,
                           focal_gamma=self.config.focal_gamma if focal else 0.0,
                           train_negatives=self.config.train_negatives)

    @torch.no_grad()
    def predict(self, clips: Tensor, rois: Tensor, lt_features: Tensor | None = None,
                lt_mask: Tensor | None = None, lt_geometry: Tensor | None = None) -> Tensor:
        """Sigmoid scores ``[R, num_classes]``; call ``eval()`` first (dropout, BN statistics)."""
        return torch.sigmoid(self.forward(clips, rois, lt_features, lt_mask, lt_geometry))
