"""Stage evaluate: the trained head on val: results, metrics, plots and rendered keyframes.

    python -m stages.evaluate --dataset data/dataset --frames data/frames \
        --proposals data/proposals/proposals.parquet --model models/head/model.pt \
        --bank data/lfb/bank --results results --metrics metrics/eval.json --plots plots
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from pipeline.engine.distributed import setup_distributed
from pipeline.engine.precision import autocast_dtype
from pipeline.evaluation.evaluator import describe
from pipeline.heads.inputs import DatasetFiles
from pipeline.heads.report import evaluate_head
from pipeline.params import load_params

from stages import run

# The params keys whose values shape this stage's outputs, as dvc.yaml declares them
# (tests/test_params.py checks both); runtime-only keys (pipeline.params.RUNTIME_KEYS)
# are read from the same groups but tracked by no stage.
PARAMS = (
    "eval.protocol",
    "eval.score_threshold",
    "eval.amp",
    "eval.amp_dtype",
    "eval.render_keyframes",
    "lfb.window_seconds",
    "lfb.max_per_second",
    "baseline.data.test_short_side",
    "baseline.data.test_min_proposal_score",
    "baseline.data.max_proposals",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("dataset", "frames", "proposals", "model", "bank", "results", "metrics",
                 "plots"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_params(groups=PARAMS)
    ev, lfb = params.eval, params.lfb
    if ev.num_threads:
        torch.set_num_threads(ev.num_threads)
    ctx = setup_distributed(ev.device, key="eval.device")
    metrics = evaluate_head(
        files=DatasetFiles.from_dag(dataset=args.dataset, frames=args.frames,
                                    proposals=args.proposals),
        checkpoint=args.model, bank_dir=args.bank, results_dir=args.results,
        metrics_path=args.metrics, plots_dir=args.plots,
        window=lfb.window(),
        data_config=params.baseline.data, protocol=ev.protocol,
        score_threshold=ev.score_threshold, render_count=ev.render_keyframes,
        batch_size=ev.batch_size, num_workers=ev.num_workers, bank_in_memory=lfb.in_memory,
        ctx=ctx, amp_dtype=autocast_dtype(ctx.device, ev.amp, ev.amp_dtype))
    if metrics is not None:
        print(f"val {describe(metrics)}")


if __name__ == "__main__":
    run(main)
