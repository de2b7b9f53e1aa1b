"""The ``eval`` group: scoring the trained head on val (``evaluate``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.params.runtime import InferenceRuntime


@dataclass(frozen=True)
class EvalParams(InferenceRuntime):
    """Scoring the trained head on val (``evaluate``).

    Detections scoring <= ``score_threshold`` are not written (mmaction2's bbox2result);
    ``render_keyframes`` val keyframes are drawn as PNG for a person to look at. The machine
    settings (batch size, workers, device, autocast, threads): ``InferenceRuntime``.
    """

    protocol: Literal["mmaction2", "activitynet", "pyslowfast", "activitynet2020"]
    score_threshold: float
    render_keyframes: int

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in [0, 1), got {self.score_threshold}")
        if self.render_keyframes < 0:
            raise ValueError(f"render_keyframes must be >= 0, got {self.render_keyframes}")
