"""Thin DVC stage entry points, one per stage of dvc.yaml: parse the paths of the stage's cmd,
load params.yaml, call the stage's task (``pipeline.tasks.<stage>``: its ``PATHS``, ``PARAMS``
and ``run``), and turn bad input into a clear message and a non-zero exit.

``PARAMS`` lists the params keys (or whole sub-trees) whose values shape the stage's outputs.
tests/test_params.py checks that dvc.yaml declares exactly these for the stage and that every
other key of params.yaml is a runtime-only key (``pipeline.params.all.RUNTIME_KEYS``), so DVC
reruns a stage whenever a value that shapes it changes, and never for workers, threads, devices
and the like.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from pipeline.errors import run_reporting
from pipeline.params.schema import load_params


def run_task(task: ModuleType, argv: list[str] | None = None,
             description: str | None = None) -> None:
    """Parse ``--<name> PATH`` for each of the task's ``PATHS``, load the params and run it."""
    parser = argparse.ArgumentParser(description=description)
    for name in task.PATHS:
        parser.add_argument(f"--{name}", type=Path, required=True)
    args = parser.parse_args(argv)
    task.run(load_params(task.GROUPS), **vars(args))


def run(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Run a stage's main; on bad input (InputError, a missing file) print one line naming it
    and exit with status 2; on a diverged training run, one line naming the params, status 3;
    under torchrun, when another rank failed, one line saying so, status 4."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    status = run_reporting(lambda: main(argv))
    if status:
        sys.exit(status)
