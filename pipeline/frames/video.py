"""Decode chosen frames of one video with decord, resized at decode time.

Frame indices count frames of the video's timeline: its own frames, or a fixed rate (AVA's
30 fps) onto which the source frames are laid by their presentation timestamps, as
``ffmpeg -r`` does (:func:`pipeline.ava.clock.timeline_source_frames`). The timestamps are read
exactly, as integers, by demuxing with PyAV (decord reports them as float32, too coarse to
settle ties 15 minutes into a movie); decord still decodes, by source frame index.

Every failure to read a video becomes an InputError naming the video and its path, so the
stage can report (or skip) that video instead of dying with a decoder traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import decord
import numpy as np
from decord._ffi.base import DECORDError

from pipeline.ava.clock import timeline_source_frames
from pipeline.errors import InputError

_DECODE_ERRORS = (DECORDError, RuntimeError, av.error.FFmpegError, OSError, ValueError)


@dataclass
class VideoSource:
    """An opened video: decord reader at the output size plus what the clock needs.

    ``fps`` and ``num_frames`` are the timeline's (what frame indices count);
    ``source_fps`` and ``source_frames`` the file's own. ``source_index`` maps a timeline frame
    to the source frame it shows; None on the native timeline, where the two are the same.
    """

    video_id: str
    path: Path
    reader: decord.VideoReader
    fps: float
    num_frames: int
    source_width: int
    source_height: int
    width: int
    height: int
    source_fps: float
    source_frames: int
    source_index: np.ndarray | None = None

    def get_frames(self, indices: np.ndarray) -> np.ndarray:
        """Timeline frames at 0-based ``indices`` (any order, repeats allowed) as (N, H, W, 3)
        uint8 RGB."""
        if self.source_index is not None:
            indices = self.source_index[np.asarray(indices)]
        unique, inverse = np.unique(indices, return_inverse=True)
        return self._decode(unique)[inverse.reshape(np.shape(indices))]

    def _decode(self, source_frames: np.ndarray) -> np.ndarray:
        """Source frames at sorted unique indices: one decord batch (it decodes forward from
        the current position, seeking only to a later keyframe), checked for size."""
        try:
            frames = self.reader.get_batch(np.asarray(source_frames).tolist()).asnumpy()
        except _DECODE_ERRORS as err:
            raise InputError(f"video '{self.video_id}' could not be decoded: {err}",
                             path=self.path) from err
        if frames.shape[1:] != (self.height, self.width, 3):
            raise InputError(f"video '{self.video_id}' decoded to frames of shape "
                             f"{frames.shape[1:]}, expected {(self.height, self.width, 3)}",
                             path=self.path)
        return frames

    def iter_clips(self, indices: np.ndarray, *, chunk: int = 32) -> Iterator[np.ndarray]:
        """The clips ``indices[k]`` (timeline frames, ``[K, T]``) one by one, as (T, H, W, 3)
        uint8, decoding every source frame they need once, in order, ``chunk`` at a time, and
        holding only the frames between the lowest one a later clip needs and the newest
        decoded: memory stays that of a few clips, whatever the video's length. Each clip's
        lowest frame must not come before an earlier clip's (keyframes in time order)."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) == 0:
            return
        source = indices if self.source_index is None else self.source_index[indices]
        lowest = source.min(axis=1)
        if np.any(np.diff(lowest) < 0):
            raise ValueError("clips must come in time order (non-decreasing first frames)")
        needed = np.unique(source)
        # the lowest frame any clip from k on needs: everything below it can go
        keep_from = np.append(np.minimum.accumulate(lowest[::-1])[::-1], needed[-1] + 1)
        held: dict[int, np.ndarray] = {}
        decoded = 0
        for k, frames in enumerate(source):
            while decoded < len(needed) and needed[decoded] <= frames.max():
                batch = needed[decoded:decoded + chunk]
                held.update(zip(batch.tolist(), self._decode(batch)))
                decoded += len(batch)
            yield np.stack([held[i] for i in frames.tolist()])
            for i in [i for i in held if i < keep_from[k + 1]]:
                del held[i]


def probe_size(video_id: str, path: Path) -> tuple[int, int]:
    """(width, height) from the container header, without decoding."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return stream.codec_context.width, stream.codec_context.height
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


def _timeline(video_id: str, path: Path, reader: decord.VideoReader,
              timeline_fps: int) -> np.ndarray:
    """Timeline frame -> source frame index, after checking that PyAV's frames are decord's."""
    pts, time_base, end = probe_timestamps(video_id, path)
    if len(pts) != len(reader):
        raise InputError(f"video '{video_id}': decord reads {len(reader)} frames but the "
                         f"container lists {len(pts)}; its timestamps cannot be trusted",
                         path=path)
    seconds = (np.asarray(pts, dtype=np.float64) - pts[0]) * float(time_base)
    decoded = reader.get_frame_timestamp(np.arange(len(reader)))[:, 0].astype(np.float64)
    if np.abs((decoded - decoded[0]) - seconds).max() > 1e-3:
        raise InputError(f"video '{video_id}': decord's frame times differ from the "
                         "container's timestamps by more than 1 ms", path=path)
    try:
        return timeline_source_frames(pts, time_base=time_base, end_pts=end, rate=timeline_fps)
    except ValueError as err:
        raise InputError(f"video '{video_id}': {err}", path=path) from err


def open_video(video_id: str, path: str | Path,
               output_size: Callable[[int, int], tuple[int, int]],
               timeline_fps: int | None = None) -> VideoSource:
    """Open ``path``; ``output_size(width, height)`` gives the decoded (width, height).
    ``timeline_fps``: index frames on a timeline of this rate (None: the video's own frames)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"video '{video_id}' not found", path=path)
    source_width, source_height = probe_size(video_id, path)
    width, height = output_size(source_width, source_height)
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), width=width, height=height)
        num_frames, fps = len(reader), float(reader.get_avg_fps())
    except _DECODE_ERRORS as err:
        raise InputError(f"video '{video_id}' could not be opened: {err}", path=path) from err
    if num_frames < 1 or not fps > 0:
        raise InputError(f"video '{video_id}' has no frames or no frame rate "
                         f"({num_frames} frames, {fps} fps)", path=path)
    if timeline_fps is None:
        return VideoSource(video_id=video_id, path=path, reader=reader, fps=fps,
                           num_frames=num_frames, source_width=source_width,
                           source_height=source_height, width=width, height=height,
                           source_fps=fps, source_frames=num_frames)
    source_index = _timeline(video_id, path, reader, timeline_fps)
    return VideoSource(video_id=video_id, path=path, reader=reader, fps=float(timeline_fps),
                       num_frames=len(source_index), source_width=source_width,
                       source_height=source_height, width=width, height=height,
                       source_fps=fps, source_frames=num_frames, source_index=source_index)
