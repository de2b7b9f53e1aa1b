"""AVA excluded-timestamp CSVs (``video_id,timestamp``): keyframes left out of evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.ava._csv import INT, STRING, check_integral, read_table, write_csv
from pipeline.ava.annotations import INT32_MAX

COLUMNS = ["video_id", "timestamp"]


def read_exclusions(path: str | Path) -> pd.DataFrame:
    """Read ``video_id,timestamp`` rows (timestamps padded or not) in file order."""
    path = Path(path)
    table = read_table(path, [("video_id", STRING), ("timestamp", INT)])
    timestamp = table["timestamp"].to_numpy()
    check_integral(path, "timestamp", timestamp, 0, INT32_MAX)
    return pd.DataFrame({
        "video_id": table["video_id"].cast("string").to_pandas().astype("str"),
        "timestamp": timestamp.astype(np.int32),
    })


def write_exclusions(path: str | Path, df: pd.DataFrame) -> None:
    """Write ``video_id,0902`` rows, atomically."""
    write_csv(path, df[COLUMNS], float_decimals=3)
