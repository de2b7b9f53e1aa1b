"""Feature-bank inputs: boxes of two videos with empty, crowded and tied seconds, and
deterministic features of them (the bank tests and their multi-rank writer script)."""

from __future__ import annotations

import numpy as np
import pandas as pd

DIM = 8


def make_boxes(seed: int = 0) -> pd.DataFrame:
    """Two videos of 40 s: seconds with 0 boxes, crowded seconds (> M boxes), tied scores;
    rows shuffled so the layout has to sort them."""
    rng = np.random.default_rng(seed)
    rows = []
    for video_id in ("vid_b", "vid_a"):
        for timestamp in range(900, 940):
            count = int(rng.choice([0, 1, 2, 5, 7], p=[0.25, 0.3, 0.2, 0.15, 0.1]))
            for _ in range(count):
                x1, y1 = rng.uniform(0, 0.5, 2)
                rows.append({"video_id": video_id, "timestamp": timestamp, "x1": x1, "y1": y1,
                             "x2": x1 + 0.4, "y2": y1 + 0.4,
                             "score": float(rng.choice([0.5, 0.9, 0.95, rng.uniform(0.8, 1)])),
                             "split": "train", "source": "proposal"})
    rows[0]["source"] = "gt"
    table = pd.DataFrame(rows)
    return table.iloc[rng.permutation(len(table))].reset_index(drop=True)


def features_of(boxes: pd.DataFrame) -> np.ndarray:
    """Deterministic, non-zero features: column 0 is row + 1, the rest mix in the box."""
    row = boxes["row"].to_numpy(np.float64)
    columns = [row + 1] + [np.sin(row * (k + 1)) + boxes["x1"].to_numpy() + 2
                           for k in range(DIM - 1)]
    return np.stack(columns, axis=1).astype(np.float32)
