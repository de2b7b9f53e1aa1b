"""3D ResNet backbones for AVA: SlowOnly and SlowFast, with mmaction2's state-dict layout.

One generic class, ``ResNet3dPathway`` (stem + four bottleneck stages, optional lateral convs),
receives its parts; ``SlowOnly`` is a single pathway and ``SlowFast`` joins two. The keyword-only
builders ``slowonly`` / ``slowfast`` are the public entry points; ``SlowOnly.from_config`` and
``SlowFast.from_config`` build them for a detector (``pipeline.models.backbones``).

Every backbone returns a tuple of feature maps (one per pathway, ``[B, C_i, T_i, H/16, W/16]``
for the zoo's strides) and declares ``output_channels`` and ``output_stride`` so heads are built
from declared shapes, never from a dummy forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn
import torch

from .blocks import Bottleneck3d, Conv, ConvBN, Triple
from .config import ModelConfig

STEM_STRIDE = 4  # conv1 stride 2 and max-pool stride 2
STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
"""Bottleneck blocks per stage for each ResNet depth."""


def check_resnet_config(config: ModelConfig, *, slowfast: bool) -> None:
    """The ResNet fields of ``config`` (depth, widths, kernels, strides, non-local flags, and
    for SlowFast the pathway ratios); a bad value raises ValueError naming the field."""
    def fail(field: str, why: str) -> None:
        raise ValueError(f"ModelConfig.{field}={getattr(config, field)!r}: {why}")

    if config.depth not in STAGE_BLOCKS:
        fail("depth", f"must be one of {', '.join(map(str, STAGE_BLOCKS))}")
    if config.base_channels < 1:
        fail("base_channels", "must be positive")
    for name in ("stem_kernel", "fast_stem_kernel"):
        kernel = getattr(config, name)
        if len(kernel) != 3 or any(k < 1 or k % 2 == 0 for k in kernel):
            fail(name, "must be three odd positive sizes (t, h, w)")
    if len(config.inflate) != 4 or any(v not in (0, 1) for v in config.inflate):
        fail("inflate", "must be four flags, 0 or 1")
    if len(config.spatial_strides) != 4 or any(s < 1 for s in config.spatial_strides):
        fail("spatial_strides", "must be four positive strides")
    if config.non_local:
        blocks = STAGE_BLOCKS[config.depth]
        if len(config.non_local) != 4 or any(len(flags) != n for flags, n in
                                             zip(config.non_local, blocks)):
            fail("non_local", f"must give one flag per block of each stage {blocks}")
        if any(v not in (0, 1) for flags in config.non_local for v in flags):
            fail("non_local", "flags must be 0 or 1")
    if not slowfast:
        return
    for name in ("resample_rate", "speed_ratio", "channel_ratio"):
        if getattr(config, name) < 1:
            fail(name, "must be positive")
    if config.resample_rate % config.speed_ratio:
        fail("resample_rate", "must be a multiple of speed_ratio")
    if config.clip_len % config.resample_rate:
        fail("clip_len", "must be a multiple of resample_rate (slow frames = clip_len / tau)")
    if config.base_channels % config.channel_ratio:
        fail("base_channels", "must be a multiple of channel_ratio")
    if config.fusion_kernel < 1 or config.fusion_kernel % 2 == 0:
        fail("fusion_kernel", "must be odd and positive")


class NoLayerDecay:
    """The lr-decay and weight-decay answers of a CNN backbone (see
    ``pipeline.models.backbones``): one "layer" (no layer-wise decay), every parameter decayed
    (mmaction2's CNN configs apply weight decay to all parameters)."""

    recognizer_only_keys: tuple[str, ...] = ()
    detector_only_keys: tuple[str, ...] = ()

    @property
    def num_lr_layers(self) -> int:
        return 1

    def lr_layer_id(self, name: str) -> int:
        return 0

    def no_weight_decay(self, name: str, param: Tensor) -> bool:
        return False


@dataclass(frozen=True)
class Lateral:
    """Fast-to-slow lateral connections of a SlowFast slow pathway.

    ``in_channels`` are the fast pathway's widths after the stem and after layers 1-3; each
    lateral conv doubles them and strides time by ``stride`` (alpha) so they can be concatenated
    onto the slow features. No BN/ReLU, as in mmaction2 (``lateral_norm=False``).
    """

    in_channels: tuple[int, int, int, int]
    kernel: int
    stride: int


class ResNet3dPathway(nn.Module):
    """Stem (conv1 + max-pool) then ``layer1``..``layer4`` of bottleneck blocks."""

    def __init__(self, *, depth: int, base_channels: int, stem_kernel: Triple,
                 inflate: tuple[int, ...], spatial_strides: tuple[int, ...],
                 non_local: tuple[tuple[int, ...], ...] = (), lateral: Lateral | None = None):
        super().__init__()
        blocks_per_stage = STAGE_BLOCKS[depth]
        self.conv1 = ConvBN(3, base_channels, stem_kernel, stride=(1, 2, 2),
                            padding=tuple(k // 2 for k in stem_kernel))
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

        self.lateral_names: list[str] = []
        if lateral is not None:
            names = ["conv1_lateral", "layer1_lateral", "layer2_lateral", "layer3_lateral"]
            for name, channels in zip(names, lateral.in_channels):
                self.add_module(name, Conv(channels, 2 * channels, (lateral.kernel, 1, 1),
                                           stride=(lateral.stride, 1, 1),
                                           padding=(lateral.kernel // 2, 0, 0), bias=False))
            self.lateral_names = names

        self.layer_names: list[str] = []
        in_channels = base_channels
        for stage, num_blocks in enumerate(blocks_per_stage):
            planes = base_channels * 2 ** stage
            extra = 2 * lateral.in_channels[stage] if lateral is not None else 0
            blocks = []
            for index in range(num_blocks):
                blocks.append(Bottleneck3d(
                    in_channels + extra if index == 0 else planes * Bottleneck3d.expansion,
                    planes,
                    spatial_stride=spatial_strides[stage] if index == 0 else 1,
                    inflate=bool(inflate[stage]),
                    non_local=bool(non_local and non_local[stage][index])))
            in_channels = planes * Bottleneck3d.expansion
            name = f"layer{stage + 1}"
            self.add_module(name, nn.Sequential(*blocks))
            self.layer_names.append(name)
        self.out_channels = in_channels
        self.stride = STEM_STRIDE * math.prod(spatial_strides)

    def stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.conv1(x))

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for name in self.layer_names:
            x = getattr(self, name)(x)
        return x


class SlowOnly(NoLayerDecay, ResNet3dPathway):
    """A single slow pathway over all clip frames (Feichtenhofer et al., 2019)."""

    @classmethod
    def from_config(cls, config: ModelConfig) -> SlowOnly:
        check_resnet_config(config, slowfast=False)
        return slowonly(depth=config.depth, base_channels=config.base_channels,
                        stem_kernel=config.stem_kernel, inflate=config.inflate,
                        spatial_strides=config.spatial_strides, non_local=config.non_local)

    @property
    def output_channels(self) -> tuple[int, ...]:
        return (self.out_channels,)

    @property
    def output_stride(self) -> int:
        return self.stride

    @property
    def temporal_strides(self) -> tuple[int, ...]:
        return (1,)  # no temporal striding anywhere

    def forward(self, clips: Tensor) -> tuple[Tensor, ...]:
        return (super().forward(clips),)


class SlowFast(NoLayerDecay, nn.Module):
    """Slow and fast pathways with fast-to-slow lateral fusion after the stem and layers 1-3.

    Takes the full clip ``[B, 3, T, H, W]`` (T = fast-pathway frames x tau/alpha); the slow
    pathway sees frames 0, tau, 2tau, ... (mmaction2's nearest temporal resampling), the fast
    one every (tau/alpha)-th frame. Returns ``(slow [B, Cs, T/tau, h, w], fast [B, Cf, T*alpha/tau, h, w])``.
    """

    def __init__(self, *, slow_path: ResNet3dPathway, fast_path: ResNet3dPathway,
                 resample_rate: int, speed_ratio: int):
        super().__init__()
        if not slow_path.lateral_names:
            raise ValueError("SlowFast needs a slow pathway built with lateral connections")
        self.slow_path = slow_path
        self.fast_path = fast_path
        self.resample_rate = resample_rate
        self.speed_ratio = speed_ratio

    @classmethod
    def from_config(cls, config: ModelConfig) -> SlowFast:
        check_resnet_config(config, slowfast=True)
        return slowfast(depth=config.depth, base_channels=config.base_channels,
                        resample_rate=config.resample_rate, speed_ratio=config.speed_ratio,
                        channel_ratio=config.channel_ratio, fusion_kernel=config.fusion_kernel,
                        slow_stem_kernel=config.stem_kernel,
                        fast_stem_kernel=config.fast_stem_kernel, slow_inflate=config.inflate,
                        spatial_strides=config.spatial_strides, non_local=config.non_local)

    @property
    def output_channels(self) -> tuple[int, ...]:
        return (self.slow_path.out_channels, self.fast_path.out_channels)

    @property
    def output_stride(self) -> int:
        return self.slow_path.stride

    @property
    def temporal_strides(self) -> tuple[int, ...]:
        """Input frames per output frame of each pathway (slow: tau, fast: tau / alpha)."""
        return (self.resample_rate, self.resample_rate // self.speed_ratio)

    def forward(self, clips: Tensor) -> tuple[Tensor, ...]:
        frames = clips.shape[2]
        if frames % self.resample_rate:
            raise ValueError(f"SlowFast needs a clip length divisible by resample_rate="
                             f"{self.resample_rate}, got {frames} frames")
        slow = self.slow_path.stem(clips[:, :, ::self.resample_rate])
        fast = self.fast_path.stem(clips[:, :, ::self.resample_rate // self.speed_ratio])
        slow = torch.cat([slow, self.slow_path.conv1_lateral(fast)], dim=1)
        for index, name in enumerate(self.slow_path.layer_names):
            slow = getattr(self.slow_path, name)(slow)
            fast = getattr(self.fast_path, name)(fast)
            if index + 1 < len(self.slow_path.layer_names):
                lateral = getattr(self.slow_path, self.slow_path.lateral_names[index + 1])
                slow = torch.cat([slow, lateral(fast)], dim=1)
        return slow, fast



def slowonly(*, depth: int = 50, base_channels: int = 64, stem_kernel: Triple = (1, 7, 7),
             inflate: tuple[int, ...] = (0, 0, 1, 1), spatial_strides: tuple[int, ...] = (1, 2, 2, 1),
             non_local: tuple[tuple[int, ...], ...] = ()) -> SlowOnly:
    """SlowOnly ResNet3d; the defaults are mmaction2's ``ResNet3dSlowOnly`` AVA settings."""
    return SlowOnly(depth=depth, base_channels=base_channels, stem_kernel=stem_kernel,
                    inflate=inflate, spatial_strides=spatial_strides, non_local=non_local)


def slowfast(*, depth: int = 50, base_channels: int = 64, resample_rate: int = 8,
             speed_ratio: int = 8, channel_ratio: int = 8, fusion_kernel: int = 5,
             slow_stem_kernel: Triple = (1, 7, 7), fast_stem_kernel: Triple = (5, 7, 7),
             slow_inflate: tuple[int, ...] = (0, 0, 1, 1),
             spatial_strides: tuple[int, ...] = (1, 2, 2, 1),
             non_local: tuple[tuple[int, ...], ...] = ()) -> SlowFast:
    """SlowFast ResNet3d; defaults are the zoo's 4x16 setting (8x8: tau=alpha=4, kernel 7)."""
    fast_base = base_channels // channel_ratio
    fast_path = ResNet3dPathway(depth=depth, base_channels=fast_base, stem_kernel=fast_stem_kernel,
                                inflate=(1, 1, 1, 1), spatial_strides=spatial_strides)
    fast_widths = tuple(fast_base * (1 if stage == 0 else Bottleneck3d.expansion * 2 ** (stage - 1))
                        for stage in range(4))
    slow_path = ResNet3dPathway(depth=depth, base_channels=base_channels,
                                stem_kernel=slow_stem_kernel, inflate=slow_inflate,
                                spatial_strides=spatial_strides, non_local=non_local,
                                lateral=Lateral(fast_widths, fusion_kernel, speed_ratio))
    return SlowFast(slow_path=slow_path, fast_path=fast_path, resample_rate=resample_rate,
                    speed_ratio=speed_ratio)

