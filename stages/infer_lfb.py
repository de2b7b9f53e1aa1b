"""Stage infer_lfb: the trained baseline fills the long-term feature bank (train + val).

    python -m stages.infer_lfb --dataset data/dataset --frames data/frames \
        --proposals data/proposals/proposals.parquet --baseline models/baseline/model.pt \
        --out data/lfb/bank

Runs unchanged under ``torchrun --nproc_per_node=N -m stages.infer_lfb ...``: each rank writes
whole shards; a rerun after an interruption resumes from ``<out>.partial``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from pipeline.engine.distributed import setup_distributed
from pipeline.engine.precision import autocast_dtype
from pipeline.heads.bank import infer_lfb
from pipeline.heads.inputs import DatasetFiles
from pipeline.params import load_params

from stages import run

# The params keys whose values shape this stage's outputs, as dvc.yaml declares them
# (tests/test_params.py checks both); runtime-only keys (pipeline.params.RUNTIME_KEYS)
# are read from the same groups but tracked by no stage.
PARAMS = (
    "lfb.train_boxes",
    "lfb.val_min_proposal_score",
    "lfb.dtype",
    "lfb.amp",
    "lfb.amp_dtype",
    "lfb.chunk_rows",
    "lfb.shard_rows",
    "baseline.data.test_short_side",
    "baseline.data.train_min_proposal_score",
    "baseline.data.max_proposals",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("dataset", "frames", "proposals", "baseline", "out"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_params(groups=PARAMS)
    lfb = params.lfb
    if lfb.num_threads:
        torch.set_num_threads(lfb.num_threads)
    ctx = setup_distributed(lfb.device, key="lfb.device")
    summary = infer_lfb(
        files=DatasetFiles.from_dag(dataset=args.dataset, frames=args.frames,
                                    proposals=args.proposals),
        baseline_checkpoint=args.baseline, out_dir=args.out, storage_dtype=lfb.dtype,
        chunk_rows=lfb.chunk_rows, shard_rows=lfb.shard_rows, train_boxes=lfb.train_boxes,
        data_config=params.baseline.data, val_min_proposal_score=lfb.val_min_proposal_score,
        batch_size=lfb.batch_size,
        num_workers=lfb.num_workers, ctx=ctx,
        amp_dtype=autocast_dtype(ctx.device, lfb.amp, lfb.amp_dtype))
    if summary is not None:
        print(f"feature bank: {summary}")


if __name__ == "__main__":
    run(main)
