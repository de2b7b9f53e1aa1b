"""The arithmetic a run computes in: float32, or autocast to float16 or bfloat16 on CUDA.

One place decides it for training (``train``), inference (``run_inference``: val scoring, the
bank's maps, ``evaluate``) and, later, ``detect``: params ``amp`` and ``amp_dtype`` of the
stage's group. On the CPU ``amp`` is ignored: CPU autocast is slower than float32 on most
CPUs and would change the CPU results the tests compare. float16 needs loss scaling in
training (``needs_loss_scaling``); bfloat16 has float32's range and does not. Outputs of an
autocast forward are cast back to float32 by the callers before anything is stored or scored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def autocast_dtype(device: torch.device, amp: bool, amp_dtype: str = "float16"
                   ) -> torch.dtype | None:
    """The autocast dtype of a run on ``device``: ``amp_dtype`` with ``amp`` on CUDA, None
    (float32) otherwise."""
    if amp_dtype not in AMP_DTYPES:
        raise ValueError(f"amp_dtype must be one of {tuple(AMP_DTYPES)}, got {amp_dtype!r}")
    if not amp or device.type != "cuda":
        return None
    return AMP_DTYPES[amp_dtype]


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """Autocast to ``dtype`` on ``device`` inside the block; float32 (no autocast) for None.

    Tests call it with a CPU device and bfloat16 directly, to compare the real models'
    outputs against float32 (``autocast_dtype`` itself never picks autocast on the CPU)."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def needs_loss_scaling(dtype: torch.dtype | None) -> bool:
    """float16 gradients underflow without a loss scale; bfloat16 and float32 need none."""
    return dtype == torch.float16


def configure_cudnn(device: torch.device, *, deterministic: bool) -> None:
    """Let cuDNN time its convolution algorithms once per input shape and keep the fastest
    (``cudnn.benchmark``) on CUDA, unless the run must be deterministic.

    Called by ``train``, whose clips all have the crop size, so every step after the first
    reuses the choice; validation inside the run then times each of its few batch shapes
    (aspect ratios, the last batch) once. The inference stages leave it off: their shapes
    follow the videos' sizes."""
    if device.type == "cuda" and not deterministic:
        torch.backends.cudnn.benchmark = True
