"""A slow, plain AVA evaluator written from the reference evaluators' behaviour.

Loops over keyframes, classes and detections; Python's csv module and heapq; shares no code
with ``pipeline.evaluation``. Used by the tests (parity on random inputs) and by the bench.
"""

from __future__ import annotations

import csv
import heapq
import re
from decimal import Decimal

import numpy as np


def read_label_ids(path) -> list[int]:
    ids = []
    for match in re.finditer(r"\b(?:id|label_id)\s*:\s*(\d+)", open(path).read()):
        ids.append(int(match.group(1)))
    return ids


def key_of(video_id, timestamp) -> str:
    return f"{video_id},{int(timestamp):04d}"


def iou_matrix(det, gt, dtype):
    det = np.asarray(det, dtype=dtype).reshape(-1, 4)
    gt = np.asarray(gt, dtype=dtype).reshape(-1, 4)
    out = np.zeros((len(det), len(gt)))
    for i in range(len(det)):
        for j in range(len(gt)):
            x1d, y1d, x2d, y2d = det[i]
            x1g, y1g, x2g, y2g = gt[j]
            h = max(np.float64(0), min(y2d, y2g) - max(y1d, y1g))
            w = max(np.float64(0), min(x2d, x2g) - max(x1d, x1g))
            inter = np.float64(h) * np.float64(w)
            area_d = (y2d - y1d) * (x2d - x1d)
            area_g = (y2g - y1g) * (x2g - x1g)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[i, j] = inter / ((area_d + area_g) - inter)
    return out


def voc_ap(scores, tps, num_gt):
    if num_gt == 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(scores)[::-1]
    tp = np.asarray(tps, dtype=int)[order]
    cum_tp, cum_fp, precision, recall = 0, 0, [], []
    for flag in tp:
        cum_tp += flag
        cum_fp += 1 - flag
        precision.append(float(cum_tp) / (cum_tp + cum_fp))
        recall.append(float(cum_tp) / num_gt)
    recall = np.array([0.0] + recall + [1.0])
    precision = np.array([0.0] + precision + [0.0])
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    terms = [(recall[i] - recall[i - 1]) * precision[i] for i in range(1, len(recall))
             if recall[i] != recall[i - 1]]
    return float(np.sum(np.array(terms)))


def plain_evaluate(gt_rows, det_rows, label_ids, excluded_keys, *, protocol,
                   score_threshold=None):
    """gt_rows: (vid, ts, x1, y1, x2, y2, action, person); det_rows: (..., action, score).
    No protocol applies a score threshold (mmaction2's ava_eval reads every CSV row); a given
    ``score_threshold`` drops ``score <= score_threshold``."""
    whitelist = set(label_ids)
    dtype = np.float32 if protocol == "mmaction2" else np.float64
    # Ground truth per keyframe, in order of first appearance.
    gt = {}
    for vid, ts, x1, y1, x2, y2, action, person in gt_rows:
        if action in whitelist:
            gt.setdefault(key_of(vid, ts), []).append((person, action, (x1, y1, x2, y2)))
    gt_count = {c: 0 for c in label_ids}
    for key, rows in gt.items():
        if protocol == "mmaction2" or key not in excluded_keys:
            for _, action, _ in rows:
                gt_count[action] += 1
    # Detections per keyframe.
    dets = {}
    for vid, ts, x1, y1, x2, y2, action, score in det_rows:
        if action not in whitelist:
            continue
        if score_threshold is not None and not score > score_threshold:
            continue
        key = key_of(vid, ts)
        entry = (score, action, y1, x1, y2, x2)
        if protocol == "activitynet":
            heap = dets.setdefault(key, [])
            if len(heap) < 50:
                heapq.heappush(heap, entry)
            elif score > heap[0][0]:
                heapq.heapreplace(heap, entry)
        else:
            dets.setdefault(key, []).append(entry)
    if protocol == "mmaction2":
        frames = [k for k in gt if k not in excluded_keys]
    else:
        frames = [k for k in dets if k not in excluded_keys]
    scores = {c: [] for c in label_ids}
    tps = {c: [] for c in label_ids}
    for key in frames:
        frame_dets = dets.get(key, [])
        if protocol in ("mmaction2", "activitynet"):
            frame_dets = sorted(frame_dets, key=lambda e: -e[0])
        frame_gt = gt.get(key, [])
        if protocol in ("mmaction2", "activitynet"):
            frame_gt = sorted(frame_gt, key=lambda g: -g[0])
        for c in label_ids:
            cd = [e for e in frame_dets if e[1] == c]
            if protocol != "mmaction2":
                cd = [e for e in cd if e[2] < e[4] and e[3] < e[5]]
            if not cd:
                continue
            cg = [g[2] for g in frame_gt if g[1] == c]
            det_boxes = [(e[3], e[2], e[5], e[4]) for e in cd]
            iou = iou_matrix(det_boxes, cg, dtype)
            claimed = [False] * len(cg)
            for i, e in enumerate(cd):
                hit = False
                if cg:
                    j = int(np.argmax(iou[i]))
                    if iou[i, j] >= 0.5 and not claimed[j]:
                        claimed[j] = True
                        hit = True
                scores[c].append(e[0])
                tps[c].append(hit)
    per_class = {}
    for c in label_ids:
        if not scores[c] and protocol == "mmaction2":
            per_class[c] = float("nan")
            continue
        per_class[c] = voc_ap(np.array(scores[c], dtype=dtype), tps[c], gt_count[c])
    values = [v for v in per_class.values() if not np.isnan(v)]
    return {"mAP": float(np.mean(values)) if values else float("nan"), "per_class": per_class}


def plain_evaluate_files(gt_csv, det_csv, label_map, exclusions_csv=None, *, protocol,
                         score_threshold=None):
    def rows(path, last_is_float):
        out = []
        with open(path, newline="") as f:
            for r in csv.reader(f):
                last = (float(r[7]) if last_is_float else int(r[7])) if len(r) == 8 else -1
                out.append((r[0], int(r[1]), *map(float, r[2:6]), int(r[6]), last))
        return out

    excluded = set()
    if exclusions_csv is not None:
        with open(exclusions_csv, newline="") as f:
            excluded = {key_of(r[0], r[1]) for r in csv.reader(f)}
    return plain_evaluate(rows(gt_csv, False), rows(det_csv, True), read_label_ids(label_map),
                          excluded, protocol=protocol, score_threshold=score_threshold)


# --- The 2020 official evaluator (AVA-Kinetics), straight from get_ava_performance.py's rules:
# keyframe keys "%s,%.6f" % (video, Decimal(timestamp)); rows of 2, 7 or 8 columns; both files
# read through a heap per keyframe (detections capped at 50) and listed by descending score;
# every keyframe the ground-truth file names is scored, detections elsewhere are ignored.

def official_2020_key(video_id, timestamp_text) -> str:
    return "%s,%.6f" % (video_id, Decimal(timestamp_text))


def official_2020_label_ids(path) -> list[int]:
    """Ids as the official script reads them: lines starting with '  id:' or '  label_id:'."""
    ids = []
    for line in open(path):
        if line.startswith("  id:") or line.startswith("  label_id:"):
            ids.append(int(line.strip().split(" ")[-1]))
    return ids


def official_2020_read(path, class_ids, capacity):
    """{key: [(score, action, y1, x1, y2, x2), ...] by descending score}, and every key."""
    heaps, all_keys = {}, set()
    with open(path, newline="") as f:
        for row in csv.reader(f):
            assert len(row) in (2, 7, 8), row
            key = official_2020_key(row[0], row[1])
            all_keys.add(key)
            if len(row) == 2:
                continue
            x1, y1, x2, y2 = [float(v) for v in row[2:6]]
            action = int(row[6])
            if action not in class_ids:
                continue
            score = float(row[7]) if len(row) == 8 else 1.0
            entry = (score, action, y1, x1, y2, x2)
            heap = heaps.setdefault(key, [])
            if capacity == 0 or len(heap) < capacity:
                heapq.heappush(heap, entry)
            elif score > heap[0][0]:
                heapq.heapreplace(heap, entry)
    return {key: sorted(heap, key=lambda e: -e[0]) for key, heap in heaps.items()}, all_keys


def plain_evaluate_2020_files(gt_csv, det_csv, label_map):
    class_ids = official_2020_label_ids(label_map)
    gt, gt_keys = official_2020_read(gt_csv, set(class_ids), 0)
    dets, _ = official_2020_read(det_csv, set(class_ids), 50)
    gt_count = {c: 0 for c in class_ids}
    for entries in gt.values():
        for entry in entries:
            gt_count[entry[1]] += 1
    scores = {c: [] for c in class_ids}
    tps = {c: [] for c in class_ids}
    for key, entries in dets.items():
        if key not in gt_keys:
            continue  # not part of the ground truth: ignored
        valid = [e for e in entries if e[2] < e[4] and e[3] < e[5]]  # y1 < y2 and x1 < x2
        for c in class_ids:
            class_dets = [e for e in valid if e[1] == c]
            if not class_dets:
                continue
            class_gt = [(e[3], e[2], e[5], e[4]) for e in gt.get(key, []) if e[1] == c]
            iou = iou_matrix([(e[3], e[2], e[5], e[4]) for e in class_dets], class_gt,
                             np.float64)
            claimed = [False] * len(class_gt)
            for i, entry in enumerate(class_dets):
                hit = False
                if class_gt:
                    j = int(np.argmax(iou[i]))
                    if iou[i, j] >= 0.5 and not claimed[j]:
                        claimed[j] = hit = True
                scores[c].append(entry[0])
                tps[c].append(hit)
    per_class = {c: voc_ap(np.array(scores[c], dtype=np.float64), tps[c], gt_count[c])
                 for c in class_ids}
    values = [v for v in per_class.values() if not np.isnan(v)]
    return {"mAP": float(np.mean(values)) if values else float("nan"), "per_class": per_class}
