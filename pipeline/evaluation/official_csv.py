"""CSV files as the 2020 official AVA evaluator reads them: rows of 2, 7 or 8 columns.

``video_id, timestamp[, x1, y1, x2, y2, action_id[, last]]``, no header, any mix of the three
lengths in one file. A 2-column row lists a keyframe without actions (AVA-Kinetics' ground
truth has them; its detections there are false positives). ``last`` is a detection's score
(1.0 when absent, as that reader defaults) or a ground-truth person id, which that reader
parses as a float score too. Timestamps are any decimal number (Kinetics keyframes are seconds
in the YouTube video with 6 decimals, ``17.010000``; AVA's are ``0902``); each is parsed with
Python's ``float`` like the reference, so that ``"%.6f"`` of it gives the reference's key.

As for result files (``pipeline.ava.results``), only what makes a row unreadable is an error
naming the file and line (a column count other than 2, 7 or 8, a value that is not a number,
a non-finite value); boxes are not range-checked, because the reference accepts any numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipeline.ava._csv import check_rows, count_columns
from pipeline.boxes import BOX_COLUMNS, KEYFRAME_KEY
from pipeline.ava.results import read_results
from pipeline.errors import InputError

_NO_DELIMITER = "\x1e"  # ASCII record separator: never in a CSV, so each line is one field


def read_official_ground_truth(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ground truth and the keyframes without actions (its 2-column rows), in file order.

    The table has the columns of :func:`pipeline.ava.annotations.read_annotations` with a
    float64 ``timestamp`` and a float64 ``person_id`` that is NaN on 7-column rows (the
    evaluator then orders them as score 1.0).
    """
    rows, keyframes = _read(Path(path))
    rows = rows.rename(columns={"last": "person_id"})
    rows["video_id"] = rows["video_id"].astype("str")
    keyframes["video_id"] = keyframes["video_id"].astype("str")
    return rows, keyframes


def read_official_detections(path: str | Path) -> pd.DataFrame:
    """Detections (columns of :func:`pipeline.ava.results.read_results`, float64 timestamps);
    7-column rows score 1.0, 2-column rows are dropped as the reference drops them.
    ``.parquet`` files are read by :func:`read_results`."""
    path = Path(path)
    if path.suffix == ".parquet":
        return read_results(path)
    rows, _ = _read(path)
    rows["last"] = rows["last"].fillna(1.0)
    return rows.rename(columns={"last": "score"})


def _read(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    uniform = _read_uniform(path)
    if uniform is not None:
        return uniform
    lines = _lines(path)
    fields = pc.split_pattern(lines, ",")
    n_fields = pc.list_value_length(fields).to_numpy(zero_copy_only=False)
    check_rows(path, ~np.isin(n_fields, (2, 7, 8)),
               lambda row: f"expected 2, 7 or 8 columns, found {n_fields[row]}: "
                           f"{lines[row].as_py()!r}")
    starts = fields.offsets.to_numpy()[:-1]
    values = fields.flatten()

    def column(index: int, rows: np.ndarray) -> pa.Array:
        return pc.take(values, pa.array(starts[rows] + index, type=pa.int64()))

    every = np.arange(len(n_fields))
    video_id = column(0, every).dictionary_encode()
    check_rows(path, pc.equal(pc.utf8_length(video_id.cast(pa.string())), 0).to_numpy(
        zero_copy_only=False), lambda row: "video_id is empty")
    timestamp = _timestamps(path, column(1, every))
    boxed = np.flatnonzero(n_fields >= 7)
    floats = {name: _floats(path, name, column(2 + k, boxed), boxed)
              for k, name in enumerate(BOX_COLUMNS)}
    action_id = _integers(path, column(6, boxed), boxed)
    with_last = np.flatnonzero(n_fields[boxed] == 8)
    last = np.full(len(boxed), np.nan)
    last[with_last] = _floats(path, "column 8", column(7, boxed[with_last]), boxed[with_last])
    video = video_id.to_pandas()
    rows = pd.DataFrame({"video_id": video.iloc[boxed].reset_index(drop=True),
                         "timestamp": timestamp[boxed], **floats, "action_id": action_id,
                         "last": last})
    keyframes = np.flatnonzero(n_fields == 2)
    return rows, pd.DataFrame({"video_id": video.iloc[keyframes].reset_index(drop=True),
                               "timestamp": timestamp[keyframes]})


def _read_uniform(path: Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The common case, read column-wise in one go: every row has 7, or every row 8, columns.
    None when it is not (or arrow refuses a value): the general reader then reads the lines."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    n_columns = count_columns(path)
    if n_columns not in (7, 8):
        return None
    names = [*KEYFRAME_KEY, *BOX_COLUMNS, "action_id", "last"][:n_columns]
    text = pa.dictionary(pa.int32(), pa.string())
    types = {"video_id": text, "timestamp": text,
             **{name: pa.float64() for name in BOX_COLUMNS}, "action_id": pa.int64(),
             "last": pa.float64()}
    try:
        table = pacsv.read_csv(
            path, read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(quote_char=False, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: types[name] for name in names},
                strings_can_be_null=False, quoted_strings_can_be_null=False, null_values=[]))
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    every = np.arange(table.num_rows)
    floats = {}
    for name in BOX_COLUMNS + (["last"] if n_columns == 8 else []):
        values = table[name].to_numpy()
        check_rows(path, ~np.isfinite(values),
                   lambda row, name=name, values=values: f"{name}={values[row]} is not finite")
        floats[name] = values
    rows = pd.DataFrame({
        "video_id": table["video_id"].combine_chunks().to_pandas(),
        "timestamp": _timestamps(path, table["timestamp"].combine_chunks()),
        **{name: floats[name] for name in BOX_COLUMNS},
        "action_id": table["action_id"].to_numpy(),
        "last": floats["last"] if n_columns == 8 else np.full(len(every), np.nan)})
    empty = rows.iloc[:0][KEYFRAME_KEY].reset_index(drop=True)
    return rows, empty


def _lines(path: Path) -> pa.Array:
    if not path.is_file():
        raise InputError("file not found", path=path)
    if path.stat().st_size == 0:
        return pa.array([], type=pa.string())
    try:
        table = pacsv.read_csv(
            path, read_options=pacsv.ReadOptions(column_names=["line"]),
            parse_options=pacsv.ParseOptions(delimiter=_NO_DELIMITER, quote_char=False,
                                             ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()},
                                                 strings_can_be_null=False, null_values=[]))
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        raise InputError(f"cannot read CSV: {error}", path=path) from error
    return table["line"].combine_chunks()


def _timestamps(path: Path, text: pa.Array) -> np.ndarray:
    """Python's ``float`` of each distinct timestamp text (few: one per keyframe)."""
    encoded = text if pa.types.is_dictionary(text.type) else text.dictionary_encode()
    distinct = encoded.dictionary.to_pylist()
    parsed = np.empty(len(distinct))
    for code, value in enumerate(distinct):
        try:
            parsed[code] = float(value)
        except ValueError:
            parsed[code] = np.nan
    timestamp = parsed[encoded.indices.to_numpy(zero_copy_only=False)]
    check_rows(path, ~np.isfinite(timestamp),
               lambda row: f"timestamp={text[row].as_py()!r} is not a finite number")
    return timestamp


def _floats(path: Path, name: str, text: pa.Array, rows: np.ndarray) -> np.ndarray:
    try:
        values = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:  # arrow refuses some forms Python reads ("+1", " 1"): ask Python
        values = np.array([_python_number(float, v) for v in text.to_pylist()], dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise InputError(f"{name}={text[index].as_py()!r} is not a finite number", path=path,
                         line=int(rows[index]) + 1)
    return values


def _integers(path: Path, text: pa.Array, rows: np.ndarray) -> np.ndarray:
    try:
        return pc.cast(text, pa.int64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, OverflowError):
        values = [_python_number(int, v) for v in text.to_pylist()]
    for index, value in enumerate(values):
        if value is None or not -2**63 <= value < 2**63:
            raise InputError(f"action_id={text[index].as_py()!r} is not an integer", path=path,
                             line=int(rows[index]) + 1)
    return np.array(values, dtype=np.int64)


def _python_number(kind, text: str):
    try:
        return kind(text)
    except ValueError:
        return float("nan") if kind is float else None
