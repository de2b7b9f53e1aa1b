"""Training and inference throughput of the zoo's R50 detectors, against the device's own peak.

For SlowOnly 4x16, SlowOnly 8x8 and SlowFast 8x8 (the real presets of
``pipeline.models.presets``), in one run:

- ``train``: clips/s of the engine's training step (autocast per ``--amp``/``--dtype``, loss
  scaling for float16, SGD) on clips already on the device (``--crop``, AVA's 256);
- ``infer``: clips/s of an inference forward at the test size (``--test-size``, AVA 256x341);
- GPU memory: peak allocated during training;
- TFLOP/s achieved: the model's FLOPs (counted once by ``torch.utils.flop_counter``: forward,
  training = 3x forward) over the measured time, against a dense matmul's TFLOP/s measured in
  the same run at the same dtype (``peak``);
- the loader's share: clips/s the real loader (Zarr frame store -> workers) delivers alone at
  the model's clip size, and the share of a training step it would leave the model waiting,
  ``max(0, 1 - loader / train)`` (the workers run beside the device; ``bench_loader.py``
  measures the interleaved share on one machine).

    .venv/bin/python bench/bench_train.py --device cuda --amp --dtype bfloat16 --steps 30
    .venv/bin/python bench/bench_train.py --tiny            # CPU CI size (tests run this)

``--channels-last`` (channels_last_3d memory format) and ``--compile`` (torch.compile) are
measured here before any stage gets them: they are not pipeline params.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.data.transforms import normalize_clips  # noqa: E402
from pipeline.devices import resolve_device  # noqa: E402
from pipeline.engine.precision import AMP_DTYPES, autocast, needs_loss_scaling  # noqa: E402
from pipeline.models.detector import Detector  # noqa: E402
from pipeline.models.presets import get_preset  # noqa: E402

MODELS = {
    "slowonly_r50_4x16": "slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb",
    "slowonly_r50_8x8": "slowonly_k400-pre-r50_8xb8-8x8x1-10e_ava-kinetics-rgb",
    "slowfast_r50_8x8": "slowfast_kinetics400-pretrained-r50_8xb6-8x8x1-cosine-10e_ava22-rgb",
}
ROIS_PER_CLIP = 3   # AVA train keyframes have about 2-3 people


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype | None, size: int, repeats: int
                ) -> float:
    """TFLOP/s of ``size`` x ``size`` matmuls at ``dtype`` (float32 for None)."""
    a = torch.randn(size, size, device=device, dtype=dtype or torch.float32)
    b = torch.randn(size, size, device=device, dtype=dtype or torch.float32)
    a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e12


def inputs(config, batch: int, height: int, width: int, device: torch.device):
    clips = torch.randint(0, 256, (batch, config.clip_len, height, width, 3), dtype=torch.uint8,
                          device=device)
    rois = torch.tensor([[b, 0.1 * width + k, 0.1 * height, 0.5 * width + 10 * k, 0.9 * height]
                         for b in range(batch) for k in range(ROIS_PER_CLIP)],
                        dtype=torch.float32, device=device)
    return clips, rois


def forward_flops(model: Detector, clips: torch.Tensor, rois: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(normalize_clips(clips), rois)
    return float(counter.get_total_flops())


def measure(name: str, config, args, device: torch.device, dtype: torch.dtype | None
            ) -> dict:
    torch.manual_seed(0)
    model = Detector(replace(config, num_classes=81)).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    step_model = torch.compile(model) if args.compile else model
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=needs_loss_scaling(dtype))
    clips, rois = inputs(config, args.batch, args.crop, args.crop, device)
    targets = (torch.rand(len(rois), 81, device=device) < 0.05).float()
    flops = forward_flops(model, clips[:1], rois[:ROIS_PER_CLIP])

    def train_step() -> None:
        with autocast(device, dtype):
            logits = step_model(normalize_clips(clips), rois)
        loss = model.loss(logits.float(), targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    def timed(step, steps: int) -> float:
        for _ in range(args.warmup):
            step()
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        return time.perf_counter() - start

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    train_s = timed(train_step, args.steps)
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None

    test_h, test_w = args.test_size
    test_clips, test_rois = inputs(config, args.test_batch, test_h, test_w, device)
    test_flops = forward_flops(model, test_clips[:1], test_rois[:ROIS_PER_CLIP])
    model.eval()

    def infer_step() -> None:
        with torch.inference_mode(), autocast(device, dtype):
            step_model(normalize_clips(test_clips), test_rois).float()

    infer_s = timed(infer_step, args.steps)
    train_rate = args.batch * args.steps / train_s
    infer_rate = args.test_batch * args.steps / infer_s
    return {"model": name, "train_clips_s": train_rate, "infer_clips_s": infer_rate,
            "memory_gib": memory,
            "train_tflops": 3 * flops * train_rate / 1e12,
            "infer_tflops": test_flops * infer_rate / 1e12,
            "gflop_per_train_clip": 3 * flops / 1e9}


def loader_rate(config, args, device: torch.device) -> float:
    """Clips/s the real loader delivers alone at ``config``'s clip size from a frame store."""
    from bench_loader import build_dataset
    from pipeline.data.loader import make_loader
    from pipeline.data.sampler import EpochBatchSampler

    store_args = argparse.Namespace(videos=args.loader_videos, seconds=args.loader_seconds,
                                    width=args.loader_width, height=args.loader_height,
                                    short_side=args.short_side, crop=args.crop,
                                    codec=args.codec, clevel=args.clevel)
    with tempfile.TemporaryDirectory() as tmp:
        dataset = build_dataset(Path(tmp), store_args, config.clip_len, config.frame_interval)
        sampler = EpochBatchSampler(len(dataset), args.batch, seed=0)
        if sampler.batches_per_epoch < 3:
            raise SystemExit(f"the loader's store holds {len(dataset)} clips, under 3 batches "
                             "of --batch: raise --loader-videos or --loader-seconds")
        loader = make_loader(dataset, batch_sampler=sampler, num_workers=args.workers,
                             pin_memory=device.type == "cuda",
                             prefetch_factor=args.prefetch_factor)
        batches = iter(loader)
        next(batches)   # workers started
        start, clips = time.perf_counter(), 0
        for batch in batches:
            clips += len(batch)
        return clips / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", action="store_true", help="autocast (CUDA or CPU)")
    parser.add_argument("--dtype", default="float16", choices=tuple(AMP_DTYPES))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--test-batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--test-size", type=int, nargs=2, default=(256, 341),
                        metavar=("H", "W"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--base-channels", type=int, default=64,
                        help="stem width (64: the real R50; smaller for CPU runs)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--cudnn-benchmark", choices=("on", "off"), default="on")
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--loader", action="store_true",
                        help="measure the real loader's rate and share (writes videos)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--prefetch-factor", type=int, default=4)
    parser.add_argument("--short-side", type=int, default=320)
    parser.add_argument("--codec", default="lz4", choices=("zstd", "lz4"))
    parser.add_argument("--clevel", type=int, default=5)
    parser.add_argument("--loader-videos", type=int, default=4)
    parser.add_argument("--loader-seconds", type=int, default=20)
    parser.add_argument("--loader-width", type=int, default=568)
    parser.add_argument("--loader-height", type=int, default=320)
    parser.add_argument("--tiny", action="store_true",
                        help="CI size: stem width 8, 64 px clips, 2 steps, batch 2, tiny store")
    args = parser.parse_args()
    if args.tiny:
        args.base_channels, args.crop, args.test_size = 8, 64, (64, 80)
        args.steps, args.warmup, args.batch, args.test_batch = 2, 1, 2, 2
        args.matmul_size, args.workers, args.short_side = 256, 1, 64
        args.loader_videos, args.loader_seconds = 1, 10
        args.loader_width, args.loader_height = 80, 64

    device = resolve_device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda" and args.cudnn_benchmark == "on"
    dtype = AMP_DTYPES[args.dtype] if args.amp else None
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"cpu ({torch.get_num_threads()} threads)")
    peak = matmul_peak(device, dtype, args.matmul_size, 10 if args.tiny else 50)
    print(f"device {name}; precision {args.dtype if args.amp else 'float32'}; "
          f"batch {args.batch} at {args.crop}x{args.crop}, inference batch {args.test_batch} "
          f"at {args.test_size[0]}x{args.test_size[1]}; stem width {args.base_channels}; "
          f"channels_last {args.channels_last}, compile {args.compile}, cudnn.benchmark "
          f"{torch.backends.cudnn.benchmark}; {args.steps} steps")
    print(f"matmul peak ({args.matmul_size}^2, same dtype): {peak:.4g} TFLOP/s")
    header = (f"{'model':20s} {'train clips/s':>13s} {'infer clips/s':>13s} {'GPU GiB':>8s} "
              f"{'train TFLOP/s':>13s} {'% peak':>7s} {'infer TFLOP/s':>13s} {'% peak':>7s} "
              f"{'GFLOP/clip':>10s} {'loader clips/s':>14s} {'loader share':>12s}")
    print(header)
    for key in args.models:
        config = replace(get_preset(MODELS[key]), base_channels=args.base_channels)
        row = measure(key, config, args, device, dtype)
        loader, share = None, None
        if args.loader:
            loader = loader_rate(config, args, device)
            share = max(0.0, 1.0 - loader / row["train_clips_s"])
        memory = "-" if row["memory_gib"] is None else f"{row['memory_gib']:.2f}"
        print(f"{key:20s} {row['train_clips_s']:13.2f} {row['infer_clips_s']:13.2f} "
              f"{memory:>8s} {row['train_tflops']:13.4g} "
              f"{100 * row['train_tflops'] / peak:6.1f}% {row['infer_tflops']:13.4g} "
              f"{100 * row['infer_tflops'] / peak:6.1f}% {row['gflop_per_train_clip']:10.1f} "
              f"{'-' if loader is None else f'{loader:.2f}':>14s} "
              f"{'-' if share is None else f'{100 * share:.1f}%':>12s}", flush=True)
        with contextlib.suppress(Exception):
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
