"""AVA evaluation inputs: ground-truth and detection tables from plain rows, random cases (boxes,
scores with ties, excluded keyframes) and a case written to the files the evaluators read."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.ava.annotations import write_annotations
from pipeline.ava.exclusions import write_exclusions
from pipeline.ava.label_map import LabelMap, write_label_map
from pipeline.ava.results import write_results_csv


def gt_table(rows):
    """rows: (video, ts, box, action[, person])."""
    return pd.DataFrame({
        "video_id": pd.Series([r[0] for r in rows], dtype="str"),
        "timestamp": np.array([r[1] for r in rows], dtype=np.int32),
        **{c: np.array([r[2][k] for r in rows], dtype=np.float64)
           for k, c in enumerate(["x1", "y1", "x2", "y2"])},
        "action_id": np.array([r[3] for r in rows], dtype=np.int16),
        "person_id": np.array([r[4] if len(r) > 4 else i for i, r in enumerate(rows)],
                              dtype=np.int32),
    })


def det_table(rows):
    """rows: (video, ts, box, action, score)."""
    df = gt_table([r[:4] for r in rows]).drop(columns="person_id")
    df["score"] = np.array([r[4] for r in rows], dtype=np.float64)
    return df


def random_case(seed: int, *, score_decimals: int, distinct_in_frame: bool):
    rng = np.random.default_rng(seed)
    gt_rows, det_rows = [], []
    for video in ("a", "b"):
        for ts in range(902, 902 + int(rng.integers(3, 9))):
            if rng.random() < 0.85:
                for person in range(int(rng.integers(1, 5))):
                    box = np.round(np.sort(rng.uniform(0, 1, (2, 2)), axis=0).T.ravel()[[0, 2, 1, 3]], 2)
                    for action in rng.choice([1, 2, 3, 80], size=int(rng.integers(1, 3)),
                                             replace=False):
                        gt_rows.append((video, ts, tuple(box), int(action), person))
            n_det = int(rng.integers(0, 70))
            for k in range(n_det):
                if gt_rows and rng.random() < 0.6:
                    base = np.array(gt_rows[int(rng.integers(len(gt_rows)))][2])
                    box = np.clip(base + rng.normal(0, 0.05, 4) * (rng.random() < 0.7), 0, 1)
                else:
                    box = rng.uniform(0, 1, 4)
                score = round(float(rng.random()), score_decimals)
                if distinct_in_frame:
                    score += 1e-9 * k
                det_rows.append((video, ts, tuple(np.round(box, 3)), int(rng.choice([1, 2, 3, 80])),
                                 score))
    # Shuffle detection rows: file order must not follow keyframes.
    det_rows = [det_rows[i] for i in rng.permutation(len(det_rows))]
    excluded = {f"a,{t:04d}" for t in (903, 905)}
    return gt_rows, det_rows, excluded


def to_frames(gt_rows, det_rows, excluded):
    gt = gt_table([(r[0], r[1], r[2], r[3], r[4]) for r in gt_rows])
    det = det_table(det_rows)
    excl = pd.DataFrame({"video_id": pd.Series([k.split(",")[0] for k in excluded], dtype="str"),
                         "timestamp": np.array([int(k.split(",")[1]) for k in excluded],
                                               dtype=np.int32)})
    return gt, det, excl


def write_case(tmp_path, seed=3):
    gt_rows, det_rows, excluded = random_case(seed, score_decimals=4, distinct_in_frame=False)
    gt, det, excl = to_frames(gt_rows, det_rows, excluded)
    paths = {"gt": tmp_path / "gt.csv", "det": tmp_path / "det.csv",
             "excl": tmp_path / "excl.csv", "labels": tmp_path / "labels.pbtxt"}
    write_annotations(paths["gt"], gt)
    write_results_csv(paths["det"], det)
    write_exclusions(paths["excl"], excl)
    write_label_map(paths["labels"], LabelMap(ids=(1, 2, 80), names={1: "a", 2: "b", 80: "c"}))
    return paths, det
