"""Column-wise reading of headerless AVA CSV files with errors that name the line.

The fast path is one ``pyarrow.csv`` read with fixed column types. pyarrow's own errors do
not carry line numbers, so when it rejects a file the file is scanned once more, line by line
in Python, to find and name the first bad line; that slow scan only runs on bad input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from pipeline.errors import InputError
from pipeline.io import atomic_output

INT16_MAX, INT32_MAX = np.iinfo(np.int16).max, np.iinfo(np.int32).max
INT, FLOAT, STRING = "int", "float", "string"
_ARROW_TYPES = {INT: pa.int64(), FLOAT: pa.float64(), STRING: pa.dictionary(pa.int32(), pa.string())}
_NUMBERS = {INT: (int, "an integer"), FLOAT: (float, "a number")}   # parser, what it wants


def count_columns(path: Path) -> int:
    """Number of comma-separated fields on the first line (0 for an empty file)."""
    with open(path, encoding="utf-8", newline="") as f:
        first = f.readline().rstrip("\r\n")
    return 0 if first == "" else first.count(",") + 1


def read_table(path: str | Path, columns: list[tuple[str, str]], *,
               widths: str | None = None) -> pa.Table:
    """Read a headerless CSV whose columns are ``(name, kind)`` with kind int/float/string.

    Integers may carry leading zeros (AVA's ``0902``). Strings come back dictionary-encoded.
    Raises :class:`InputError` naming the first line with a wrong column count or a value
    that is not of its column's kind. ``widths`` (e.g. ``7 or 8``): the column counts the
    format accepts when the caller chose ``columns`` from line 1's, for the message.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path=path)
    names = [name for name, _ in columns]
    if path.stat().st_size == 0:
        return pa.table({name: pa.array([], type=_ARROW_TYPES[kind]) for name, kind in columns})
    try:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False, quote_char=False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: _ARROW_TYPES[kind] for name, kind in columns},
                strings_can_be_null=False, quoted_strings_can_be_null=False,
                null_values=[]),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        _raise_first_bad_line(path, columns, widths)
        raise InputError(f"cannot parse CSV: {error}", path=path) from error


def _raise_first_bad_line(path: Path, columns: list[tuple[str, str]],
                          widths: str | None) -> None:
    accepted = ("" if widths is None else
                f" (as on line 1; {widths} are accepted, the same on every line)")
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for number, raw in enumerate(f, start=1):
            fields = raw.rstrip("\r\n").split(",")
            if len(fields) != len(columns):
                raise InputError(f"expected {len(columns)} columns, found {len(fields)}"
                                 f"{accepted}: {raw.strip()!r}", path=path, line=number)
            for value, (name, kind) in zip(fields, columns):
                if kind == STRING and value == "":
                    raise InputError(f"{name} is empty", path=path, line=number)
                if kind in _NUMBERS and not _parses(_NUMBERS[kind][0], value):
                    raise InputError(f"{name}={value!r} is not {_NUMBERS[kind][1]}", path=path,
                                     line=number)


def _parses(parse, text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


def first_bad_row(mask: np.ndarray) -> int | None:
    """Index of the first True in ``mask``, or None."""
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def check_rows(path: Path, bad: np.ndarray, message) -> None:
    """Raise for the first flagged row; ``message(row)`` describes it (rows are 0-based)."""
    row = first_bad_row(bad)
    if row is not None:
        raise InputError(message(row), path=path, line=row + 1)


def check_integral(path: Path, name: str, values: np.ndarray, low: int, high: int) -> None:
    """Reject values outside ``[low, high]`` (the range of the column's narrow dtype)."""
    check_rows(path, (values < low) | (values > high),
               lambda row: f"{name}={values[row]} is outside [{low}, {high}]")


def write_csv(path: str | Path, df: pd.DataFrame, *, float_decimals: int) -> None:
    """Write rows without header or index, floats as ``%.{float_decimals}f``, atomically.

    Timestamps are zero-padded to four digits like AVA's files (``0902``).
    """
    df = df.copy()
    if "timestamp" in df:
        df["timestamp"] = [f"{t:04d}" for t in df["timestamp"].to_numpy().tolist()]
    with atomic_output(path) as tmp:
        df.to_csv(tmp, header=False, index=False, float_format=f"%.{float_decimals}f",
                  lineterminator="\n")


def check_timestamps(path: Path, timestamp: np.ndarray, *, fractional: bool) -> None:
    """Keyframe seconds of a CSV: whole seconds in [0, INT32_MAX], or with ``fractional`` any
    finite time in that range (custom data, AVA-Kinetics)."""
    if fractional:
        check_rows(path, ~(np.isfinite(timestamp) & (timestamp >= 0) & (timestamp <= INT32_MAX)),
                   lambda row: f"timestamp={timestamp[row]} is not a time in [0, {INT32_MAX}] s")
    else:
        check_integral(path, "timestamp", timestamp, 0, INT32_MAX)
