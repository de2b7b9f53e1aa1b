"""Autocast for training and inference: the dtype a run picks, and bfloat16 outputs of the real
model classes (tiny configs, CPU) within a stated tolerance of float32."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from pipeline.data.transforms import normalize_clips
from pipeline.engine.precision import (autocast, autocast_dtype, configure_cudnn,
                                       needs_loss_scaling)
from pipeline.engine.maps import pooled_maps
from pipeline.models.config import ModelConfig
from pipeline.models.detector import Detector
from pipeline.models.presets import get_preset

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)

# bfloat16 keeps 8 significant bits (relative step 2**-8 = 0.4 %); through a 50-layer network
# the rounding adds up. Stated tolerance: the largest difference of any pooled-map value or any
# logit is under 15 % of that output's standard deviation over the batch (measured on these
# freshly initialised tiny models: maps 3.6-6.3 %, logits 1.7-2.0 %; ``-s`` prints them).
# Initial weights are the hard case: their BatchNorm running statistics (0, 1) do not
# normalise, so activations and their rounding grow layer after layer.
TOLERANCE = 0.15


def test_amp_is_cuda_only_and_picks_the_named_dtype():
    assert autocast_dtype(CUDA, True, "float16") is torch.float16
    assert autocast_dtype(CUDA, True, "bfloat16") is torch.bfloat16
    assert autocast_dtype(CUDA, False, "bfloat16") is None
    assert autocast_dtype(CPU, True, "bfloat16") is None
    with pytest.raises(ValueError, match="amp_dtype"):
        autocast_dtype(CUDA, True, "float8")
    assert needs_loss_scaling(torch.float16)
    assert not needs_loss_scaling(torch.bfloat16) and not needs_loss_scaling(None)


def test_cudnn_benchmark_only_on_cuda_and_never_when_deterministic(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    configure_cudnn(CPU, deterministic=False)
    assert torch.backends.cudnn.benchmark is False
    configure_cudnn(CUDA, deterministic=True)
    assert torch.backends.cudnn.benchmark is False
    configure_cudnn(CUDA, deterministic=False)
    assert torch.backends.cudnn.benchmark is True


def test_autocast_none_is_float32_and_bfloat16_computes_in_bfloat16():
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with autocast(CPU, None):
        assert layer(x).dtype == torch.float32
    with autocast(CPU, torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16


def _clips_and_rois(config: ModelConfig, batch: int = 2, size: int = 48):
    generator = torch.Generator().manual_seed(0)
    clips = torch.randint(0, 256, (batch, config.clip_len, size, size, 3), dtype=torch.uint8,
                          generator=generator)
    rois = torch.tensor([[b, 4.0, 6.0, 30.0, 44.0] for b in range(batch)]
                        + [[b, 20.0, 2.0, 46.0, 30.0] for b in range(batch)])
    return clips, rois


@pytest.mark.parametrize("config", [
    get_preset("tiny"),
    replace(get_preset("slowfast_kinetics400-pretrained-r50_8xb6-8x8x1-cosine-10e_ava22-rgb"),
            base_channels=8, clip_len=8),
    replace(get_preset("slowonly_kinetics400-pretrained-r50-nl_8xb16-4x16x1-20e_ava21-rgb"),
            base_channels=8, with_context=True),
], ids=["slowonly-tiny", "slowfast-tiny", "slowonly-nl-context-tiny"])
def test_bfloat16_inference_stays_close_to_float32(config):
    """The inference paths of the stages (``pooled_maps`` for the bank and the cached heads,
    the whole detector for val scoring and ``evaluate``) under bfloat16 autocast."""
    clips, rois = _clips_and_rois(config)
    torch.manual_seed(0)
    model = Detector(replace(config, num_classes=81)).eval()
    with torch.inference_mode():
        maps32 = pooled_maps(model, clips)
        logits32 = model(normalize_clips(clips), rois)
        with autocast(CPU, torch.bfloat16):
            maps16 = pooled_maps(model, clips)
            logits16 = model(normalize_clips(clips), rois).float()
    assert maps16.dtype == torch.bfloat16   # the arithmetic really was bfloat16
    map_error = float((maps16.float() - maps32).abs().max() / maps32.std())
    logit_error = float((logits16 - logits32).abs().max() / logits32.std())
    score_error = float((torch.sigmoid(logits16) - torch.sigmoid(logits32)).abs().max())
    print(f"{config.backbone}: maps {map_error:.4f} of std, logits {logit_error:.4f} of std, "
          f"scores {score_error:.4f}")
    assert torch.isfinite(logits16).all()
    assert 0 < map_error < TOLERANCE        # > 0: not float32 in disguise
    assert logit_error < TOLERANCE
