"""Long-term feature-bank operators (LFB, Wu et al. 2019), laid out as mmaction2's ``FBOHead``.

Each RoI brings a window of S bank features ``lt [R, S, D]`` and a mask ``[R, S]`` (True = a
real feature, False = padding). ``LFBRelation`` pools the RoI map to the short-term vector ``st``
(spatial max of the time-pooled map, i.e. what the bank itself stores), runs one operator and
returns ``cat([st, operator(st, lt)])`` for the classifier.

Empty slots, two modes (``LFBRelation(include_empty_slots=...)``, param
``model.lfb.include_empty_slots``):

- masked (False, the project's default): empty slots are ignored: the attention is a masked
  softmax, ``lfb_max`` and ``lfb_avg`` pool real slots only, and a RoI without any real slot
  gets a zero attention output and zero max/avg (finite, no NaN);
- mmaction2 (True, the zoo presets): mmaction2's bank window (``LFB.sample_long_term_features``)
  is all S slots, zero-filled where no box was seen, with no mask, and ``FBONonLocal``/
  ``FBOMax``/``FBOAvg`` read every slot: a zero slot is projected (to the convs' biases) and
  gets softmax weight like any other, the max includes its zeros, the mean divides by S. A
  checkpoint trained that way scores differently in masked mode whenever a window has empty
  slots, so this mode is what a released LFB checkpoint must run with.

With every slot real the two modes give the same numbers.

Keys under ``roi_head.shared_head.fbo``: the non-local operator's ``st_feat_conv`` and
``lt_feat_conv`` (plain Conv3d, 1x1x1, with bias) and ``non_local_layer_{k}.{st_feat_conv,
lt_feat_conv, global_conv, out_conv}.conv`` plus ``non_local_layer_{k}.ln``; max and avg have
no parameters. The 1x1x1 convs keep mmaction2's Conv3d shapes but are applied to vectors as
linear maps (``pointwise``), since every bank feature and the short-term feature are 1x1x1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import Conv


def pointwise(conv: nn.Conv3d, x: Tensor) -> Tensor:
    """A 1x1x1 Conv3d applied to vectors ``[..., C_in]`` -> ``[..., C_out]``."""
    return F.linear(x, conv.weight.flatten(1), conv.bias)


def masked_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last axis where ``mask`` is True; rows without a True give zeros."""
    filled = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    return torch.softmax(filled, dim=-1) * mask


BOX_CYCLES = (1, 2, 4, 8)               # sinusoid cycles across the frame, per box coordinate
TIME_PERIODS_S = (2, 4, 8, 16, 32, 64)  # sinusoid periods of a slot's time offset, in seconds
BOX_EMBEDDING = 2 * 4 * len(BOX_CYCLES)
TIME_EMBEDDING = 2 * len(TIME_PERIODS_S)


def box_embedding(boxes: Tensor) -> Tensor:
    """Normalised boxes ``[..., 4]`` -> sinusoids ``[..., 32]``. A dot product of two such
    embeddings can express ``cos(2 pi f (a - b))`` per coordinate, i.e. "the same place", which
    a linear map of the raw coordinates cannot."""
    cycles = boxes.new_tensor(BOX_CYCLES) * (2 * torch.pi)
    angles = (boxes[..., :, None] * cycles).flatten(-2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def time_embedding(seconds: Tensor) -> Tensor:
    """Time offsets ``[...]`` (seconds from the keyframe) -> sinusoids ``[..., 12]``."""
    angles = seconds[..., None] * (2 * torch.pi / seconds.new_tensor(TIME_PERIODS_S))
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def _kaiming(conv: nn.Conv3d) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    nn.init.zeros_(conv.bias)


class NonLocalLayer(nn.Module):
    """One attention step from the short-term feature (query) to the bank window (keys, values).

    ``y = softmax(theta(st) . phi(lt) / sqrt(L)) g(lt)``; pre-activated: LayerNorm -> ReLU ->
    out conv -> dropout; otherwise out conv -> LayerNorm -> dropout. The caller adds the residual.
    """

    def __init__(self, channels: int, *, dropout: float, pre_activate: bool, layer_norm: bool,
                 zero_init_out_conv: bool):
        super().__init__()
        self.st_feat_conv = Conv(channels, channels, (1, 1, 1), bias=True)
        self.lt_feat_conv = Conv(channels, channels, (1, 1, 1), bias=True)
        self.global_conv = Conv(channels, channels, (1, 1, 1), bias=True)
        self.out_conv = Conv(channels, channels, (1, 1, 1), bias=True)
        if zero_init_out_conv:
            nn.init.zeros_(self.out_conv.conv.weight)
        # mmaction2's shape [C, num_st_feat=1, 1, 1]; normalising over it = over the C channels.
        self.ln = nn.LayerNorm([channels, 1, 1, 1]) if layer_norm else None
        self.dropout = nn.Dropout(dropout)
        self.pre_activate = pre_activate
        self.root_channels = channels ** 0.5

    def _norm(self, x: Tensor) -> Tensor:
        return x if self.ln is None else self.ln(x[:, :, None, None, None]).flatten(1)

    def forward(self, st: Tensor, lt: Tensor, mask: Tensor) -> Tensor:
        """``st [R, L]``, ``lt [R, S, L]``, ``mask [R, S]`` -> ``[R, L]``."""
        theta = pointwise(self.st_feat_conv.conv, st)
        phi = pointwise(self.lt_feat_conv.conv, lt)
        g = pointwise(self.global_conv.conv, lt)
        weights = masked_softmax(torch.einsum("rc,rsc->rs", theta, phi) / self.root_channels,
                                 mask)
        out = torch.einsum("rs,rsc->rc", weights, g)
        if self.pre_activate:
            out = F.relu(self._norm(out))
        out = pointwise(self.out_conv.conv, out)
        if not self.pre_activate:
            out = self._norm(out)
        return self.dropout(out)


class LFBNonLocal(nn.Module):
    """Project st and lt to ``latent_channels``, then stacked residual non-local layers."""

    def __init__(self, *, st_channels: int, lt_channels: int, latent_channels: int = 512,
                 num_layers: int = 2, st_dropout: float = 0.2, lt_dropout: float = 0.2,
                 layer_dropout: float = 0.2, pre_activate: bool = True, layer_norm: bool = True,
                 zero_init_out_conv: bool = False, position: bool = False):
        super().__init__()
        self.st_feat_conv = nn.Conv3d(st_channels, latent_channels, 1)
        self.lt_feat_conv = nn.Conv3d(lt_channels, latent_channels, 1)
        _kaiming(self.st_feat_conv)
        _kaiming(self.lt_feat_conv)
        # Not in mmaction2 (its keys stay unchanged): where and when each feature was seen,
        # added to the projected features, so attention can follow one actor through the window.
        self.position = position
        if position:
            self.st_position = nn.Linear(BOX_EMBEDDING, latent_channels)
            self.lt_position = nn.Linear(BOX_EMBEDDING + TIME_EMBEDDING, latent_channels)
        self.st_dropout = nn.Dropout(st_dropout)
        self.lt_dropout = nn.Dropout(lt_dropout)
        self.pre_activate = pre_activate
        self.out_channels = latent_channels
        # Numbered attributes (not a ModuleList) because mmaction2's keys are non_local_layer_k.
        self.layer_names = tuple(f"non_local_layer_{k + 1}" for k in range(num_layers))
        for name in self.layer_names:
            self.add_module(name, NonLocalLayer(
                latent_channels, dropout=layer_dropout, pre_activate=pre_activate,
                layer_norm=layer_norm, zero_init_out_conv=zero_init_out_conv))

    def forward(self, st: Tensor, lt: Tensor, mask: Tensor, st_boxes: Tensor | None = None,
                lt_geometry: Tensor | None = None) -> Tensor:
        """``st_boxes [R, 4]`` (normalised) and ``lt_geometry [R, S, 5]`` (box, seconds from
        the keyframe) are required with ``position`` and ignored without."""
        st = pointwise(self.st_feat_conv, st)
        lt = pointwise(self.lt_feat_conv, lt)
        if self.position:
            if st_boxes is None or lt_geometry is None:
                raise ValueError("lfb_nl with position needs st_boxes and lt_geometry")
            st_boxes, lt_geometry = st_boxes.to(st.dtype), lt_geometry.to(lt.dtype)
            st = st + self.st_position(box_embedding(st_boxes))
            lt = lt + self.lt_position(torch.cat([box_embedding(lt_geometry[..., :4]),
                                                  time_embedding(lt_geometry[..., 4])], dim=-1))
        st = self.st_dropout(st)
        lt = self.lt_dropout(lt)
        for name in self.layer_names:
            st = st + getattr(self, name)(st, lt, mask)
            if not self.pre_activate:
                st = F.relu(st)
        return st


class LFBMax(nn.Module):
    """Channel-wise max over the slots in ``mask`` (zeros for a RoI without any)."""

    def __init__(self, *, lt_channels: int):
        super().__init__()
        self.out_channels = lt_channels

    def forward(self, st: Tensor, lt: Tensor, mask: Tensor) -> Tensor:
        pooled = lt.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)
        return torch.where(mask.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled))


class LFBAvg(nn.Module):
    """Mean over the slots in ``mask`` (zeros for a RoI without any)."""

    def __init__(self, *, lt_channels: int):
        super().__init__()
        self.out_channels = lt_channels

    def forward(self, st: Tensor, lt: Tensor, mask: Tensor) -> Tensor:
        count = mask.sum(dim=1, keepdim=True).clamp(min=1).to(lt.dtype)
        return lt.masked_fill(~mask[..., None], 0.0).sum(dim=1) / count


class LFBRelation(nn.Module):
    """Short-term RoI vector concatenated with a bank operator's output: ``[R, C + out]``.

    ``include_empty_slots``: the operator reads all S slots, empty ones as zero features
    (mmaction2's arithmetic), instead of the real slots only; see the module doc.
    """

    def __init__(self, operator: LFBNonLocal | LFBMax | LFBAvg, *, st_channels: int,
                 lt_channels: int, include_empty_slots: bool = False):
        super().__init__()
        self.fbo = operator
        self.st_channels = st_channels
        self.lt_channels = lt_channels
        self.include_empty_slots = include_empty_slots
        self.out_channels = st_channels + operator.out_channels

    @property
    def uses_geometry(self) -> bool:
        return isinstance(self.fbo, LFBNonLocal) and self.fbo.position

    def forward(self, roi_maps: Tensor, lt_features: Tensor, lt_mask: Tensor,
                st_boxes: Tensor | None = None, lt_geometry: Tensor | None = None) -> Tensor:
        """``roi_maps [R, C, S', S']``; ``lt_features [R, S, D]`` (any float dtype, cast to the
        model's); ``lt_mask [R, S]`` bool. Padded slots are zeroed first so that no value there
        (even NaN) can reach the output, then ignored unless ``include_empty_slots``.
        ``st_boxes``/``lt_geometry``: see ``LFBNonLocal``."""
        st = roi_maps.amax(dim=(2, 3))
        lt = lt_features.to(st.dtype).masked_fill(~lt_mask[..., None], 0.0)
        if self.include_empty_slots:
            lt_mask = torch.ones_like(lt_mask)
        if self.uses_geometry:
            out = self.fbo(st, lt, lt_mask, st_boxes, lt_geometry)
        else:
            out = self.fbo(st, lt, lt_mask)
        return torch.cat([st, out], dim=1)
