"""AVA excluded-timestamp CSVs (``video_id,timestamp``): keyframes left out of evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.ava._csv import FLOAT, INT, STRING, check_integral, check_rows, read_table
from pipeline.ava._csv import write_csv
from pipeline.ava.annotations import INT32_MAX

COLUMNS = ["video_id", "timestamp"]


def read_exclusions(path: str | Path, *, fractional: bool = False) -> pd.DataFrame:
    """Read ``video_id,timestamp`` rows (timestamps padded or not) in file order;
    ``fractional``: seconds that need not be whole, as float64 (custom data)."""
    path = Path(path)
    table = read_table(path, [("video_id", STRING), ("timestamp", FLOAT if fractional else INT)])
    timestamp = table["timestamp"].to_numpy()
    if fractional:
        check_rows(path, ~(np.isfinite(timestamp) & (timestamp >= 0) & (timestamp <= INT32_MAX)),
                   lambda row: f"timestamp={timestamp[row]} is not a time in [0, {INT32_MAX}] s")
    else:
        check_integral(path, "timestamp", timestamp, 0, INT32_MAX)
    return pd.DataFrame({
        "video_id": table["video_id"].cast("string").to_pandas().astype("str"),
        "timestamp": timestamp.astype(np.float64 if fractional else np.int32),
    })


def write_exclusions(path: str | Path, df: pd.DataFrame) -> None:
    """Write ``video_id,0902`` rows, atomically."""
    write_csv(path, df[COLUMNS], float_decimals=3)
