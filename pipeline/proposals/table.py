"""The proposals table every source produces: one person box per row, normalised xyxy + score.

Columns ``video_id`` (string), ``timestamp`` (int32 seconds), ``x1, y1, x2, y2`` (float32 in
[0, 1]), ``score`` (float32); rows sorted by (video_id, timestamp, score descending), ties kept
in input order, so the file is byte-identical for identical input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.boxes import BOX_COLUMNS, KEYFRAME_KEY
from pipeline.errors import InputError, check_columns
from pipeline.io import write_parquet

PROPOSAL_SCHEMA = pa.schema([
    ("video_id", pa.string()),
    ("timestamp", pa.int32()),
    *((name, pa.float32()) for name in BOX_COLUMNS),
    ("score", pa.float32()),
])


def make_proposals(video_id, timestamp, boxes: np.ndarray, score) -> pd.DataFrame:
    """Build a sorted proposals table from columns (per-row arrays or scalars) and (N, 4) boxes."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    table = pd.DataFrame({
        "video_id": pd.Series(np.broadcast_to(np.asarray(video_id, dtype=object), len(boxes)),
                              dtype="str"),
        "timestamp": np.broadcast_to(np.asarray(timestamp), len(boxes)).astype(np.int32),
        **dict(zip(BOX_COLUMNS, boxes.T)),
        "score": np.broadcast_to(np.asarray(score, dtype=np.float32), len(boxes)),
    })
    return sort_proposals(table)


def proposals_from_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The proposals table of any frame that has its columns (a pickle's rows, several sources'
    rows concatenated): the table's types, sorted."""
    return make_proposals(rows["video_id"].to_numpy(dtype=object), rows["timestamp"].to_numpy(),
                          rows[BOX_COLUMNS].to_numpy(), rows["score"].to_numpy())


def sort_proposals(table: pd.DataFrame) -> pd.DataFrame:
    """Sort by (video_id, timestamp, score desc), stable, with a fresh index."""
    table = table.sort_values([*KEYFRAME_KEY, "score"], ascending=[True, True, False],
                              kind="stable")
    return table.reset_index(drop=True)


def filter_proposals(table: pd.DataFrame, *, min_score: float,
                     max_per_keyframe: int | None = None) -> pd.DataFrame:
    """mmaction2's per-keyframe proposal rule, the one used everywhere (proposals stage, data
    loading, the bank, ``stad detect``): keep ``score >= min(min_score, the keyframe's best)``,
    so every keyframe with boxes keeps its best one, then at most ``max_per_keyframe`` boxes,
    highest first. Rows come back sorted as ``sort_proposals`` sorts them."""
    if table.empty:
        return table.reset_index(drop=True)
    best = table.groupby(KEYFRAME_KEY, sort=False)["score"].transform("max")
    kept = sort_proposals(table[table["score"] >= np.minimum(best, min_score)])
    if max_per_keyframe is not None:
        kept = kept.groupby(KEYFRAME_KEY, sort=False).head(max_per_keyframe).reset_index(drop=True)
    return kept


def check_proposals(table: pd.DataFrame, *, path: str | Path | None = None) -> None:
    """Raise InputError if columns are missing or a box is outside [0, 1] or degenerate."""
    check_columns(table.columns, PROPOSAL_SCHEMA.names, what="proposals table", path=path)
    boxes = table.loc[:, BOX_COLUMNS].to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(boxes).all(axis=1) & (boxes >= 0).all(axis=1) & (boxes <= 1).all(axis=1)
            & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
    if bad.any():
        i = int(np.argmax(bad))
        row = table.iloc[i]
        raise InputError(f"proposal row {i} ({row['video_id']}, {row['timestamp']}) has box "
                         f"{boxes[i].tolist()}, expected normalised x1 < x2, y1 < y2 in [0, 1]",
                         path=path)


def write_proposals(path: str | Path, table: pd.DataFrame) -> None:
    """Check, sort and write ``proposals.parquet`` atomically."""
    check_proposals(table)
    write_parquet(path, sort_proposals(table.loc[:, PROPOSAL_SCHEMA.names]),
                  schema=PROPOSAL_SCHEMA)


def read_proposals(path: str | Path) -> pd.DataFrame:
    """Read and check a proposals Parquet file."""
    path = Path(path)
    if not path.is_file():
        raise InputError("proposals file not found", path=path)
    table = pq.read_table(path).to_pandas()
    check_proposals(table, path=path)
    return table
