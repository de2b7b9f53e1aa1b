"""AVA evaluation: hand-computed cases, parity with a plain reference, the eval command."""

from __future__ import annotations

import heapq
import json
import math

import numpy as np
import pandas as pd
import pytest

from pipeline.ava.annotations import write_annotations
from pipeline.ava.label_map import LabelMap, write_label_map
from pipeline.ava.results import write_results_csv, write_results_parquet
from pipeline.evaluation.evaluator import evaluate, evaluate_files
from pipeline.evaluation.command import main as eval_main
from pipeline.evaluation.evaluator import describe
from pipeline.evaluation.top_k import cap_per_frame
from helpers.evaluation_cases import det_table, gt_table, random_case, to_frames, write_case
from helpers.plain_reference import plain_evaluate, plain_evaluate_files

LABELS = LabelMap(ids=(1, 2, 80), names={1: "stand", 2: "sit", 80: "watch"},
                  groups={1: "movement", 2: "movement", 80: "interaction"})
FULL = (0.0, 0.0, 1.0, 1.0)


def box_x(x1, x2):
    return (x1, 0.0, x2, 1.0)


def ap_of(result, class_id=1):
    return result.per_class[class_id].ap


@pytest.mark.parametrize("protocol", ["mmaction2", "activitynet", "pyslowfast"])
def test_equal_scores_follow_the_references_argsort_order(protocol):
    # A hit on keyframe 902 and a miss on 903 with the same score: the references rank the
    # class's concatenated scores with np.argsort(...)[::-1], which decides who comes first.
    gt = gt_table([("v", 902, FULL, 1), ("v", 903, FULL, 1)])
    det = det_table([("v", 902, FULL, 1, 0.5), ("v", 903, box_x(0.0, 0.1), 1, 0.5)])
    result = evaluate(gt, det, LABELS, protocol=protocol)
    dtype = np.float32 if protocol == "mmaction2" else np.float64
    miss_first = np.argsort(np.array([0.5, 0.5], dtype=dtype))[::-1][0] == 1
    # miss then hit: precision 1/2 at recall 1/2; hit then miss: precision 1 at recall 1/2.
    assert ap_of(result) == pytest.approx(0.25 if miss_first else 0.5, abs=1e-15)


def test_duplicate_detection_of_one_box_is_a_false_positive():
    gt = gt_table([("v", 902, box_x(0.0, 0.4), 1), ("v", 902, box_x(0.5, 0.9), 1)])
    det = det_table([("v", 902, box_x(0.0, 0.4), 1, 0.9), ("v", 902, box_x(0.0, 0.4), 1, 0.8),
                     ("v", 902, box_x(0.5, 0.9), 1, 0.7)])
    # hit, miss, hit: recall 1/2 at precision 1, recall 1 at precision 2/3.
    assert ap_of(evaluate(gt, det, LABELS)) == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-15)


def test_detection_takes_its_best_box_and_never_falls_back():
    gt = gt_table([("v", 902, box_x(0.0, 0.4), 1), ("v", 902, box_x(0.1, 0.5), 1)])
    # First detection: IoU 0.667 with box A, 0.875 with box B -> claims B.
    # Second: IoU 0.56 with A, 0.95 with B (claimed) -> a miss, although A is free.
    det = det_table([("v", 902, box_x(0.1, 0.45), 1, 0.9), ("v", 902, box_x(0.12, 0.5), 1, 0.8)])
    for protocol in ("mmaction2", "activitynet", "pyslowfast"):
        assert ap_of(evaluate(gt, det, LABELS, protocol=protocol)) == pytest.approx(0.5)


def test_empty_classes_per_protocol():
    gt = gt_table([("v", 902, FULL, 1), ("v", 902, FULL, 2)])
    det = det_table([("v", 902, FULL, 1, 0.9), ("v", 902, FULL, 80, 0.9)])
    mm = evaluate(gt, det, LABELS, protocol="mmaction2")
    assert math.isnan(mm.per_class[2].ap) and math.isnan(mm.per_class[80].ap)
    assert mm.map == 1.0  # only class 1 received detections and has ground truth
    an = evaluate(gt, det, LABELS, protocol="activitynet")
    assert an.per_class[2].ap == 0.0 and math.isnan(an.per_class[80].ap)
    assert an.map == 0.5
    assert an.per_class[2].gt_count == 1 and an.per_class[80].n_detections == 1
    assert an.group_means == {"movement": 0.5, "interaction": pytest.approx(float("nan"),
                                                                              nan_ok=True)}


def test_excluded_keyframes_per_protocol():
    gt = gt_table([("v", 902, FULL, 1), ("v", 903, FULL, 1)])
    det = det_table([("v", 902, FULL, 1, 0.9), ("v", 903, FULL, 1, 0.8)])
    excl = pd.DataFrame({"video_id": pd.Series(["v"], dtype="str"),
                         "timestamp": np.array([903], dtype=np.int32)})
    mm = evaluate(gt, det, LABELS, exclusions=excl)
    # mmaction2 counts the excluded keyframe's ground truth but not its detection.
    assert mm.per_class[1].gt_count == 2 and ap_of(mm) == 0.5
    an = evaluate(gt, det, LABELS, exclusions=excl, protocol="activitynet")
    assert an.per_class[1].gt_count == 1 and ap_of(an) == 1.0
    assert ap_of(evaluate(gt, det, LABELS, exclusions=excl, protocol="pyslowfast")) == 1.0


def test_detections_on_keyframes_without_ground_truth_per_protocol():
    gt = gt_table([("v", 902, FULL, 1)])
    det = det_table([("v", 905, FULL, 1, 0.95), ("v", 902, FULL, 1, 0.9)])
    assert ap_of(evaluate(gt, det, LABELS, protocol="mmaction2")) == 1.0  # ignored
    for protocol in ("activitynet", "pyslowfast"):  # a false positive ranked first
        assert ap_of(evaluate(gt, det, LABELS, protocol=protocol)) == 0.5


def test_iou_of_exactly_one_half_is_a_hit_and_rounding_follows_each_reference():
    gt = gt_table([("v", 902, box_x(0.0, 0.5), 1)])
    det = det_table([("v", 902, FULL, 1, 0.9)])  # IoU exactly 0.5 in binary
    for protocol in ("mmaction2", "activitynet", "pyslowfast"):
        assert ap_of(evaluate(gt, det, LABELS, protocol=protocol)) == 1.0
    # IoU 0.2 / 0.4 in decimal: float32 (mmaction2) gives 0.50000004, a hit; float64 (the
    # TF-OD-API evaluators) gives 0.49999999999999994, a miss.
    gt = gt_table([("v", 902, box_x(0.1, 0.3), 1)])
    det = det_table([("v", 902, box_x(0.1, 0.5), 1, 0.9)])
    assert ap_of(evaluate(gt, det, LABELS, protocol="mmaction2")) == 1.0
    assert ap_of(evaluate(gt, det, LABELS, protocol="activitynet")) == 0.0


def test_score_threshold_is_strict():
    gt = gt_table([("v", 902, FULL, 1)])
    det = det_table([("v", 902, FULL, 1, 0.002), ("v", 902, box_x(0.0, 0.1), 1, 0.5)])
    assert ap_of(evaluate(gt, det, LABELS, score_threshold=0.002)) == 0.0  # hit at 0.002 dropped
    assert ap_of(evaluate(gt, det, LABELS, score_threshold=0.001)) == 0.5


def test_mmaction2_protocol_counts_every_row_of_a_result_csv(tmp_path):
    """ava_eval applies no score threshold to a result CSV (mmaction2's 0.002 acts earlier, in
    bbox2result, where detections_table applies it here): rows scoring <= 0.002 count."""
    gt = gt_table([("v", 902, FULL, 1), ("v", 903, FULL, 1)])
    det = det_table([("v", 902, FULL, 1, 0.5), ("v", 902, box_x(0.0, 0.1), 1, 0.0015),
                     ("v", 903, FULL, 1, 0.001)])
    paths = {"gt": tmp_path / "gt.csv", "det": tmp_path / "det.csv",
             "labels": tmp_path / "labels.pbtxt"}
    write_annotations(paths["gt"], gt)
    write_results_csv(paths["det"], det)
    write_label_map(paths["labels"], LABELS)
    result = evaluate_files(paths["gt"], paths["det"], paths["labels"], protocol="mmaction2")
    # TP 0.5, FP 0.0015, TP 0.001: AP = 0.5 * 1 + 0.5 * 2/3 (0.5 if the last two were dropped)
    assert ap_of(result) == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-12)
    assert result.per_class[1].n_detections == 3
    want = plain_evaluate_files(paths["gt"], paths["det"], paths["labels"], protocol="mmaction2")
    assert ap_of(result) == pytest.approx(want["per_class"][1], abs=1e-12)
    # the command line, --protocol mmaction2, agrees
    out = tmp_path / "metrics.json"
    assert eval_main(["eval", str(paths["gt"]), str(paths["det"]), "--label-map",
                      str(paths["labels"]), "--protocol", "mmaction2", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["mAP"] == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-12)

    # a whole random case scaled below 0.002: every row still counts, as in the reference
    (tmp_path / "low").mkdir()
    paths, det = write_case(tmp_path / "low")
    det["score"] *= 0.002
    write_results_csv(paths["det"], det)
    got = evaluate_files(paths["gt"], paths["det"], paths["labels"],
                         exclusions_path=paths["excl"], protocol="mmaction2")
    want = plain_evaluate_files(paths["gt"], paths["det"], paths["labels"], paths["excl"],
                                protocol="mmaction2")
    assert 0 < got.map < 1 and got.map == pytest.approx(want["mAP"], abs=1e-12)


@pytest.mark.parametrize("protocol", ["mmaction2", "pyslowfast", "activitynet"])
def test_matches_plain_reference_on_random_inputs(protocol):
    labels = LabelMap(ids=(1, 2, 80), names={1: "a", 2: "b", 80: "c"})
    for seed in range(40):
        # Coarse scores make ties across keyframes and inside them (activitynet's heap then
        # orders equal scores of one keyframe by its internal layout).
        gt_rows, det_rows, excluded = random_case(seed, score_decimals=2,
                                                  distinct_in_frame=False)
        gt_rows_full = [(v, t, *b, a, p) for v, t, b, a, p in gt_rows]
        det_rows_full = [(v, t, *b, a, s) for v, t, b, a, s in det_rows]
        expected = plain_evaluate(gt_rows_full, det_rows_full, list(labels.ids), excluded,
                                  protocol=protocol)
        got = evaluate(*to_frames(gt_rows, det_rows, excluded)[:2], labels,
                       exclusions=to_frames(gt_rows, det_rows, excluded)[2], protocol=protocol)
        for class_id in labels.ids:
            want, have = expected["per_class"][class_id], got.per_class[class_id].ap
            assert (math.isnan(want) and math.isnan(have)) or want == have, (seed, class_id)
        assert (math.isnan(expected["mAP"]) and math.isnan(got.map)) or \
            abs(expected["mAP"] - got.map) < 1e-12, seed


def test_activitynet_keyframe_order_is_first_appearance_before_the_cap():
    """The reference concatenates keyframes in the order its dict first saw them, before the
    cap: keyframe 902 comes first although its first row is evicted and 903's row comes
    before 902's first kept one. The equal scores of 902's hit and 903's miss then fall in
    argsort's order over (902, 903)."""
    labels = LabelMap(ids=(12, 14), names={12: "a", 14: "b"})
    gt = [("v", 902, FULL, 12, 0)]
    det = [("v", 902, box_x(0.0, 0.1), 12, 0.1), ("v", 903, box_x(0.0, 0.1), 12, 0.5),
           *[("v", 902, box_x(0.0, 0.1), 14, 0.6)] * 49, ("v", 902, FULL, 12, 0.5)]
    got = evaluate(gt_table(gt), det_table(det), labels, protocol="activitynet")
    want = plain_evaluate([(v, t, *b, a, p) for v, t, b, a, p in gt],
                          [(v, t, *b, a, s) for v, t, b, a, s in det], [12, 14], set(),
                          protocol="activitynet")
    miss_first = np.argsort(np.array([0.5, 0.5]))[::-1][0] == 1  # order (902 hit, 903 miss)
    assert got.per_class[12].ap == want["per_class"][12] == (0.5 if miss_first else 1.0)


def heap_survivors(rows, k):
    heap = []
    for index, (score, action, x1, y1, x2, y2) in enumerate(rows):
        entry = (score, action, y1, x1, y2, x2, index)
        if len(heap) < k:
            heapq.heappush(heap, entry)
        elif score > heap[0][0]:
            heapq.heapreplace(heap, entry)
    return sorted(tuple(e[:6]) for e in heap)


def test_cap_per_frame_keeps_what_the_reference_heap_keeps():
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 40))
        k = int(rng.integers(1, 12))
        frame = rng.integers(0, 3, n)
        score = rng.integers(0, 4, n) / 4  # heavy ties at the boundary
        action = rng.integers(1, 4, n)
        boxes = rng.integers(0, 3, (n, 4)) / 4
        kept = cap_per_frame(frame.astype(np.int64), score, action, boxes, k)
        for f in range(3):
            rows = [(score[i], action[i], *boxes[i]) for i in range(n) if frame[i] == f]
            want = heap_survivors(rows, k)
            have = sorted((score[i], action[i], boxes[i, 1], boxes[i, 0], boxes[i, 3],
                           boxes[i, 2]) for i in kept if frame[i] == f)
            assert have == want, trial


@pytest.mark.parametrize("protocol", ["mmaction2", "pyslowfast"])
def test_files_match_plain_reference_reading_the_same_files(tmp_path, protocol):
    paths, _ = write_case(tmp_path)
    got = evaluate_files(paths["gt"], paths["det"], paths["labels"],
                         exclusions_path=paths["excl"], protocol=protocol)
    want = plain_evaluate_files(paths["gt"], paths["det"], paths["labels"], paths["excl"],
                                protocol=protocol)
    assert got.map == pytest.approx(want["mAP"], abs=1e-12)
    assert 0 < got.map < 1


def test_eval_command_prints_table_and_writes_json(tmp_path, capsys):
    paths, det = write_case(tmp_path)
    out = tmp_path / "metrics.json"
    code = eval_main(["eval", str(paths["gt"]), str(paths["det"]), "--label-map",
                      str(paths["labels"]), "--exclusions", str(paths["excl"]), "--json",
                      str(out)])
    assert code == 0
    metrics = json.loads(out.read_text())
    expected = evaluate_files(paths["gt"], paths["det"], paths["labels"],
                              exclusions_path=paths["excl"])
    assert metrics["mAP"] == pytest.approx(expected.map, abs=1e-15)
    assert set(metrics["per_class"]) == {"1", "2", "80"}
    assert "mAP (mmaction2)" in capsys.readouterr().out
    # Parquet detections give the same numbers up to float32 storage of the scores.
    write_results_parquet(tmp_path / "det.parquet", det)
    from_parquet = evaluate_files(paths["gt"], tmp_path / "det.parquet", paths["labels"],
                                  exclusions_path=paths["excl"])
    assert from_parquet.map == pytest.approx(expected.map, abs=1e-3)


def test_eval_command_reports_bad_line_and_exits_non_zero(tmp_path, capsys):
    paths, _ = write_case(tmp_path)
    lines = paths["det"].read_text().splitlines()
    lines[4] = lines[4].replace(",", ";", 1)
    paths["det"].write_text("\n".join(lines) + "\n")
    code = eval_main(["eval", str(paths["gt"]), str(paths["det"]), "--label-map",
                      str(paths["labels"])])
    assert code == 2
    assert f"{paths['det']}:5" in capsys.readouterr().err


def test_eval_command_refuses_detection_boxes_outside_the_image_unless_clipped(tmp_path, capsys):
    """a detection box outside [0, 1] is an error naming file and line, as a
    ground-truth box is; ``--clip-boxes`` clips it; float32 rounding of 1.0 passes."""
    paths, det = write_case(tmp_path)
    argv = ["eval", str(paths["gt"]), str(paths["det"]), "--label-map", str(paths["labels"])]
    lines = paths["det"].read_text().splitlines()
    fields = lines[6].split(",")
    fields[4] = "1.2000"                                        # x2
    lines[6] = ",".join(fields)
    paths["det"].write_text("\n".join(lines) + "\n")
    assert eval_main(argv) == 2
    err = capsys.readouterr().err
    assert f"{paths['det']}:7: x2=1.2 is outside [0, 1]" in err and "--clip-boxes" in err
    assert eval_main([*argv, "--clip-boxes", "--json", str(tmp_path / "clipped.json")]) == 0
    fields[4] = "1.0000"
    lines[6] = ",".join(fields)
    (tmp_path / "by_hand.csv").write_text("\n".join(lines) + "\n")
    by_hand = evaluate_files(paths["gt"], tmp_path / "by_hand.csv", paths["labels"])
    assert json.loads((tmp_path / "clipped.json").read_text())["mAP"] == pytest.approx(
        by_hand.map, abs=1e-15)
    det.loc[det.index[0], "x2"] = 1.0000001                     # float32 rounding of 1.0
    det.loc[det.index[1], "y1"] = -1e-7
    write_results_parquet(tmp_path / "det.parquet", det)
    evaluate_files(paths["gt"], tmp_path / "det.parquet", paths["labels"])


def test_a_label_map_without_label_type_reports_no_group_means(tmp_path, capsys):
    """mmaction2's own 3-class test label map (ids 1-3, item form) is no AVA
    movement list: the report has the overall mAP only, unless --ava-groups asks for AVA's
    ranges, which refuse an id that is not one of AVA's."""
    labels = tmp_path / "labels.pbtxt"
    labels.write_text('item {\n  name: "person"\n  id: 1\n}\nitem {\n  name: "hand"\n'
                      '  id: 2\n}\nitem {\n  name: "tool"\n  id: 3\n}\n')
    gt, det = tmp_path / "gt.csv", tmp_path / "det.csv"
    write_annotations(gt, gt_table([("v", 902, FULL, 1), ("v", 902, FULL, 3)]))
    write_results_csv(det, det_table([("v", 902, FULL, 1, 0.9), ("v", 902, FULL, 3, 0.8)]))
    result = evaluate_files(gt, det, labels)
    assert result.map == 1.0 and result.group_means == {}
    assert result.to_json()["group_mAP"] == {} and describe(result.to_json()) == "mAP 1.0000"
    argv = ["eval", str(gt), str(det), "--label-map", str(labels)]
    assert eval_main(argv) == 0
    out = capsys.readouterr().out
    assert "mAP (mmaction2)" in out and "movement" not in out
    assert eval_main([*argv, "--ava-groups"]) == 0
    assert "mAP movement" in capsys.readouterr().out
    labels.write_text(labels.read_text().replace("id: 3", "id: 81"))
    write_annotations(gt, gt_table([("v", 902, FULL, 1)]))
    assert eval_main([*argv, "--ava-groups"]) == 2
    assert "81 is not one of AVA's actions" in capsys.readouterr().err


def test_undefined_map_is_null_with_its_reason_not_an_error(tmp_path, capsys):
    # What a diverged model gives: every detection on a class without ground truth.
    gt = gt_table([("v", 902, FULL, 1), ("v", 903, FULL, 2)])
    det = det_table([("v", 902, FULL, 80, 0.9), ("v", 903, FULL, 80, 0.8)])
    result = evaluate(gt, det, LABELS, protocol="mmaction2")
    plain = result.to_json()
    assert plain["mAP"] is None and set(plain["group_mAP"].values()) == {None}
    reasons = plain["undefined"]
    assert "no class has both ground truth and detections" in reasons["mAP"]
    assert reasons["per_class"]["80"].startswith("no ground-truth boxes")
    assert reasons["per_class"]["1"].startswith("no detections")
    line = describe(plain)
    assert line.startswith("mAP undefined;") and "interaction undefined" in line
    assert line.endswith(f"(mAP undefined: {reasons['mAP']})")
    # A defined result lists nothing as undefined beyond the classes that are.
    good = evaluate(gt, det_table([("v", 902, FULL, 1, 0.9)]), LABELS).to_json()
    assert good["mAP"] == 1.0 and "mAP" not in good["undefined"]
    assert describe(good).startswith("mAP 1.0000;")

    # The command prints the table and the reason, writes nulls, and exits 0.
    write_annotations(tmp_path / "gt.csv", gt)
    write_results_csv(tmp_path / "det.csv", det)
    write_label_map(tmp_path / "labels.pbtxt", LABELS)
    code = eval_main(["eval", str(tmp_path / "gt.csv"), str(tmp_path / "det.csv"),
                      "--label-map", str(tmp_path / "labels.pbtxt"), "--json",
                      str(tmp_path / "m.json")])
    assert code == 0
    assert "mAP undefined: no class has both" in capsys.readouterr().out
    written = json.loads((tmp_path / "m.json").read_text())
    assert written["mAP"] is None and written["undefined"]["mAP"] == reasons["mAP"]
