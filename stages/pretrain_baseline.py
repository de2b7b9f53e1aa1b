"""Stage pretrain_baseline: train the baseline detector, score the val split.

    python -m stages.pretrain_baseline --dataset data/dataset --frames data/frames \
        --proposals data/proposals/proposals.parquet --out models/baseline \
        --checkpoints checkpoints/baseline

Runs unchanged under ``torchrun --nproc_per_node=N -m stages.pretrain_baseline ...`` (one
process per device; only rank 0 writes outputs).
"""

from __future__ import annotations

from pipeline.tasks import pretrain_baseline as task

from stages import run, run_task

PARAMS = task.PARAMS


def main(argv: list[str] | None = None) -> None:
    run_task(task, argv, __doc__)


if __name__ == "__main__":
    run(main)
