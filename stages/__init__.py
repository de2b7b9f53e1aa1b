"""Thin DVC stage entry points: parse paths from dvc.yaml's cmd, load the declared params
groups, call the library, and turn bad input into a clear message and a non-zero exit.

Each module declares ``PARAMS``: the params keys (or whole sub-trees) whose values shape its
outputs. tests/test_params.py checks that dvc.yaml declares exactly these for the stage and that
every other key of params.yaml is a runtime-only key (``pipeline.params.RUNTIME_KEYS``), so DVC
reruns a stage whenever a value that shapes it changes, and never for workers, threads, devices
and the like.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from pipeline.errors import InputError, PeerFailed, TrainingDiverged


def run(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Run a stage's main; on bad input (InputError, a missing file) print one line naming it
    and exit with status 2; on a diverged training run, one line naming the params, status 3;
    under torchrun, when another rank failed, one line saying so, status 4."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main(argv)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(3)
    except PeerFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(4)
    except FileNotFoundError as exc:
        print(f"error: {exc.filename}: no such file", file=sys.stderr)
        sys.exit(2)
