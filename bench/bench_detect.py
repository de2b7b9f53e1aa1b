"""`stad detect` against its floor, measured in the same run on the same video: a plain
sequential decode of every frame (PyAV, the decoder and size detect uses) plus the model alone
on the same keyframe clips, batched (clips decoded beforehand, not timed).

    python bench/bench_detect.py                       # 79 s of 768x576 at 10 fps, tiny model
    python bench/bench_detect.py --head lfb_max        # a feature-bank head: two passes

The ratio ``detect / (decode + model)`` should stay at or below 2. A feature-bank head
decodes twice and runs the baseline for the bank first, so its floor counts the decode and
the backbone twice. The annotated video (encoding every frame) is left out (``--no-video``),
as are reading the checkpoint and building the model.
"""

from __future__ import annotations

import argparse
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

from pipeline.detect.config import DetectConfig  # noqa: E402
from pipeline.detect.run import detect_video  # noqa: E402
from pipeline.frames.spec import decoded_size  # noqa: E402
from pipeline.frames.video import open_video  # noqa: E402
from pipeline.engine.maps import score_clips  # noqa: E402
from pipeline.lfb.reader import num_slots  # noqa: E402
from pipeline.models.checkpoint import BankRecipe, save_stad_checkpoint  # noqa: E402
from pipeline.models.detector import Detector  # noqa: E402
from pipeline.models.presets import get_preset  # noqa: E402
from pipeline.data.transforms import ClipSample, eval_transform  # noqa: E402
from pipeline.ava.clock import clip_frame_indices  # noqa: E402


def write_movie(path: Path, *, seconds: int, fps: int, width: int, height: int) -> None:
    """Moving smooth noise (compresses like footage, not like flat colour)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for i in range(seconds * fps):
            tile = np.roll(base, i, axis=1).repeat(8, 0).repeat(8, 1)[:height, :width]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(tile), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=79)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--frame-short-side", type=int, default=256,
                        help="the checkpoint's frame store size (decode-time resize)")
    parser.add_argument("--short-side", type=int, default=256, help="test-time resize")
    parser.add_argument("--head", choices=("linear", "lfb_max"), default="linear")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = tmp / "movie.mp4"
        write_movie(video, seconds=args.seconds, fps=args.fps, width=args.width,
                    height=args.height)
        config = replace(get_preset("tiny"), num_classes=81)
        torch.manual_seed(0)
        baseline = Detector(config)
        checkpoint = tmp / "model.pt"
        window = (3, 3)
        if args.head == "lfb_max":
            head_config = replace(config, relation="lfb_max",
                                  lfb_channels=baseline.feature_channels,
                                  lfb_num_lt_feat=num_slots(*window))
            model = Detector(head_config)
            model.backbone.load_state_dict(baseline.backbone.state_dict())
            recipe = BankRecipe(baseline_config=config, baseline_backbone=None, dtype="float16",
                                min_proposal_score=0.9, max_proposals=1000,
                                short_side=args.short_side, window_seconds=window[0],
                                max_per_second=window[1])
        else:
            model, recipe = baseline, None
        save_stad_checkpoint(checkpoint, model=model, preset=None,
                             test_short_side=args.short_side,
                             frame_short_side=args.frame_short_side, bank=recipe)
        timestamps = list(range(args.seconds))
        proposals = tmp / "proposals.parquet"
        pd.DataFrame([("movie", t, 0.1 + 0.4 * p, 0.2, 0.4 + 0.4 * p, 0.9, 0.95)
                      for t in timestamps for p in range(2)],
                     columns=["video_id", "timestamp", "x1", "y1", "x2", "y2",
                              "score"]).to_parquet(proposals)

        # floor 1: every frame, in order, at the decode size
        source = open_video("movie", video, lambda w, h: decoded_size(w, h,
                                                                      args.frame_short_side))
        tick = time.perf_counter()
        for _ in source.iter_frames(np.arange(source.num_frames)):
            pass
        decode = time.perf_counter() - tick

        # floor 2: the model alone on the same clips, batched
        transform = eval_transform(short_side=args.short_side)
        clips = clip_frame_indices(np.asarray(timestamps), fps=source.fps, timestamp_start=0,
                                   clip_len=config.clip_len, frame_interval=config.frame_interval,
                                   num_frames=source.num_frames)
        boxes = torch.tensor([[0.1, 0.2, 0.4, 0.9], [0.5, 0.2, 0.8, 0.9]])
        samples = []
        for clip in source.iter_clips(clips):
            frames = torch.from_numpy(clip)
            height, width = frames.shape[1:3]
            samples.append(transform(ClipSample(
                clip=frames, gt_boxes=torch.zeros((0, 4)),
                gt_labels=torch.zeros((0, 1), dtype=torch.uint8),
                proposals=boxes * torch.tensor([width, height, width, height]),
                proposal_scores=torch.ones(2)), np.random.default_rng(0)))
        columns = torch.arange(1, 81)
        bank_model = baseline.eval().to(device)
        tick = time.perf_counter()
        for first in range(0, len(samples), args.batch_size):
            part = samples[first:first + args.batch_size]
            score_clips(bank_model, torch.stack([s.clip for s in part]),
                        [s.proposals for s in part],
                        [("movie", t) for t in timestamps[first:first + len(part)]],
                        columns=columns, bank=None, window=None, device=device)
        model_time = time.perf_counter() - tick
        del samples

        tick = time.perf_counter()
        detect_video(video, tmp / "out",
                     DetectConfig(checkpoint=checkpoint, proposals=proposals, device=args.device,
                                  batch_size=args.batch_size, write_video=False,
                                  progress=False))
        detect = time.perf_counter() - tick

    passes = 2 if args.head == "lfb_max" else 1
    floor = passes * (decode + model_time)
    print(f"video: {args.seconds} s, {args.width}x{args.height} at {args.fps} fps, "
          f"decoded at short side {args.frame_short_side}; {len(timestamps)} keyframes; "
          f"tiny model, head {args.head}; {args.threads} thread(s), {args.device}")
    print(f"sequential decode of every frame: {decode:.2f} s")
    print(f"model alone on the keyframe clips: {model_time:.2f} s")
    print(f"stad detect (--no-video): {detect:.2f} s")
    print(f"ratio detect / ({passes} x (decode + model)): {detect / floor:.2f}")


if __name__ == "__main__":
    main()
