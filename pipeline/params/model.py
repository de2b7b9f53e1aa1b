"""The ``model`` group: the head trained on the baseline (``train_head``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

from pipeline.engine.config import TrainConfig
from pipeline.errors import InputError
from pipeline.models.config import ModelConfig


@dataclass(frozen=True)
class LfbOperatorParams:
    """The bank operators; see ModelConfig's ``lfb_*`` fields. ``include_empty_slots`` acts on
    lfb_nl, lfb_max and lfb_avg (True: mmaction2's zero-filled slots, for the zoo's heads and
    checkpoints); the rest on lfb_nl only."""

    latent_channels: int
    num_layers: int
    st_dropout: float
    lt_dropout: float
    nl_dropout: float
    pre_activate: bool
    layer_norm: bool
    zero_init_out_conv: bool
    include_empty_slots: bool
    position: bool


@dataclass(frozen=True)
class AcrnParams:
    """The ACRN relation; ``out_channels`` null = the RoI feature width."""

    out_channels: int | None
    stride: int
    num_convs: int


HEAD_CHOICES = ("linear", "mlp", "acrn", "lfb_nl", "lfb_max", "lfb_avg")

# The ModelConfig fields ``ModelParams.model_config`` sets: every other field is the baseline's,
# which is how ``train_head`` checks that a baseline checkpoint fits the head's detector.
HEAD_FIELDS = frozenset({
    "classifier", "relation", "with_context", "dropout",
    "acrn_out_channels", "acrn_stride", "acrn_num_convs",
    "lfb_channels", "lfb_num_lt_feat", "lfb_latent_channels", "lfb_num_layers",
    "lfb_st_dropout", "lfb_lt_dropout", "lfb_nl_dropout", "lfb_pre_activate", "lfb_layer_norm",
    "lfb_zero_init_out_conv", "lfb_include_empty_slots", "lfb_position"})


def baseline_differences(baseline: ModelConfig, head: ModelConfig) -> list[str]:
    """``"field=head value (baseline's: value)"`` for each field outside ``HEAD_FIELDS`` where
    ``head`` is not built on ``baseline`` (another backbone, size, clip, classes ...)."""
    return [f"{f.name}={getattr(head, f.name)!r} (baseline's: {getattr(baseline, f.name)!r})"
            for f in dataclasses.fields(ModelConfig)
            if f.name not in HEAD_FIELDS and getattr(head, f.name) != getattr(baseline, f.name)]


@dataclass(frozen=True)
class ModelParams:
    """The head trained on top of the baseline (``train_head``).

    ``head``: linear | mlp (plain classifiers on the RoI vector), acrn (actor-context
    relations), lfb_nl | lfb_max | lfb_avg (long-term feature bank operators). The backbone is
    the baseline's, frozen unless ``finetune_backbone``.

    ``lr_feature_norm``: the norm of frozen RoI features ``train.lr`` is meant for. A head on
    frozen features is stable only below a step size that shrinks with the square of their
    norm, and a briefly trained baseline gives features of any norm (up to 100 and more, per
    video, against the default's 99th percentile of about 13); where the train RoIs' 99th
    percentile exceeds this, ``train.lr`` is scaled by ``(lr_feature_norm / percentile) ** 2``.
    null: ``train.lr`` as is. The frozen-backbone path only.
    """

    head: Literal["linear", "mlp", "acrn", "lfb_nl", "lfb_max", "lfb_avg"]
    finetune_backbone: bool
    with_context: bool
    dropout: float
    lfb: LfbOperatorParams
    acrn: AcrnParams
    train: TrainConfig
    lr_feature_norm: float | None
    num_threads: int

    def __post_init__(self):
        base = ModelConfig(num_classes=81)
        self.model_config(base, num_slots=1, bank_dim=1)  # validates the combination now
        if self.lr_feature_norm is not None and not (
                math.isfinite(self.lr_feature_norm) and self.lr_feature_norm > 0):
            raise ValueError(f"lr_feature_norm must be a positive number or null, got "
                             f"{self.lr_feature_norm}")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {self.num_threads}")

    def model_config(self, baseline: ModelConfig, *, num_slots: int, bank_dim: int
                     ) -> ModelConfig:
        """The head's detector: the baseline's config with this group's ``HEAD_FIELDS``.

        ``num_slots``/``bank_dim`` (window slots, bank feature width) matter for lfb heads only.
        """
        values = dict(
            classifier="mlp" if self.head == "mlp" else "linear",
            relation=self.head if self.head not in ("linear", "mlp") else "none",
            with_context=self.with_context, dropout=self.dropout,
            acrn_out_channels=self.acrn.out_channels, acrn_stride=self.acrn.stride,
            acrn_num_convs=self.acrn.num_convs,
            lfb_channels=bank_dim, lfb_num_lt_feat=num_slots,
            lfb_latent_channels=self.lfb.latent_channels,
            lfb_num_layers=self.lfb.num_layers, lfb_st_dropout=self.lfb.st_dropout,
            lfb_lt_dropout=self.lfb.lt_dropout, lfb_nl_dropout=self.lfb.nl_dropout,
            lfb_pre_activate=self.lfb.pre_activate, lfb_layer_norm=self.lfb.layer_norm,
            lfb_zero_init_out_conv=self.lfb.zero_init_out_conv,
            lfb_include_empty_slots=self.lfb.include_empty_slots,
            lfb_position=self.lfb.position)
        # checked at every load (__post_init__ calls this), so HEAD_FIELDS cannot drift
        assert values.keys() == HEAD_FIELDS, sorted(values.keys() ^ HEAD_FIELDS)
        try:
            return dataclasses.replace(baseline, **values)
        except ValueError as exc:
            raise InputError(str(exc), key="model") from exc
