"""How samples are prepared: augmentation sizes and proposal filtering, one typed record."""

from __future__ import annotations

from dataclasses import dataclass, fields

from pipeline.errors import InputError


RUNTIME_FIELDS = ("test_batch_size",)
"""DataConfig fields that change how fast inference runs, not what it computes: tracked by no
stage and left out of run fingerprints."""


@dataclass(frozen=True)
class DataConfig:
    """Defaults are mmaction2's AVA settings (train: rescale 256-320, crop 256, flip; test:
    short side 256; proposals with score >= 0.9, best one always kept), except the temporal
    jitter mmaction2 trains with: it is off by default (the embedded default's small clips),
    and on in the AVA presets; the frame store's ``frames.reach`` must cover it."""

    short_side_range: tuple[int, int] = (256, 320)
    crop_size: int = 256
    flip_p: float = 0.5
    min_box_size: float = 1.0          # boxes narrower or shorter after cropping are dropped
    test_short_side: int = 256
    train_min_proposal_score: float = 0.9
    test_min_proposal_score: float = 0.9
    max_proposals: int = 1000
    test_batch_size: int = 8           # clips per inference batch (mmaction2 is fixed at 1)
    temporal_jitter: bool = False      # train: mmaction2's per-frame jitter (within frames.reach)

    def __post_init__(self) -> None:
        low, high = self.short_side_range
        if not 0 < low <= high:
            raise InputError(f"must be [low, high] with 0 < low <= high, got {self.short_side_range!r}",
                             key="short_side_range")
        for name in ("crop_size", "test_short_side", "max_proposals", "test_batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"must be a positive integer, got {getattr(self, name)!r}", key=name)
        if not 0.0 <= self.flip_p <= 1.0:
            raise InputError(f"must be in [0, 1], got {self.flip_p!r}", key="flip_p")


def shaping_fields() -> tuple[str, ...]:
    """DataConfig fields that shape results (all but ``RUNTIME_FIELDS``), in declaration
    order: what a stage that trains or scores declares under ``baseline.data``."""
    return tuple(f.name for f in fields(DataConfig) if f.name not in RUNTIME_FIELDS)
