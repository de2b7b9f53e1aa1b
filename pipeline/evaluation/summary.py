"""Scores in the three shapes their readers want: a few headline numbers for the metrics file
(``dvc metrics show`` / ``dvc exp show``, one column each: mAP and group means), a report next
to it with what explains them (protocol, counts, why any is undefined, the stage's details),
and one row per class for a plot file (``dvc plots``), where 60-80 per-class APs belong.

All take ``EvaluationResult.to_json()`` (plain data), so any stage that scored a split can
write them, through ``write_scores``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.io import write_json, write_text

PER_CLASS_COLUMNS = ("class", "group", "AP", "gt_count", "n_detections", "undefined")


def headline(scored: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """mAP and group means, nothing else: each is a column of ``dvc exp show``. ``prefix``
    names the split where a stage scores one beside training (``"val_"``)."""
    return {f"{prefix}mAP": scored["mAP"], f"{prefix}group_mAP": dict(scored["group_mAP"])}


def report(scored: Mapping[str, Any], per_class_plot: str, prefix: str = "") -> dict[str, Any]:
    """What explains the headline: protocol, counts and the reasons for undefined values;
    per-class reasons are counted here and given in ``per_class_plot`` (a path relative to the
    report, for the reader)."""
    undefined = dict(scored["undefined"])
    classes = undefined.pop("per_class", {})
    if classes:
        undefined["per_class"] = (f"{len(classes)} of {len(scored['per_class'])} classes: "
                                  f"reasons in {per_class_plot}")
    aps = scored["per_class"].values()
    return {"protocol": scored["protocol"],
            f"{prefix}counts": {"classes": len(scored["per_class"]),
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


def write_scores(metrics_path: str | Path, report_path: str | Path, plot_path: str | Path,
                 scored: Mapping[str, Any], groups: Mapping[int, str], *, prefix: str = "",
                 headline_scores: bool = True,
                 headline_extra: Mapping[str, Any] | None = None,
                 report_extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write one scored split as headline (``metrics_path``: mAP and group means, and the
    caller's few numbers), report (``report_path``: protocol, counts, undefined reasons and
    the caller's details) and per-class plot table (``plot_path``), so the experiments table
    stays a screen wide and nothing is lost. ``headline_scores=False`` puts mAP and group
    means in the report: a stage whose model another stage scores (the head, by evaluate)
    would repeat that stage's columns under names ``dvc exp show`` must then spell out with
    their file. The report points at the plot by a path relative to it (the files do not
    depend on where the run happened). Every stage that scores val uses it; returns headline
    and report in one dict."""
    write_csv(plot_path, per_class_table(scored, groups))
    pointer = Path(os.path.relpath(plot_path, Path(report_path).parent)).as_posix()
    scores = headline(scored, prefix)
    top = {**(scores if headline_scores else {}), **(headline_extra or {})}
    details = {**({} if headline_scores else scores), **report(scored, pointer, prefix),
               **(report_extra or {})}
    write_json(report_path, details)
    write_json(metrics_path, top, sort_keys=False)   # the mAP first, as a table's first column
    return {**top, **details}
