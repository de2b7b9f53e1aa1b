"""Stage extract_frames: decode every annotated keyframe's clip into a sharded Zarr store.

    python -m stages.extract_frames --dataset data/dataset --out data/frames --metrics metrics/frames.json
"""

from __future__ import annotations

from pipeline.tasks import extract_frames as task

from stages import run, run_task

PARAMS = task.PARAMS


def main(argv: list[str] | None = None) -> None:
    run_task(task, argv, __doc__)


if __name__ == "__main__":
    run(main)
