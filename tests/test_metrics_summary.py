"""Metrics files hold headline numbers (what `dvc metrics show` prints); counts and reasons go
to a report next to them; per-class rows go to plot tables with the reasons an AP is
undefined."""

import json

import pandas as pd

from pipeline.ava.label_map import LabelMap
from pipeline.evaluation.evaluator import evaluate
from pipeline.evaluation.summary import (PER_CLASS_COLUMNS, headline, per_class_table, report,
                                         write_csv, write_scores)

LABELS = LabelMap(ids=(1, 2, 3, 12), names={1: "bend/bow (at the waist)", 2: "crawl",
                                            3: "crouch/kneel", 12: "stand"})


def _scored():
    box = {"video_id": "v1", "timestamp": 902, "x1": 0.1, "y1": 0.1, "x2": 0.4, "y2": 0.5}
    gt = pd.DataFrame([{**box, "action_id": 1, "person_id": 0},
                       {**box, "x1": 0.5, "x2": 0.9, "action_id": 2, "person_id": 1},
                       {**box, "action_id": 12, "person_id": 0}])
    det = pd.DataFrame([{**box, "action_id": 1, "score": 0.9},
                        {**box, "action_id": 12, "score": 0.4},
                        {**box, "x1": 0.5, "x2": 0.9, "action_id": 12, "score": 0.8}])
    return evaluate(gt, det, LABELS, protocol="mmaction2").to_json()


def test_headline_has_no_per_class_entries(tmp_path):
    scored = _scored()
    top = headline(scored)
    assert top == {"mAP": scored["mAP"], "group_mAP": scored["group_mAP"]}
    assert set(headline(scored, "val_")) == {"val_mAP", "val_group_mAP"}
    details = report(scored, "plots/per_class_ap.csv")
    assert set(details) == {"protocol", "counts", "undefined"}
    assert details["counts"] == {"classes": 4, "classes_with_AP": 2, "gt_boxes": 3,
                                 "detections": 3}
    # two classes have no AP (crawl: no detections, crouch: no ground truth): counted here
    assert details["undefined"] == {
        "per_class": "2 of 4 classes: reasons in plots/per_class_ap.csv"}

    table = per_class_table(scored, LABELS.groups)
    write_csv(tmp_path / "per_class_ap.csv", table)
    back = pd.read_csv(tmp_path / "per_class_ap.csv", keep_default_na=False)
    assert tuple(back.columns) == PER_CLASS_COLUMNS
    assert list(back["class"]) == ["1 bend/bow (at the waist)", "2 crawl", "3 crouch/kneel",
                                   "12 stand"]
    reasons = dict(zip(back["class"], back["undefined"]))
    assert reasons["2 crawl"].startswith("no detections")
    assert reasons["3 crouch/kneel"].startswith("no ground-truth")
    assert reasons["12 stand"] == "" and back["gt_count"].sum() == 3


def test_write_scores_splits_headline_report_and_plot(tmp_path):
    """The metrics file holds numbers only (one `dvc exp show` column each); the rest is in
    the report, which points at the plot relative to itself."""
    written = write_scores(tmp_path / "m/metrics.json", tmp_path / "m/report.json",
                           tmp_path / "plots/per_class_ap.csv", _scored(), LABELS.groups,
                           prefix="val_", headline_extra={"train_loss": 0.5},
                           report_extra={"steps": 7})
    metrics = json.loads((tmp_path / "m/metrics.json").read_text())
    details = json.loads((tmp_path / "m/report.json").read_text())
    assert set(metrics) == {"val_mAP", "val_group_mAP", "train_loss"}
    assert set(details) == {"protocol", "val_counts", "undefined", "steps"}
    assert details["undefined"]["per_class"].endswith("reasons in ../plots/per_class_ap.csv")
    assert written == {**metrics, **details}
    assert len(pd.read_csv(tmp_path / "plots/per_class_ap.csv")) == 4
    # a stage whose model another stage scores keeps its scores in the report
    write_scores(tmp_path / "h/metrics.json", tmp_path / "h/report.json",
                 tmp_path / "h/per_class_ap.csv", _scored(), LABELS.groups, prefix="val_",
                 headline_scores=False, headline_extra={"train_loss": 0.5})
    assert json.loads((tmp_path / "h/metrics.json").read_text()) == {"train_loss": 0.5}
    assert {"val_mAP", "val_group_mAP", "val_counts"} <= set(
        json.loads((tmp_path / "h/report.json").read_text()))
