"""Stage infer_lfb: the trained baseline fills the long-term feature bank (train + val).

    python -m stages.infer_lfb --dataset data/dataset --frames data/frames \
        --proposals data/proposals/proposals.parquet --baseline models/baseline/model.pt \
        --out data/lfb/bank

Runs unchanged under ``torchrun --nproc_per_node=N -m stages.infer_lfb ...``: each rank writes
whole shards; a rerun after an interruption resumes from ``<out>.partial``.
"""

from __future__ import annotations

from pipeline.tasks import infer_lfb as task

from stages import run, run_task

PARAMS = task.PARAMS


def main(argv: list[str] | None = None) -> None:
    run_task(task, argv, __doc__)


if __name__ == "__main__":
    run(main)
