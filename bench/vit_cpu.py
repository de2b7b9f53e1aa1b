"""What the zoo's ViT detectors cost on this machine's CPU: one clip through the whole
detector (backbone, RoI head), forward and forward + backward, next to the zoo's CNN
baseline on the same clip as the reference measured in the same run.

    python bench/vit_cpu.py                       # ViT-B, 16x256x320, 2 threads
    python bench/vit_cpu.py --preset vit-large-p16_videomae-k400-pre_8xb8-16x4x1-20e-adamw_ava-kinetics-rgb

Prints seconds per clip and the ratio to SlowOnly R50 4x16 (the CNN's own 4-frame clip of the
same size), so a reader can tell what a CPU can train or score from the clip counts of a split.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.models.detector import Detector  # noqa: E402
from pipeline.models.presets import get_preset  # noqa: E402

VIT_B = "vit-base-p16_videomae-k400-pre_8xb8-16x4x1-20e-adamw_ava-kinetics-rgb"
CNN = "slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb"


def seconds(model: Detector, clip: torch.Tensor, *, backward: bool, repeats: int) -> float:
    """Median seconds of ``repeats`` passes after one warm-up pass."""
    rois = torch.tensor([[0.0, 40.0, 30.0, 200.0, 230.0]])
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        if backward:
            model.train()
            model(clip, rois).sum().backward()
            model.zero_grad(set_to_none=True)
        else:
            model.eval()
            with torch.no_grad():
                model(clip, rois)
        if i:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=VIT_B)
    parser.add_argument("--reference", default=CNN)
    parser.add_argument("--size", type=int, nargs=2, default=(256, 320), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for name in (args.reference, args.preset):
        config = replace(get_preset(name), num_classes=81)
        model = Detector(config)
        clip = torch.randn(1, 3, config.clip_len, *args.size)
        forward = seconds(model, clip, backward=False, repeats=args.repeats)
        train = seconds(model, clip, backward=True, repeats=args.repeats)
        rows.append((name, config.clip_len, forward, train))
        del model
    print(f"{args.threads} threads, one {args.size[0]}x{args.size[1]} clip, one RoI, "
          f"median of {args.repeats} after a warm-up")
    ref_forward, ref_train = rows[0][2], rows[0][3]
    for name, frames, forward, train in rows:
        print(f"{name}: {frames} frames, forward {forward:.2f} s "
              f"({forward / ref_forward:.1f}x), forward+backward {train:.2f} s "
              f"({train / ref_train:.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
