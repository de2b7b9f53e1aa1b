"""The three AVA evaluation protocols, each written down as the rules its reference follows.

All three score frame-level AP at IoU >= 0.5 per class on keyframes with PASCAL VOC matching
(detections in order, each takes its highest-IoU ground-truth box of the same class, a hit only
if IoU >= 0.5 and that box is still unclaimed, no fallback to the second best) and VOC
all-point interpolated AP. Rows whose action id is not in the label map are ignored on both
sides. Where the references differ:

``mmaction2`` (default; ``ava_eval`` of mmaction2 1.x, the numbers of its model zoo)
    - no score threshold: every row of the result file counts (mmaction2's 0.002,
      ``action_thr``, acts in ``bbox2result`` before the CSV is written; here the detection
      writers apply it, ``pipeline.engine.detection.detections_table``); no per-keyframe cap;
    - only keyframes with ground truth are evaluated, minus excluded ones; detections
      elsewhere are ignored;
    - a class's ground-truth count is taken over the whole ground-truth table, *including*
      excluded keyframes (the reference counts before it drops them);
    - boxes and scores are float32 (the reference builds float32 arrays);
    - the mean is over classes that received at least one detection.

``activitynet`` (the official ``get_ava_performance.py`` with its TF-OD-API evaluator)
    - no score threshold; at most 50 detections per keyframe across classes, chosen exactly as
      the reference's heap does (see ``cap_per_frame``);
    - excluded keyframes are dropped from both sides (and from the ground-truth counts);
    - detections on keyframes without ground truth are false positives (the reference's
      evaluator matches them against an empty ground truth); detections with ``x1 >= x2`` or
      ``y1 >= y2`` are discarded;
    - boxes and scores are float64; classes with ground truth but no detection have AP 0.

``pyslowfast`` (PySlowFast's ``ava_eval_helper`` with the same TF-OD-API evaluator)
    - as ``activitynet`` but without the per-keyframe cap and without sorting detections by
      score inside a keyframe: detections are matched in file order, as the reference does.

Order rules that decide ties (all reproduced): inside a keyframe, mmaction2 and activitynet
match detections by descending score with equal scores in file order, and visit ground-truth
boxes by descending person id (their readers take the 8th column for a score), equal ids in
file order; pyslowfast keeps file order for both. Per class, detections are concatenated in
keyframe order (first appearance in the ground truth for mmaction2, in the detections for the
others) and ranked by ``numpy.argsort(scores)[::-1]`` as all references do, so equal scores fall
in exactly the reference's order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROTOCOLS = ("mmaction2", "activitynet", "pyslowfast")


@dataclass(frozen=True)
class Protocol:
    name: str
    frames_from_detections: bool  # evaluate detection keyframes (else only ground-truth ones)
    count_excluded_gt: bool
    per_frame_cap: int | None
    drop_invalid_detections: bool
    sort_in_frame: bool  # match by descending score (else in file order)
    gt_by_person_desc: bool
    float_dtype: type
    ap_zero_without_detections: bool  # else such classes are left out of the mean


_PROTOCOLS = {
    "mmaction2": Protocol("mmaction2", False, True, None, False, True, True,
                          np.float32, False),
    "activitynet": Protocol("activitynet", True, False, 50, True, True, True,
                            np.float64, True),
    "pyslowfast": Protocol("pyslowfast", True, False, None, True, False, False,
                           np.float64, True),
}


def get_protocol(name: str) -> Protocol:
    if name not in _PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; expected one of {', '.join(PROTOCOLS)}")
    return _PROTOCOLS[name]
