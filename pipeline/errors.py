"""One error type for bad input, so stages and commands can exit cleanly with a useful message,
and the one mapping from failures to exit statuses (``run_reporting``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


class InputError(ValueError):
    """Bad input: a malformed file row, a missing video, a wrong params value.

    The message always names where the problem is (file and line, or params key), so a user can
    fix it without reading a traceback.
    """

    def __init__(self, message: str, *, path: str | Path | None = None,
                 line: int | None = None, key: str | None = None):
        self.reason = message
        self.path = None if path is None else str(path)
        self.line = line
        self.key = key
        where = []
        if self.path is not None:
            where.append(self.path if line is None else f"{self.path}:{line}")
        if key is not None:
            where.append(f"key '{key}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


def check_columns(columns, wanted, *, what: str, path: str | Path | None = None) -> None:
    """Refuse a table (``what``, e.g. "proposals table") whose ``columns`` lack any of
    ``wanted``: the error names every missing column (the first as its key) and the ones the
    table has."""
    missing = [name for name in wanted if name not in columns]
    if missing:
        raise InputError(f"{what} lacks columns {missing} (it has {list(columns)})", path=path,
                         key=missing[0])


class TrainingDiverged(RuntimeError):
    """The loss became non-finite or exploded: the run's settings, not its input, are at fault.

    Raised on every rank at the same step (the decision is all-reduced), so no rank is left
    waiting in a collective; stages print the one-line message and exit non-zero.
    """


class PeerFailed(RuntimeError):
    """Another rank of a torchrun job failed: this rank stops too instead of waiting for it in
    a collective. The cause is in the failing rank's own message."""


def run_reporting(call: Callable[[], int | None]) -> int:
    """Run ``call`` and return its exit status (None counts as 0); a failure a user can act on
    becomes one line on stderr and its status (``exit_status``), anything else propagates.
    What every stage, ``stad`` and the baseline job launcher run their work through."""
    try:
        return call() or 0
    except Exception as exc:
        status = exit_status(exc)
        if status is None:
            raise
        return status


def exit_status(exc: BaseException) -> int | None:
    """For a failure a user can act on, print its one line to stderr and return the exit
    status every stage and command uses: 2 bad input (an InputError, a missing file), 3 a
    diverged training run, 4 another torchrun rank failed. None for anything else (a bug:
    let its traceback show)."""
    if isinstance(exc, FileNotFoundError) and not isinstance(exc, InputError):
        message, status = f"{exc.filename}: no such file", 2
    elif isinstance(exc, InputError):
        message, status = str(exc), 2
    elif isinstance(exc, TrainingDiverged):
        message, status = str(exc), 3
    elif isinstance(exc, PeerFailed):
        message, status = str(exc), 4
    else:
        return None
    print(f"error: {message}", file=sys.stderr)
    return status
