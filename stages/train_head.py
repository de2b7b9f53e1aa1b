"""Stage train_head: train the head chosen by ``model.head`` on top of the baseline.

    python -m stages.train_head --dataset data/dataset --frames data/frames \
        --proposals data/proposals/proposals.parquet --baseline models/baseline/model.pt \
        --bank data/lfb/bank --out models/head --checkpoints checkpoints/head

Runs unchanged under ``torchrun --nproc_per_node=N -m stages.train_head ...``.
"""

from __future__ import annotations

from pipeline.tasks import train_head as task

from stages import run, run_task

PARAMS = task.PARAMS


def main(argv: list[str] | None = None) -> None:
    run_task(task, argv, __doc__)


if __name__ == "__main__":
    run(main)
