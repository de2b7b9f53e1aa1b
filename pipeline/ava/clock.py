"""AVA's clock: which video frame a keyframe timestamp refers to.

AVA timestamps are whole seconds of the full-length movie; annotated keyframes lie at
902..1798 and the cut clips start at 900 s. The start is a parameter (``timestamp_start``),
not a constant, so synthetic and custom datasets can use their own clock.

Each video has its own clock: the annotation second at its first frame (AVA's videos all
start at 900; a Kinetics window ``{id}_{start:06d}_{end:06d}`` at ``start``; a custom video
at 0), and keyframe times need not be whole seconds (Kinetics' ``17.010000``). Results,
proposals, exclusions and the evaluators key a keyframe by a whole second,
:func:`whole_second_key` (as mmaction2 keys AVA-Kinetics keyframes by ``int(t)``); its frame is
read at its exact time (:func:`keyframe_frame_index` takes fractional seconds).

Frame indices count frames of a *timeline*: the video's own frames (native), or a fixed rate
such as AVA's 30 fps. mmaction2 cuts and extracts AVA with ``ffmpeg -r 30``, so its frame ``k``
is the source frame shown at ``k / 30`` s whatever the movie's own rate;
:func:`timeline_source_frames` picks that frame by presentation timestamps as ffmpeg's ``fps``
filter does (default ``round=near``): a source frame is placed at its start time rounded to
the nearest timeline tick (halves away from zero), and timeline frame ``k`` shows the last
source frame placed at or before ``k``, i.e. the last one starting before ``(k + 1/2) / rate``.

Codebases disagree by one frame on where a keyframe is (see the reference notes):

- ``"pyslowfast"``: 0-based frame ``fps * (t - start)`` of the cut clip. mmaction2 0.x reads
  the same frame (1-based file ``img_{fps*(t-start)+1}``).
- ``"mmaction2"``: mmaction2 1.x reads file ``img_{fps*(t-start)+2}`` (it adds ``start_index``
  twice), that is 0-based frame ``fps * (t - start) + 1``: one frame later.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

CONVENTIONS = ("pyslowfast", "mmaction2")
AVA_FPS = 30   # the rate of AVA's frame indices (mmaction2's ``ffmpeg -r 30`` frames)


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


def whole_second_key(timestamp):
    """The whole second a keyframe at ``timestamp`` (seconds) is keyed by: the time truncated,
    as mmaction2's ``int(t)``, after rounding to the microseconds the CSVs write (6 decimals),
    so that ``2.9999999`` is second 3. Scalars and numpy arrays."""
    key = np.floor(np.round(np.asarray(timestamp, dtype=np.float64), 6)).astype(np.int64)
    return int(key) if key.ndim == 0 else key


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


def jitter_bounds(frame_interval: int) -> tuple[int, int]:
    """mmaction2's train-time temporal jitter (``SampleAVAFrames``, ``test_mode=False``): each
    frame of a clip moves by its own random integer in ``[low, high)``, drawn independently per
    frame: ``[-interval // 2, (interval + 1) // 2)`` with Python's floor division."""
    return (-frame_interval) // 2, (frame_interval + 1) // 2


def jitter_span(clip_len: int, frame_interval: int) -> np.ndarray:
    """Every frame offset (from the keyframe, stride 1) a jittered clip can reach: what a frame
    store must hold for it."""
    low, high = jitter_bounds(frame_interval)
    first = -(clip_len // 2) * frame_interval + low
    last = (clip_len - 1 - clip_len // 2) * frame_interval + high - 1
    return np.arange(first, last + 1)


def _round_half_away(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, halves away from zero
    (libavutil's ``AV_ROUND_NEAR_INF``), in exact integer arithmetic."""
    sign = -1 if (numerator < 0) != (denominator < 0) else 1
    numerator, denominator = abs(numerator), abs(denominator)
    return sign * ((2 * numerator + denominator) // (2 * denominator))


def timeline_source_frames(pts, *, time_base: Fraction, end_pts: int, rate: int) -> np.ndarray:
    """Source frame index shown at each frame of a ``rate``-fps timeline (see module doc).

    ``pts``: presentation timestamps of the source frames in presentation order, in units of
    ``time_base``; ``end_pts``: where the last frame ends. Times count from the first frame
    (ffmpeg's CLI starts a video-only file's clock there). The timeline ends where the video
    does: frame ``k`` exists while ``k`` is before ``end_pts`` rounded to a tick, as the
    ``fps`` filter's ``eof_action=round``. Integer arithmetic throughout, so ties (a 24 fps
    frame starting exactly half a tick after one) fall as ffmpeg's do.
    """
    pts = [int(p) for p in pts]
    if not pts:
        raise ValueError("a video without frames has no timeline")
    if any(b < a for a, b in zip(pts, pts[1:])):
        raise ValueError("presentation timestamps must be in presentation (ascending) order")
    if not isinstance(rate, int) or rate < 1:
        raise ValueError(f"timeline rate must be a positive integer, got {rate!r}")
    scale = Fraction(time_base) * rate            # timeline ticks per pts unit
    first = pts[0]

    def tick(p: int) -> int:
        return _round_half_away((p - first) * scale.numerator, scale.denominator)

    starts = np.array([tick(p) for p in pts], dtype=np.int64)
    length = tick(int(end_pts))
    if length < 1:
        raise ValueError(f"the video ends at pts {end_pts}, before its first timeline frame")
    return np.searchsorted(starts, np.arange(length), side="right") - 1
