"""Stage evaluate: the trained head on val: results, metrics, plots and rendered keyframes.

    python -m stages.evaluate --dataset data/dataset --frames data/frames \
        --proposals data/proposals/proposals.parquet --model models/head/model.pt \
        --bank data/lfb/bank --results results --metrics metrics/eval.json --plots plots
"""

from __future__ import annotations

from pipeline.tasks import evaluate as task

from stages import run, run_task

PARAMS = task.PARAMS


def main(argv: list[str] | None = None) -> None:
    run_task(task, argv, __doc__)


if __name__ == "__main__":
    run(main)
