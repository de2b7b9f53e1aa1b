"""Named model configurations: every SlowOnly/SlowFast/ACRN/LFB/VideoMAE AVA detector of
mmaction2's zoo.

Keys are the exact stems of the mmaction2 config files, so users pick the name they know and a
released checkpoint of that config loads strictly. ``tiny`` is the project's CPU default:
the SlowOnly R50 layout at 1/8 width (0.52 M parameters); ``tiny-vit`` its ViT counterpart.

VideoMAE (configs/detection/videomae): the ViT-B or ViT-L backbone (16 frames, tubelet 2x16x16,
drop path 0.2) under the plain linear RoI head (RoIAlign 8, temporal average, dropout 0.5).

Head-side differences between configs: "context" = ``with_context``, "temporal-max" =
``temporal_pool="max"``, "nl-head" = MLP classifier, "focal" = focal loss (alpha 1, gamma 1;
the SlowFast focal config says alpha 3, gamma 1 in its name). AVA-Kinetics configs train on
AVA-Kinetics but share the AVA architecture. Kinetics-400 vs -700 pretraining changes nothing
here; it only decides which recognizer checkpoint initialises the backbone.

ACRN (configs/detection/acrn): SlowFast R50 8x8 with an ACRN relation (4608 -> 2304, stride
1, one (1,3,3) conv); AVA 2.1 and 2.2 differ only in data and schedule.

LFB (configs/detection/lfb): SlowOnly R50 4x16 whose head reads a bank window of 60 s x 5
features of width 2048 (S = 300 slots): "lfb-nl" = two non-local layers of width 512 (dropouts
0.2, pre-activation with LayerNorm), "lfb-max" = max over the window; both read empty slots as
zero features, as mmaction2 does (``lfb_include_empty_slots``). The bank is filled by
``slowonly-lfb_ava-pretrained-r50_infer-4x16x1_ava21-rgb``: in mmaction2 a SlowOnly R50 4x16
AVA detector whose ``shared_head`` only records the pooled RoI features. Here it is exactly that
baseline detector (same keys as the SlowOnly 4x16 AVA 2.1 preset, so its released checkpoint
loads strictly), and ``Detector.features()`` gives the vectors that go into the bank; recording
them is the bank writer's job, not the model's.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import InputError
from .config import ModelConfig

ZOO_NON_LOCAL = ((0, 0, 0), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 0, 0))
"""Embedded-Gaussian blocks after layer2.{0,2} and layer3.{0,2,4} (the zoo's "-nl" models)."""

_SLOWONLY_4x16 = ModelConfig(backbone="slowonly", clip_len=4, frame_interval=16)
_SLOWONLY_8x8 = replace(_SLOWONLY_4x16, clip_len=8, frame_interval=8)
_SLOWFAST_4x16 = ModelConfig(backbone="slowfast", clip_len=32, frame_interval=2,
                             resample_rate=8, speed_ratio=8, fusion_kernel=5)
_SLOWFAST_8x8 = replace(_SLOWFAST_4x16, resample_rate=4, speed_ratio=4, fusion_kernel=7)
_CONTEXT = dict(with_context=True)
_CONTEXT_MAX = dict(with_context=True, temporal_pool="max")
_CONTEXT_MAX_MLP = dict(_CONTEXT_MAX, classifier="mlp")
_FOCAL_GAMMA1 = dict(loss="focal", focal_alpha=1.0, focal_gamma=1.0)
_ACRN = dict(relation="acrn", acrn_out_channels=2304, acrn_stride=1, acrn_num_convs=1)
_VIT_16x4 = ModelConfig(backbone="vit", clip_len=16, frame_interval=4, drop_path_rate=0.2)
_LFB = dict(lfb_channels=2048, lfb_num_lt_feat=60 * 5, lfb_include_empty_slots=True)
_LFB_NL = dict(_LFB, relation="lfb_nl", lfb_latent_channels=512, lfb_num_layers=2,
               lfb_st_dropout=0.2, lfb_lt_dropout=0.2, lfb_nl_dropout=0.2,
               lfb_pre_activate=True, lfb_layer_norm=True, lfb_zero_init_out_conv=False)

PRESETS: dict[str, ModelConfig] = {
    # SlowOnly, AVA 2.1 (configs/detection/slowonly)
    "slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb": _SLOWONLY_4x16,
    "slowonly_kinetics700-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb": _SLOWONLY_4x16,
    "slowonly_kinetics400-pretrained-r50-nl_8xb16-4x16x1-20e_ava21-rgb":
        replace(_SLOWONLY_4x16, non_local=ZOO_NON_LOCAL),
    "slowonly_kinetics400-pretrained-r50-nl_8xb16-8x8x1-20e_ava21-rgb":
        replace(_SLOWONLY_8x8, non_local=ZOO_NON_LOCAL),
    "slowonly_kinetics400-pretrained-r101_8xb16-8x8x1-20e_ava21-rgb": replace(_SLOWONLY_8x8, depth=101),
    # SlowOnly trained on AVA-Kinetics, evaluated on AVA 2.2
    "slowonly_k400-pre-r50_8xb8-4x16x1-10e_ava-kinetics-rgb": _SLOWONLY_4x16,
    "slowonly_k700-pre-r50_8xb8-4x16x1-10e_ava-kinetics-rgb": _SLOWONLY_4x16,
    "slowonly_k400-pre-r50_8xb8-8x8x1-10e_ava-kinetics-rgb": _SLOWONLY_8x8,
    "slowonly_k700-pre-r50_8xb8-8x8x1-10e_ava-kinetics-rgb": _SLOWONLY_8x8,
    "slowonly_k700-pre-r50-context_8xb8-8x8x1-10e_ava-kinetics-rgb": replace(_SLOWONLY_8x8, **_CONTEXT),
    "slowonly_k700-pre-r50-context-temporal-max_8xb8-8x8x1-10e_ava-kinetics-rgb":
        replace(_SLOWONLY_8x8, **_CONTEXT_MAX),
    "slowonly_k700-pre-r50-context-temporal-max-nl-head_8xb8-8x8x1-10e_ava-kinetics-rgb":
        replace(_SLOWONLY_8x8, **_CONTEXT_MAX_MLP),
    "slowonly_k700-pre-r50-context-temporal-max-nl-head_8xb8-8x8x1-focal-10e_ava-kinetics-rgb":
        replace(_SLOWONLY_8x8, **_CONTEXT_MAX_MLP, **_FOCAL_GAMMA1),
    "slowonly_k700-pre-r50_8xb8-16x4x1-10e-tricks_ava-kinetics-rgb":
        replace(_SLOWONLY_8x8, clip_len=16, frame_interval=4, **_CONTEXT_MAX_MLP, **_FOCAL_GAMMA1),
    # SlowFast (configs/detection/slowfast)
    "slowfast_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb": _SLOWFAST_4x16,
    "slowfast_kinetics400-pretrained-r50-context_8xb16-4x16x1-20e_ava21-rgb":
        replace(_SLOWFAST_4x16, **_CONTEXT),
    "slowfast_kinetics400-pretrained-r50_8xb8-8x8x1-20e_ava21-rgb": _SLOWFAST_8x8,
    "slowfast_kinetics400-pretrained-r50_8xb6-8x8x1-cosine-10e_ava22-rgb": _SLOWFAST_8x8,
    "slowfast_kinetics400-pretrained-r50-temporal-max_8xb6-8x8x1-cosine-10e_ava22-rgb":
        replace(_SLOWFAST_8x8, temporal_pool="max"),
    "slowfast_r50-k400-pre-temporal-max-focal-alpha3-gamma1_8xb6-8x8x1-cosine-10e_ava22-rgb":
        replace(_SLOWFAST_8x8, temporal_pool="max", loss="focal", focal_alpha=3.0, focal_gamma=1.0),
    # ACRN (configs/detection/acrn)
    "slowfast-acrn_kinetics400-pretrained-r50_8xb8-8x8x1-cosine-10e_ava21-rgb":
        replace(_SLOWFAST_8x8, **_ACRN),
    "slowfast-acrn_kinetics400-pretrained-r50_8xb8-8x8x1-cosine-10e_ava22-rgb":
        replace(_SLOWFAST_8x8, **_ACRN),
    # Long-term feature bank (configs/detection/lfb); see the module doc for the infer preset
    "slowonly-lfb-nl_kinetics400-pretrained-r50_8xb12-4x16x1-20e_ava21-rgb":
        replace(_SLOWONLY_4x16, **_LFB_NL),
    "slowonly-lfb-max_kinetics400-pretrained-r50_8xb12-4x16x1-20e_ava21-rgb":
        replace(_SLOWONLY_4x16, relation="lfb_max", **_LFB),
    "slowonly-lfb_ava-pretrained-r50_infer-4x16x1_ava21-rgb": _SLOWONLY_4x16,
    # VideoMAE ViT, trained on AVA-Kinetics, evaluated on AVA 2.2 (configs/detection/videomae)
    "vit-base-p16_videomae-k400-pre_8xb8-16x4x1-20e-adamw_ava-kinetics-rgb":
        replace(_VIT_16x4, vit_size="vit-base"),
    "vit-large-p16_videomae-k400-pre_8xb8-16x4x1-20e-adamw_ava-kinetics-rgb":
        replace(_VIT_16x4, vit_size="vit-large"),
    # CPU default
    "tiny": replace(_SLOWONLY_8x8, base_channels=8),
    # CPU ViT: the ViT layout at 2 blocks of width 64, for the tiny-vit params preset
    "tiny-vit": replace(_VIT_16x4, vit_size="tiny", clip_len=4, frame_interval=2,
                        drop_path_rate=0.1),
}


def get_preset(name: str, *, key: str | None = None) -> ModelConfig:
    """The preset called ``name``; an unknown name raises InputError listing the valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        valid = "\n  ".join(sorted(PRESETS))
        raise InputError(f"unknown model preset {name!r}; valid presets:\n  {valid}",
                         key=key) from None
