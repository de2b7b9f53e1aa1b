"""Building blocks of the 3D ResNets, named so state-dict keys match mmaction2/mmcv.

mmcv's ``ConvModule`` stores its parts as ``conv`` / ``bn``; the blocks here keep those
attribute names so a released checkpoint loads without any key mapping.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

Triple = tuple[int, int, int]

BN_EPS = 1e-5
BN_MOMENTUM = 0.1


class ConvBN(nn.Module):
    """Conv3d (no bias) -> BatchNorm3d -> optional ReLU, i.e. mmcv's ConvModule with BN3d."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Triple, *,
                 stride: Triple = (1, 1, 1), padding: Triple = (0, 0, 0), relu: bool = True):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=padding,
                              bias=False)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        self.bn = nn.BatchNorm3d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True) if relu else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(self.conv(x))
        return self.relu(x) if self.relu is not None else x


class Conv(nn.Module):
    """A bare Conv3d wrapped so its key reads ``<name>.conv.weight`` (ConvModule without norm)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Triple, *,
                 stride: Triple = (1, 1, 1), padding: Triple = (0, 0, 0), bias: bool):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=padding,
                              bias=bias)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        if bias:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class NonLocal3d(nn.Module):
    """Embedded-Gaussian non-local block with spatially sub-sampled keys and values.

    ``x + BN(conv_out(softmax(theta(x)^T phi(x) / sqrt(C/2)) g(x)))``. Initialised as mmcv's
    ``NonLocal3d`` with ``zeros_init``: theta, phi and g normal with std 0.01, ``conv_out``'s
    conv Kaiming (as every ConvModule conv), only its BN scale (and shift) zero. The block is
    then the identity at first (Wang et al., 2018), yet the BN scale receives a gradient from
    the first step; zeroing the conv as well would leave both at zero gradient forever.
    """

    def __init__(self, channels: int):
        super().__init__()
        inter = max(channels // 2, 1)
        self.inter_channels = inter
        pool = nn.MaxPool3d(kernel_size=(1, 2, 2))
        self.g = nn.Sequential(Conv(channels, inter, (1, 1, 1), bias=True), pool)
        self.theta = Conv(channels, inter, (1, 1, 1), bias=True)
        self.phi = nn.Sequential(Conv(channels, inter, (1, 1, 1), bias=True), pool)
        self.conv_out = ConvBN(inter, channels, (1, 1, 1), relu=False)
        for conv in (self.g[0].conv, self.theta.conv, self.phi[0].conv):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.conv_out.bn.weight)
        nn.init.zeros_(self.conv_out.bn.bias)

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        theta = self.theta(x).reshape(n, self.inter_channels, -1).transpose(1, 2)   # [N, THW, C']
        phi = self.phi(x).reshape(n, self.inter_channels, -1)                        # [N, C', THW/4]
        g = self.g(x).reshape(n, self.inter_channels, -1).transpose(1, 2)           # [N, THW/4, C']
        attention = torch.softmax(theta @ phi / self.inter_channels ** 0.5, dim=-1)
        y = (attention @ g).transpose(1, 2).reshape(n, self.inter_channels, *x.shape[2:])
        return x + self.conv_out(y)


class Bottleneck3d(nn.Module):
    """ResNet bottleneck, 'pytorch' style (the spatial stride sits on the 3x3 conv).

    ``inflate`` turns the first 1x1x1 conv into a (3,1,1) temporal conv (the SlowOnly/SlowFast
    "3x1x1" inflation); temporal stride is always 1, as in every AVA configuration.
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, *, spatial_stride: int, inflate: bool,
                 non_local: bool):
        super().__init__()
        out_channels = planes * self.expansion
        if inflate:
            self.conv1 = ConvBN(in_channels, planes, (3, 1, 1), padding=(1, 0, 0))
        else:
            self.conv1 = ConvBN(in_channels, planes, (1, 1, 1))
        self.conv2 = ConvBN(planes, planes, (1, 3, 3), stride=(1, spatial_stride, spatial_stride),
                            padding=(0, 1, 1))
        self.conv3 = ConvBN(planes, out_channels, (1, 1, 1), relu=False)
        self.downsample = None
        if spatial_stride != 1 or in_channels != out_channels:
            self.downsample = ConvBN(in_channels, out_channels, (1, 1, 1),
                                     stride=(1, spatial_stride, spatial_stride), relu=False)
        self.relu = nn.ReLU(inplace=True)
        self.non_local_block = NonLocal3d(out_channels) if non_local else None

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.conv3(self.conv2(self.conv1(x))) + identity)
        if self.non_local_block is not None:
            out = self.non_local_block(out)
        return out
