"""Decode chosen frames of one video with PyAV, in presentation order, resized as they go.

Frame indices count frames of the video's timeline: its own frames, or a fixed rate (AVA's
30 fps) onto which the source frames are laid by their presentation timestamps, as
``ffmpeg -r`` does (:func:`pipeline.ava.clock.timeline_source_frames`). Timestamps come from
the container, read exactly as integers (no decoding); frames are decoded sequentially, the
k-th decoded frame being the k-th in presentation order. Nothing seeks, so B-frames, AVI's
packed MPEG-4 B-frames (where decord reports garbage times) and variable frame rates all give
the exact frame ``ffmpeg`` gives; frames no clip needs are decoded but never converted.

Every failure to read a video becomes an InputError naming the video and its path, so the
stage can report (or skip) that video instead of dying with a decoder traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from pipeline.ava.clock import timeline_source_frames
from pipeline.errors import InputError

_DECODE_ERRORS = (RuntimeError, av.error.FFmpegError, OSError, ValueError)


@dataclass
class VideoSource:
    """An opened video: its timeline, output size and the container facts behind them.

    ``fps`` and ``num_frames`` are the timeline's (what frame indices count);
    ``source_fps`` and ``source_frames`` the file's own. ``source_index`` maps a timeline frame
    to the source frame (presentation order) it shows; None on the native timeline.
    """

    video_id: str
    path: Path
    fps: float
    num_frames: int
    source_width: int
    source_height: int
    width: int
    height: int
    source_fps: float
    source_frames: int
    source_index: np.ndarray | None = None
    decode_threads: int = 0   # 0: FFmpeg's choice; 1 inside loader workers

    def source_frames_of(self, indices: np.ndarray) -> np.ndarray:
        """Source frame shown at each timeline frame of ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        return indices if self.source_index is None else self.source_index[indices]

    def iter_frames(self, indices: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(timeline indices, frame) for every distinct source frame that the timeline frames
        ``indices`` show, in time order: each frame is decoded and converted once, however many
        timeline frames show it (a 24 fps movie on a 30 fps timeline repeats some)."""
        indices = np.unique(np.asarray(indices, dtype=np.int64))
        if len(indices) == 0:
            return
        source = self.source_frames_of(indices)
        wanted = np.unique(source)
        k = 0   # next wanted source frame
        for position, picture in enumerate(self._decode()):
            if position < wanted[k]:
                continue
            yield indices[source == position], self._convert(picture)
            k += 1
            if k == len(wanted):
                return
        raise InputError(f"video '{self.video_id}' ended after {position + 1} decoded frames; "
                         f"frame {int(wanted[k])} was needed (the container lists "
                         f"{self.source_frames})", path=self.path)

    def iter_clips(self, indices: np.ndarray) -> Iterator[np.ndarray]:
        """The clips ``indices[k]`` (timeline frames, ``[K, T]``) one by one, as (T, H, W, 3)
        uint8, decoding the video once and holding only the frames between the lowest one a
        later clip needs and the newest decoded: memory stays that of a few clips, whatever the
        video's length. Clips must come in time order (non-decreasing first frames)."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) == 0:
            return
        lowest = indices.min(axis=1)
        if np.any(np.diff(lowest) < 0):
            raise ValueError("clips must come in time order (non-decreasing first frames)")
        keep_from = np.append(np.minimum.accumulate(lowest[::-1])[::-1], indices.max() + 1)
        held: dict[int, np.ndarray] = {}
        frames = self.iter_frames(indices.ravel())
        for k, clip in enumerate(indices):
            while clip.max() not in held:
                timeline, frame = next(frames)
                held.update((int(t), frame) for t in timeline)
            yield np.stack([held[int(i)] for i in clip])
            for i in [i for i in held if i < keep_from[k + 1]]:
                del held[i]

    def _decode(self) -> Iterator[av.VideoFrame]:
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO" if self.decode_threads != 1 else "NONE"
                if self.decode_threads > 1:
                    stream.thread_count = self.decode_threads
                yield from container.decode(stream)
        except _DECODE_ERRORS as err:
            raise InputError(f"video '{self.video_id}' could not be decoded: {err}",
                             path=self.path) from err

    def _convert(self, picture: av.VideoFrame) -> np.ndarray:
        if (picture.width, picture.height) != (self.source_width, self.source_height):
            raise InputError(f"video '{self.video_id}' changes size mid-stream "
                             f"({picture.width}x{picture.height}, header "
                             f"{self.source_width}x{self.source_height})", path=self.path)
        resized = (self.width, self.height) != (picture.width, picture.height)
        return picture.to_ndarray(format="rgb24", width=self.width, height=self.height,
                                  interpolation="AREA" if resized else None)


def probe_size(video_id: str, path: Path) -> tuple[int, int, Fraction | None]:
    """(width, height, average frame rate or None) from the container header, no decoding."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate
            return (stream.codec_context.width, stream.codec_context.height,
                    Fraction(rate) if rate else None)
    except (*_DECODE_ERRORS, IndexError) as err:
        raise InputError(f"video '{video_id}' could not be opened: {err}", path=path) from err


def probe_timestamps(video_id: str, path: Path) -> tuple[list[int], Fraction, int]:
    """(pts of every frame in presentation order, time base, end pts of the last frame) of the
    first video stream, from its packets (no decoding)."""
    pts, ends = [], []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            time_base = Fraction(stream.time_base)
            for packet in container.demux(stream):
                if packet.size == 0:          # the demuxer's final flush packet
                    continue
                pts.append(packet.pts)
                ends.append((packet.pts or 0) + (packet.duration or 0))
    except (*_DECODE_ERRORS, IndexError) as err:
        raise InputError(f"video '{video_id}' could not be read: {err}", path=path) from err
    if None in pts:
        raise InputError(f"video '{video_id}' has a frame without a presentation timestamp: "
                         "it cannot be laid on a timeline", path=path)
    if not pts:
        raise InputError(f"video '{video_id}' has no frames", path=path)
    order = sorted(range(len(pts)), key=pts.__getitem__)
    pts = [pts[i] for i in order]
    end = ends[order[-1]]
    if end <= pts[-1]:   # no packet duration: the last frame lasts as long as the one before
        end = pts[-1] + (pts[-1] - pts[-2] if len(pts) > 1 else 1)
    return pts, time_base, end


def open_video(video_id: str, path: str | Path,
               output_size: Callable[[int, int], tuple[int, int]],
               timeline_fps: int | None = None, *, decode_threads: int = 0) -> VideoSource:
    """Open ``path``; ``output_size(width, height)`` gives the decoded (width, height).
    ``timeline_fps``: index frames on a timeline of this rate (None: the video's own frames,
    at the container's average rate)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"video '{video_id}' not found", path=path)
    source_width, source_height, rate = probe_size(video_id, path)
    width, height = output_size(source_width, source_height)
    pts, time_base, end = probe_timestamps(video_id, path)
    duration = float((end - pts[0]) * time_base)
    source_fps = float(rate) if rate else len(pts) / duration if duration > 0 else 0.0
    if not source_fps > 0:
        raise InputError(f"video '{video_id}' has no frame rate ({len(pts)} frames over "
                         f"{duration} s)", path=path)
    common = dict(video_id=video_id, path=path, source_width=source_width,
                  source_height=source_height, width=width, height=height,
                  source_fps=source_fps, source_frames=len(pts), decode_threads=decode_threads)
    if timeline_fps is None:
        return VideoSource(fps=source_fps, num_frames=len(pts), **common)
    try:
        source_index = timeline_source_frames(pts, time_base=time_base, end_pts=end,
                                              rate=timeline_fps)
    except ValueError as err:
        raise InputError(f"video '{video_id}': {err}", path=path) from err
    return VideoSource(fps=float(timeline_fps), num_frames=len(source_index),
                       source_index=source_index, **common)
