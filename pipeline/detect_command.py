"""``stad detect``'s command line and defaults, free of torch so that ``stad --help`` and the
other subcommands start fast; ``pipeline.detect`` (the models, torch) runs the command.

The integrator calls ``add_detect_command(subparsers)`` and sets the returned parser's ``func``
to ``run_detect_command``, which builds the run's ``DetectConfig`` (bad values fail before torch
loads) and imports ``pipeline.detect.run`` only then.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.ava.clock import CONVENTIONS
from pipeline.detect.config import DEFAULT_SHORT_SIDE, DetectConfig
from pipeline.evaluation.protocols import MIN_ACTION_SCORE
from pipeline.proposals.architectures import ARCHITECTURES


def add_detect_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "detect", help="run a trained detector over a video: AVA results CSV/Parquet and an "
                       "annotated mp4",
        description="Detect actions in any video with a stad-v1 checkpoint. Writes "
                    "detections.csv (AVA results, timestamps in whole seconds from the video's "
                    "start), detections.parquet and annotated.mp4 (the whole video at its own "
                    "rate, each keyframe's detections held for one keyframe period) into --out; "
                    "feature-bank heads also write the video's own bank (bank/).")
    p.add_argument("video", type=Path, help="any video file; its stem is the video_id")
    p.add_argument("--checkpoint", type=Path, required=True, help="stad-v1 model.pt")
    p.add_argument("--proposals", type=Path, help="person boxes: AVA/mmaction2 proposal pickle "
                   "keyed 'video_id,timestamp', or a proposals .parquet")
    p.add_argument("--detector-weights", type=Path,
                   help="person boxes: local torchvision Faster R-CNN COCO state dict")
    p.add_argument("--detector-arch", default="fasterrcnn_resnet50_fpn",
                   choices=sorted(ARCHITECTURES))
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--label-map", type=Path, help="label map .pbtxt the model was trained "
                   "with: scores only its classes and names them (default: every column, "
                   "'class N')")
    p.add_argument("--rate", type=float, default=1.0,
                   help="keyframes per second, 1/N (default 1)")
    p.add_argument("--top-k", type=int, default=3, help="labels drawn per person (default 3)")
    p.add_argument("--score-threshold", type=float, default=0.3,
                   help=f"least action score drawn (default 0.3; the tables keep scores > "
                        f"{MIN_ACTION_SCORE})")
    p.add_argument("--person-threshold", type=float, default=0.9,
                   help="least person score (default 0.9)")
    p.add_argument("--short-side", type=int, help="test-time resize; use the model's "
                   f"training test_short_side (default: the checkpoint's, else "
                   f"{DEFAULT_SHORT_SIDE})")
    p.add_argument("--timestamp-start", type=int, default=0,
                   help="second of the video's first frame (900 for AVA's cut clips)")
    p.add_argument("--convention", choices=CONVENTIONS,
                   help="keyframe convention (default: the checkpoint's, else pyslowfast)")
    clock = p.add_mutually_exclusive_group()
    clock.add_argument("--timeline-fps", type=int, help="read frames on a timeline of this "
                       "rate, as ffmpeg -r does (30 for AVA models; default: the checkpoint's)")
    clock.add_argument("--native-timeline", action="store_true",
                       help="read the video's own frames, whatever the checkpoint records")
    p.add_argument("--start", type=int, default=0,
                   help="first second scored, from the video's first frame (default 0)")
    p.add_argument("--end", type=int, help="last second scored (default: the video's last)")
    p.add_argument("--batch-size", type=int, default=8, help="keyframes per model call")
    p.add_argument("--bank-baseline", type=Path, help="feature-bank heads trained elsewhere "
                   "(converted zoo LFB checkpoints): the stad-v1 checkpoint that computes the "
                   "video's bank (mmaction2's bank-inference model, converted); heads from "
                   "train_head record their own")
    p.add_argument("--bank-window", type=int, nargs=2, metavar=("SECONDS", "PER_SECOND"),
                   help="with --bank-baseline: the head's window (default mmaction2's 30 5)")
    p.add_argument("--no-video", action="store_true", help="write no annotated.mp4")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    return p


def detect_config(args: argparse.Namespace) -> DetectConfig:
    """The run's settings from the parsed command line (checked as the config is built)."""
    return DetectConfig(
        checkpoint=args.checkpoint, proposals=args.proposals,
        detector_weights=args.detector_weights, detector_arch=args.detector_arch,
        label_map=args.label_map, rate=args.rate, top_k=args.top_k,
        score_threshold=args.score_threshold, person_threshold=args.person_threshold,
        short_side=args.short_side, device=args.device, timestamp_start=args.timestamp_start,
        convention=args.convention, timeline_fps=args.timeline_fps,
        native_timeline=args.native_timeline, start=args.start, end=args.end,
        batch_size=args.batch_size, bank_baseline=args.bank_baseline,
        bank_window=None if args.bank_window is None else tuple(args.bank_window),
        write_video=not args.no_video)


def run_detect_command(args: argparse.Namespace) -> int:
    """``stad detect``: detect, then say what was written."""
    config = detect_config(args)
    from pipeline.detect.run import detect_video

    result = detect_video(args.video, args.out, config)
    written = [result.csv, result.parquet, *(p for p in (result.video, result.bank) if p)]
    print(f"{result.keyframes} keyframes, {result.rows} detections: wrote "
          f"{', '.join(map(str, written))}")
    return 0
