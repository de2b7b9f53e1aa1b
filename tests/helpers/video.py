"""Small test videos whose frames show their own frame number, written with PyAV.

Each frame is a 4 x 3 grid of flat cells. The top two rows hold the frame number as eight
base-4 digits, one gray level per digit; the bottom row is red, green, blue and white, so a test
can check the channel order. Flat cells survive H.264 and resizing, so a decoded frame can be
read back to its exact frame number at any resolution.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

GRID_COLS, GRID_ROWS = 4, 3
DIGITS = 8                                   # 4**8 = 65536 distinct frame numbers
DIGIT_LEVELS = np.array([32, 96, 160, 224])  # gray level of base-4 digit 0..3
COLOR_ROW = np.array([[224, 32, 32], [32, 224, 32], [32, 32, 224], [224, 224, 224]], np.uint8)


def _cell_bounds(size: int, cells: int) -> np.ndarray:
    return np.rint(np.linspace(0, size, cells + 1)).astype(int)


def render_frame(frame_number: int, width: int, height: int) -> np.ndarray:
    """The source pixels (H, W, 3 uint8 RGB) of frame ``frame_number`` at a given size."""
    digits = [(frame_number // 4 ** d) % 4 for d in range(DIGITS)]
    cells = np.zeros((GRID_ROWS, GRID_COLS, 3), np.uint8)
    cells[:2] = DIGIT_LEVELS[np.array(digits).reshape(2, GRID_COLS)][..., None]
    cells[2] = COLOR_ROW
    ys, xs = _cell_bounds(height, GRID_ROWS), _cell_bounds(width, GRID_COLS)
    row_of = np.searchsorted(ys, np.arange(height), side="right") - 1
    col_of = np.searchsorted(xs, np.arange(width), side="right") - 1
    return cells[row_of[:, None], col_of[None, :]]


def read_frame_number(frame: np.ndarray) -> int:
    """Decode the frame number shown by a (possibly compressed and resized) frame."""
    height, width = frame.shape[:2]
    ys, xs = _cell_bounds(height, GRID_ROWS), _cell_bounds(width, GRID_COLS)
    number = 0
    for d in range(DIGITS):
        r, c = divmod(d, GRID_COLS)
        y0, y1, x0, x1 = ys[r], ys[r + 1], xs[c], xs[c + 1]
        dy, dx = (y1 - y0) // 4, (x1 - x0) // 4   # the cell's centre half, away from blur
        level = frame[y0 + dy:y1 - dy, x0 + dx:x1 - dx].astype(np.float64).mean()
        number += int(np.argmin(np.abs(DIGIT_LEVELS - level))) * 4 ** d
    return number


def write_video(path: str | Path, *, num_frames: int, fps: int | Fraction = 10, width: int = 64,
                height: int = 48, gop: int | None = None, crf: int = 12) -> Path:
    """Write an H.264 mp4 of ``num_frames`` numbered frames at ``fps`` (e.g. 30000/1001 as a
    Fraction); one keyframe every ``gop`` frames."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop or round(fps)
        stream.options = {"crf": str(crf), "preset": "veryfast", "sc_threshold": "0"}
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(render_frame(i, width, height), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def ffmpeg_rate_numbers(path: str | Path, rate: int, at=None) -> list[int | None]:
    """The frame number shown by every frame that ``ffmpeg -i path -r rate`` gives: the decoded
    frames go through libavfilter's own ``fps`` filter (PyAV's bundled FFmpeg, default
    rounding and end of stream), their times counted from the first frame as ffmpeg's CLI
    counts a video-only file's. ``at``: read only these output frames (reading is the slow
    part), the others are None."""
    wanted = None if at is None else {int(k) for k in at}
    shown: list[int | None] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        graph = av.filter.Graph()
        source = graph.add_buffer(template=stream)
        fps = graph.add("fps", f"fps={rate}")
        sink = graph.add("buffersink")
        source.link_to(fps)
        fps.link_to(sink)
        graph.configure()

        def drain() -> None:
            while True:
                try:
                    frame = graph.pull()
                except (av.BlockingIOError, av.EOFError):
                    return
                if wanted is None or len(shown) in wanted:
                    shown.append(read_frame_number(frame.to_ndarray(format="rgb24")))
                else:
                    shown.append(None)

        first = None
        for frame in container.decode(stream):
            first = frame.pts if first is None else first
            frame.pts -= first
            graph.push(frame)
            drain()
        graph.push(None)
        drain()
    return shown


def write_avi(path: str | Path, *, num_frames: int, fps: int | Fraction = 25, width: int = 64,
              height: int = 48, codec: str = "mpeg4", max_b_frames: int = 2, gop: int = 12,
              first_number: int = 0) -> Path:
    """Write an AVI of ``num_frames`` numbered frames (``first_number`` on) at ``fps``.

    ``codec="mpeg4"``: MPEG-4 Part 2 with up to ``max_b_frames`` B-frames between references
    and an I-frame every ``gop`` frames (the files decord reads with garbage timestamps).
    ``codec="rawvideo"``: uncompressed BGR, so two videos of equal length and size have the
    same number of bytes whatever frames they show."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="avi") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height = width, height
        if codec == "rawvideo":
            stream.pix_fmt = "bgr24"
        else:
            stream.pix_fmt = "yuv420p"
            stream.codec_context.max_b_frames = max_b_frames
            stream.codec_context.gop_size = gop
            stream.codec_context.bit_rate = 2_000_000
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(render_frame(first_number + i, width, height),
                                               format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
