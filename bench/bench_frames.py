"""Frame store per codec on real footage: bytes per stored frame, extraction speed against a
plain decode of the same frames (same run, interleaved), PSNR, and the store's size at AVA scale.

For each codec (``--codecs codec:quality ...``) and each video, in rounds that alternate the
arms so that both see the same machine load:

- ``plain``: ``open_video(...).iter_frames(...)`` over the frames the store keeps (PyAV
  sequential decode + resize to the same short side, the extractor's own code path), nothing
  stored;
- ``extract``: ``extract_frames`` of that video (the same decode, plus encoding, checksums and
  sharded Zarr writes; one video at a time, ``workers=1``).

Prints bytes per stored frame (the ``frames`` array on disk / stored frames), extraction
frames/s and its ratio to the plain decode (median over rounds of the paired ratios; 1.0: the
store costs nothing beyond decoding), PSNR of every stored frame against the lossless store's
(the first zstd/lz4 codec listed; built untimed if none is), and an AVA estimate: bytes/frame x
the frames an AVA store keeps (299 videos, keyframes 902..1798 s of the 900-s clip on the 30-fps
timeline, ``frames.reach`` around each), next to FAIR's 392 GB JPEG dump and 157 GB of video.

Frames are those of the timeline (``--timeline-fps 30``, AVA's: a 24-fps film shows some source
frames twice, and the store encodes every timeline frame; ``0``: the videos' own frames).

    .venv/bin/python bench/bench_frames.py --footage /tmp/footage --short-side 320 --timeline-fps 30
    .venv/bin/python bench/bench_frames.py --videos a.mp4 b.avi --codecs zstd:3 jpeg:90 --rounds 5
    .venv/bin/python bench/bench_frames.py --synthetic --rounds 1    # CI size (tests/test_benches.py)
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from footage import (add_footage_args, codec_label, footage_videos, keyframe_table,  # noqa: E402
                     parse_codecs)
from pipeline.ava.clock import keyframe_frame_index  # noqa: E402
from pipeline.frames.extract import extract_frames, stored_frames  # noqa: E402
from pipeline.frames.spec import FrameSpec  # noqa: E402
from pipeline.frames.store import FrameStore  # noqa: E402
from pipeline.frames.video import open_video  # noqa: E402
from pipeline.io import remove_path  # noqa: E402

DEFAULT_CODECS = ["zstd:3", "lz4:5", "jpeg:90", "jpeg:95", "h264:18"]
AVA_VIDEOS = 299
AVA_TIMELINE_FRAMES = 27_030          # a 901-s span of each movie at 30 fps (900..1801 s)
AVA_KEYFRAMES = np.arange(902, 1799)  # 897 keyframes a video
AVA_START = 900
FAIR_JPEG_GB, AVA_VIDEO_GB = 392, 157  # FAIR's LFB guide: AVA frames as JPEG, AVA videos
LOSSLESS = ("zstd", "lz4")


def ava_stored_frames(reach: tuple[int, int], convention: str = "pyslowfast") -> int:
    """Frames a store keeps of one AVA video (keyframes 902..1798 s, 30-fps timeline)."""
    centers = keyframe_frame_index(AVA_KEYFRAMES, fps=30, timestamp_start=AVA_START,
                                   convention=convention)
    return len(stored_frames(np.asarray(centers), reach, AVA_TIMELINE_FRAMES))


def folder_bytes(path: Path) -> int:
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def mean_squared_error(video, reference, timeline: np.ndarray, block: int = 64) -> float:
    """Mean squared pixel error of ``video``'s frames against ``reference``'s, a block at a
    time (a whole video in float would not fit in memory)."""
    total = 0
    for first in range(0, len(timeline), block):
        frames = timeline[first:first + block]
        diff = video.frames(frames).astype(np.int32) - reference.frames(frames)
        total += int(np.square(diff, dtype=np.int64).sum())
    return total / (len(timeline) * video.height * video.width * 3)


def psnr(mse: float) -> float:
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_footage_args(parser)
    parser.add_argument("--codecs", nargs="+", default=DEFAULT_CODECS, metavar="CODEC:QUALITY",
                        help=f"codecs to compare (default: {' '.join(DEFAULT_CODECS)})")
    parser.add_argument("--short-side", type=int, default=320, help="0: the source size")
    parser.add_argument("--timeline-fps", type=int, default=30, help="0: the videos' own frames")
    parser.add_argument("--reach", type=int, nargs=2, default=list(FrameSpec.reach),
                        metavar=("BEFORE", "AFTER"))
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating runs of each arm; medians are reported")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where footage (synthetic) and stores go (default: a temporary "
                             "directory)")
    args = parser.parse_args()
    codecs = parse_codecs(args.codecs)
    reference = next((c for c in codecs if c[0] in LOSSLESS), None)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        videos = footage_videos(args, root)
        keyframes = keyframe_table(videos, args.timeline_fps or None)

        def spec(codec: str, quality: int) -> FrameSpec:
            return FrameSpec(short_side=args.short_side or None, timestamp_start=0,
                             timeline_fps=args.timeline_fps or None, codec=codec,
                             quality=quality, reach=tuple(args.reach))

        # What each video's store keeps (the plain arm decodes exactly these frames).
        plain_spec = spec("zstd", 3)
        timelines, sizes = {}, {}
        print(f"footage (short side {args.short_side or 'source'}, timeline "
              f"{args.timeline_fps or 'native'} fps, reach {tuple(args.reach)}, keyframes every "
              f"second):")
        for video_id, path in videos.items():
            video = open_video(video_id, path, plain_spec.output_size, plain_spec.timeline_fps)
            centers = keyframe_frame_index(
                keyframes.loc[keyframes["video_id"] == video_id, "timestamp"].to_numpy(),
                fps=video.fps, timestamp_start=0, convention=plain_spec.convention)
            timelines[video_id] = stored_frames(np.atleast_1d(centers), plain_spec.reach,
                                                video.num_frames)
            distinct = len(np.unique(video.source_frames_of(timelines[video_id])))
            sizes[video_id] = (video.width, video.height)
            print(f"  {video_id:10s} {video.source_width}x{video.source_height} "
                  f"{video.source_fps:6.3f} fps {video.source_frames:5d} frames -> "
                  f"{video.width}x{video.height}, {len(timelines[video_id])} stored frames "
                  f"({distinct} distinct source frames)")

        def run_plain(video_id: str) -> float:
            started = time.perf_counter()
            video = open_video(video_id, videos[video_id], plain_spec.output_size,
                               plain_spec.timeline_fps)
            checksum = 0
            for _, frame in video.iter_frames(timelines[video_id]):
                checksum += int(frame[0, 0, 0])
            return time.perf_counter() - started

        def store_path(codec: tuple[str, int], video_id: str) -> Path:
            return root / "stores" / f"{codec[0]}{codec[1]}" / f"{video_id}.zarr"

        def run_extract(codec: tuple[str, int], video_id: str) -> float:
            path = store_path(codec, video_id)
            remove_path(path)
            rows = keyframes[keyframes["video_id"] == video_id]
            started = time.perf_counter()
            summary = extract_frames({video_id: videos[video_id]}, rows, path,
                                     path.with_suffix(".parquet"), spec(*codec), workers=1,
                                     progress=False)
            elapsed = time.perf_counter() - started
            assert summary["stored_frames"] == len(timelines[video_id])
            return elapsed

        # rounds x codecs x videos, each extract right after its plain decode
        plain_s = {(c, v): [] for c in codecs for v in videos}
        extract_s = {(c, v): [] for c in codecs for v in videos}
        for _ in range(args.rounds):
            for codec in codecs:
                for video_id in videos:
                    plain_s[codec, video_id].append(run_plain(video_id))
                    extract_s[codec, video_id].append(run_extract(codec, video_id))
        if reference is None:
            reference = ("zstd", 3)
            for video_id in videos:
                run_extract(reference, video_id)

        frames_total = sum(len(t) for t in timelines.values())
        bytes_per_frame: dict[tuple, dict[str, float]] = {}
        psnr_db: dict[tuple, dict[str, float]] = {}
        for codec in codecs:
            bytes_per_frame[codec], psnr_db[codec] = {}, {}
            for video_id in videos:
                path = store_path(codec, video_id)
                bytes_per_frame[codec][video_id] = (folder_bytes(path / video_id / "frames")
                                                    / len(timelines[video_id]))
                psnr_db[codec][video_id] = psnr(mean_squared_error(
                    FrameStore(path).video(video_id),
                    FrameStore(store_path(reference, video_id)).video(video_id),
                    timelines[video_id]))

        names = list(videos)
        print(f"\n{args.rounds} rounds, {frames_total} stored frames in all; bytes per stored "
              "frame (kB), PSNR (dB) against the lossless store "
              f"({codec_label(*reference)}):")
        head = "".join(f" {v[:9]:>9s}" for v in names)
        print(f"{'codec':12s}{head}  {'mean':>7s} |{head}  {'mean':>6s}")
        for codec in codecs:
            kb = [bytes_per_frame[codec][v] / 1e3 for v in names]
            db = [psnr_db[codec][v] for v in names]
            print(f"{codec_label(*codec):12s}" + "".join(f" {x:9.1f}" for x in kb)
                  + f"  {statistics.mean(kb):7.1f} |" + "".join(f" {x:9.1f}" for x in db)
                  + f"  {statistics.mean(db):6.1f}")

        print("\nextraction against a plain decode of the same frames (frames/s of all videos; "
              "ratio = plain time / extract time, median of the rounds' paired ratios; per video "
              "below):")
        print(f"{'codec':12s} {'extract fps':>11s} {'plain fps':>9s} {'ratio':>6s} |"
              + "".join(f" {v[:9]:>9s}" for v in names))
        for codec in codecs:
            extract_rounds = [sum(extract_s[codec, v][r] for v in names)
                              for r in range(args.rounds)]
            plain_rounds = [sum(plain_s[codec, v][r] for v in names) for r in range(args.rounds)]
            ratio = statistics.median(p / e for p, e in zip(plain_rounds, extract_rounds))
            per_video = [statistics.median(p / e for p, e in zip(plain_s[codec, v],
                                                                  extract_s[codec, v]))
                         for v in names]
            print(f"{codec_label(*codec):12s} "
                  f"{frames_total / statistics.median(extract_rounds):11.1f} "
                  f"{frames_total / statistics.median(plain_rounds):9.1f} {ratio:6.2f} |"
                  + "".join(f" {x:9.2f}" for x in per_video))

        per_video_frames = ava_stored_frames(tuple(args.reach))
        ava_frames = AVA_VIDEOS * per_video_frames
        print(f"\nAVA estimate: {AVA_VIDEOS} videos x {per_video_frames:,} stored frames "
              f"(reach {tuple(args.reach)}, keyframes 902..1798 s, 30-fps timeline; "
              f"{AVA_VIDEOS * AVA_TIMELINE_FRAMES / 1e6:.2f} M timeline frames) = "
              f"{ava_frames / 1e6:.2f} M frames; GB = bytes/frame x frames, from the mean and "
              "the range of the videos above:")
        print(f"{'codec':12s} {'kB/frame':>8s} {'AVA GB':>8s} {'range GB':>13s} "
              f"{'/ FAIR JPEG 392 GB':>18s} {'/ videos 157 GB':>15s}")
        for codec in codecs:
            per = list(bytes_per_frame[codec].values())
            gb = statistics.mean(per) * ava_frames / 1e9
            low, high = min(per) * ava_frames / 1e9, max(per) * ava_frames / 1e9
            print(f"{codec_label(*codec):12s} {statistics.mean(per) / 1e3:8.1f} {gb:8.1f} "
                  f"{low:6.1f}-{high:<6.1f} {gb / FAIR_JPEG_GB:18.2f} {gb / AVA_VIDEO_GB:15.2f}")


if __name__ == "__main__":
    main()
