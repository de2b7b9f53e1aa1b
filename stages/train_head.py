"""Stage train_head: train the head chosen by ``model.head`` on top of the baseline.

    python -m stages.train_head --dataset data/dataset --frames data/frames \
        --proposals data/proposals/proposals.parquet --baseline models/baseline/model.pt \
        --bank data/lfb/bank --out models/head --checkpoints checkpoints/head

Runs unchanged under ``torchrun --nproc_per_node=N -m stages.train_head ...``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from pipeline.heads.inputs import DatasetFiles
from pipeline.heads.train import train_head
from pipeline.lfb.reader import FeatureBank, num_slots
from pipeline.models.checkpoint import load_stad_checkpoint
from pipeline.params import load_params

from stages import run

# The params keys whose values shape this stage's outputs, as dvc.yaml declares them
# (tests/test_params.py checks both); runtime-only keys (pipeline.params.RUNTIME_KEYS)
# are read from the same groups but tracked by no stage.
PARAMS = (
    "model.head",
    "model.finetune_backbone",
    "model.with_context",
    "model.dropout",
    "model.lfb",
    "model.acrn",
    "model.train.epochs",
    "model.train.batch_size",
    "model.train.lr",
    "model.train.momentum",
    "model.train.weight_decay",
    "model.train.warmup_epochs",
    "model.train.warmup_ratio",
    "model.train.schedule",
    "model.train.steps",
    "model.train.gamma",
    "model.train.grad_clip",
    "model.train.seed",
    "model.train.deterministic",
    "model.train.amp",
    "model.train.amp_dtype",
    "model.train.base_batch_size",
    "model.train.precise_bn_batches",
    "lfb.window_seconds",
    "lfb.max_per_second",
    "baseline.data.short_side_range",
    "baseline.data.crop_size",
    "baseline.data.flip_p",
    "baseline.data.min_box_size",
    "baseline.data.test_short_side",
    "baseline.data.train_min_proposal_score",
    "baseline.data.test_min_proposal_score",
    "baseline.data.max_proposals",
    "baseline.data.temporal_jitter",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("dataset", "frames", "proposals", "baseline", "bank", "out", "checkpoints"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_params(groups=PARAMS)
    model, lfb = params.model, params.lfb
    if model.num_threads:
        torch.set_num_threads(model.num_threads)
    baseline_config, _, _ = load_stad_checkpoint(args.baseline)
    bank_dim = FeatureBank(args.bank).dim
    window = lfb.window()
    train_head(
        files=DatasetFiles.from_dag(dataset=args.dataset, frames=args.frames,
                                    proposals=args.proposals),
        baseline_checkpoint=args.baseline, bank_dir=args.bank, out_dir=args.out,
        checkpoint_dir=args.checkpoints,
        model_config=model.model_config(
            baseline_config, num_slots=num_slots(lfb.window_seconds, lfb.max_per_second),
            bank_dim=bank_dim),
        train_config=model.train, data_config=params.baseline.data, window=window,
        finetune_backbone=model.finetune_backbone, bank_in_memory=lfb.in_memory)


if __name__ == "__main__":
    run(main)
