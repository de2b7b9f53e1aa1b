"""The optimiser and its per-parameter groups, from ``TrainConfig`` (params, not code paths).

Groups follow mmaction2's ``LearningRateDecayOptimizerConstructor`` (``decay_type
'layer_wise'``): a backbone parameter in lr layer ``i`` of ``n`` gets ``lr * layer_decay **
(n - 1 - i)``; every other parameter (the RoI head) gets ``lr``. With ``decay_norm_bias`` off,
1-D parameters, biases and what the backbone names in ``no_weight_decay`` get no weight decay.
One group per (lr scale, weight decay) pair, in the order their first parameter appears.

The backbone contract (asked only when ``layer_decay`` != 1 or ``decay_norm_bias`` is off, so
the default SGD recipe works with any backbone): ``num_lr_layers`` (property),
``lr_layer_id(name) -> int`` in ``[0, num_lr_layers)`` and ``no_weight_decay(name, param) ->
bool``, ``name`` as the backbone's own ``named_parameters()`` spells it (no ``backbone.``).
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.engine.config import TrainConfig
from pipeline.errors import InputError


def _backbone_rule(backbone: nn.Module, method: str, key: str):
    rule = getattr(backbone, method, None)
    if rule is None:
        raise InputError(f"the backbone {type(backbone).__name__} has no {method}(), which "
                         f"this setting needs", key=key)
    return rule


def param_groups(model: nn.Module, config: TrainConfig, *, params_key: str = "train"
                 ) -> list[dict]:
    """The optimiser's parameter groups for ``model`` (trainable parameters only); each group
    carries ``lr_scale`` (its multiple of the scheduled lr) and ``weight_decay``.

    ``model.backbone`` (if any) is asked for its lr layers and weight-decay exemptions; the
    default (``layer_decay`` 1, ``decay_norm_bias``) is one group of every parameter, asking
    nothing. ``params_key`` names the params group in errors (e.g. ``baseline.train``)."""
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if config.layer_decay == 1.0 and config.decay_norm_bias:
        return [{"params": [p for _, p in trainable], "lr_scale": 1.0,
                 "weight_decay": config.weight_decay}]
    backbone = getattr(model, "backbone", None)
    in_backbone = {}
    if isinstance(backbone, nn.Module):
        in_backbone = {id(p): name for name, p in backbone.named_parameters()}
    layers = layer_id = no_decay = None
    if in_backbone and config.layer_decay != 1.0:
        key = f"{params_key}.layer_decay"
        layer_id = _backbone_rule(backbone, "lr_layer_id", key)
        layers = backbone.num_lr_layers
    if in_backbone and not config.decay_norm_bias:
        no_decay = _backbone_rule(backbone, "no_weight_decay", f"{params_key}.decay_norm_bias")

    groups: dict[tuple[float, float], dict] = {}
    for name, param in trainable:
        inner = in_backbone.get(id(param))
        scale = 1.0
        if inner is not None and layer_id is not None:
            layer = layer_id(inner)
            if not 0 <= layer < layers:
                raise ValueError(f"{type(backbone).__name__}.lr_layer_id({inner!r}) = {layer} "
                                 f"is outside [0, {layers})")
            scale = config.layer_decay ** (layers - 1 - layer)
        decay = config.weight_decay
        if not config.decay_norm_bias and (param.ndim <= 1 or name.endswith(".bias") or (
                inner is not None and no_decay(inner, param))):
            decay = 0.0
        group = groups.setdefault((scale, decay), {"params": [], "param_names": [],
                                                   "lr_scale": scale, "weight_decay": decay})
        group["params"].append(param)
        group["param_names"].append(name)
    return list(groups.values())


def build_optimizer(model: nn.Module, config: TrainConfig, lr: float | None = None, *,
                    params_key: str = "train") -> torch.optim.Optimizer:
    """``config.optimizer`` over ``param_groups``: SGD with momentum, or AdamW with ``betas``.

    ``lr``: the base rate (``config.effective_lr(world_size)``); None takes ``config.lr``.
    Each group's lr is ``lr * lr_scale``; the loop's schedule sets it the same way.
    """
    base = config.lr if lr is None else lr
    groups = param_groups(model, config, params_key=params_key)
    for group in groups:
        group["lr"] = base * group["lr_scale"]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=base, betas=config.betas,
                                 weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=base, momentum=config.momentum,
                           weight_decay=config.weight_decay)
