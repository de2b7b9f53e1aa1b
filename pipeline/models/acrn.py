"""Actor-centric relation network (ACRN), a ``relation``, laid out as mmaction2's ``ACRNHead``.

Each actor's RoI feature is max-pooled to one vector, tiled over the whole frame's feature map
of its clip and concatenated with it (actor channels first), so the following convs see every
(actor, place) pair. Keys under ``roi_head.shared_head``: ``conv1`` (1x1x1, 2C -> out),
``conv2`` ((1,3,3), spatial ``stride``) and ``convs.{i}`` for each further (1,3,3) conv, all
conv-BN-ReLU. The classifier then max-pools the relation map spatially, as for a RoI map.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .blocks import ConvBN


class ACRN(nn.Module):
    def __init__(self, *, in_channels: int, out_channels: int, stride: int = 1,
                 num_convs: int = 1):
        """``in_channels`` is the RoI feature width C; the first conv sees 2C."""
        super().__init__()
        if num_convs < 1:
            raise ValueError(f"num_convs must be >= 1, got {num_convs}")
        self.conv1 = ConvBN(2 * in_channels, out_channels, (1, 1, 1))
        self.conv2 = ConvBN(out_channels, out_channels, (1, 3, 3), stride=(1, stride, stride),
                            padding=(0, 1, 1))
        self.convs = nn.ModuleList(
            ConvBN(out_channels, out_channels, (1, 3, 3), padding=(0, 1, 1))
            for _ in range(num_convs - 1))
        self.out_channels = out_channels

    def forward(self, roi_maps: Tensor, frame: Tensor, batch_index: Tensor) -> Tensor:
        """``roi_maps`` ``[R, C, S, S]``, ``frame`` ``[B, C, h, w]`` (time-pooled clip maps),
        ``batch_index`` ``[R]`` (clip of each RoI) -> relation maps ``[R, out, h', w']``."""
        height, width = frame.shape[-2:]
        actor = roi_maps.amax(dim=(2, 3))[:, :, None, None].expand(-1, -1, height, width)
        pairs = torch.cat([actor, frame[batch_index]], dim=1).unsqueeze(2)   # [R, 2C, 1, h, w]
        out = self.conv2(self.conv1(pairs))
        for conv in self.convs:
            out = conv(out)
        return out.squeeze(2)
