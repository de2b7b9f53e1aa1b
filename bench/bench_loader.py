"""How many jittered training clips can one loader worker read from the frame store, per codec?
Clips/s of one process (one worker's work: its zarr settings, one thread), and the workers
(cores) one GPU needs at its measured feed rate.

    .venv/bin/python bench/bench_loader.py --footage /tmp/footage --short-side 320 --timeline-fps 30
    .venv/bin/python bench/bench_loader.py --videos a.mp4 --codecs jpeg:90 h264:18 --clips 4x16
    .venv/bin/python bench/bench_loader.py --synthetic --rounds 1 --clips-per-arm 8   # CI size
    .venv/bin/python bench/bench_loader.py --share --steps 30 --batch-size 8 --workers 2

Builds one store per codec (``--codecs codec:quality ...``) from the footage (short side
``--short-side``, timeline ``--timeline-fps``, keyframes every second, the default reach), then
reads ``--clips-per-arm`` clips per (codec, clip shape) arm, keyframes taken from the videos in
turn, each clip jittered as ``KeyframeDataset.__getitem__`` draws it (mmaction2's per-frame
``jitter_bounds``, a new draw each round): through ``KeyframeDataset.read_clip`` (``--via
dataset``, what a worker runs) or the store's ``video().clip()`` (``--via store``). Arms
alternate in rounds; the median round is reported, with each codec's ratio to the first one
listed (paired per round) and the workers needed for ``--targets`` clips/s (one GPU's feed
rate: SlowOnly 4x16 341 clips/s, SlowFast 32x2 78 clips/s). Decoding and augmentation of the
rest of ``__getitem__`` (rescale, crop, flip) are not included.

``--share``: the older end-to-end check, kept because it is cheap: training throughput with the
real loader (frame store -> KeyframeDataset -> DataLoader workers) against the same model fed
the same batches already in memory, alternating blocks of steps; prints the loader's share of
step time (target at most 10 %). Its store is built from synthetic videos (``--share-videos``,
``--seconds``, ``--width``, ``--height``) with the first of ``--codecs``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from footage import (add_footage_args, codec_label, footage_videos, keyframe_table,  # noqa: E402
                     parse_codecs)
from pipeline.ava.clock import jitter_bounds  # noqa: E402
from pipeline.data.dataset import KeyframeDataset  # noqa: E402
from pipeline.data.loader import _configure_worker, make_loader  # noqa: E402
from pipeline.frames.extract import extract_frames  # noqa: E402
from pipeline.frames.spec import FrameSpec, clip_offsets, clip_reach  # noqa: E402
from pipeline.frames.store import FrameStore  # noqa: E402

NUM_CLASSES = 3
DEFAULT_CODECS = ["zstd:3", "lz4:5", "jpeg:90", "jpeg:95", "h264:18"]
TARGETS = {"4x16": 341.0, "32x2": 78.0}   # one GPU's measured feed rate (docs/ava.md), clips/s


def identity(sample, rng):
    return sample


def clip_dataset(store: Path, clip_len: int, frame_interval: int, *, jitter: bool = True,
                 transform=identity, boxes=None, labels=None, proposals=None) -> KeyframeDataset:
    """Every keyframe of ``store`` as a sample of the model's clip shape."""
    return KeyframeDataset(store, FrameStore(store).index, boxes=boxes, labels=labels,
                           proposals=proposals, split=None, frames_per_clip=clip_len,
                           frame_interval=frame_interval, transform=transform,
                           num_classes=NUM_CLASSES, temporal_jitter=jitter)


def build_store(videos: dict[str, Path], keyframes: pd.DataFrame, path: Path,
                spec: FrameSpec) -> Path:
    """Extract ``videos`` into ``path``, or keep a complete store there of the same spec."""
    if (path / "zarr.json").is_file():
        try:
            store = FrameStore(path)
            if store.spec == spec and set(store.video_ids()) == set(videos):
                return path
        except Exception:   # an older or damaged store: extract again
            pass
    extract_frames(videos, keyframes, path, path.with_suffix(".parquet"), spec, progress=False)
    return path


def interleaved_order(dataset: KeyframeDataset) -> np.ndarray:
    """Sample indices taking the videos in turn (each footage type weighs the same)."""
    per_video = [np.flatnonzero(dataset.video_ids == v) for v in dict.fromkeys(dataset.video_ids)]
    longest = max(len(p) for p in per_video)
    return np.array([p[k % len(p)] for k in range(longest) for p in per_video])


def read_arm(dataset: KeyframeDataset, order: np.ndarray, count: int, start: int, epoch: int,
             via: str) -> tuple[float, dict[str, list[float]]]:
    """(seconds, seconds per clip by video) reading ``count`` jittered clips."""
    low, high = jitter_bounds(dataset.frame_interval)
    offsets = clip_offsets(dataset.frames_per_clip, dataset.frame_interval)
    store = dataset.frame_store()
    per_video: dict[str, list[float]] = {}
    total = 0.0
    for k in range(start, start + count):
        index = int(order[k % len(order)])
        started = time.perf_counter()
        rng = np.random.default_rng([epoch, index])          # as __getitem__ draws it
        jitter = rng.integers(low, high, size=dataset.frames_per_clip)
        if via == "dataset":
            clip = dataset.read_clip(index, jitter)
        else:
            clip = store.video(str(dataset.video_ids[index])).clip(
                int(dataset.keyframe_frames[index]), offsets + jitter)
        elapsed = time.perf_counter() - started
        assert clip.shape[0] == dataset.frames_per_clip
        total += elapsed
        per_video.setdefault(str(dataset.video_ids[index]), []).append(elapsed)
    return total, per_video


def rate_main(args: argparse.Namespace) -> None:
    codecs = parse_codecs(args.codecs)
    shapes = [tuple(int(x) for x in c.lower().split("x")) for c in args.clips]
    _configure_worker(0)   # a loader worker's zarr threads and torch threads
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        videos = footage_videos(args, root)
        keyframes = keyframe_table(videos, args.timeline_fps or None)
        stores = {}
        started = time.perf_counter()
        for codec, quality in codecs:
            spec = FrameSpec(short_side=args.short_side or None, timestamp_start=0,
                             timeline_fps=args.timeline_fps or None, codec=codec,
                             quality=quality)
            stores[codec, quality] = build_store(videos, keyframes,
                                                 root / "stores" / f"{codec}{quality}.zarr", spec)
        sizes = {v: (FrameStore(s).video(v).width, FrameStore(s).video(v).height)
                 for s in list(stores.values())[:1] for v in videos}
        print(f"{len(codecs)} stores of {len(keyframes)} keyframes from {len(videos)} videos "
              f"({', '.join(f'{v} {w}x{h}' for v, (w, h) in sizes.items())}) ready in "
              f"{time.perf_counter() - started:.0f} s; short side {args.short_side or 'source'}, "
              f"timeline {args.timeline_fps or 'native'} fps")

        datasets = {(c, s): clip_dataset(stores[c], *s) for c in codecs for s in shapes}
        orders = {key: interleaved_order(d) for key, d in datasets.items()}
        for key, dataset in datasets.items():   # open each store and video once, untimed
            read_arm(dataset, orders[key], len(set(dataset.video_ids)), 0, 1 << 20, args.via)
        seconds = {key: [] for key in datasets}
        by_video = {key: {} for key in datasets}
        for r in range(args.rounds):
            for shape in shapes:
                for codec in codecs:
                    key = (codec, shape)
                    total, per_video = read_arm(datasets[key], orders[key], args.clips_per_arm,
                                                r * args.clips_per_arm, r, args.via)
                    seconds[key].append(total)
                    for video_id, times in per_video.items():
                        by_video[key].setdefault(video_id, []).extend(times)

    names = list(videos)
    reference = codecs[0]
    print(f"\n{args.rounds} rounds x {args.clips_per_arm} jittered clips per arm, one process "
          f"(via {args.via}); clips/s per worker = median round; ratio to "
          f"{codec_label(*reference)} (paired rounds); workers = target / clips/s; "
          "ms per clip by video (median):")
    for shape in shapes:
        label = f"{shape[0]}x{shape[1]}"
        target = args.targets.get(label)
        print(f"\n{label} (reach {clip_reach(*shape, True)}), target "
              f"{f'{target:g}' if target else '-'} clips/s")
        print(f"{'codec':12s} {'clips/s':>8s} {'ratio':>6s} {'workers':>8s} |"
              + "".join(f" {v[:9]:>9s}" for v in names))
        for codec in codecs:
            key = (codec, shape)
            rate = args.clips_per_arm / statistics.median(seconds[key])
            ratio = statistics.median(ref / own for ref, own in zip(
                seconds[reference, shape], seconds[key]))
            workers = f"{target / rate:8.1f}" if target else f"{'-':>8s}"
            ms = [1e3 * statistics.median(by_video[key][v]) if v in by_video[key] else float("nan")
                  for v in names]
            print(f"{codec_label(*codec):12s} {rate:8.1f} {ratio:6.2f} {workers} |"
                  + "".join(f" {x:9.2f}" for x in ms))


# --- --share: the loader's share of a training step ------------------------------------------

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
    """A training dataset (random boxes and labels, jittered clips) over ``args.videos``
    synthetic videos of ``args.seconds`` s at ``args.width`` x ``args.height``, stored at short
    side ``args.short_side`` (0: the source) in ``args.codec`` at ``args.quality`` (or
    ``args.clevel``). Also used by ``bench_train.py --loader``."""
    from pipeline.data.transforms import train_transform

    rng = np.random.default_rng(0)
    videos = {}
    for v in range(args.videos):
        videos[f"v{v}"] = root / f"v{v}.mp4"
        write_video(videos[f"v{v}"], seconds=args.seconds, fps=fps, width=args.width,
                    height=args.height, seed=v)
    timestamps = range(2, args.seconds - 2)
    keyframes = pd.DataFrame([(v, t, "train") for v in videos for t in timestamps],
                             columns=["video_id", "timestamp", "split"])
    quality = getattr(args, "quality", None)
    extract_frames(videos, keyframes, root / "frames.zarr", root / "keyframes.parquet",
                   FrameSpec(short_side=args.short_side or args.height, timestamp_start=0,
                             codec=args.codec, quality=args.clevel if quality is None else quality,
                             reach=clip_reach(clip_len, frame_interval, True)),
                   progress=False)
    boxes = []
    for video_id, t in zip(keyframes["video_id"], keyframes["timestamp"]):
        for _ in range(3):
            x1, y1 = rng.uniform(0, 0.5, 2)
            boxes.append((video_id, t, x1, y1, x1 + 0.4, y1 + 0.45))
    boxes = pd.DataFrame(boxes, columns=["video_id", "timestamp", "x1", "y1", "x2", "y2"])
    labels = (rng.random((len(boxes), NUM_CLASSES)) < 0.4).astype(np.uint8)
    return clip_dataset(root / "frames.zarr", clip_len, frame_interval, boxes=boxes,
                        labels=labels, proposals=boxes.assign(score=0.95),
                        transform=train_transform(short_side_range=(args.crop, args.crop * 5 // 4),
                                                  crop_size=args.crop))


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


def share_main(args: argparse.Namespace) -> None:
    from pipeline.data.sampler import EpochBatchSampler
    from pipeline.devices import resolve_device
    from pipeline.engine.config import TrainConfig
    from pipeline.engine.detection import detection_loss
    from pipeline.engine.optimizer import build_optimizer
    from pipeline.models.detector import Detector
    from pipeline.models.presets import get_preset

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
    codec, quality = parse_codecs(args.codecs)[0]
    store_args = argparse.Namespace(videos=args.share_videos, seconds=args.seconds,
                                    width=args.width, height=args.height,
                                    short_side=args.short_side, crop=args.crop, codec=codec,
                                    quality=quality)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        dataset = build_dataset(Path(tmp), store_args, clip_len, frame_interval)
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
            raise SystemExit(f"only {sampler.batches_per_epoch} batches in the data; lower "
                             "--steps or raise --share-videos/--seconds")
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
    print(f"device {device} ({torch.get_num_threads()} threads), preset {args.preset}, batch "
          f"{args.batch_size}, clip {clip_len}x{frame_interval} (jittered) stored at short side "
          f"{args.short_side or args.height} ({codec_label(codec, quality)}), trained at "
          f"{args.crop}x{args.crop}, {args.workers} workers, prefetch {args.prefetch_factor}, "
          f"pin_memory {pin}, {args.steps} steps")
    print(f"ratio real/in-memory: {real_rate / mem_rate:.2f}")
    print(f"in-memory batches : {mem_rate:8.2f} clips/s  ({1000 * mem_s / args.steps:.1f} ms/step)")
    print(f"real loader       : {real_rate:8.2f} clips/s  ({1000 * real_s / args.steps:.1f} ms/step)")
    print(f"loader share of step time: {100 * share:.1f} %  (target <= 10 %); "
          f"waiting for batches: {100 * wait_s / real_s:.1f} % of the real-loader time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_footage_args(parser, required=False)
    parser.add_argument("--codecs", nargs="+", default=DEFAULT_CODECS, metavar="CODEC:QUALITY",
                        help=f"codecs to compare (default: {' '.join(DEFAULT_CODECS)}); the "
                             "first is the ratios' reference")
    parser.add_argument("--short-side", type=int, default=320, help="0: the source size")
    parser.add_argument("--timeline-fps", type=int, default=30, help="0: the videos' own frames")
    parser.add_argument("--clips", nargs="+", default=["4x16", "32x2"],
                        help="clip shapes TxI: T frames I apart")
    parser.add_argument("--targets", nargs="+", default=[f"{k}={v:g}" for k, v in TARGETS.items()],
                        metavar="TxI=CLIPS_PER_S", help="one GPU's feed rate per clip shape")
    parser.add_argument("--via", choices=("dataset", "store"), default="dataset",
                        help="KeyframeDataset.read_clip or FrameStore.video().clip()")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clips-per-arm", type=int, default=150)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where stores go (kept there and reused; default: a temporary "
                             "directory)")
    share = parser.add_argument_group("--share (the loader's share of a training step)")
    share.add_argument("--share", action="store_true")
    share.add_argument("--preset", default="tiny")
    share.add_argument("--clip", default="4x16", help="TxI of the model")
    share.add_argument("--prefetch-factor", type=int, default=4)
    share.add_argument("--pin-memory", choices=("auto", "on", "off"), default="auto",
                       help="auto: on CUDA only")
    share.add_argument("--steps", type=int, default=30)
    share.add_argument("--warmup", type=int, default=3)
    share.add_argument("--block", type=int, default=5, help="steps per arm before switching")
    share.add_argument("--batch-size", type=int, default=8)
    share.add_argument("--workers", type=int, default=2)
    share.add_argument("--share-videos", type=int, default=4)
    share.add_argument("--seconds", type=int, default=60)
    share.add_argument("--width", type=int, default=214)
    share.add_argument("--height", type=int, default=160)
    share.add_argument("--crop", type=int, default=128)
    share.add_argument("--device", default="auto")
    share.add_argument("--threads", type=int, default=0,
                       help="torch intra-op threads of the training process; 0: on CPU the "
                            "cores the workers leave free (at least 1), else torch's default")
    args = parser.parse_args()
    args.targets = {k: float(v) for k, v in (t.split("=") for t in args.targets)}
    if args.share:
        share_main(args)
    elif not (args.footage or args.videos or args.synthetic):
        parser.error("one of --footage, --videos, --synthetic (or --share) is required")
    else:
        rate_main(args)


if __name__ == "__main__":
    main()
