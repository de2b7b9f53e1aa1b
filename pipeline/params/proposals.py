"""The ``proposals`` group: person boxes per keyframe (``proposals``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.devices import check_device
from pipeline.params.schema import positive
from pipeline.proposals.simulate import SimulatedDetector


@dataclass(frozen=True)
class DetectorParams:
    """A torchvision Faster R-CNN person detector; weights from a local file, never downloaded."""

    arch: str
    weights: str
    score_threshold: float
    batch_size: int
    device: str                # auto | cpu | cuda | cuda:N

    def __post_init__(self):
        check_device(self.device, "proposals.detector.device")


@dataclass(frozen=True)
class ProposalParams:
    """Person boxes per keyframe (``proposals``).

    Every source's boxes go through mmaction2's filter: per keyframe keep boxes scoring at least
    ``min(score_threshold, best score)`` (the best box always survives), at most
    ``max_per_frame``.
    """

    source: Literal["simulated", "pickle", "detector"]
    score_threshold: float
    max_per_frame: int
    train_pickle: str
    val_pickle: str
    simulated: SimulatedDetector
    detector: DetectorParams

    def __post_init__(self):
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        positive(self, "max_per_frame")
