"""Stage proposals: person boxes for every keyframe, from a pickle, a simulation or a detector.

    python -m stages.proposals --dataset data/dataset --frames data/frames \
        --out data/proposals/proposals.parquet --metrics metrics/proposals.json
"""

from __future__ import annotations

from pipeline.tasks import proposals as task

from stages import run, run_task

PARAMS = task.PARAMS


def main(argv: list[str] | None = None) -> None:
    run_task(task, argv, __doc__)


if __name__ == "__main__":
    run(main)
