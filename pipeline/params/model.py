"""The ``model`` group: the head trained on the baseline (``train_head``)."""

from __future__ import annotations

import dataclasses
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


@dataclass(frozen=True)
class ModelParams:
    """The head trained on top of the baseline (``train_head``).

    ``head``: linear | mlp (plain classifiers on the RoI vector), acrn (actor-context
    relations), lfb_nl | lfb_max | lfb_avg (long-term feature bank operators). The backbone is
    the baseline's, frozen unless ``finetune_backbone``.
    """

    head: Literal["linear", "mlp", "acrn", "lfb_nl", "lfb_max", "lfb_avg"]
    finetune_backbone: bool
    with_context: bool
    dropout: float
    lfb: LfbOperatorParams
    acrn: AcrnParams
    train: TrainConfig
    num_threads: int

    def __post_init__(self):
        base = ModelConfig(num_classes=81)
        self.model_config(base, num_slots=1, bank_dim=1)  # validates the combination now
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {self.num_threads}")

    def model_config(self, baseline: ModelConfig, *, num_slots: int, bank_dim: int
                     ) -> ModelConfig:
        """The head's detector: the baseline's backbone and RoI pooling, this head on top.

        ``num_slots``/``bank_dim`` (window slots, bank feature width) matter for lfb heads only.
        """
        classifier = "mlp" if self.head == "mlp" else "linear"
        relation = self.head if self.head not in ("linear", "mlp") else "none"
        try:
            return dataclasses.replace(
                baseline, classifier=classifier, relation=relation, with_context=self.with_context,
                dropout=self.dropout, acrn_out_channels=self.acrn.out_channels,
                acrn_stride=self.acrn.stride, acrn_num_convs=self.acrn.num_convs,
                lfb_channels=bank_dim, lfb_num_lt_feat=num_slots,
                lfb_latent_channels=self.lfb.latent_channels,
                lfb_num_layers=self.lfb.num_layers, lfb_st_dropout=self.lfb.st_dropout,
                lfb_lt_dropout=self.lfb.lt_dropout, lfb_nl_dropout=self.lfb.nl_dropout,
                lfb_pre_activate=self.lfb.pre_activate, lfb_layer_norm=self.lfb.layer_norm,
                lfb_zero_init_out_conv=self.lfb.zero_init_out_conv,
                lfb_include_empty_slots=self.lfb.include_empty_slots,
                lfb_position=self.lfb.position)
        except ValueError as exc:
            raise InputError(str(exc), key="model") from exc
