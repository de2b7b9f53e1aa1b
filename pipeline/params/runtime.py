"""How a stage that runs a model without training it uses the machine: the fields the groups
``lfb`` (``infer_lfb``) and ``eval`` (``evaluate``) share, checked once here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.devices import check_device
from pipeline.params.schema import positive


@dataclass(frozen=True)
class InferenceRuntime:
    """``batch_size`` clips per forward pass, ``num_workers`` loader workers, ``device``,
    ``amp``/``amp_dtype`` (the model's autocast on CUDA, ``pipeline.engine.precision``) and
    ``num_threads`` torch CPU threads (0 = torch's default). A group's own ``__post_init__``
    calls this one's."""

    batch_size: int
    num_workers: int
    device: str
    amp: bool
    amp_dtype: Literal["float16", "bfloat16"]
    num_threads: int

    def __post_init__(self):
        positive(self, "batch_size")
        if self.num_workers < 0 or self.num_threads < 0:
            raise ValueError("num_workers and num_threads must be >= 0")
        check_device(self.device)   # the group's key is prefixed by params loading
