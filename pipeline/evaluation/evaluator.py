"""Frame-level AVA evaluation: tables in, per-class AP and mAP out.

Every step works on whole columns (factorize, lexsort, segmented reductions); the only Python
loop runs over classes (at most a few dozen) to rank each class's detections exactly as the
references do. See :mod:`pipeline.evaluation.protocols` for what each protocol means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.ava.annotations import read_annotations
from pipeline.ava.exclusions import read_exclusions
from pipeline.ava.label_map import LabelMap, read_label_map
from pipeline.ava.results import check_result_boxes, clip_result_boxes, read_results
from pipeline.boxes import BOX_COLUMNS
from pipeline.errors import InputError
from pipeline.evaluation.average_precision import average_precision, rank_detections
from pipeline.evaluation.matching import match
from pipeline.evaluation.official_csv import (read_official_detections,
                                               read_official_ground_truth)
from pipeline.evaluation.protocols import get_protocol
from pipeline.evaluation.top_k import cap_per_frame, reference_list_rank


@dataclass(frozen=True)
class ClassResult:
    ap: float  # NaN when the class takes no part in the mean
    gt_count: int
    n_detections: int
    recall: np.ndarray = field(repr=False)  # points where recall changes (for PR plots)
    precision: np.ndarray = field(repr=False)  # interpolated precision at those points


@dataclass(frozen=True)
class EvaluationResult:
    protocol: str
    map: float
    per_class: dict[int, ClassResult]
    group_means: dict[str, float]
    label_map: LabelMap = field(repr=False)

    def to_json(self) -> dict:
        """Plain JSON: ``mAP`` in [0, 1], ``per_class`` AP by class id; an AP or mean that
        cannot be computed is null, and ``undefined`` says why (an undefined metric is a
        result, e.g. of a diverged or untrained model, not an error)."""
        return {
            "protocol": self.protocol,
            "mAP": _number(self.map),
            "group_mAP": {group: _number(v) for group, v in self.group_means.items()},
            "per_class": {str(i): _number(r.ap) for i, r in self.per_class.items()},
            "gt_count": {str(i): r.gt_count for i, r in self.per_class.items()},
            "n_detections": {str(i): r.n_detections for i, r in self.per_class.items()},
            "class_names": {str(i): self.label_map.names[i] for i in self.per_class},
            "undefined": self.undefined_reasons(),
        }

    def undefined_reasons(self) -> dict:
        """Why each null in :meth:`to_json` is null: ``mAP``, ``group_mAP`` by group and
        ``per_class`` by class id; only the undefined ones are listed."""
        def class_reason(result: ClassResult) -> str:
            if result.gt_count == 0:
                return "no ground-truth boxes of this class on the evaluated keyframes"
            return "no detections of this class on the evaluated keyframes"

        classes = {i: class_reason(r) for i, r in self.per_class.items() if math.isnan(r.ap)}
        mean_reason = ("no class has both ground truth and detections on the evaluated "
                       "keyframes")
        reasons: dict = {}
        if math.isnan(self.map):
            reasons["mAP"] = mean_reason
        groups = {g: mean_reason for g, v in self.group_means.items() if math.isnan(v)}
        if groups:
            reasons["group_mAP"] = groups
        if classes:
            reasons["per_class"] = {str(i): why for i, why in classes.items()}
        return reasons

    def pr_points(self) -> pd.DataFrame:
        """Long table ``action_id, recall, precision`` for PR plots."""
        parts = [pd.DataFrame({"action_id": np.full(len(r.recall), i, dtype=np.int16),
                               "recall": r.recall, "precision": r.precision})
                 for i, r in self.per_class.items()]
        return pd.concat(parts, ignore_index=True)


def _video_codes(*columns: pd.Series) -> list[np.ndarray]:
    """Integer codes of video ids shared across several columns (str or categorical)."""
    factorized = [pd.factorize(column) for column in columns]
    vocabulary = pd.Index(np.concatenate([np.asarray(u, dtype=object) for _, u in factorized]
                                         + [np.zeros(0, dtype=object)])).unique()
    return [vocabulary.get_indexer(np.asarray(u, dtype=object))[codes]
            if len(codes) else codes.astype(np.int64) for codes, u in factorized]


def _timestamp_codes(decimal_keyframes: bool, *columns) -> list[np.ndarray]:
    """Integer seconds, or (2020 evaluator) shared codes of the texts ``"%.6f" % timestamp``.

    The texts are formatted once per distinct float (by bit pattern: ``-0.0`` gives
    ``-0.000000``, another keyframe than ``0.000000`` there).
    """
    if not decimal_keyframes:
        return [np.asarray(column, dtype=np.int64) for column in columns]
    values = [np.asarray(column, dtype=np.float64) for column in columns]
    bits, inverse = np.unique(np.concatenate([v.view(np.int64) for v in values]),
                              return_inverse=True)
    text_codes, _ = pd.factorize(np.array(["%.6f" % t for t in bits.view(np.float64).tolist()],
                                          dtype=object))
    codes = text_codes[inverse.reshape(-1)].astype(np.int64)
    return np.split(codes, np.cumsum([len(v) for v in values])[:-1])


def _frame_keys(video_codes: np.ndarray, timestamp_codes: np.ndarray) -> np.ndarray:
    return (video_codes.astype(np.int64) << 32) | timestamp_codes


def _class_index(action_id, label_map: LabelMap) -> np.ndarray:
    """Contiguous class index of each row, -1 for ids outside the label map."""
    action_id = np.asarray(action_id, dtype=np.int64)
    lookup = np.full(max(max(label_map.ids), int(action_id.max(initial=0))) + 1, -1,
                     dtype=np.int64)
    lookup[list(label_map.ids)] = np.arange(label_map.num_classes)
    return lookup[np.clip(action_id, 0, None)]


def evaluate(gt: pd.DataFrame, detections: pd.DataFrame, label_map: LabelMap, *,
             exclusions: pd.DataFrame | None = None,
             keyframes_without_actions: pd.DataFrame | None = None,
             protocol: str = "mmaction2",
             score_threshold: float | None = None) -> EvaluationResult:
    """Evaluate AVA detections against ground truth under one protocol.

    ``gt`` has the columns of :func:`read_annotations` (``person_id`` optional),
    ``detections`` those of :func:`read_results`; ``exclusions`` lists keyframes
    (``video_id, timestamp``) to leave out; ``activitynet2020`` has none and does not use it
    (it scores only the keyframes the ground truth lists), and only it takes
    ``keyframes_without_actions`` (``video_id, timestamp``: the 2-column ground-truth rows).
    No protocol drops detections by score (no reference evaluator does);
    ``score_threshold`` drops those with ``score <= score_threshold``.
    The label map's ids are the evaluated classes.
    """
    rules = get_protocol(protocol)
    if keyframes_without_actions is not None and not rules.only_listed_frames:
        raise ValueError(f"protocol {protocol!r} has no keyframes without actions (only "
                         "activitynet2020 reads 2-column ground-truth rows)")
    no_keyframes = pd.DataFrame({"video_id": pd.Series([], dtype="str"),
                                 "timestamp": np.zeros(0, dtype=np.int32)})
    excluded = exclusions if exclusions is not None and rules.uses_exclusions else no_keyframes
    listed = keyframes_without_actions if keyframes_without_actions is not None \
        else no_keyframes
    videos = _video_codes(gt["video_id"], detections["video_id"], excluded["video_id"],
                          listed["video_id"])
    times = _timestamp_codes(rules.decimal_keyframes, gt["timestamp"], detections["timestamp"],
                             excluded["timestamp"], listed["timestamp"])
    gt_key_all, det_key, excluded_keys, listed_keys = (
        _frame_keys(v, t) for v, t in zip(videos, times))
    excluded_keys = np.unique(excluded_keys)
    # Every keyframe the ground-truth file names, whatever its rows (2020 evaluator).
    listed_keys = np.unique(np.concatenate([gt_key_all, listed_keys]))
    n_classes = label_map.num_classes

    # Ground truth: evaluated classes only; every row is one instance.
    gt_class = _class_index(gt["action_id"], label_map)
    keep = gt_class >= 0
    gt_key = gt_key_all[keep]
    gt_class = gt_class[keep]
    gt_boxes = gt[BOX_COLUMNS].to_numpy()[keep].astype(rules.float_dtype)
    gt_person = (gt["person_id"].to_numpy()[keep] if "person_id" in gt
                 else np.full(len(gt_key), -1))
    gt_rank = np.zeros(len(gt_key), dtype=np.int64)
    if rules.heap_order_in_frame:
        # The 2020 reader's heap of (score, action_id, y1, x1, y2, x2), the 8th column as
        # score (1.0 on a 7-column row, NaN here).
        heap_score = np.asarray(gt_person, dtype=np.float64)
        heap_score = np.where(np.isnan(heap_score), 1.0, heap_score)
        gt_rank = reference_list_rank(gt_key, heap_score, np.asarray(label_map.ids)[gt_class],
                                      gt_boxes, None)
    gt_excluded = np.isin(gt_key, excluded_keys)
    gt_count = np.bincount(gt_class if rules.count_excluded_gt else gt_class[~gt_excluded],
                           minlength=n_classes)
    gt_key, gt_class, gt_boxes, gt_person, gt_rank = (
        a[~gt_excluded] for a in (gt_key, gt_class, gt_boxes, gt_person, gt_rank))

    # Detections: evaluated classes, threshold, cap, evaluated keyframes.
    det_class = _class_index(detections["action_id"], label_map)
    det_score = detections["score"].to_numpy().astype(np.float64)
    det_boxes = detections[BOX_COLUMNS].to_numpy()
    keep = det_class >= 0
    if score_threshold is not None:
        keep &= det_score > score_threshold
    det_key, det_class, det_score, det_boxes = (a[keep] for a in
                                                 (det_key, det_class, det_score, det_boxes))
    det_position = np.arange(len(det_key))
    first_seen = pd.unique(det_key)
    det_rank = np.zeros(len(det_key), dtype=np.int64)
    det_ids = np.asarray(label_map.ids)[det_class]
    if rules.heap_order_in_frame:
        # Only where the keyframe has ground truth of the class can the order matter.
        frame_codes, _ = pd.factorize(np.concatenate([det_key, gt_key]))
        pairs = frame_codes * np.int64(n_classes) + np.concatenate([det_class, gt_class])
        with_gt = np.isin(pairs[:len(det_key)], pairs[len(det_key):])
        det_rank = reference_list_rank(det_key, det_score, det_ids, det_boxes,
                                       rules.per_frame_cap, matters=with_gt)
        kept = np.flatnonzero(det_rank >= 0)
    elif rules.per_frame_cap is not None:
        kept = cap_per_frame(det_key, det_score, det_ids, det_boxes, rules.per_frame_cap)
    else:
        kept = det_position
    det_key, det_class, det_score, det_boxes, det_position, det_rank = (
        a[kept] for a in (det_key, det_class, det_score, det_boxes, det_position, det_rank))
    keep = ~np.isin(det_key, excluded_keys)
    if not rules.frames_from_detections:
        keep &= np.isin(det_key, gt_key)
    if rules.only_listed_frames:
        keep &= np.isin(det_key, listed_keys)
    # Keyframe order: the order in which the reference concatenates keyframes per class: first
    # appearance in its detection dict, filled before the cap evicts anything (a keyframe
    # whose detections are all invalid boxes still takes its place).
    if rules.frames_from_detections:
        scored = ~np.isin(first_seen, excluded_keys)
        if rules.only_listed_frames:
            scored &= np.isin(first_seen, listed_keys)
        frame_order = pd.Index(first_seen[scored])
    else:
        frame_order = pd.Index(pd.unique(gt_key))
    if rules.drop_invalid_detections:
        boxes64 = det_boxes.astype(np.float64)
        keep &= (boxes64[:, 0] < boxes64[:, 2]) & (boxes64[:, 1] < boxes64[:, 3])
    det_key, det_class, det_score, det_boxes, det_position, det_rank = (
        a[keep] for a in (det_key, det_class, det_score, det_boxes, det_position, det_rank))
    det_boxes = det_boxes.astype(rules.float_dtype)

    n_frames = len(frame_order)
    det_frame = frame_order.get_indexer(det_key)
    gt_frame = frame_order.get_indexer(gt_key)
    on_frame = gt_frame >= 0
    gt_frame, gt_class, gt_boxes, gt_person, gt_rank = (
        a[on_frame] for a in (gt_frame, gt_class, gt_boxes, gt_person, gt_rank))

    gt_position = np.arange(len(gt_frame))
    if rules.heap_order_in_frame:
        in_frame, gt_in_frame = (det_rank,), (gt_rank,)
    else:
        in_frame = (det_position, -det_score) if rules.sort_in_frame else (det_position,)
        gt_in_frame = (gt_position, -gt_person) if rules.gt_by_person_desc else (gt_position,)
    det_order = np.lexsort((*in_frame, det_frame, det_class))
    gt_order = np.lexsort((*gt_in_frame, gt_frame, gt_class))
    det_group = det_class[det_order] * np.int64(n_frames) + det_frame[det_order]
    gt_group = gt_class[gt_order] * np.int64(n_frames) + gt_frame[gt_order]
    is_tp = match(det_group, det_boxes[det_order], gt_group, gt_boxes[gt_order])

    # Per class: rank as the references do, then VOC AP.
    sorted_class = det_class[det_order]
    sorted_score = det_score[det_order].astype(rules.float_dtype)
    bounds = np.searchsorted(sorted_class, np.arange(n_classes + 1))
    per_class: dict[int, ClassResult] = {}
    for index, class_id in enumerate(label_map.ids):
        lo, hi = bounds[index], bounds[index + 1]
        ranked = rank_detections(sorted_score[lo:hi])
        ap, recall, precision = average_precision(is_tp[lo:hi][ranked], int(gt_count[index]))
        if hi == lo and not rules.ap_zero_without_detections:
            ap = float("nan")
        per_class[class_id] = ClassResult(ap=ap, gt_count=int(gt_count[index]),
                                          n_detections=int(hi - lo), recall=recall,
                                          precision=precision)
    return EvaluationResult(
        protocol=protocol,
        map=_nanmean([r.ap for r in per_class.values()]),
        per_class=per_class,
        group_means={group: _nanmean([per_class[i].ap for i in label_map.group_ids(group)])
                     for group in label_map.group_names()},
        label_map=label_map,
    )


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def format_metric(value: float | None) -> str:
    """An AP or mean for people: four decimals, or ``undefined`` (null in JSON)."""
    return "undefined" if value is None or math.isnan(value) else f"{value:.4f}"


def describe(metrics: dict) -> str:
    """One line for a stage's log: mAP and group means of a metrics dict with ``mAP`` and
    ``group_mAP`` (as ``to_json`` or the stage metrics), undefined ones with their reason."""
    groups = ", ".join(f"{g} {format_metric(v)}" for g, v in metrics["group_mAP"].items())
    line = f"mAP {format_metric(metrics['mAP'])}" + (f"; groups: {groups}" if groups else "")
    reason = metrics.get("undefined", {}).get("mAP")
    return f"{line} (mAP undefined: {reason})" if reason else line


def _nanmean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def evaluate_files(gt_csv: str | Path, det_path: str | Path, label_map_path: str | Path, *,
                   exclusions_path: str | Path | None = None, protocol: str = "mmaction2",
                   score_threshold: float | None = None, clip_boxes: bool = False,
                   ava_groups: bool = False) -> EvaluationResult:
    """Read AVA files (detections as CSV or ``.parquet``) and :func:`evaluate` them.

    Ground-truth boxes are read at float64 so that each protocol sees exactly the values its
    reference parses from the text. Detection boxes outside [0, 1] are an error naming the
    line, as ground-truth ones are (``check_result_boxes``), unless ``clip_boxes`` clips them.
    ``activitynet2020`` reads its reference's files (rows of 2, 7 or 8 columns, fractional
    timestamps: :mod:`pipeline.evaluation.official_csv`), which range-checks neither side,
    and takes no exclusions. Group means are the label map's ``label_type`` groups, with
    ``ava_groups`` AVA's id ranges for classes without one (AVA's classes only).
    """
    label_map = read_label_map(label_map_path)
    if ava_groups:
        try:
            label_map = label_map.with_ava_groups()
        except ValueError as error:
            raise InputError(f"{error}: AVA's groups are for AVA's classes only",
                             path=label_map_path, key="--ava-groups") from error
    decimal = get_protocol(protocol).decimal_keyframes
    if decimal and exclusions_path is not None:
        raise ValueError(f"protocol {protocol!r} has no exclusions: the 2020 evaluator "
                         "scores the keyframes the ground truth lists, and only those")
    if decimal:
        gt, keyframes = read_official_ground_truth(gt_csv)
        detections = read_official_detections(det_path)
    else:
        gt, keyframes = read_annotations(gt_csv, box_dtype=np.float64), None
        detections = read_results(det_path)
    if clip_boxes:
        detections = clip_result_boxes(detections)
    elif not decimal:
        check_result_boxes(det_path, detections)
    return evaluate(gt, detections, label_map, keyframes_without_actions=keyframes,
                    exclusions=None if exclusions_path is None else read_exclusions(
                        exclusions_path),
                    protocol=protocol, score_threshold=score_threshold)
