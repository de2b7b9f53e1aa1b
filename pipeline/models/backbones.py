"""The backbone seam: the one table the detector builds its backbone from.

A backbone is a plain ``nn.Module`` class that provides:

- ``from_config(config: ModelConfig)`` (classmethod): check the ``ModelConfig`` fields it uses
  (ValueError "ModelConfig.<field>=<value>: why") and build itself;
- ``forward(clips [B, 3, T, H, W]) -> tuple`` of feature maps ``[B, C_i, T_i, H/s, W/s]``, one
  per pathway, which the RoI head pools over time and joins on channels;
- ``output_channels`` (the ``C_i``), ``output_stride`` (``s``, the spatial stride RoIAlign
  scales boxes by) and ``temporal_strides`` (input frames per output frame of each pathway);
- ``recognizer_only_keys`` / ``detector_only_keys``: backbone-relative key prefixes that its
  Kinetics recognizer checkpoints hold and the detector does not use (dropped when such a
  checkpoint is loaded) / that the detector has and the recognizers lack (left at their
  initialisation); every other key is the detector's ``backbone.<key>``, unchanged;
- ``num_lr_layers``, ``lr_layer_id(name) -> 0..num_lr_layers-1`` (``name`` relative to the
  backbone) and ``no_weight_decay(name, param) -> bool``: how an optimizer with layer-wise lr
  decay groups its parameters (a backbone without decay answers one layer, and False).

Adding a backbone is a module with such a class and one entry in ``BACKBONES``;
``tests/test_backbone_seam.py`` adds a toy one that way and trains it.
"""

from __future__ import annotations

from torch import nn

from .config import ModelConfig
from .resnet3d import SlowFast, SlowOnly
from .vit import ViTBackbone

BACKBONES: dict[str, type[nn.Module]] = {
    "slowonly": SlowOnly,
    "slowfast": SlowFast,
    "vit": ViTBackbone,
}


def build_backbone(config: ModelConfig) -> nn.Module:
    """The backbone ``config.backbone`` names, built from ``config``; an unknown name raises
    ValueError listing the known ones."""
    try:
        backbone = BACKBONES[config.backbone]
    except KeyError:
        raise ValueError(f"ModelConfig.backbone={config.backbone!r}: must be one of "
                         f"{', '.join(BACKBONES)}") from None
    return backbone.from_config(config)
