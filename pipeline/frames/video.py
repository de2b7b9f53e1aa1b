"""Decode chosen frames of one video with decord, resized at decode time.

Every failure to read a video becomes an InputError naming the video and its path, so the
stage can report (or skip) that video instead of dying with a decoder traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import decord
import numpy as np
from decord._ffi.base import DECORDError

from pipeline.errors import InputError

_DECODE_ERRORS = (DECORDError, RuntimeError, av.error.FFmpegError, OSError, ValueError)


@dataclass
class VideoSource:
    """An opened video: decord reader at the output size plus what the clock needs."""

    video_id: str
    path: Path
    reader: decord.VideoReader
    fps: float
    num_frames: int
    source_width: int
    source_height: int
    width: int
    height: int

    def get_frames(self, indices: np.ndarray) -> np.ndarray:
        """Frames at 0-based ``indices`` (any order, repeats allowed) as (N, H, W, 3) uint8 RGB."""
        unique, inverse = np.unique(indices, return_inverse=True)
        try:
            frames = self.reader.get_batch(unique.tolist()).asnumpy()
        except _DECODE_ERRORS as err:
            raise InputError(f"video '{self.video_id}' could not be decoded: {err}",
                             path=self.path) from err
        if frames.shape[1:] != (self.height, self.width, 3):
            raise InputError(f"video '{self.video_id}' decoded to frames of shape "
                             f"{frames.shape[1:]}, expected {(self.height, self.width, 3)}",
                             path=self.path)
        return frames[inverse.reshape(np.shape(indices))]


def probe_size(video_id: str, path: Path) -> tuple[int, int]:
    """(width, height) from the container header, without decoding."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return stream.codec_context.width, stream.codec_context.height
    except (*_DECODE_ERRORS, IndexError) as err:
        raise InputError(f"video '{video_id}' could not be opened: {err}", path=path) from err


def open_video(video_id: str, path: str | Path,
               output_size: Callable[[int, int], tuple[int, int]]) -> VideoSource:
    """Open ``path``; ``output_size(width, height)`` gives the decoded (width, height)."""
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
    return VideoSource(video_id=video_id, path=path, reader=reader, fps=fps,
                       num_frames=num_frames, source_width=source_width,
                       source_height=source_height, width=width, height=height)
