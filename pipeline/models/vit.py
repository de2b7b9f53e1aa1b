"""VideoMAE vision transformer backbone with mmaction2 1.2.0's state-dict layout.

Written from the facts of mmaction2's ``mmaction/models/backbones/vit_mae.py`` (and mmcv's
``PatchEmbed``, ``FFN`` and ``DropPath`` that it builds on) so that the ``backbone.*`` entries of
mmaction2's VideoMAE checkpoints load with ``strict=True``:

- tubelet patch embedding: one Conv3d, kernel = stride = (2, 16, 16), no padding
  (``patch_embed.projection``); tokens are ordered time-major, then rows, then columns;
- a fixed 1-D sinusoid table over the flattened tokens of a ``num_frames`` x 224 x 224 clip,
  stored as the persistent buffer ``pos_embed`` (1, T/2 * 14 * 14, C); for another input size
  it is resized bicubically over the 14 x 14 grid, one temporal slice at a time;
- pre-norm blocks (LayerNorm eps 1e-6): ``x + drop_path(attn(norm1(x)))`` then
  ``x + drop_path(mlp(norm2(x)))``; attention has a bias-free ``qkv`` Linear plus learnable
  ``q_bias`` and ``v_bias`` (the key bias is fixed at zero); the MLP is mmcv's FFN
  (``mlp.layers.0.0`` Linear, exact GELU, ``mlp.layers.1`` Linear);
- drop path rates rising linearly from 0 (first block) to ``drop_path_rate`` (last block);
- the final LayerNorm is ``norm`` when ``use_mean_pooling=False`` (the AVA detectors), and
  ``fc_norm`` applied after mean pooling when True (the Kinetics recognizers, whose feature map
  would then be un-normalised, as in mmaction2).

Options that every VideoMAE config leaves at their defaults (dropout, attention dropout, a qk
scale override, layer-scale ``init_values``, a learnable position table) are not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig

# ------------------------------------------------------------------------- configurations


@dataclass(frozen=True)
class ViTConfig:
    """Hyper-parameters of mmaction2's ``VisionTransformer``; defaults are the ViT-B detector."""

    embed_dims: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    tubelet_size: int = 2
    img_size: int = 224
    """Side of the square image the position table is computed for (always 224 in the zoo)."""
    num_frames: int = 16
    """Frames per clip; the position table covers ``num_frames // tubelet_size`` token slices,
    and an input with another frame count is refused."""
    in_channels: int = 3
    qkv_bias: bool = True
    drop_path_rate: float = 0.2
    norm_eps: float = 1e-6
    use_mean_pooling: bool = False
    """False: final LayerNorm ``norm`` on every token (detectors). True: ``fc_norm`` after
    mean pooling, ``norm`` absent (recognizers)."""
    return_feat_map: bool = True
    """True: forward gives the (N, C, T/2, H/16, W/16) map for the RoI head; False: a pooled
    (N, C) vector as mmaction2's recognizer backbone."""

    def __post_init__(self) -> None:
        def fail(field: str, why: str) -> None:
            raise ValueError(f"ViTConfig.{field}: {why}")

        for field in ("embed_dims", "num_heads", "patch_size", "tubelet_size", "img_size",
                      "num_frames", "in_channels"):
            if getattr(self, field) < 1:
                fail(field, f"must be >= 1, got {getattr(self, field)}")
        if self.depth < 0:
            fail("depth", f"must be >= 0, got {self.depth}")
        if self.embed_dims % self.num_heads:
            fail("num_heads", f"{self.num_heads} does not divide embed_dims={self.embed_dims}")
        if self.embed_dims % 2:
            fail("embed_dims", f"the sinusoid table needs an even width, got {self.embed_dims}")
        if self.img_size % self.patch_size:
            fail("img_size", f"{self.img_size} is not a multiple of patch_size={self.patch_size}")
        if self.num_frames % self.tubelet_size:
            fail("num_frames",
                 f"{self.num_frames} is not a multiple of tubelet_size={self.tubelet_size}")
        if self.mlp_ratio <= 0:
            fail("mlp_ratio", f"must be > 0, got {self.mlp_ratio}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            fail("drop_path_rate", f"must be in [0, 1), got {self.drop_path_rate}")

    @property
    def grid_size(self) -> int:
        """Patches per side of the image the position table is computed for (14 at 224 px)."""
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """Rows of the position table: (T / tubelet) * grid * grid (1568 for 16 x 224 x 224)."""
        return (self.num_frames // self.tubelet_size) * self.grid_size ** 2


VIT_BASE = ViTConfig(embed_dims=768, depth=12, num_heads=12)
"""backbone of ``vit-base-p16_videomae-k400-pre_8xb8-16x4x1-20e-adamw_ava-kinetics-rgb``."""
VIT_LARGE = ViTConfig(embed_dims=1024, depth=24, num_heads=16)
"""backbone of ``vit-large-p16_videomae-k400-pre_8xb8-16x4x1-20e-adamw_ava-kinetics-rgb``."""
VIT_TINY = ViTConfig(embed_dims=64, depth=2, num_heads=2, drop_path_rate=0.1)
"""CPU test size: the ViT-B layout at 2 blocks of width 64 (about 0.2 M parameters)."""

VIT_CONFIGS = {"vit-base": VIT_BASE, "vit-large": VIT_LARGE, "tiny": VIT_TINY}


def recognizer_config(config: ViTConfig) -> ViTConfig:
    """The same backbone as the K400 VideoMAE recognizers build it (``fc_norm``, pooled
    output, no drop path at test time); their checkpoints use this key layout."""
    return replace(config, use_mean_pooling=True, return_feat_map=False, drop_path_rate=0.0)


# ----------------------------------------------------------------------------- the parts


def sinusoid_table(num_positions: int, dims: int) -> Tensor:
    """(1, num_positions, dims) table: column 2i / 2i+1 of row p is sin / cos of
    p / 10000^(2i / dims), computed in float64 and stored as float32 like mmaction2's."""
    exponent = torch.div(torch.arange(dims, dtype=torch.float64), 2, rounding_mode="floor")
    inverse_frequency = 10000.0 ** (-2.0 * exponent / dims)
    angles = torch.arange(num_positions, dtype=torch.float64)[:, None] * inverse_frequency
    table = torch.empty_like(angles)
    table[:, 0::2] = angles[:, 0::2].sin()
    table[:, 1::2] = angles[:, 1::2].cos()
    return table.to(torch.float32).unsqueeze(0)


def resize_position_table(table: Tensor, *, grid: int, height: int, width: int) -> Tensor:
    """Resize a (1, T' * grid * grid, C) table to (1, T' * height * width, C): each temporal
    slice is a C-channel grid x grid image, resized bicubically (align_corners=False)."""
    dims = table.shape[-1]
    images = table.reshape(-1, grid, grid, dims).permute(0, 3, 1, 2)
    images = F.interpolate(images, size=(height, width), mode="bicubic", align_corners=False)
    return images.permute(0, 2, 3, 1).reshape(1, -1, dims)


class PatchEmbed3d(nn.Module):
    """Non-overlapping tubelets -> tokens; the conv is named ``projection`` as in mmcv."""

    def __init__(self, in_channels: int, embed_dims: int, tubelet: tuple[int, int, int]):
        super().__init__()
        self.projection = nn.Conv3d(in_channels, embed_dims, kernel_size=tubelet, stride=tubelet)

    def forward(self, clips: Tensor) -> Tensor:
        """(N, C_in, T, H, W) -> (N, T' * H' * W', C), time-major token order."""
        return self.projection(clips).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention whose qkv bias is (q_bias, 0, v_bias): VideoMAE/BEiT keep
    the key bias out because softmax is invariant to it."""

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads) ** -0.5
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(embed_dims))
            self.v_bias = nn.Parameter(torch.zeros(embed_dims))
        else:
            self.q_bias = self.v_bias = None
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, dims = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias)
        q, k, v = qkv.reshape(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dims))


class Mlp(nn.Module):
    """mmcv ``FFN`` with two fcs and no identity: keys ``layers.0.0`` and ``layers.1``."""

    def __init__(self, embed_dims: int, hidden_dims: int):
        super().__init__()
        # layers.0 = Sequential(Linear, GELU, Dropout); layers.1 = Linear; layers.2 = Dropout.
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(embed_dims, hidden_dims), nn.GELU(), nn.Dropout(0.0)),
            nn.Linear(hidden_dims, embed_dims),
            nn.Dropout(0.0),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a sample's residual branch with probability ``p``
    and scale the kept ones by 1 / (1 - p); the identity in eval."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device)
        return x * mask.bernoulli_(keep) / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Block(nn.Module):
    """Pre-norm transformer block; ``drop_path`` is an identity when its rate is 0."""

    def __init__(self, embed_dims: int, num_heads: int, *, mlp_ratio: float, qkv_bias: bool,
                 drop_path: float, norm_eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = Attention(embed_dims, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


# --------------------------------------------------------------------------- the backbone


class VisionTransformer(nn.Module):
    """VideoMAE ViT; ``forward`` gives (N, C, T/2, H/16, W/16) when ``return_feat_map``."""

    def __init__(self, config: ViTConfig = VIT_BASE):
        super().__init__()
        self.config = config
        c = config
        self.patch_embed = PatchEmbed3d(c.in_channels, c.embed_dims,
                                        (c.tubelet_size, c.patch_size, c.patch_size))
        self.register_buffer("pos_embed", sinusoid_table(c.num_patches, c.embed_dims))
        # float32 like mmaction2's ``torch.linspace(0, drop_path_rate, depth)``; on the CPU even
        # when the module is built on the meta device.
        rates = torch.linspace(0, c.drop_path_rate, c.depth, device="cpu").tolist()
        self.blocks = nn.ModuleList(
            Block(c.embed_dims, c.num_heads, mlp_ratio=c.mlp_ratio, qkv_bias=c.qkv_bias,
                  drop_path=rate, norm_eps=c.norm_eps) for rate in rates)
        if c.use_mean_pooling:
            self.norm = nn.Identity()
            self.fc_norm = nn.LayerNorm(c.embed_dims, eps=c.norm_eps)
        else:
            self.norm = nn.LayerNorm(c.embed_dims, eps=c.norm_eps)
            self.fc_norm = None
        self.init_weights()

    def init_weights(self) -> None:
        """mmaction2's init_cfg: Linear weights truncated normal (std 0.02), biases 0;
        LayerNorms 1 and 0; q/v biases 0; the patch conv keeps PyTorch's default."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02, a=-2.0, b=2.0)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def output_channels(self) -> tuple[int]:
        return (self.config.embed_dims,)

    @property
    def output_stride(self) -> int:
        return self.config.patch_size

    @property
    def temporal_stride(self) -> int:
        return self.config.tubelet_size

    def position_table(self, height: int, width: int) -> Tensor:
        """The table for a ``height`` x ``width`` patch grid: the stored one at the configured
        grid, else its bicubic resize."""
        grid = self.config.grid_size
        if (height, width) == (grid, grid):
            return self.pos_embed
        return resize_position_table(self.pos_embed, grid=grid, height=height, width=width)

    def forward(self, clips: Tensor) -> Tensor:
        c = self.config
        if clips.ndim != 5 or clips.shape[2] != c.num_frames:
            raise ValueError(f"VisionTransformer expects (N, {c.in_channels}, {c.num_frames}, H, "
                             f"W) clips (its position table is for {c.num_frames} frames), "
                             f"got {tuple(clips.shape)}")
        batch = clips.shape[0]
        height, width = clips.shape[3] // c.patch_size, clips.shape[4] // c.patch_size
        x = self.patch_embed(clips)
        x = x + self.position_table(height, width)  # float32 under autocast, as in mmaction2
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        if c.return_feat_map:
            return x.reshape(batch, -1, height, width, c.embed_dims).permute(0, 4, 1, 2, 3)
        if self.fc_norm is not None:
            return self.fc_norm(x.mean(1))
        return x[:, 0]


class ViTBackbone(VisionTransformer):
    """The detector's ViT (``backbone: vit``): the feature map as a one-pathway tuple, and the
    seam's lr-decay and checkpoint answers (``pipeline.models.backbones``). Same modules and
    state-dict keys as ``VisionTransformer``."""

    recognizer_only_keys = ("fc_norm.",)
    """The K400 recognizers' final LayerNorm (``use_mean_pooling=True``). mmaction2 loads them
    into the detector non-strictly, so ``fc_norm`` is unused and the detector's ``norm`` keeps
    its initialisation (1, 0); the same happens here."""
    detector_only_keys = ("norm.",)
    """The detector's final LayerNorm (``use_mean_pooling=False``), absent from recognizers."""

    @classmethod
    def from_config(cls, config: ModelConfig) -> ViTBackbone:
        if config.vit_size not in VIT_CONFIGS:
            raise ValueError(f"ModelConfig.vit_size={config.vit_size!r}: must be one of "
                             f"{', '.join(VIT_CONFIGS)}")
        try:
            vit = replace(VIT_CONFIGS[config.vit_size], num_frames=config.clip_len,
                          drop_path_rate=config.drop_path_rate)
        except ValueError as error:  # "ViTConfig.num_frames: why"
            raise ValueError(f"ModelConfig.clip_len={config.clip_len!r}: {error}") from None
        return cls(vit)

    def forward(self, clips: Tensor) -> tuple[Tensor]:
        return (super().forward(clips),)

    @property
    def temporal_strides(self) -> tuple[int]:
        return (self.config.tubelet_size,)

    @property
    def num_lr_layers(self) -> int:
        """Embeddings, one per block, then the rest (mmaction2's ``num_layers`` + 2)."""
        return self.config.depth + 2

    def lr_layer_id(self, name: str) -> int:
        return layer_id(BACKBONE_PREFIX + name, self.config.depth)

    def no_weight_decay(self, name: str, param: Tensor) -> bool:
        return not uses_weight_decay(name, param)


# ------------------------------------------------------------- layout and lr-decay layers

BACKBONE_PREFIX = "backbone."


def state_dict_layout(config: ViTConfig, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """Key -> shape of the backbone's state dict (``prefix`` e.g. "backbone."), read off the
    module built on the meta device, so ViT-L costs no memory."""
    with torch.device("meta"):
        model = VisionTransformer(config)
    return {prefix + key: tuple(value.shape) for key, value in model.state_dict().items()}


def layer_id(name: str, num_layers: int) -> int:
    """The lr-decay "layer" of a detector parameter named as in the whole model (with its
    ``backbone.`` prefix), by mmaction2's rule for a VisionTransformer: the embeddings
    (``backbone.patch_embed.*``, ``backbone.pos_embed``, cls/mask tokens) are layer 0,
    ``backbone.blocks.i.*`` is layer i + 1, everything else (final norm, RoI head) is
    ``num_layers + 1``. ``num_layers`` is the config's ``paramwise_cfg.num_layers`` (= depth)."""
    if name in ("backbone.cls_token", "backbone.mask_token", "backbone.pos_embed"):
        return 0
    if name.startswith("backbone.patch_embed"):
        return 0
    if name.startswith("backbone.blocks"):
        return int(name.split(".")[2]) + 1
    return num_layers + 1


def lr_scale(layer: int, num_layers: int, decay_rate: float) -> float:
    """Multiplier of the base lr for a layer: decay_rate ** (num_layers + 1 - layer), so the
    head gets 1 and the embeddings decay_rate ** (num_layers + 1)."""
    return decay_rate ** (num_layers - layer + 1)


def uses_weight_decay(name: str, param: Tensor) -> bool:
    """mmaction2's constructor exempts 1-D parameters (norms, q/v biases) and any ``.bias``."""
    return not (param.ndim == 1 or name.endswith(".bias"))
