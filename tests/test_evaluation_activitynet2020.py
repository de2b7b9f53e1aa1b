"""The activitynet2020 protocol (the official evaluator since its AVA-Kinetics update): hand
cases for each of its rules, and exact parity with a plain-loop reference of those rules
(``helpers.plain_reference.plain_evaluate_2020_files``) on random AVA-Kinetics-shaped files."""

from __future__ import annotations

import heapq
import json
import math

import numpy as np
import pytest

from helpers.ava_fixture import ACTIONS, LABELS
from pipeline.ava.label_map import LabelMap, write_label_map
from pipeline.errors import InputError
from pipeline.evaluation.evaluator import evaluate, evaluate_files
from pipeline.evaluation.command import main as eval_main
from pipeline.evaluation.official_csv import read_official_detections, read_official_ground_truth
from pipeline.evaluation.top_k import reference_list_rank
from helpers.plain_reference import plain_evaluate_2020_files

PROTOCOL = "activitynet2020"
AVA60 = LabelMap(ids=tuple(LABELS), names=LABELS)  # the 60 evaluated of AVA's 80 actions


def write_case(tmp_path, gt_lines, det_lines, label_map=AVA60):
    paths = {"gt": tmp_path / "gt.csv", "det": tmp_path / "det.csv",
             "labels": tmp_path / "labels.pbtxt"}
    paths["gt"].write_text("".join(f"{line}\n" for line in gt_lines))
    paths["det"].write_text("".join(f"{line}\n" for line in det_lines))
    write_label_map(paths["labels"], label_map)
    return paths


def run(paths):
    got = evaluate_files(paths["gt"], paths["det"], paths["labels"], protocol=PROTOCOL)
    want = plain_evaluate_2020_files(paths["gt"], paths["det"], paths["labels"])
    for class_id, ap in want["per_class"].items():
        have = got.per_class[class_id].ap
        assert (math.isnan(ap) and math.isnan(have)) or ap == have, (class_id, ap, have)
    return got


def box(x1, y1, x2, y2):
    return f"{x1},{y1},{x2},{y2}"


FULL = box(0.0, 0.0, 1.0, 1.0)


def test_keyframes_without_actions_score_false_positives_and_unlisted_ones_are_ignored(
        tmp_path):
    paths = write_case(tmp_path, [
        f"-5KQ66BBWC4,17.010000,{FULL},12",     # Kinetics: 7 columns, no person id
        "-5KQ66BBWC4,18.500000",                # a keyframe without actions
    ], [
        f"-5KQ66BBWC4,17.01,{FULL},12,0.9",     # the same keyframe written differently: a hit
        f"-5KQ66BBWC4,18.5,{FULL},12,0.95",     # on the keyframe without actions: a miss
        f"-5KQ66BBWC4,19.000000,{FULL},12,0.99",  # a keyframe the ground truth lacks: ignored
    ])
    result = run(paths)
    # miss at 0.95, then hit at 0.9: precision 1/2 at recall 1.
    assert result.per_class[12].ap == 0.5 and result.per_class[12].n_detections == 2
    assert result.per_class[1].ap != result.per_class[1].ap  # no ground truth: NaN
    assert result.map == 0.5


@pytest.mark.parametrize("gt_time, det_time, same", [
    ("17.01", "17.010000", True), ("0902", "902.000000", True), ("902", "902", True),
    ("17.0100004", "17.01", True), ("17.0100006", "17.01", False),
    ("0.0000004", "0", True), ("-0.0000001", "0", False),  # "-0.000000" is its own key
    ("-3.250000", "-3.25", True),
])
def test_keyframes_are_the_six_decimal_text_of_the_timestamp(tmp_path, gt_time, det_time, same):
    paths = write_case(tmp_path, [f"vid,{gt_time},{FULL},12"],
                       [f"vid,{det_time},{FULL},12,0.9"])
    assert run(paths).per_class[12].ap == (1.0 if same else 0.0)


def test_ground_truth_of_classes_outside_the_label_map_still_lists_the_keyframe(tmp_path):
    paths = write_case(tmp_path, [f"vid,1.5,{FULL},12", f"vid,2.5,{FULL},2"],  # 2 unscored
                       [f"vid,1.5,{FULL},12,0.5", f"vid,2.5,{FULL},12,0.8"])
    assert run(paths).per_class[12].ap == 0.5  # the detection at 2.5 is a false positive


def test_top_50_per_keyframe_across_classes(tmp_path):
    gt = [f"vid,3.0,{FULL},12"]
    crowd = [f"vid,3.0,{box(0.0, 0.0, 0.1, 0.1)},14,{0.5 + k / 1000:.3f}" for k in range(50)]
    paths = write_case(tmp_path, gt, [*crowd, f"vid,3.0,{FULL},12,0.4"])
    result = run(paths)
    assert result.per_class[12].ap == 0.0 and result.per_class[12].n_detections == 0
    paths = write_case(tmp_path, gt, [*crowd[1:], f"vid,3.0,{FULL},12,0.4"])
    assert run(paths).per_class[12].ap == 1.0


def test_ground_truth_is_visited_by_its_eighth_column_read_as_a_score(tmp_path):
    # A (8 columns, person 0: score 0.0) comes first in the file, B (7 columns: score 1.0)
    # is visited first. The first detection has IoU 0.6 with both and takes B, the second
    # is B itself: a miss. Visited in file order, both would hit.
    a, b = box(0.0, 0.0, 0.5, 1.0), box(0.25, 0.0, 0.75, 1.0)
    paths = write_case(tmp_path, [f"vid,5.0,{a},12,0", f"vid,5.0,{b},12"],
                       [f"vid,5.0,{box(0.125, 0.0, 0.625, 1.0)},12,0.9", f"vid,5.0,{b},12,0.8"])
    assert run(paths).per_class[12].ap == 0.5


def test_equal_scores_inside_a_keyframe_follow_the_heap_layout_not_the_file(tmp_path):
    # Ground truth: both 7-column rows score 1.0; B's tuple is smaller (y1 first), so the heap
    # puts it first: the first detection (IoU 0.6 with both) takes B and A is left for the
    # second. In file order it would take A and the second would miss.
    a, b = box(0.0, 0.25, 1.0, 0.75), box(0.0, 0.0, 1.0, 0.5)
    paths = write_case(tmp_path, [f"vid,7.0,{a},12", f"vid,7.0,{b},12"],
                       [f"vid,7.0,{box(0.0, 0.125, 1.0, 0.625)},12,0.9", f"vid,7.0,{a},12,0.8"])
    assert run(paths).per_class[12].ap == 1.0
    # Detections: X (a hit) and Y (no overlap) score the same; Y's tuple is smaller, so Y is
    # matched and listed first, which decides where argsort puts the hit among equal scores.
    g = box(0.0, 0.25, 0.5, 0.75)
    paths = write_case(tmp_path, [f"vid,8.0,{g},12"],
                       [f"vid,8.0,{g},12,0.9", f"vid,8.0,{box(0.5, 0.0, 1.0, 0.125)},12,0.9"])
    hit_first = np.argsort(np.array([0.9, 0.9]))[::-1][0] == 1  # listed: [Y miss, X hit]
    assert run(paths).per_class[12].ap == (1.0 if hit_first else 0.5)


def test_seven_column_detections_score_one_and_invalid_boxes_are_dropped(tmp_path):
    small = box(0.0, 0.0, 0.5, 0.5)
    paths = write_case(tmp_path, [f"vid,1.0,{FULL},12", f"vid,1.0,{small},12"],
                       [f"vid,1.0,{FULL},12", f"vid,1.0,{box(0.5, 0, 0.5, 0.5)},12,0.99",
                        "vid,1.0", f"vid,1.0,{small},12,0.5"])
    result = run(paths)
    # Two hits (at 1.0 and 0.5); the zero-width box at 0.99 would have been a miss between.
    assert result.per_class[12].n_detections == 2 and result.per_class[12].ap == 1.0


def random_case(seed):
    """AVA-Kinetics-shaped files: Kinetics videos (YouTube ids, 7-column rows, timestamps with
    6 decimals) and AVA videos (8 columns with person ids, ``0902``), keyframes without
    actions as 2-column rows, all 80 action ids, boxes on a 1/8 grid (equal IoUs), scores with
    2 decimals (ties inside and across keyframes), some keyframes with more than 50
    detections, detections on keyframes the ground truth lacks, timestamps written
    differently in the two files, invalid boxes, and interleaved detection rows."""
    rng = np.random.default_rng(seed)
    grid = np.arange(9) / 8 if seed % 2 else np.arange(5) / 4  # coarse: more equal IoUs
    levels = 30 if seed % 3 else 4  # few score levels: many equal scores in one keyframe
    videos = [("-5KQ66BBWC4", "kinetics"), ("aZ_3xk9LmQ0", "kinetics"),
              ("1j20qq1JyX4", "ava"), ("_8Vy3dlHg2w", "kinetics")][:int(rng.integers(2, 5))]
    gt_lines, det_groups = [], []
    action_ids = np.array(sorted(ACTIONS))
    for video, kind in videos:
        n_frames = int(rng.integers(2, 6))
        if kind == "ava":
            times = rng.choice(np.arange(902, 1799), n_frames, replace=False)
            texts = [(f"{t:04d}", f"{t}") for t in times]
        else:
            times = np.round(rng.uniform(-2.0, 300.0, n_frames), 6)
            texts = [(f"{t:.6f}", f"{t:.6f}".rstrip("0") if rng.random() < 0.5 else f"{t:.7f}")
                     for t in times]
        for gt_text, det_text in texts:
            people = []
            if rng.random() < 0.2:
                gt_lines.append(f"{video},{gt_text}")
            else:
                crowd = rng.random() < 0.3  # a row of people doing the same thing
                lefts = rng.choice(np.arange(5) / 8, 4, replace=False)
                for person in range(int(rng.integers(1, 5))):
                    x = np.sort(rng.choice(grid, 2, replace=False))
                    y = np.sort(rng.choice(grid, 2, replace=False))
                    if crowd:  # equal IoUs with neighbours an eighth or a quarter apart
                        x, y = (lefts[person], lefts[person] + 0.5), (0.25, 0.75)
                    people.append((x[0], y[0], x[1], y[1]))
                    pool = action_ids if rng.random() < 0.5 else np.array([1, 2, 12, 14, 80])
                    pool = np.array([12]) if crowd else pool
                    for action in rng.choice(pool, min(len(pool), int(rng.integers(1, 4))),
                                             replace=False):
                        row = f"{video},{gt_text},{box(*people[-1])},{action}"
                        eight = rng.random() < (0.9 if kind == "ava" else 0.1)
                        gt_lines.append(f"{row},{person}" if eight else row)
            det_groups.append(_detections(rng, video, det_text, people, grid, levels))
            if rng.random() < 0.2:  # a keyframe the ground truth does not list
                det_groups.append(_detections(rng, video, f"{rng.uniform(400, 500):.6f}",
                                              people, grid, levels))
    order = rng.permutation(len(gt_lines)) if rng.random() < 0.5 else np.arange(len(gt_lines))
    gt_lines = [gt_lines[i] for i in order]
    det_lines = [line for group in det_groups for line in group]
    if rng.random() < 0.5:
        det_lines = [det_lines[i] for i in rng.permutation(len(det_lines))]
    return gt_lines, det_lines


def _detections(rng, video, time_text, people, grid, levels):
    """Rows for each person box (jittered or not) and a few others: a handful of classes,
    or 40 to 80 of them (more than 50 rows per keyframe); the classes come from a few AVA
    ids most of the time, so that boxes of one keyframe share classes."""
    lines = []
    boxes = list(people) + [tuple(rng.choice(grid, 4)) for _ in range(int(rng.integers(0, 3)))]
    # halfway to a right neighbour: equal IoU with two ground-truth boxes
    for x1, y1, x2, y2 in people:
        shift = rng.choice([-0.125, 0.125])
        if 0 <= x1 + shift and x2 + shift <= 1 and rng.random() < 0.5:
            boxes.append((x1 + shift, y1, x2 + shift, y2))
    common = np.array([1, 2, 12, 14, 17, 79, 80])  # 2 is not evaluated
    for x1, y1, x2, y2 in boxes:
        if rng.random() < 0.5:  # jitter on the grid
            x1, x2 = x1 + rng.choice([-0.125, 0, 0.125]), x2 + rng.choice([-0.125, 0, 0.125])
        if rng.random() < 0.3:
            classes = rng.choice(np.arange(1, 81), int(rng.integers(40, 81)), replace=False)
        else:
            classes = rng.choice(common, int(rng.integers(1, 6)), replace=False)
        for action in classes:
            score = f"{rng.integers(1, levels) / levels:.2f}"
            row = f"{video},{time_text},{box(x1, y1, x2, y2)},{action}"
            lines.append(row if rng.random() < 0.02 else f"{row},{score}")
    return lines


@pytest.mark.parametrize("seed", range(40))
def test_matches_plain_reference_on_random_ava_kinetics_files(tmp_path, seed):
    gt_lines, det_lines = random_case(seed)
    paths = write_case(tmp_path, gt_lines, det_lines)
    got = run(paths)
    want = plain_evaluate_2020_files(paths["gt"], paths["det"], paths["labels"])
    assert (math.isnan(want["mAP"]) and math.isnan(got.map)) or want["mAP"] == got.map
    assert any(r.n_detections for r in got.per_class.values())
    # The table API with the same columns gives the same numbers.
    gt, keyframes = read_official_ground_truth(paths["gt"])
    same = evaluate(gt, read_official_detections(paths["det"]), AVA60,
                    keyframes_without_actions=keyframes, protocol=PROTOCOL)
    assert same.to_json() == got.to_json()


def test_reference_list_rank_is_the_heap_order():
    """Kept rows are the heap's, and inside each action they are listed in its order."""
    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(1, 60))
        k = None if trial % 3 == 0 else int(rng.integers(1, 12))
        frame = rng.integers(0, 3, n).astype(np.int64)
        score = rng.integers(0, 4, n) / 4
        action = rng.integers(1, 4, n)
        boxes = rng.integers(0, 3, (n, 4)) / 4
        rank = reference_list_rank(frame, score, action, boxes, k)
        for f in range(3):
            heap = []
            for i in np.flatnonzero(frame == f):
                entry = (score[i], action[i], boxes[i, 1], boxes[i, 0], boxes[i, 3], boxes[i, 2])
                if k is None or len(heap) < k:
                    heapq.heappush(heap, entry)
                elif entry[0] > heap[0][0]:
                    heapq.heapreplace(heap, entry)
            want = sorted(heap, key=lambda e: -e[0])
            rows = np.flatnonzero((frame == f) & (rank >= 0))
            have = [None] * len(rows)
            for i in rows:
                have[rank[i]] = (score[i], action[i], boxes[i, 1], boxes[i, 0], boxes[i, 3],
                                 boxes[i, 2])
            # The order that matters downstream: inside each action (scores per class).
            for a in (1, 2, 3):
                assert [e for e in have if e[1] == a] == [e for e in want if e[1] == a], trial
            assert sorted(have) == sorted(want), trial


def test_reader_errors_name_the_line_and_the_command_refuses_exclusions(tmp_path, capsys):
    paths = write_case(tmp_path, [f"vid,1.0,{FULL},12", "vid,2.0,0.1"],
                       [f"vid,1.0,{FULL},12,0.9"])
    with pytest.raises(InputError, match=r"gt.csv:2: expected 2, 7 or 8 columns, found 3"):
        read_official_ground_truth(paths["gt"])
    paths = write_case(tmp_path, [f"vid,1.0,{FULL},12"], [f"vid,1.0,{FULL},12,0.9",
                                                          f"vid,one,{FULL},12,0.9"])
    with pytest.raises(InputError, match=r"det.csv:2: timestamp='one' is not a finite number"):
        read_official_detections(paths["det"])
    paths = write_case(tmp_path, [f"vid,1.0,{FULL},12"], [f"vid,1.0,{FULL},12,0.9"])
    exclusions = tmp_path / "excl.csv"
    exclusions.write_text("vid,0001\n")
    argv = ["eval", str(paths["gt"]), str(paths["det"]), "--label-map", str(paths["labels"]),
            "--protocol", PROTOCOL]
    assert eval_main([*argv, "--exclusions", str(exclusions)]) == 2
    assert "has no exclusions" in capsys.readouterr().err
    out = tmp_path / "metrics.json"
    assert eval_main([*argv, "--json", str(out)]) == 0
    assert "mAP (activitynet2020)" in capsys.readouterr().out
    assert json.loads(out.read_text())["mAP"] == 1.0


def test_uniform_files_read_column_wise_as_the_general_reader_reads_them(tmp_path):
    """Files whose rows all have 7 or all 8 columns take a column-wise path; one 2-column row
    sends a file through the line-by-line reader, which must give the same table."""
    gt_lines, det_lines = random_case(5)
    eight = [line for line in det_lines if line.count(",") == 7]
    seven = [line for line in gt_lines if line.count(",") == 6]
    for lines, read in ((eight, read_official_detections), (seven, read_official_ground_truth)):
        uniform, general = tmp_path / "uniform.csv", tmp_path / "general.csv"
        uniform.write_text("".join(f"{line}\n" for line in lines))
        general.write_text("".join(f"{line}\n" for line in [*lines, "vid,1.500000"]))
        a, b = read(uniform), read(general)
        if read is read_official_ground_truth:
            assert len(a[1]) == 0 and b[1]["timestamp"].tolist() == [1.5]
            a, b = a[0], b[0]
        assert len(a) == len(lines) > 10
        for name in a.columns:
            assert a[name].astype(str).tolist() == b[name].astype(str).tolist(), name
            if name != "video_id":
                assert np.array_equal(a[name].to_numpy(), b[name].to_numpy(), equal_nan=True)


def test_pipeline_tables_with_integer_timestamps_and_exclusions(tmp_path):
    """The stages pass AVA tables (int32 timestamps, an exclusions table): the protocol reads
    them as the official script reads the same files, and uses no exclusions."""
    from pipeline.ava.annotations import read_annotations
    from pipeline.ava.exclusions import read_exclusions
    from pipeline.ava.results import read_results
    from helpers.evaluation_cases import write_case as write_ava_case

    paths, _ = write_ava_case(tmp_path)
    labels = LabelMap(ids=(1, 2, 80), names={1: "a", 2: "b", 80: "c"})
    got = evaluate(read_annotations(paths["gt"], box_dtype=np.float64),
                   read_results(paths["det"]), labels,
                   exclusions=read_exclusions(paths["excl"]), protocol=PROTOCOL)
    want = plain_evaluate_2020_files(paths["gt"], paths["det"], paths["labels"])
    assert [got.per_class[c].ap for c in labels.ids] == [want["per_class"][c]
                                                         for c in labels.ids]
    assert 0 < got.map < 1
