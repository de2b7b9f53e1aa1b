"""The four AVA evaluation protocols, each written down as the rules its reference follows.

All four score frame-level AP at IoU >= 0.5 per class on keyframes with PASCAL VOC matching
(detections in order, each takes its highest-IoU ground-truth box of the same class, a hit only
if IoU >= 0.5 and that box is still unclaimed, no fallback to the second best) and VOC
all-point interpolated AP. Rows whose action id is not in the label map are ignored on both
sides (the 2020 evaluator still lists their keyframe, below). Where the references differ:

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
    - boxes and scores are float64; classes with ground truth but no detection have AP 0;
    - inside a keyframe, both sides in the order its reader's heaps leave them, as for
      ``activitynet2020`` below (that reader is the same but for the key and the 2 columns).

``pyslowfast`` (PySlowFast's ``ava_eval_helper`` with the same TF-OD-API evaluator)
    - as ``activitynet`` but without the per-keyframe cap and without sorting detections by
      score inside a keyframe: detections are matched in file order, as the reference does.

``activitynet2020`` (the official ``get_ava_performance.py`` since its AVA-Kinetics update of
2020, commits c070fdb, 4e455cb, af461c3; the same TF-OD-API evaluator)
    - a keyframe is the text ``"%s,%.6f" % (video_id, Decimal(timestamp))``: timestamps may be
      fractional or negative, and ``17.01``, ``17.010000`` and ``0017.0100001`` are one keyframe
      (``%.6f`` of a Decimal formats its float value);
    - ground-truth rows have 8, 7 or 2 columns, mixed in one file: a 2-column row
      (``video_id,timestamp``) lists a keyframe without actions. Every keyframe of the ground-truth
      file is scored (2-column rows and rows of classes outside the label map included):
      detections there are false positives where no box of their class exists; detections on
      keyframes the ground-truth file does not list are ignored;
    - no exclusions (the 2020 script dropped ``--exclusions``; excluded keyframes are simply not
      listed);
    - at most 50 detections per keyframe across classes, the same heap as ``activitynet``;
      a 7-column detection row scores 1.0, 2-column detection rows are ignored;
    - detections with ``x1 >= x2`` or ``y1 >= y2`` are discarded; boxes and scores are float64;
      classes with ground truth but no detection have AP 0, the mean is over classes with
      ground truth;
    - the reader pushes *ground truth* through a heap too, with the 8th column read as a float
      score (the person id; 1.0 on a 7-column row): inside a keyframe both sides are visited
      in the order ``sorted(heap, key=-score)`` leaves them (descending score, equal scores in
      the heap's internal layout), reproduced exactly (see ``reference_list_rank``); keyframes
      are visited in order of first appearance of a labelled detection row, before the cap;
    - its label map reader takes lines starting with exactly ``"  name:"`` and ``"  id:"`` or
      ``"  label_id:"``; the reader here accepts any layout (``pipeline.ava.label_map``), so a
      label map it reads differently is one the official script would reject or misread.

Order rules that decide ties (all reproduced): inside a keyframe, activitynet and
activitynet2020 follow their heaps (above); mmaction2 matches detections by descending score
with equal scores in file order, and visits ground-truth boxes by descending person id (its
reader takes the 8th column for a score), equal ids in file order; pyslowfast keeps file order
for both.
Per class, detections are concatenated in keyframe order (first appearance in the ground truth
for mmaction2, in the detections, before any cap, for the others) and ranked by
``numpy.argsort(scores)[::-1]`` as all references do, so equal scores fall in exactly the
reference's order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROTOCOLS = ("mmaction2", "activitynet", "pyslowfast", "activitynet2020")

# mmaction2's ``action_thr``: ``bbox2result`` writes a (box, class) row only when its score is
# > 0.002. The one default of every detection writer here: the val results of
# ``pretrain_baseline`` and ``train_head`` and ``stad detect``'s tables (``evaluate`` takes
# params ``eval.score_threshold``).
MIN_ACTION_SCORE = 0.002

# The protocol of the val scores the training stages write (``models/*/metrics.json``,
# ``report.json``): the zoo's, so they compare with mmaction2's training logs; ``evaluate``
# scores the head under params ``eval.protocol``, and ``stad eval`` re-scores any result file
# under any protocol.
TRAINING_PROTOCOL = "mmaction2"


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
    # The 2020 evaluator's differences:
    decimal_keyframes: bool = False  # keyframe = "%.6f" of the timestamp (else integer seconds)
    uses_exclusions: bool = True
    only_listed_frames: bool = False  # detections on keyframes the ground truth lacks: ignored
    heap_order_in_frame: bool = False  # both sides in the order the reader's heaps leave them


_PROTOCOLS = {
    "mmaction2": Protocol("mmaction2", False, True, None, False, True, True,
                          np.float32, False),
    "activitynet": Protocol("activitynet", True, False, 50, True, True, True,
                            np.float64, True, heap_order_in_frame=True),
    "pyslowfast": Protocol("pyslowfast", True, False, None, True, False, False,
                           np.float64, True),
    "activitynet2020": Protocol("activitynet2020", True, False, 50, True, True, True,
                                np.float64, True, decimal_keyframes=True,
                                uses_exclusions=False, only_listed_frames=True,
                                heap_order_in_frame=True),
}


def get_protocol(name: str) -> Protocol:
    if name not in _PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; expected one of {', '.join(PROTOCOLS)}")
    return _PROTOCOLS[name]
