"""The settings of one ``stad detect`` run, checked once when built.

Torch-free, so that the command line builds (and rejects) a config before torch loads, and the
library never reads the command module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.ava.clock import CONVENTIONS
from pipeline.errors import InputError

DEFAULT_SHORT_SIDE = 256        # mmaction2's AVA test resize, when the checkpoint has none


def keyframe_period(rate: float) -> int:
    """Whole seconds between keyframes for ``rate`` keyframes per second (must be 1/N)."""
    if not rate > 0:
        raise InputError(f"must be > 0, got {rate!r}", key="--rate")
    period = round(1.0 / rate)
    if period < 1 or abs(period - 1.0 / rate) > 1e-3 * period:
        raise InputError(f"must be 1/N keyframes per second (1, 0.5, 0.25, ...), got {rate!r}: "
                         "AVA results hold whole-second timestamps", key="--rate")
    return period


@dataclass(frozen=True)
class DetectConfig:
    """How to detect: the model, the person boxes, the clock, what to score and draw.

    ``start``/``end``: the first and last second (from the video's first frame) scored.
    ``convention``, ``timeline_fps`` or ``native_timeline`` override the clock the checkpoint
    records (for checkpoints trained elsewhere); ``short_side`` None is the checkpoint's test
    size. Errors name the command-line flag, the one way users set these.
    """

    checkpoint: str | Path
    proposals: str | Path | None = None
    detector_weights: str | Path | None = None
    detector_arch: str = "fasterrcnn_resnet50_fpn"
    label_map: str | Path | None = None
    rate: float = 1.0
    top_k: int = 3
    score_threshold: float = 0.3
    person_threshold: float = 0.9
    short_side: int | None = None
    device: str = "auto"
    timestamp_start: int = 0
    convention: str | None = None
    timeline_fps: int | None = None
    native_timeline: bool = False
    start: int = 0
    end: int | None = None
    batch_size: int = 8
    bank_baseline: str | Path | None = None
    bank_window: tuple[int, int] | None = None
    write_video: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if (self.proposals is None) == (self.detector_weights is None):
            raise InputError("give exactly one source of person boxes, --proposals FILE or "
                             "--detector-weights PATH (got "
                             f"{'both' if self.proposals is not None else 'neither'})")
        keyframe_period(self.rate)
        for name, value in (("--top-k", self.top_k), ("--batch-size", self.batch_size)):
            if value < 1:
                raise InputError(f"must be >= 1, got {value}", key=name)
        for name, value in (("score_threshold", self.score_threshold),
                            ("person_threshold", self.person_threshold)):
            if not 0.0 <= value <= 1.0:
                raise InputError(f"must be in [0, 1], got {value}",
                                 key="--" + name.replace("_", "-"))
        if self.timestamp_start < 0:
            raise InputError(f"must be >= 0, got {self.timestamp_start}",
                             key="--timestamp-start")
        if self.start < 0 or (self.end is not None and self.end < self.start):
            raise InputError(f"need 0 <= --start <= --end, got {self.start} and {self.end}",
                             key="--start")
        if self.short_side is not None and self.short_side < 1:
            raise InputError(f"must be a positive integer, got {self.short_side}",
                             key="--short-side")
        if self.convention is not None and self.convention not in CONVENTIONS:
            raise InputError(f"must be one of {CONVENTIONS}, got {self.convention!r}",
                             key="--convention")
        if self.timeline_fps is not None and (self.timeline_fps < 1 or self.native_timeline):
            raise InputError(f"must be a positive integer and not given with "
                             f"--native-timeline, got {self.timeline_fps}", key="--timeline-fps")

    @property
    def period(self) -> int:
        """Whole seconds between keyframes."""
        return keyframe_period(self.rate)
