"""The row layout of a long-term feature bank, decided before any feature exists.

Rows are sorted by (video_id, timestamp), so every time window of a video is one contiguous row
slice and a reader fetches a window with one slice instead of one read per box. ``box_index``
is the box's position within its keyframe in the input table, so a row maps back to the box
that produced it. The bank format itself is described in ``reader.py``.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.boxes import BOX_COLUMNS, KEYFRAME_KEY, whole_second_keys
from pipeline.errors import InputError, check_columns
from pipeline.proposals.table import filter_proposals

BANK_BOX_COLUMNS = [*KEYFRAME_KEY, *BOX_COLUMNS, "score", "split", "source"]
SOURCES = ("gt", "proposal")
INDEX_SCHEMA = pa.schema([
    ("row", pa.int64()),
    ("video_id", pa.string()),
    ("timestamp", pa.int32()),
    ("box_index", pa.int32()),
    *((name, pa.float32()) for name in BOX_COLUMNS),
    ("score", pa.float32()),
    ("split", pa.string()),
    ("source", pa.string()),
])


def _first_bad(table: pd.DataFrame, bad: pd.Series | np.ndarray) -> object:
    return table.index[np.asarray(bad)][0]


def bank_layout(boxes: pd.DataFrame) -> pd.DataFrame:
    """Validate a box table and give every box its bank row.

    ``boxes`` has one row per box with columns ``video_id, timestamp`` (whole AVA seconds),
    ``x1, y1, x2, y2`` (normalised), ``score``, ``split`` and ``source`` ("gt" or "proposal").
    Returns the index table (``INDEX_SCHEMA`` columns) sorted by (video_id, timestamp); the
    input order of boxes within a keyframe is kept as ``box_index``.
    """
    check_columns(boxes.columns, BANK_BOX_COLUMNS, what="box table")
    if len(boxes) == 0:
        raise InputError("box table is empty: a feature bank needs at least one box",
                         key="video_id")
    table = boxes.loc[:, BANK_BOX_COLUMNS].reset_index(drop=True)
    timestamps = whole_second_keys(table, BANK_BOX_COLUMNS, what="box table")
    numbers = {}
    for column in [*BOX_COLUMNS, "score"]:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64)
        if np.isnan(values).any():
            row = _first_bad(table, np.isnan(values))
            raise InputError(f"box table row {row}: {column}={table[column][row]!r} is not a "
                             f"number", key=column)
        numbers[column] = values
    coords = np.stack([numbers[c] for c in BOX_COLUMNS], axis=1)
    outside = ((coords < 0) | (coords > 1)).any(axis=1)
    if outside.any():
        row = _first_bad(table, outside)
        raise InputError(f"box table row {row}: box {coords[row].tolist()} is outside [0, 1] "
                         f"(boxes are normalised xyxy)", key="x1")
    source = table["source"].astype(str)
    unknown = ~source.isin(SOURCES)
    if unknown.any():
        row = _first_bad(table, unknown)
        raise InputError(f"box table row {row}: source {source[row]!r} is not one of "
                         f"{list(SOURCES)}", key="source")

    index = pd.DataFrame({
        "video_id": table["video_id"].astype(str),
        "timestamp": timestamps.to_numpy(np.int64),
        **numbers,
        "split": table["split"].astype(str),
        "source": source,
    })
    index = index.sort_values(KEYFRAME_KEY, kind="stable", ignore_index=True)
    box_index = index.groupby(KEYFRAME_KEY, sort=False).cumcount()
    index.insert(0, "row", np.arange(len(index), dtype=np.int64))
    index.insert(3, "box_index", box_index.to_numpy(np.int64))
    return pa.Table.from_pandas(index, schema=INDEX_SCHEMA, preserve_index=False).to_pandas()


def layout_fingerprint(index: pd.DataFrame, settings: dict) -> str:
    """A hash of the row layout and the storage settings: a resumed write must match both."""
    digest = hashlib.sha256()
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for column in INDEX_SCHEMA.names:
        digest.update(column.encode())
        digest.update(pd.util.hash_pandas_object(index[column], index=False).to_numpy().tobytes())
    return digest.hexdigest()


def proposal_rows(proposals: pd.DataFrame, *, min_score: float,
                  max_proposals: int) -> pd.DataFrame:
    """Bank rows from proposals: scores >= min(``min_score``, the keyframe's best), at most
    ``max_proposals`` per keyframe, best first (mmaction2's rule, ``filter_proposals``). The
    one rule for the DAG's bank and for the bank ``stad detect`` builds for a new video."""
    return filter_proposals(proposals, min_score=min_score,
                            max_per_keyframe=max_proposals).assign(source="proposal")
