"""Which bank rows a keyframe's RoIs read: a plain record, free of torch, so that the lfb params
(``lfb.window()``) loads without the models."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BankWindow:
    """Seconds ``t - window_seconds .. t + window_seconds - 1`` around a keyframe at ``t``, at
    most ``max_per_second`` boxes per second (see ``pipeline.lfb.reader``)."""

    window_seconds: int
    max_per_second: int
