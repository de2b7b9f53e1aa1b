"""Device settings (params ``*.device``, ``--device``): checked without torch when params load,
resolved to a ``torch.device`` when a stage starts. Imports torch only inside
``resolve_device``, so config code stays torch-free."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pipeline.errors import InputError

if TYPE_CHECKING:
    import torch

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(value: object, key: str = "device") -> str:
    """A device setting: ``auto`` (this process's GPU if any, else the CPU), ``cpu``, ``cuda``
    (this process's GPU) or ``cuda:N`` (GPU N, one process only); InputError naming ``key``."""
    if not isinstance(value, str) or not DEVICE_PATTERN.fullmatch(value):
        raise InputError(f"must be auto, cpu, cuda or cuda:N, got {value!r}", key=key)
    return value


def resolve_device(device: str, local_rank: int = 0, *, world_size: int = 1,
                   key: str = "device") -> torch.device:
    """"auto" picks this process's GPU when there is one, else the CPU; "cuda" this
    process's GPU (``local_rank``); "cuda:N" GPU N, which only one process can own. A GPU that
    is not there is an InputError naming ``key``, never a silent fall back to the CPU."""
    import torch

    check_device(device, key)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError(f"{device!r} requested but CUDA is not available", key=key)
    if device == "cuda":
        return torch.device("cuda", local_rank)
    index = int(device.split(":")[1])
    if world_size > 1:
        raise InputError(f"{device!r} names one GPU, but {world_size} processes run: under "
                         "torchrun each takes the GPU of its LOCAL_RANK, set 'cuda' or 'auto'",
                         key=key)
    if index >= torch.cuda.device_count():
        raise InputError(f"{device!r} requested but this machine has "
                         f"{torch.cuda.device_count()} GPU(s)", key=key)
    return torch.device("cuda", index)


def set_cpu_threads(num_threads: int) -> None:
    """Torch's CPU compute threads for this process (params ``*.num_threads``); 0 keeps torch's
    default (one per core)."""
    if num_threads:
        import torch

        torch.set_num_threads(num_threads)
