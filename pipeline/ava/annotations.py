"""AVA annotation CSVs (``ava_{train,val}_v2.x.csv``) <-> typed tables.

One row per (person box, action): ``video_id, timestamp, x1, y1, x2, y2, action_id,
person_id``; no header; boxes normalised xyxy. Files with 7 columns (no person id) are
accepted and get ``person_id = -1``.

Dirty rows: a row that cannot be right (non-numeric value, box outside [0, 1], x1 >= x2 or
y1 >= y2, non-integer timestamp, an action id that is no action at all, a video id that cannot
be a file name such as ``..``) is an error that names
the file and line. Nothing is dropped silently: a user who wants to keep such a file fixes or
filters those lines explicitly. Exact duplicate rows are kept, because the reference evaluators
count every row as one ground-truth instance.

Action ids: AVA's CSVs hold all 80 actions, its evaluated label map lists 60. A row whose id is
outside the label map but among the actions (the full action list when given, else AVA's
1..80) is read and kept; :func:`merge_boxes` leaves it out of training and the evaluator out
of scoring, as mmaction2 does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.ava._csv import FLOAT, INT, STRING, check_integral, check_rows, count_columns
from pipeline.ava._csv import INT16_MAX, INT32_MAX, check_timestamps, read_table, write_csv
from pipeline.ava.label_map import LabelMap
from pipeline.boxes import BOX_COLUMNS, KEYFRAME_KEY
from pipeline.errors import InputError, check_columns

COLUMNS = [*KEYFRAME_KEY, *BOX_COLUMNS, "action_id", "person_id"]
_FILE_COLUMNS = [("video_id", STRING), ("timestamp", INT),
                 *((name, FLOAT) for name in BOX_COLUMNS), ("action_id", INT), ("person_id", INT)]
AVA_ACTION_IDS = tuple(range(1, 81))   # every action of AVA's CSVs (the full action list)


def check_boxes(path: Path, x1, y1, x2, y2) -> None:
    """Boxes must be normalised (inside [0, 1]) with positive width and height."""
    for name, values in zip(BOX_COLUMNS, (x1, y1, x2, y2)):
        check_rows(path, ~((values >= 0) & (values <= 1)),
                   lambda row, name=name, values=values:
                   f"{name}={values[row]} is outside [0, 1] (AVA boxes are normalised xyxy)")
    check_rows(path, x1 >= x2, lambda row: f"x1={x1[row]} is not left of x2={x2[row]}")
    check_rows(path, y1 >= y2, lambda row: f"y1={y1[row]} is not above y2={y2[row]}")


NOT_A_STEM = ("", ".", "..")


def check_video_ids(path: Path, video_id: pd.Series) -> None:
    """Every video id names a file (``videos/<id>.mp4``, a frame store's ``<id>`` array), so it
    must be a file-name stem on every platform: not empty, ``.`` or ``..``, and without ``/``
    or ``\\``. Checked per distinct id (a few hundred), then the first bad row is named."""
    ids = pd.Series(video_id.unique(), dtype=object)
    bad = ids[ids.isin(NOT_A_STEM) | ids.str.contains(r"[/\\]", regex=True)]
    if len(bad):
        check_rows(path, video_id.isin(set(bad)).to_numpy(),
                   lambda row: f"video_id {video_id.iloc[row]!r} cannot name a video file: an "
                               "id must not be empty, '.' or '..', nor contain '/' or '\\'")


def check_action_ids(path: Path, action_id: np.ndarray, label_map: LabelMap,
                     action_list: LabelMap | None = None) -> None:
    """Every id must be an action: in the label map or in the full action list (AVA's 1..80
    when none is given). Ids outside the label map are kept, not errors (AVA has 80, scores 60)."""
    actions = AVA_ACTION_IDS if action_list is None else action_list.ids
    known = np.isin(action_id, np.asarray([*label_map.ids, *actions]))
    where = "AVA's actions 1..80" if action_list is None else "the full action list"
    check_rows(path, ~known,
               lambda row: f"action_id={action_id[row]} is neither in the label map nor in "
                           f"{where}")


def read_annotations(path: str | Path, label_map: LabelMap | None = None, *,
                     action_list: LabelMap | None = None, box_dtype: type = np.float32,
                     fractional: bool = False) -> pd.DataFrame:
    """Read an AVA annotation CSV into columns ``COLUMNS`` (narrow dtypes, file order).

    With ``label_map``, action ids are checked by :func:`check_action_ids` (``action_list``:
    the full list of actions, e.g. AVA's 80-class ``ava_action_list_v2.2.pbtxt``).
    ``box_dtype=np.float64`` keeps the exact values of the text (the evaluator needs them).
    ``fractional``: timestamps are seconds that need not be whole (custom data, Kinetics'
    ``17.010000``), read as float64; the pipeline's own CSVs hold whole-second keys.
    """
    path = Path(path)
    n_columns = count_columns(path) if path.is_file() else 8
    if n_columns not in (0, 7, 8):
        raise InputError(f"expected 7 or 8 columns, found {n_columns}", path=path, line=1)
    columns = _FILE_COLUMNS[:7] if n_columns == 7 else _FILE_COLUMNS
    if fractional:
        columns = [("timestamp", FLOAT) if name == "timestamp" else (name, kind)
                   for name, kind in columns]
    table = read_table(path, columns, widths="7 or 8")
    timestamp = table["timestamp"].to_numpy()
    check_timestamps(path, timestamp, fractional=fractional)
    action_id = table["action_id"].to_numpy()
    check_integral(path, "action_id", action_id, 1, INT16_MAX)
    boxes = [table[name].to_numpy() for name in BOX_COLUMNS]
    check_boxes(path, *boxes)
    if label_map is not None:
        check_action_ids(path, action_id, label_map, action_list)
    if "person_id" in table.column_names:
        person_id = table["person_id"].to_numpy()
        check_integral(path, "person_id", person_id, -1, INT32_MAX)
    else:
        person_id = np.full(len(table), -1)
    video_id = table["video_id"].cast("string").to_pandas().astype("str")
    check_video_ids(path, video_id)
    df = pd.DataFrame({
        "video_id": video_id,
        "timestamp": timestamp.astype(np.float64 if fractional else np.int32),
        **{name: values.astype(box_dtype) for name, values in zip(BOX_COLUMNS, boxes)},
        "action_id": action_id.astype(np.int16),
        "person_id": person_id.astype(np.int32),
    })
    return df


def write_annotations(path: str | Path, df: pd.DataFrame, *, decimals: int = 3) -> None:
    """Write the exact AVA CSV: no header, ``0902`` timestamps, boxes with 3 decimals (AVA's;
    ``decimals`` keeps more of a custom dataset's boxes).

    Rows with ``person_id == -1`` everywhere are written with 7 columns, like the files that
    have no person id.
    """
    check_columns(df.columns, COLUMNS, what="annotation table", path=path)
    out = df[COLUMNS]
    if len(out) and (out["person_id"].to_numpy() == -1).all():
        out = out.drop(columns="person_id")
    write_csv(path, out, float_decimals=decimals)


def merge_boxes(df: pd.DataFrame, label_map: LabelMap) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per person box per keyframe, and its multi-hot labels.

    Rows are merged by exact box equality within a keyframe (as AVA and mmaction2 do);
    ``person_id`` is the one of the box's first row. Rows whose action is not in the label map
    are dropped before merging (as mmaction2 does with a class subset), so a person with only
    such actions has no box. Output rows are sorted by (video_id, timestamp, first appearance);
    labels are ``uint8[n_boxes, label_map.num_classes]`` in label-map index order.
    """
    known = np.isin(df["action_id"].to_numpy(), np.asarray(label_map.ids))
    df = df.loc[known].reset_index(drop=True)
    box_code = df.groupby([*KEYFRAME_KEY, *BOX_COLUMNS], sort=False).ngroup().to_numpy()
    n_boxes = int(box_code.max()) + 1 if len(df) else 0
    first_row = np.full(n_boxes, len(df), dtype=np.int64)
    np.minimum.at(first_row, box_code, np.arange(len(df)))
    boxes = df.iloc[first_row][[*KEYFRAME_KEY, *BOX_COLUMNS, "person_id"]]
    boxes = boxes.assign(_first=first_row).set_axis(np.arange(n_boxes))
    order = boxes.sort_values([*KEYFRAME_KEY, "_first"], kind="stable").index
    rank = np.empty(n_boxes, dtype=np.int64)
    rank[order] = np.arange(n_boxes)
    index_of = np.zeros(max(label_map.ids) + 1, dtype=np.int64)
    index_of[list(label_map.ids)] = np.arange(label_map.num_classes)
    labels = np.zeros((n_boxes, label_map.num_classes), dtype=np.uint8)
    labels[rank[box_code], index_of[df["action_id"].to_numpy()]] = 1
    merged = boxes.loc[order].drop(columns="_first").reset_index(drop=True)
    return merged, labels
