"""Time frame extraction against a plain decord decode of the same frames, in the same run.

Writes a few synthetic videos (moving shapes on a gradient, light noise, H.264, 1 s GOP), then
measures, in keyframe clips per second:

- ``extract``: ``extract_frames`` (decord decode + resize + Blosc/zstd + sharded Zarr writes);
- ``decord``: one ``get_batch`` per clip on a resized ``VideoReader``, nothing stored (what a
  data loader decoding video on the fly would do);
- ``zarr read``: reading every clip back from the store (what training then does instead).

Prints the ratios, the store's bytes and file count, and the source mp4 bytes. Videos already
in ``--workdir`` are reused (writing them takes longer than the measurement).

    .venv/bin/python bench/bench_frames.py --videos 3 --seconds 30
    .venv/bin/python bench/bench_frames.py --workdir /tmp/frames-bench --codec lz4 --clevel 5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import decord
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.ava.clock import clip_frame_indices  # noqa: E402
from pipeline.frames.extract import extract_frames  # noqa: E402
from pipeline.frames.spec import FrameSpec  # noqa: E402
from pipeline.frames.store import FrameStore  # noqa: E402
from pipeline.frames.spec import CODECS, SHUFFLES  # noqa: E402


def write_synthetic_video(path: Path, *, seconds: int, fps: int, width: int, height: int,
                          seed: int) -> None:
    """Moving rectangles on a drifting gradient with mild noise: compresses like real footage
    more than flat test patterns do."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    shapes = rng.uniform(0, 1, size=(6, 7))  # x, y, w, h, vx, vy, gray
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--clip-len", type=int, default=32)
    parser.add_argument("--frame-interval", type=int, default=2)
    parser.add_argument("--short-side", type=int, default=256)
    parser.add_argument("--shard-clips", type=int, default=16)
    parser.add_argument("--clevel", type=int, default=FrameSpec.clevel)
    parser.add_argument("--shuffle", default=FrameSpec.shuffle, choices=SHUFFLES)
    parser.add_argument("--codec", default=FrameSpec.codec, choices=CODECS)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2,
                        help="alternating runs of each arm; the fastest of each is reported")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where videos and the store go (default: a temporary directory)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        videos = {}
        for v in range(args.videos):
            videos[f"video{v:02d}"] = path = root / f"video{v:02d}.mp4"
            if path.is_file():
                continue
            write_synthetic_video(path, seconds=args.seconds, fps=args.fps, width=args.width,
                                  height=args.height, seed=v)
        print(f"wrote {args.videos} videos of {args.seconds} s, {args.width}x{args.height} "
              f"@ {args.fps} fps in {time.perf_counter() - started:.1f} s; mp4 bytes "
              f"{sum(p.stat().st_size for p in videos.values()):,}")

        # AVA-like: keyframes every second, away from the first and last second.
        timestamps = list(range(2, args.seconds - 1))
        keyframes = pd.DataFrame([(v, t, "train") for v in videos for t in timestamps],
                                 columns=["video_id", "timestamp", "split"])
        spec = FrameSpec(clip_len=args.clip_len, frame_interval=args.frame_interval,
                         short_side=args.short_side, timestamp_start=0,
                         shard_clips=args.shard_clips, clevel=args.clevel, shuffle=args.shuffle,
                         codec=args.codec)
        clips = len(keyframes)

        def run_extract() -> dict:
            return extract_frames(videos, keyframes, root / "frames.zarr",
                                  root / "keyframes.parquet", spec, workers=args.workers,
                                  progress=False)

        def run_decord() -> int:
            checksum = 0
            for path in videos.values():
                probe = decord.VideoReader(str(path))
                height, width = probe[0].shape[:2]
                out_w, out_h = spec.output_size(width, height)
                del probe
                reader = decord.VideoReader(str(path), width=out_w, height=out_h)
                indices = clip_frame_indices(np.asarray(timestamps), fps=reader.get_avg_fps(),
                                             timestamp_start=0, clip_len=spec.clip_len,
                                             frame_interval=spec.frame_interval,
                                             num_frames=len(reader))
                for clip in indices:
                    checksum += int(reader.get_batch(clip.tolist()).asnumpy()[0, 0, 0, 0])
            return checksum

        # Alternate the two arms and keep each one's fastest run: on a shared machine the
        # load changes from one minute to the next, and the minimum is the least disturbed.
        extract_times, decord_times = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            summary = run_extract()
            extract_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            checksum = run_decord()
            decord_times.append(time.perf_counter() - started)
        extract_s, decord_s = min(extract_times), min(decord_times)
        print("runs (s): extract " + " ".join(f"{t:.1f}" for t in extract_times)
              + ", decord " + " ".join(f"{t:.1f}" for t in decord_times))

        started = time.perf_counter()
        store = FrameStore(root / "frames.zarr")
        for row in store.index.itertuples():
            checksum += int(store.clip(row.video_id, row.row)[0, 0, 0, 0])
        read_s = time.perf_counter() - started

        shape = store.summary()["shapes"][next(iter(videos))]
        print(f"clips: {clips} ({args.videos} videos), stored clip shape {shape[1:]}, "
              f"shard {args.shard_clips} clips, "
              f"blosc {args.codec} clevel {args.clevel} {args.shuffle}, workers {args.workers}")
        print(f"extract   : {clips / extract_s:8.2f} clips/s ({extract_s:.2f} s)")
        print(f"decord    : {clips / decord_s:8.2f} clips/s ({decord_s:.2f} s)")
        print(f"zarr read : {clips / read_s:8.2f} clips/s ({read_s:.2f} s)")
        print(f"ratio extract/decord: {decord_s / extract_s:.2f}   "
              f"ratio zarr-read/decord: {decord_s / read_s:.2f}")
        raw = clips * int(np.prod(shape[1:]))
        print(f"zarr store: {summary['store_bytes']:,} bytes in {summary['store_files']} files "
              f"(raw uint8 {raw:,} bytes, compression x{raw / summary['store_bytes']:.2f})")


if __name__ == "__main__":
    main()
