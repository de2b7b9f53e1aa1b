"""Conventions shared by every table and op: the keyframe key, the column names of a
normalised (x1, y1, x2, y2) box, and the IoU of row-aligned box pairs (numpy; the model's IoU
matrix is ``torchvision.ops.box_iou``, see ``pipeline.models.assign``).

Every stage and the CLI import this module, so it loads nothing heavier than numpy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipeline.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

KEYFRAME_KEY = ["video_id", "timestamp"]
"""The columns naming a keyframe in every table: its video and its timestamp (seconds)."""

BOX_COLUMNS = ["x1", "y1", "x2", "y2"]
"""A box's corners, normalised to [0, 1] of the frame's width and height."""


def normalise_keys(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the key's dtypes every merge agrees on: ``video_id`` str, ``timestamp``
    int64 (Parquet may give a category or a narrower int), so merges on the key match."""
    return table.assign(video_id=table["video_id"].astype(str),
                        timestamp=table["timestamp"].astype(np.int64))


def at_keyframe(table: pd.DataFrame, video_id: str, timestamp: int) -> pd.DataFrame:
    """The rows of ``table`` at one keyframe."""
    return table[(table["video_id"] == video_id) & (table["timestamp"] == timestamp)]


def count_keyframes(table: pd.DataFrame) -> int:
    """How many distinct keyframes the rows of ``table`` name."""
    return int(len(table[KEYFRAME_KEY].drop_duplicates()))


def whole_second_keys(table: pd.DataFrame, columns: list[str], *, what: str) -> pd.Series:
    """``table``'s timestamps as int64, once no cell of ``columns`` is empty and every timestamp
    is a whole second; otherwise an error naming the ``what`` table's row (its index label) and
    the column (as the key)."""
    import pandas as pd   # here, not at the top: the CLI imports this module at start-up

    for column in columns:
        empty = table[column].isna()
        if empty.any():
            raise InputError(f"{what} row {table.index[empty][0]} has no {column}", key=column)
    timestamps = pd.to_numeric(table["timestamp"], errors="coerce")
    bad = timestamps.isna() | (timestamps != np.round(timestamps))
    if bad.any():
        row = table.index[bad][0]
        raise InputError(f"{what} row {row}: timestamp {table['timestamp'][row]!r} is not a "
                         "whole second", key="timestamp")
    return timestamps.astype(np.int64)


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of row-aligned box pairs ``[K, 4]`` (x1, y1, x2, y2), no ``+1``; NaN where both boxes
    are empty (compares False with any threshold).

    Rounding as the AVA references compute it: side lengths and areas in the boxes' dtype
    (float32 for mmaction2's results), the clipped intersection sides and everything after in
    float64, as ``np_box_ops.iou`` does when it takes ``np.maximum`` with float64 zeros.
    """
    height = np.maximum(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]),
                        np.float64(0))
    width = np.maximum(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]),
                       np.float64(0))
    intersection = height.astype(np.float64) * width.astype(np.float64)
    area_a = (a[:, 3] - a[:, 1]) * (a[:, 2] - a[:, 0])
    area_b = (b[:, 3] - b[:, 1]) * (b[:, 2] - b[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        return intersection / ((area_a + area_b) - intersection)
