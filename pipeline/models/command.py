"""``stad checkpoint inspect|convert``: check and convert mmaction2 checkpoints.

The integrator calls ``add_checkpoint_command(subparsers)``; each leaf sets ``func(args) -> int``
(the exit status). Bad input (missing file, unknown preset, unreadable checkpoint) raises
``InputError``; a checkpoint that does not fit its preset makes ``inspect`` print the report and
return 1, and makes ``convert`` raise ``InputError`` without writing anything. The handlers
import the models (and torch) when they run, so that building the ``stad`` parser stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def run_inspect(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import inspect_state_dict, load_mmaction2_checkpoint
    from .detector import Detector
    from .presets import get_preset

    config = get_preset(args.preset, key="--preset")
    state_dict = load_mmaction2_checkpoint(args.checkpoint)
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        model = Detector(config)
    report = inspect_state_dict(state_dict, model)
    print(f"{args.checkpoint} -> preset {args.preset}")
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def run_convert(args: argparse.Namespace) -> int:
    from .checkpoint import convert

    report = convert(args.checkpoint, preset=args.preset, out=args.out)
    print("\n".join(report.lines()))
    print(f"wrote {args.out}")
    return 0


def add_checkpoint_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("checkpoint", help="inspect or convert mmaction2 checkpoints")
    actions = parser.add_subparsers(dest="checkpoint_command", required=True)

    inspect = actions.add_parser(
        "inspect", help="list missing, unexpected and mis-shaped keys against a preset "
                        "(exit 1 if any)")
    inspect.add_argument("checkpoint", type=Path, help="mmaction2 .pth (detector or recognizer)")
    inspect.add_argument("--preset", required=True, help="mmaction2 config name, e.g. "
                         "slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb")
    inspect.set_defaults(func=run_inspect)

    conv = actions.add_parser("convert", help="write the project's stad-v1 checkpoint")
    conv.add_argument("checkpoint", type=Path, help="mmaction2 .pth (detector or recognizer)")
    conv.add_argument("--preset", required=True, help="mmaction2 config name")
    conv.add_argument("--out", required=True, type=Path, help="output .pth path")
    conv.set_defaults(func=run_convert)
