"""A toy backbone, the whole of what a new backbone is (``pipeline.models.backbones``):
one module with one class; tests/test_backbone_seam.py adds its table entry."""

from __future__ import annotations

from torch import Tensor, nn

from pipeline.models.config import ModelConfig
from pipeline.models.resnet3d import NoLayerDecay


class ToyBackbone(NoLayerDecay, nn.Module):
    """One strided Conv3d: [B, 3, T, H, W] -> [B, 16, T, H/8, W/8]."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.width = width
        self.conv = nn.Conv3d(3, width, kernel_size=(1, 8, 8), stride=(1, 8, 8))

    @classmethod
    def from_config(cls, config: ModelConfig) -> ToyBackbone:
        return cls()

    def forward(self, clips: Tensor) -> tuple[Tensor]:
        return (self.conv(clips).relu(),)

    @property
    def output_channels(self) -> tuple[int]:
        return (self.width,)

    @property
    def output_stride(self) -> int:
        return 8

    @property
    def temporal_strides(self) -> tuple[int]:
        return (1,)
