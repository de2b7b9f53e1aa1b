"""AVA's clock: which video frame a keyframe timestamp refers to.

AVA timestamps are whole seconds of the full-length movie; annotated keyframes lie at
902..1798 and the cut clips start at 900 s. The start is a parameter (``timestamp_start``),
not a constant, so synthetic and custom datasets can use their own clock.

Codebases disagree by one frame on where a keyframe is (see the reference notes):

- ``"pyslowfast"``: 0-based frame ``fps * (t - start)`` of the cut clip. mmaction2 0.x reads
  the same frame (1-based file ``img_{fps*(t-start)+1}``).
- ``"mmaction2"``: mmaction2 1.x reads file ``img_{fps*(t-start)+2}`` (it adds ``start_index``
  twice), that is 0-based frame ``fps * (t - start) + 1``: one frame later.
"""

from __future__ import annotations

import numpy as np

CONVENTIONS = ("pyslowfast", "mmaction2")


def keyframe_frame_index(timestamp, *, fps: float, timestamp_start: float,
                         convention: str = "pyslowfast"):
    """0-based index, in a video that starts at ``timestamp_start``, of the keyframe's frame.

    Works on scalars and numpy arrays. ``fps * (t - start)`` is rounded to the nearest frame,
    which is exact for AVA's integer fps.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown keyframe convention {convention!r}; expected one of {CONVENTIONS}")
    offset = 1 if convention == "mmaction2" else 0
    index = np.rint(fps * (np.asarray(timestamp, dtype=np.float64) - timestamp_start))
    index = index.astype(np.int64) + offset
    return int(index) if index.ndim == 0 else index


def clip_frame_indices(timestamp, *, fps: float, timestamp_start: float, clip_len: int,
                       frame_interval: int, convention: str = "pyslowfast",
                       num_frames: int | None = None) -> np.ndarray:
    """Frame indices of the clip around a keyframe, the keyframe at position ``clip_len // 2``.

    Indices outside the video are clamped to ``[0, num_frames - 1]`` when ``num_frames`` is
    given (the first and last frames repeat, as mmaction2 and PySlowFast do at shot edges).
    """
    center = keyframe_frame_index(timestamp, fps=fps, timestamp_start=timestamp_start,
                                  convention=convention)
    offsets = (np.arange(clip_len) - clip_len // 2) * frame_interval
    indices = np.asarray(center)[..., None] + offsets
    if num_frames is not None:
        indices = np.clip(indices, 0, num_frames - 1)
    return indices
