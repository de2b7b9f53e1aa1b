"""AVA excluded-timestamp CSVs (``video_id,timestamp``): keyframes left out of evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.ava._csv import FLOAT, INT, STRING, check_timestamps, read_table, write_csv
from pipeline.boxes import KEYFRAME_KEY


def read_exclusions(path: str | Path, *, fractional: bool = False) -> pd.DataFrame:
    """Read ``video_id,timestamp`` rows (timestamps padded or not) in file order;
    ``fractional``: seconds that need not be whole, as float64 (custom data)."""
    path = Path(path)
    table = read_table(path, [("video_id", STRING), ("timestamp", FLOAT if fractional else INT)])
    timestamp = table["timestamp"].to_numpy()
    check_timestamps(path, timestamp, fractional=fractional)
    return pd.DataFrame({
        "video_id": table["video_id"].cast("string").to_pandas().astype("str"),
        "timestamp": timestamp.astype(np.float64 if fractional else np.int32),
    })


def write_exclusions(path: str | Path, df: pd.DataFrame) -> None:
    """Write ``video_id,0902`` rows, atomically."""
    write_csv(path, df[KEYFRAME_KEY], float_decimals=3)
