"""``stad eval``: evaluate AVA-format files from the command line."""

from __future__ import annotations

import argparse
import math
import sys
from typing import TYPE_CHECKING

from pipeline.errors import InputError
from pipeline.evaluation.protocols import PROTOCOLS, get_protocol
from pipeline.io import write_json

if TYPE_CHECKING:
    from pipeline.evaluation.evaluator import EvaluationResult


def add_eval_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "eval", help="frame-level AVA mAP of a detection file",
        description="Frame-level AP at IoU 0.5 per class on AVA keyframes, as the reference "
                    "evaluators compute it (see pipeline/evaluation/protocols.py).")
    parser.add_argument("gt", help="ground-truth AVA CSV (activitynet2020: rows of 8, 7 or 2 "
                                    "columns, fractional timestamps)")
    parser.add_argument("detections", help="detections: AVA result CSV or .parquet")
    parser.add_argument("--label-map", required=True, help="label map .pbtxt (evaluated classes)")
    parser.add_argument("--exclusions", help="excluded-timestamps CSV (not with "
                                             "activitynet2020, which has none)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="mmaction2",
                        help="activitynet2020: the official evaluator since AVA-Kinetics "
                             "(default: %(default)s)")
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="drop detections with score <= this (default: none, as every "
                             "protocol's reference)")
    parser.add_argument("--clip-boxes", action="store_true",
                        help="clip detection boxes to [0, 1] (default: a box outside [0, 1] "
                             "is an error naming its line, as in the ground truth)")
    parser.add_argument("--ava-groups", action="store_true",
                        help="group AVA's classes by AVA's id ranges (1-14 movement, 15-63 "
                             "object, 64-80 interaction) where the label map gives no "
                             "label_type (default: its label_type groups; none: mAP only)")
    parser.add_argument("--json", help="write the metrics as JSON here")
    parser.set_defaults(func=run_eval)
    return parser


def format_table(result: EvaluationResult) -> str:
    def ap(value: float) -> str:
        return "     -" if math.isnan(value) else f"{100 * value:6.2f}"

    names = result.label_map.names
    width = max(len(names[i]) for i in result.per_class)
    lines = [f"{'id':>3}  {'action':<{width}}  {'AP':>6}  {'GT':>7}  {'dets':>9}"]
    for class_id, r in result.per_class.items():
        lines.append(f"{class_id:>3}  {names[class_id]:<{width}}  {ap(r.ap)}  "
                     f"{r.gt_count:>7}  {r.n_detections:>9}")
    for group, value in result.group_means.items():
        lines.append(f"{'':>3}  {'mAP ' + group:<{width}}  {ap(value)}")
    lines.append(f"{'':>3}  {'mAP (' + result.protocol + ')':<{width}}  {ap(result.map)}")
    reason = result.undefined_reasons().get("mAP")
    if reason:
        lines.append(f"mAP undefined: {reason}")
    return "\n".join(lines)


def run_eval(args: argparse.Namespace) -> int:
    if args.exclusions and not get_protocol(args.protocol).uses_exclusions:
        print(f"error: protocol {args.protocol} has no exclusions (the 2020 evaluator scores "
              "the keyframes the ground truth lists, 2-column rows included); drop "
              "--exclusions", file=sys.stderr)
        return 2
    try:
        from pipeline.evaluation.evaluator import evaluate_files   # pandas: only when it runs

        result = evaluate_files(args.gt, args.detections, args.label_map,
                                exclusions_path=args.exclusions, protocol=args.protocol,
                                score_threshold=args.score_threshold,
                                clip_boxes=args.clip_boxes, ava_groups=args.ava_groups)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(result))
    if args.json:
        write_json(args.json, result.to_json())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (the ``stad`` CLI wires the same subcommand)."""
    parser = argparse.ArgumentParser(prog="stad")
    add_eval_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
