"""Named model configurations: every SlowOnly/SlowFast AVA detector of mmaction2's zoo.

Keys are the exact stems of the mmaction2 config files, so users pick the name they know and a
released checkpoint of that config loads strictly. ``tiny`` is the project's CPU default:
the SlowOnly R50 layout at 1/8 width (0.52 M parameters).

Head-side differences between configs: "context" = ``with_context``, "temporal-max" =
``temporal_pool="max"``, "nl-head" = MLP classifier, "focal" = focal loss (alpha 1, gamma 1;
the SlowFast focal config says alpha 3, gamma 1 in its name). AVA-Kinetics configs train on
AVA-Kinetics but share the AVA architecture. Kinetics-400 vs -700 pretraining changes nothing
here; it only decides which recognizer checkpoint initialises the backbone.
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
_CONTEXT_MAX_MLP = dict(_CONTEXT_MAX, head="mlp")
_FOCAL_GAMMA1 = dict(loss="focal", focal_alpha=1.0, focal_gamma=1.0)

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
    # CPU default
    "tiny": replace(_SLOWONLY_8x8, base_channels=8),
}


def get_preset(name: str, *, key: str | None = None) -> ModelConfig:
    """The preset called ``name``; an unknown name raises InputError listing the valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        valid = "\n  ".join(sorted(PRESETS))
        raise InputError(f"unknown model preset {name!r}; valid presets:\n  {valid}",
                         key=key) from None
