"""Metrics files hold headline numbers (what `dvc metrics show` prints); per-class rows go to
plot tables with the reasons an AP is undefined."""

import pandas as pd

from pipeline.ava.label_map import LabelMap
from pipeline.evaluation.evaluator import evaluate
from pipeline.evaluation.summary import PER_CLASS_COLUMNS, headline, per_class_table, write_csv

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
    top = headline(scored, "plots/per_class_ap.csv")
    assert set(top) == {"mAP", "group_mAP", "protocol", "counts", "undefined"}
    assert top["mAP"] == scored["mAP"] and top["group_mAP"] == scored["group_mAP"]
    assert top["counts"] == {"classes": 4, "classes_with_AP": 2, "gt_boxes": 3, "detections": 3}
    # two classes have no AP (crawl: no detections, crouch: no ground truth): counted here
    assert top["undefined"] == {"per_class": "2 of 4 classes: reasons in plots/per_class_ap.csv"}

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
