"""Stage make_dataset: generate the embedded synthetic dataset in AVA's file formats, or index
and validate an AVA download, a folder of your own videos, or AVA-Kinetics (``data.source``).

    python -m stages.make_dataset --out data/dataset --metrics metrics/dataset.json
"""

from __future__ import annotations

from pipeline.tasks import make_dataset as task

from stages import run, run_task

PARAMS = task.PARAMS


def main(argv: list[str] | None = None) -> None:
    run_task(task, argv, __doc__)


if __name__ == "__main__":
    run(main)
