"""Stage pretrain_baseline: train the baseline detector, score the val split.

    python -m stages.pretrain_baseline --dataset data/dataset --frames data/frames \
        --proposals data/proposals/proposals.parquet --out models/baseline \
        --checkpoints checkpoints/baseline

Runs unchanged under ``torchrun --nproc_per_node=N -m stages.pretrain_baseline ...`` (one
process per device; only rank 0 writes outputs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from pipeline.ava.label_map import read_label_map
from pipeline.dataset import read_manifest
from pipeline.engine.baseline import train_baseline
from pipeline.params import load_params

from stages import run

# The params keys whose values shape this stage's outputs, as dvc.yaml declares them
# (tests/test_params.py checks both); runtime-only keys (pipeline.params.RUNTIME_KEYS)
# are read from the same groups but tracked by no stage.
PARAMS = (
    "baseline.preset",
    "baseline.backbone",
    "baseline.model",
    "baseline.train.epochs",
    "baseline.train.batch_size",
    "baseline.train.lr",
    "baseline.train.momentum",
    "baseline.train.weight_decay",
    "baseline.train.warmup_epochs",
    "baseline.train.warmup_ratio",
    "baseline.train.schedule",
    "baseline.train.steps",
    "baseline.train.gamma",
    "baseline.train.grad_clip",
    "baseline.train.seed",
    "baseline.train.deterministic",
    "baseline.train.amp",
    "baseline.train.amp_dtype",
    "baseline.train.base_batch_size",
    "baseline.train.precise_bn_batches",
    "baseline.data.short_side_range",
    "baseline.data.crop_size",
    "baseline.data.flip_p",
    "baseline.data.min_box_size",
    "baseline.data.test_short_side",
    "baseline.data.train_min_proposal_score",
    "baseline.data.test_min_proposal_score",
    "baseline.data.max_proposals",
    "baseline.data.temporal_jitter",
    "baseline.init_checkpoint",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("dataset", "frames", "proposals", "out", "checkpoints"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_params(groups=PARAMS).baseline
    if params.num_threads:
        torch.set_num_threads(params.num_threads)
    manifest = read_manifest(args.dataset)
    label_map_path = manifest.path(args.dataset, manifest.label_map)
    num_classes = max(read_label_map(label_map_path).ids) + 1
    train, val = manifest.splits["train"], manifest.splits["val"]
    train_baseline(
        frames_dir=args.frames / "frames.zarr", keyframes_index=args.frames / "keyframes.parquet",
        train_annotations=manifest.path(args.dataset, train.annotations),
        val_annotations=manifest.path(args.dataset, val.annotations),
        train_exclusions=manifest.path(args.dataset, train.exclusions),
        val_exclusions=manifest.path(args.dataset, val.exclusions),
        label_map_path=label_map_path, proposals_path=args.proposals,
        out_dir=args.out, checkpoint_dir=args.checkpoints,
        model_config=params.model_config(num_classes), train_config=params.train,
        data_config=params.data, init_checkpoint=params.init_checkpoint or None,
        preset=params.preset)


if __name__ == "__main__":
    run(main)
