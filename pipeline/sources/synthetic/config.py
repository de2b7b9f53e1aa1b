"""Sizes and seed of the synthetic dataset."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. The defaults are the embedded dataset of the DVC pipeline.

    Geometry (actor height, speeds, distances) scales with ``height``; the reference design is
    160x120, where an actor is 36 px tall and walks at 16 px/s. Keyframes lie at whole seconds
    ``timestamp_start + 2 .. timestamp_start + duration_s - 2``, as AVA's 902..1798.
    """

    seed: int = 0
    n_train_videos: int = 24
    n_val_videos: int = 10
    duration_s: int = 48
    fps: int = 15
    width: int = 160
    height: int = 120
    timestamp_start: int = 900
    n_actors: int = 3
    n_distractor_objects: int = 3
    excluded_fraction: float = 0.01
    crf: int = 20

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            number_types = (int, float) if f.name == "excluded_fraction" else (int,)
            if isinstance(value, bool) or not isinstance(value, number_types):
                raise ValueError(f"SyntheticConfig.{f.name}={value!r}: expected "
                                 f"{'a number' if float in number_types else 'an integer'}")
        checks = [
            ("seed", self.seed >= 0, ">= 0"),
            ("n_train_videos", self.n_train_videos >= 1, ">= 1"),
            ("n_val_videos", self.n_val_videos >= 1, ">= 1"),
            ("duration_s", self.duration_s >= 8,
             ">= 8 (keyframes start 2 s in and end 2 s before the end)"),
            ("fps", 4 <= self.fps <= 60, "in [4, 60]"),
            ("width", self.width >= 96 and self.width % 2 == 0,
             "an even number >= 96 (H.264 yuv420p needs even sizes)"),
            ("height", self.height >= 72 and self.height % 2 == 0,
             "an even number >= 72 (H.264 yuv420p needs even sizes)"),
            ("width", self.width >= self.height,
             f">= height ({self.height}): actors walk sideways"),
            ("timestamp_start", self.timestamp_start >= 0, ">= 0"),
            ("n_actors", 2 <= self.n_actors <= 6,
             "in [2, 6] (interactions need two actors; the ground has room for six lanes)"),
            ("n_distractor_objects", 0 <= self.n_distractor_objects <= 8, "in [0, 8]"),
            ("excluded_fraction", 0 <= self.excluded_fraction < 0.5, "in [0, 0.5)"),
            ("crf", 0 <= self.crf <= 51, "in [0, 51] (x264 constant rate factor)"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(
                    f"SyntheticConfig.{name}={getattr(self, name)!r}: expected {expected}")

    @property
    def n_frames(self) -> int:
        return self.duration_s * self.fps

    @property
    def keyframe_seconds(self) -> range:
        """Keyframes in seconds from the first frame (add ``timestamp_start`` for AVA's clock)."""
        return range(2, self.duration_s - 1)
