"""How good are the person proposals: recall of ground-truth persons and boxes per keyframe.

The action heads only ever see proposal boxes at test time, so a person no proposal covers can
never be detected: recall at IoU 0.5 bounds the achievable frame-mAP.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.errors import check_columns
from pipeline.boxes import BOX_COLUMNS, KEYFRAME_KEY, normalise_keys, paired_iou


def _keyed(table: pd.DataFrame, what: str) -> pd.DataFrame:
    check_columns(table.columns, KEYFRAME_KEY + BOX_COLUMNS, what=f"{what} table")
    return normalise_keys(table.loc[:, KEYFRAME_KEY + BOX_COLUMNS]).astype(
        {c: np.float64 for c in BOX_COLUMNS})


def proposal_metrics(proposals: pd.DataFrame, gt_boxes: pd.DataFrame, iou: float = 0.5) -> dict:
    """Recall of distinct ground-truth boxes at ``iou`` and proposal counts per GT keyframe.

    A GT box is recalled when some proposal on the same keyframe overlaps it with IoU >= ``iou``
    (one proposal may recall several GT boxes, as in a recall curve; scores are ignored, so
    filter the proposals first to measure what the model will see). Box counts are over the
    keyframes that have ground truth.
    """
    gt = _keyed(gt_boxes, "ground-truth").drop_duplicates().reset_index(drop=True)
    props = _keyed(proposals, "proposals")
    pairs = gt.reset_index(names="gt_row").merge(props, on=KEYFRAME_KEY, suffixes=("", "_p"))
    overlap = paired_iou(pairs[BOX_COLUMNS].to_numpy(),
                         pairs[[f"{c}_p" for c in BOX_COLUMNS]].to_numpy())
    recalled = np.zeros(len(gt), dtype=bool)
    recalled[pairs["gt_row"].to_numpy()[overlap >= iou]] = True

    keyframes = gt.loc[:, KEYFRAME_KEY].drop_duplicates()
    per_keyframe = (keyframes.merge(props.groupby(KEYFRAME_KEY).size().rename("n").reset_index(),
                                    on=KEYFRAME_KEY, how="left")["n"].fillna(0).to_numpy())
    return {
        "iou_threshold": float(iou),
        "recall": float(recalled.mean()) if len(gt) else 0.0,
        "gt_boxes": int(len(gt)),
        "gt_keyframes": int(len(keyframes)),
        "proposals": int(len(props)),
        "mean_boxes_per_keyframe": float(per_keyframe.mean()) if len(per_keyframe) else 0.0,
        "max_boxes_per_keyframe": int(per_keyframe.max()) if len(per_keyframe) else 0,
        "keyframes_without_proposals": int((per_keyframe == 0).sum()),
    }
