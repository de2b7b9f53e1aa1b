"""RoI head: temporal pooling, RoIAlign, optional frame context, optional relation (ACRN or a
feature-bank operator), and the action classifier.

Keys follow mmaction2: the classifier lives in ``roi_head.bbox_head.fc_cls`` (Linear, or
``fc_cls.0`` / ``fc_cls.2`` for the MLP classifier), the relation in ``roi_head.shared_head``;
the RoI extractor is parameter-free. The module attributes ``shared_head`` and ``bbox_head``
are those keys, so they keep mmaction2's names.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from .acrn import ACRN
from .fbo import LFBRelation


class RoIFeatures(NamedTuple):
    maps: Tensor
    """``[R, C', S, S]`` RoIAlign maps (C' = 2 x C_total with context)."""
    frame: Tensor
    """``[B, C_total, h, w]`` the time-pooled, pathway-joined clip maps (ACRN's context)."""


class RoIExtractor3d(nn.Module):
    """Per-RoI feature maps from one or more pathway feature maps.

    Each pathway is first brought to the longest time axis by nearest repetition (the slow
    pathway's frames are repeated to match the fast one's, as mmaction2 does), then pooled over
    time (avg or max) *before* RoIAlign, so one 2D RoIAlign per RoI suffices. Pathways are
    concatenated on channels. ``with_context`` appends the whole frame's feature map,
    average-pooled to the same size, to every RoI of that clip.
    """

    def __init__(self, *, stride: int, output_size: int = 8, temporal_pool: str = "avg",
                 with_context: bool = False):
        super().__init__()
        if temporal_pool not in ("avg", "max"):
            raise ValueError(f"temporal_pool must be 'avg' or 'max', got {temporal_pool!r}")
        self.stride = stride
        self.output_size = output_size
        self.temporal_pool = temporal_pool
        self.with_context = with_context

    def pool_time(self, features: tuple[Tensor, ...]) -> Tensor:
        """``[B, C_total, h, w]``: pathways resampled to a common T, pooled over it, joined."""
        frames = max(f.shape[2] for f in features)
        pooled = []
        for feature in features:
            if feature.shape[2] != frames:
                feature = F.interpolate(feature, size=(frames, *feature.shape[3:]), mode="nearest")
            pooled.append(feature.mean(dim=2) if self.temporal_pool == "avg"
                          else feature.amax(dim=2))
        return torch.cat(pooled, dim=1)

    def extract(self, features: tuple[Tensor, ...], rois: Tensor) -> RoIFeatures:
        """``rois`` ``[R, 5]`` = (batch index, x1, y1, x2, y2) in input pixels."""
        frame = self.pool_time(features)
        rois = rois.to(frame.dtype)
        out = roi_align(frame, rois, self.output_size, spatial_scale=1.0 / self.stride,
                        sampling_ratio=0, aligned=True)
        if self.with_context:
            context = F.adaptive_avg_pool2d(frame, self.output_size)[rois[:, 0].long()]
            out = torch.cat([out, context], dim=1)
        return RoIFeatures(out, frame)

    def forward(self, features: tuple[Tensor, ...], rois: Tensor) -> Tensor:
        """The RoI maps ``[R, C', S, S]`` alone (see ``extract``)."""
        return self.extract(features, rois).maps

    def extra_repr(self) -> str:
        return (f"stride={self.stride}, output_size={self.output_size}, "
                f"temporal_pool={self.temporal_pool!r}, with_context={self.with_context}")


class ActionClassifier(nn.Module):
    """Dropout on the RoI map, spatial max pooling, then a linear or 2-layer MLP classifier
    (mmaction2's ``BBoxHeadAVA`` without box regression)."""

    def __init__(self, *, in_channels: int, num_classes: int, dropout: float = 0.5,
                 mlp: bool = False):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        if mlp:
            self.fc_cls: nn.Module = nn.Sequential(nn.Linear(in_channels, in_channels), nn.ReLU(),
                                                   nn.Linear(in_channels, num_classes))
        else:
            self.fc_cls = nn.Linear(in_channels, num_classes)
        for module in self.fc_cls.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)

    @staticmethod
    def pool(roi_maps: Tensor) -> Tensor:
        """``[R, C, S, S]`` -> ``[R, C]`` by spatial max."""
        return roi_maps.amax(dim=(2, 3))

    def forward(self, roi_maps: Tensor) -> Tensor:
        return self.fc_cls(self.pool(self.dropout(roi_maps)))


class RoIHead(nn.Module):
    """Extractor -> optional relation -> classifier (mmaction2's ``AVARoIHead``).

    ``relation`` None: the classifier sees the RoI maps. ACRN: it sees the relation maps.
    LFB: it sees ``[st, operator(st, bank)]``, where ``st`` is the spatial max of the RoI map.

    Dropout (``bbox_head.dropout``) acts on a map before its spatial max for every head: for
    LFB heads on the RoI map the operator reads, where mmaction2 drops channels of the
    concatenated vector instead. Dropped channels of a pooled vector cost the embedded
    dataset's movement classes 0.03 AP in the linear head's own features (measured:
    docs/experiments.md), so here the heads differ only in what they add. Training only: inference,
    and with it every released checkpoint's output, is the same as mmaction2's.
    """

    def __init__(self, *, extractor: RoIExtractor3d, classifier: ActionClassifier,
                 relation: ACRN | LFBRelation | None = None):
        super().__init__()
        self.roi_extractor = extractor
        self.shared_head = relation  # before bbox_head: mmaction2's key order
        self.bbox_head = classifier

    def forward(self, features: tuple[Tensor, ...], rois: Tensor,
                lt_features: Tensor | None = None, lt_mask: Tensor | None = None,
                lt_geometry: Tensor | None = None) -> Tensor:
        """Logits; ``lt_features``/``lt_mask`` are used by (and required for) an LFB relation,
        ``lt_geometry`` by an ``lfb_nl`` relation with position embeddings."""
        roi = self.roi_extractor.extract(features, rois)
        if isinstance(self.shared_head, ACRN):
            x = self.shared_head(roi.maps, roi.frame, rois[:, 0].long())
        elif isinstance(self.shared_head, LFBRelation):
            if lt_features is None or lt_mask is None:
                raise ValueError("an LFB relation needs lt_features and lt_mask")
            st_boxes = None
            if self.shared_head.uses_geometry:
                # the input's size is the pooled map's times the stride (exact for the sizes
                # the data pipeline produces; within a stride otherwise)
                height, width = (n * self.roi_extractor.stride for n in roi.frame.shape[-2:])
                st_boxes = rois[:, 1:] / rois.new_tensor([width, height, width, height])
            joined = self.shared_head(self.bbox_head.dropout(roi.maps), lt_features, lt_mask,
                                      st_boxes, lt_geometry)
            return self.bbox_head.fc_cls(joined)
        else:
            x = roi.maps
        return self.bbox_head(x)

    def features(self, features: tuple[Tensor, ...], rois: Tensor) -> Tensor:
        """Pooled short-term RoI vectors ``[R, C']`` (spatial max, no dropout): the bank's
        content, and the classifier's input when there is no relation."""
        return self.bbox_head.pool(self.roi_extractor(features, rois))
