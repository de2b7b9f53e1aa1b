"""AVA detection results: ``video_id, timestamp, x1, y1, x2, y2, action_id, score``.

The CSV form is what the reference evaluators read; mmaction2 writes timestamps unpadded and
every float with 4 decimals, AVA pads timestamps to 4 digits: the reader accepts both. The
Parquet form holds the same columns with float32 boxes and scores (the precision models
produce, finer than the CSV's 4 decimals) and is much faster to read.

Reading, only what makes a row unreadable is an error (wrong column count, non-numeric or
non-finite value, ids out of range). ``stad eval`` then checks the boxes as the ground-truth
reader does (``check_result_boxes``: inside [0, 1], up to float rounding) or, on request,
clips them (``clip_result_boxes``): a box off the image is a bug in what wrote the file, and
the reference evaluators would score it silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.ava._csv import FLOAT, INT, STRING, check_integral, check_rows, read_table
from pipeline.ava._csv import write_csv
from pipeline.ava.annotations import INT16_MAX, INT32_MAX
from pipeline.boxes import BOX_COLUMNS, KEYFRAME_KEY
from pipeline.errors import InputError, check_columns
from pipeline.io import write_parquet

COLUMNS = [*KEYFRAME_KEY, *BOX_COLUMNS, "action_id", "score"]
_FILE_COLUMNS = [("video_id", STRING), ("timestamp", INT),
                 *((name, FLOAT) for name in BOX_COLUMNS), ("action_id", INT), ("score", FLOAT)]
PARQUET_SCHEMA = pa.schema([
    ("video_id", pa.dictionary(pa.int32(), pa.string())), ("timestamp", pa.int32()),
    *((name, pa.float32()) for name in BOX_COLUMNS),
    ("action_id", pa.int16()), ("score", pa.float32()),
])


def read_results(path: str | Path) -> pd.DataFrame:
    """Read results from a headerless CSV, or from Parquet when the suffix is ``.parquet``.

    ``video_id`` comes back as a pandas categorical (millions of rows share a few hundred
    ids); floats keep the file's precision (float64 for CSV text, as stored for Parquet).
    """
    path = Path(path)
    if path.suffix == ".parquet":
        if not path.is_file():
            raise InputError("file not found", path=path)
        table = pq.read_table(path)
        check_columns(table.column_names, COLUMNS, what="Parquet results table", path=path)
        table = table.select(COLUMNS)
    else:
        table = read_table(path, _FILE_COLUMNS)
    timestamp = table["timestamp"].to_numpy()
    check_integral(path, "timestamp", timestamp, 0, INT32_MAX)
    action_id = table["action_id"].to_numpy()
    check_integral(path, "action_id", action_id, 1, INT16_MAX)
    floats = {name: table[name].to_numpy() for name in [*BOX_COLUMNS, "score"]}
    for name, values in floats.items():
        check_rows(path, ~np.isfinite(values),
                   lambda row, name=name, values=values: f"{name}={values[row]} is not finite")
    video_id = table["video_id"]
    if not pa.types.is_dictionary(video_id.type):
        video_id = video_id.dictionary_encode()
    return pd.DataFrame({
        "video_id": video_id.to_pandas(),
        "timestamp": timestamp.astype(np.int32),
        **{name: floats[name] for name in BOX_COLUMNS},
        "action_id": action_id.astype(np.int16),
        "score": floats["score"],
    })


BOX_TOLERANCE = 1e-6
"""How far outside [0, 1] a box coordinate may lie (float32 rounding of 0 and 1 is ~6e-8)."""


def check_result_boxes(path: str | Path, df: pd.DataFrame) -> None:
    """Every box coordinate inside [0, 1] up to ``BOX_TOLERANCE``, as ground-truth rows must
    be; the error names the file and line (the row, for Parquet) and the way out."""
    for name in BOX_COLUMNS:
        values = df[name].to_numpy()
        check_rows(Path(path), (values < -BOX_TOLERANCE) | (values > 1 + BOX_TOLERANCE),
                   lambda row, name=name, values=values:
                   f"{name}={values[row]} is outside [0, 1] (boxes are normalised xyxy, as in "
                   "the ground truth; stad eval --clip-boxes clips them to [0, 1])")


def clip_result_boxes(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every box coordinate clipped to [0, 1] (``stad eval --clip-boxes``)."""
    return df.assign(**{name: df[name].clip(0.0, 1.0) for name in BOX_COLUMNS})


def write_results_csv(path: str | Path, df: pd.DataFrame) -> None:
    """The AVA result CSV as mmaction2 writes it (4-decimal floats), timestamps padded."""
    write_csv(path, df[COLUMNS], float_decimals=4)


def write_results_parquet(path: str | Path, df: pd.DataFrame) -> None:
    """Parquet with float32 boxes and scores and a dictionary-encoded ``video_id``."""
    table = pa.Table.from_pandas(df[COLUMNS], preserve_index=False)
    table = table.set_column(0, "video_id", table["video_id"].cast(pa.string())
                             .dictionary_encode())
    write_parquet(path, table.cast(PARQUET_SCHEMA))
