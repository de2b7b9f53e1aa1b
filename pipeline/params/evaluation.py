"""The ``eval`` group: scoring the trained head on val (``evaluate``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.devices import check_device
from pipeline.params.schema import positive


@dataclass(frozen=True)
class EvalParams:
    """Scoring the trained head on val (``evaluate``).

    Detections scoring <= ``score_threshold`` are not written (mmaction2's bbox2result);
    ``render_keyframes`` val keyframes are drawn as PNG for a person to look at. ``amp``/
    ``amp_dtype``: the model's autocast on CUDA (``pipeline.engine.precision``).
    """

    protocol: Literal["mmaction2", "activitynet", "pyslowfast", "activitynet2020"]
    score_threshold: float
    render_keyframes: int
    batch_size: int
    num_workers: int
    device: str
    amp: bool
    amp_dtype: Literal["float16", "bfloat16"]
    num_threads: int

    def __post_init__(self):
        if not 0.0 <= self.score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in [0, 1), got {self.score_threshold}")
        if self.render_keyframes < 0 or self.num_workers < 0 or self.num_threads < 0:
            raise ValueError("render_keyframes, num_workers and num_threads must be >= 0")
        positive(self, "batch_size")
        check_device(self.device, "eval.device")
