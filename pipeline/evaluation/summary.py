"""Scores in the two shapes DVC shows: a few headline numbers for ``dvc metrics show`` and
``dvc exp show`` (mAP, group means, counts, why any is undefined), and one row per class for a
plot file (``dvc plots``), where 60-80 per-class APs with their names belong.

Both take ``EvaluationResult.to_json()`` (plain data), so any stage that scored a split can
write them.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.io import write_text

PER_CLASS_COLUMNS = ("class", "group", "AP", "gt_count", "n_detections", "undefined")


def headline(scored: Mapping[str, Any], per_class_plot: str) -> dict[str, Any]:
    """mAP, group means, protocol, counts and the reasons for undefined values; per-class
    reasons are counted here and given in ``per_class_plot`` (a path relative to the metrics
    file, for the reader)."""
    undefined = dict(scored["undefined"])
    classes = undefined.pop("per_class", {})
    if classes:
        undefined["per_class"] = (f"{len(classes)} of {len(scored['per_class'])} classes: "
                                  f"reasons in {per_class_plot}")
    aps = scored["per_class"].values()
    return {"mAP": scored["mAP"], "group_mAP": dict(scored["group_mAP"]),
            "protocol": scored["protocol"],
            "counts": {"classes": len(scored["per_class"]),
                       "classes_with_AP": sum(ap is not None for ap in aps),
                       "gt_boxes": int(sum(scored["gt_count"].values())),
                       "detections": int(sum(scored["n_detections"].values()))},
            "undefined": undefined}


def per_class_table(scored: Mapping[str, Any], groups: Mapping[int, str]) -> pd.DataFrame:
    """One row per class: ``"<id> <name>"``, its group, AP (empty when undefined), counts and
    the reason an AP is undefined."""
    reasons = scored["undefined"].get("per_class", {})
    ids = list(scored["per_class"])
    return pd.DataFrame({
        "class": [f"{i} {scored['class_names'][i]}" for i in ids],
        "group": [groups.get(int(i), "") for i in ids],
        "AP": [scored["per_class"][i] for i in ids],
        "gt_count": [scored["gt_count"][i] for i in ids],
        "n_detections": [scored["n_detections"][i] for i in ids],
        "undefined": [reasons.get(i, "") for i in ids]}, columns=list(PER_CLASS_COLUMNS))


def write_csv(path: str | Path, table: pd.DataFrame) -> None:
    """A plot table as CSV (atomically), floats to 6 significant digits."""
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, float_format="%.6g")
    write_text(path, buffer.getvalue())


def write_scores(metrics_path: str | Path, plot_path: str | Path, scored: Mapping[str, Any],
                 groups: Mapping[int, str]) -> dict[str, Any]:
    """Write the per-class plot table to ``plot_path`` and return the headline for the
    metrics file at ``metrics_path``, pointing at the plot by a path relative to it (so the
    metrics do not depend on where the run happened). Every stage that scores val uses it."""
    write_csv(plot_path, per_class_table(scored, groups))
    pointer = Path(os.path.relpath(plot_path, Path(metrics_path).parent)).as_posix()
    return headline(scored, pointer)
