"""Does the data loader keep the model busy? Training throughput with the real loader (Zarr
frame store -> KeyframeDataset -> DataLoader workers) against the same model fed the same
batches already in memory, in one run.

    .venv/bin/python bench/bench_loader.py --steps 30 --batch-size 8 --workers 2
    .venv/bin/python bench/bench_loader.py --clip 32x2 --short-side 320 --crop 256   # AVA's size

Prints clips/s of both, the loader's share of step time (1 - real / in-memory throughput) and
the time the loop spent waiting for batches. The target is a share of at most 10 %. The two
arms alternate in blocks of steps so that both see the same load on a shared machine. On CPU
the model and the workers share the cores, so the training process gets the cores the workers
leave free (``--threads``).

``--clip TxI`` stores and reads T frames I apart at 30 fps (AVA's timeline: 4x16 for SlowOnly,
32x2 for SlowFast 8x8), frames stored at short side ``--short-side`` (AVA's presets: 320),
trained at ``--crop``; ``--preset`` picks the model (a small one on CPU, so that the loader's
share is visible at all), its clip length set to T.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.data.dataset import KeyframeDataset  # noqa: E402
from pipeline.data.loader import make_loader  # noqa: E402
from pipeline.data.sampler import EpochBatchSampler  # noqa: E402
from pipeline.data.transforms import train_transform  # noqa: E402
from pipeline.engine.detection import detection_loss  # noqa: E402
from pipeline.devices import resolve_device  # noqa: E402
from pipeline.engine.train import build_optimizer  # noqa: E402
from pipeline.engine.config import TrainConfig  # noqa: E402
from pipeline.frames.extract import extract_frames  # noqa: E402
from pipeline.frames.spec import FrameSpec  # noqa: E402
from pipeline.models.detector import Detector  # noqa: E402
from pipeline.models.presets import get_preset  # noqa: E402

NUM_CLASSES = 3


def write_video(path: Path, *, seconds: int, fps: int, width: int, height: int, seed: int) -> None:
    """Drifting gradient plus noise: compresses (in H.264 and in Zarr) like footage, not flat."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    noise = rng.normal(0, 12, (7, height, width, 3))
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = fps
        for i in range(seconds * fps):
            base = (xs + ys + 3 * i) % 256
            frame = np.stack([base, (base + 85) % 256, (base + 170) % 256], axis=-1)
            frame = np.clip(frame + noise[i % len(noise)], 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def build_dataset(root: Path, args: argparse.Namespace, clip_len: int, frame_interval: int,
                  fps: int = 30) -> KeyframeDataset:
    rng = np.random.default_rng(0)
    videos = {}
    for v in range(args.videos):
        videos[f"v{v}"] = root / f"v{v}.mp4"
        write_video(videos[f"v{v}"], seconds=args.seconds, fps=fps, width=args.width,
                    height=args.height, seed=v)
    timestamps = range(2, args.seconds - 2)
    keyframes = pd.DataFrame([(v, t, "train") for v in videos for t in timestamps],
                             columns=["video_id", "timestamp", "split"])
    extract_frames(videos, keyframes, root / "frames.zarr", root / "keyframes.parquet",
                   FrameSpec(clip_len=clip_len, frame_interval=frame_interval,
                             short_side=args.short_side or args.height, timestamp_start=0,
                             codec=args.codec, clevel=args.clevel), progress=False)
    boxes = []
    for video_id, t in zip(keyframes["video_id"], keyframes["timestamp"]):
        for _ in range(3):
            x1, y1 = rng.uniform(0, 0.5, 2)
            boxes.append((video_id, t, x1, y1, x1 + 0.4, y1 + 0.45))
    boxes = pd.DataFrame(boxes, columns=["video_id", "timestamp", "x1", "y1", "x2", "y2"])
    labels = (rng.random((len(boxes), NUM_CLASSES)) < 0.4).astype(np.uint8)
    proposals = boxes.assign(score=0.95)
    return KeyframeDataset(root / "frames.zarr", pd.read_parquet(root / "keyframes.parquet"),
                           boxes=boxes, labels=labels, proposals=proposals, split="train",
                           frames_per_clip=clip_len, frame_stride=1,
                           transform=train_transform(short_side_range=(args.crop, args.crop * 5 // 4),
                                                     crop_size=args.crop),
                           num_classes=NUM_CLASSES)


def timed_steps(iterator, step, steps: int, device: torch.device) -> tuple[float, float, int]:
    """(seconds, seconds waiting for the next batch, clips) over ``steps`` steps."""
    seconds = waiting = 0.0
    clips = 0
    for _ in range(steps):
        start = time.perf_counter()
        batch = next(iterator)
        waiting += time.perf_counter() - start
        step(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
        clips += len(batch)
    return seconds, waiting, clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--clip", default="8x1", help="TxI: T frames I apart (4x16, 32x2)")
    parser.add_argument("--short-side", type=int, default=0,
                        help="stored short side (0: --height, the source size)")
    parser.add_argument("--codec", default="zstd", choices=("zstd", "lz4"))
    parser.add_argument("--clevel", type=int, default=3)
    parser.add_argument("--prefetch-factor", type=int, default=4)
    parser.add_argument("--pin-memory", choices=("auto", "on", "off"), default="auto",
                        help="auto: on CUDA only")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--block", type=int, default=5, help="steps per arm before switching")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--width", type=int, default=214)
    parser.add_argument("--height", type=int, default=160)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads of the training process; 0: on CPU the "
                             "cores the workers leave free (at least 1), else torch's default")
    args = parser.parse_args()

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    elif device.type == "cpu":
        # Workers and compute threads share the cores; an oversubscribed OpenMP pool stalls
        # at every barrier, which would be charged to the loader.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) - args.workers))
    clip_len, frame_interval = (int(x) for x in args.clip.lower().split("x"))
    config = replace(get_preset(args.preset), clip_len=clip_len, frame_interval=frame_interval)
    if config.backbone == "slowfast":
        config = replace(config, resample_rate=min(config.resample_rate, clip_len))
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        dataset = build_dataset(Path(tmp), args, clip_len, frame_interval)
        print(f"frame store of {len(dataset)} clips built in {time.perf_counter() - started:.0f} s")
        torch.manual_seed(0)
        model = Detector(config).to(device).train()
        optimizer = build_optimizer(model, TrainConfig(lr=0.01))
        columns = torch.arange(1, NUM_CLASSES + 1)

        def step(batch) -> None:
            loss = detection_loss(model, batch, detector=model, columns=columns, device=device)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        total = args.warmup + args.steps
        sampler = EpochBatchSampler(len(dataset), args.batch_size, seed=0)
        if total > sampler.batches_per_epoch:
            raise SystemExit(f"only {sampler.batches_per_epoch} batches in the data; lower --steps "
                             f"or raise --videos/--seconds")
        pin = device.type == "cuda" if args.pin_memory == "auto" else args.pin_memory == "on"
        loader_args = dict(batch_sampler=sampler, num_workers=args.workers, pin_memory=pin,
                           prefetch_factor=args.prefetch_factor)
        # (b) the same batches, materialised in memory first (pinned, as the loader gives them)
        in_memory = list(make_loader(dataset, **loader_args))[:total]
        # (a) the real loader
        real = iter(make_loader(dataset, **loader_args))
        memory = iter(in_memory)
        timed_steps(memory, step, args.warmup, device)   # warm up kernels
        timed_steps(real, step, args.warmup, device)     # start workers, fill their queues
        # Alternate blocks of steps so that both arms see the same machine load.
        mem_s = real_s = wait_s = 0.0
        mem_clips = real_clips = 0
        for block in range(0, args.steps, args.block):
            n = min(args.block, args.steps - block)
            seconds, _, clips = timed_steps(memory, step, n, device)
            mem_s, mem_clips = mem_s + seconds, mem_clips + clips
            seconds, waiting, clips = timed_steps(real, step, n, device)
            real_s, wait_s, real_clips = real_s + seconds, wait_s + waiting, real_clips + clips

    real_rate, mem_rate = real_clips / real_s, mem_clips / mem_s
    share = 1.0 - real_rate / mem_rate
    print(f"device {device} ({torch.get_num_threads()} threads), preset {args.preset}, batch {args.batch_size}, "
          f"clip {clip_len}x{frame_interval} stored at short side {args.short_side or args.height} "
          f"({args.codec} {args.clevel}), trained at {args.crop}x{args.crop}, "
          f"{args.workers} workers, prefetch {args.prefetch_factor}, pin_memory {pin}, "
          f"{args.steps} steps")
    print(f"ratio real/in-memory: {real_rate / mem_rate:.2f}")
    print(f"in-memory batches : {mem_rate:8.2f} clips/s  ({1000 * mem_s / args.steps:.1f} ms/step)")
    print(f"real loader       : {real_rate:8.2f} clips/s  ({1000 * real_s / args.steps:.1f} ms/step)")
    print(f"loader share of step time: {100 * share:.1f} %  (target <= 10 %); "
          f"waiting for batches: {100 * wait_s / real_s:.1f} % of the real-loader time")


if __name__ == "__main__":
    main()
