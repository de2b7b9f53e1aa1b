"""AVA file formats: round trips on hand-written fixtures, and every bad input named by line."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.ava.annotations import merge_boxes, read_annotations, write_annotations
from pipeline.ava.exclusions import read_exclusions, write_exclusions
from pipeline.ava.label_map import LabelMap, read_label_map, write_label_map
from pipeline.ava.proposals import read_proposal_pickle, write_proposal_pickle
from pipeline.proposals.table import filter_proposals
from pipeline.ava.results import read_results, write_results_csv, write_results_parquet
from pipeline.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "ava"


def test_label_map_both_forms_and_groups():
    item = read_label_map(FIXTURES / "action_list_item.pbtxt")
    label = read_label_map(FIXTURES / "action_list_label.pbtxt")
    assert item.ids == label.ids == (1, 12, 17, 79, 80)
    assert item.names == label.names
    assert item.names[79] == "talk to (e.g., self, a person, a group)"
    assert item.groups == {} and item.group_names() == ()     # no label_type: no groups
    assert item.with_ava_groups().groups == {1: "movement", 12: "movement", 17: "object",
                                             79: "interaction", 80: "interaction"}
    assert label.groups[80] == "long_term"
    assert label.with_ava_groups() == label                  # label_type wins over the ranges
    assert label.index_of(17) == 2 and label.num_classes == 5
    assert label.group_ids("movement") == (1, 12)
    with pytest.raises(ValueError, match="81 is not one of AVA's actions"):
        LabelMap(ids=(1, 81), names={1: "a", 81: "b"}).with_ava_groups()


@pytest.mark.parametrize("name", ["action_list_item.pbtxt", "action_list_label.pbtxt"])
def test_label_map_round_trip(tmp_path, name):
    original = read_label_map(FIXTURES / name)
    write_label_map(tmp_path / "out.pbtxt", original)
    assert read_label_map(tmp_path / "out.pbtxt") == original
    form = "label {" if name.startswith("action_list_label") else "item {"
    assert (tmp_path / "out.pbtxt").read_text().startswith(form)


@pytest.mark.parametrize("text, line, message", [
    ('item {\n  name: "a"\n  id: 1\n}\nitem {\n  name: "b"\n  id: 1\n}\n', 7, "duplicate"),
    ('item {\n  name: "a"\n  idd: 1\n}\n', 3, "unknown field"),
    ('item {\n  name: "a"\n}\n', 1, "no 'id'"),
    ('item {\n  name: a\n  id: 1\n}\n', 2, "quoted string"),
    ('item {\n  name: "a"\n  id: x\n}\n', 3, "positive integer"),
    ('item {\n  name: "a"\n  id: 1\n', 3, "ends inside"),
    ('thing {\n}\n', 1, "expected 'item' or 'label'"),
])
def test_label_map_errors_name_the_line(tmp_path, text, line, message):
    path = tmp_path / "bad.pbtxt"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as error:
        read_label_map(path)
    assert f"bad.pbtxt:{line}" in str(error.value)


def test_annotations_read_exactly_and_round_trip_byte_identical(tmp_path):
    labels = read_label_map(FIXTURES / "action_list_item.pbtxt")
    df = read_annotations(FIXTURES / "ava_val_sample.csv", labels)
    assert list(df.columns) == ["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id",
                                "person_id"]
    assert [str(t) for t in df.dtypes] == ["str", "int32", "float32", "float32", "float32",
                                           "float32", "int16", "int32"]
    assert df["video_id"].iloc[6] == "-5KQ66BBWC4" and df["timestamp"].iloc[0] == 902
    write_annotations(tmp_path / "out.csv", df)
    assert (tmp_path / "out.csv").read_bytes() == (FIXTURES / "ava_val_sample.csv").read_bytes()


def test_annotations_without_person_id(tmp_path):
    lines = (FIXTURES / "ava_val_sample.csv").read_text().splitlines()
    path = tmp_path / "seven.csv"
    path.write_text("".join(line.rsplit(",", 1)[0] + "\n" for line in lines))
    df = read_annotations(path)
    assert (df["person_id"] == -1).all()
    write_annotations(tmp_path / "out.csv", df)
    assert (tmp_path / "out.csv").read_text() == path.read_text()


@pytest.mark.parametrize("row, message", [
    ("v,0902,0.1,0.1,0.5,0.5,12", "expected 8 columns"),
    ("v,0902,0.1,abc,0.5,0.5,12,0", "y1='abc' is not a number"),
    ("v,09.5,0.1,0.1,0.5,0.5,12,0", "timestamp='09.5' is not an integer"),
    ("v,0902,0.1,0.1,1.2,0.5,12,0", "x2=1.2.* outside \\[0, 1\\]"),
    ("v,0902,0.5,0.1,0.5,0.5,12,0", "x1=0.5 is not left of x2"),
    ("v,0902,0.1,0.6,0.5,0.5,12,0", "y1=0.6.* is not above y2"),
    ("v,0902,0.1,0.1,0.5,0.5,81,0", "action_id=81 is neither in the label map nor in AVA's "
                                    "actions 1..80"),
    ("v,0902,0.1,0.1,0.5,nan,12,0", "y2=nan is outside"),
    ("", "expected 8 columns, found 1"),
    ("v,0902,0.1,0.1,0.5,0.5", "found 6 .*7 or 8 are accepted"),
    ("..,0902,0.1,0.1,0.5,0.5,12,0", "video_id '..' cannot name a video file"),
    (".,0902,0.1,0.1,0.5,0.5,12,0", "video_id '.' cannot name a video file"),
    ("a/b,0902,0.1,0.1,0.5,0.5,12,0", "video_id 'a/b' cannot name a video file"),
    ("a\\b,0902,0.1,0.1,0.5,0.5,12,0", r"video_id 'a\\\\b' cannot name a video file"),
    (",0902,0.1,0.1,0.5,0.5,12,0", "video_id '' cannot name a video file"),
])
def test_annotation_errors_name_file_and_line(tmp_path, row, message):
    labels = read_label_map(FIXTURES / "action_list_item.pbtxt")
    good = (FIXTURES / "ava_val_sample.csv").read_text().splitlines()
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(good[:3] + [row] + good[3:]) + "\n")
    with pytest.raises(InputError, match=message) as error:
        read_annotations(path, labels)
    assert "bad.csv:4" in str(error.value)


def test_ids_outside_the_label_map_are_kept_but_neither_trained_nor_scored(tmp_path):
    """AVA's CSVs hold all 80 actions, the label map 60: the other ids are read and kept (a
    copy keeps them), merge_boxes does not train them, the evaluator does not score them."""
    from pipeline.evaluation.evaluator import evaluate

    labels = read_label_map(FIXTURES / "action_list_item.pbtxt")   # ids 1, 12, 17, 79, 80
    lines = (FIXTURES / "ava_val_sample.csv").read_text().splitlines()
    other = [line.rsplit(",", 2)[0] + ",2," + line.rsplit(",", 1)[1] for line in lines[:2]]
    path = tmp_path / "ava_val_v2.2.csv"
    path.write_text("\n".join(lines + other + ["v,0902,0.100,0.100,0.500,0.500,23,0"]) + "\n")
    df = read_annotations(path, labels)
    assert sorted(set(df["action_id"]) - set(labels.ids)) == [2, 23] and len(df) == len(lines) + 3
    write_annotations(tmp_path / "copy.csv", df)
    assert (tmp_path / "copy.csv").read_bytes() == path.read_bytes()
    boxes, multi_hot = merge_boxes(df, labels)
    plain, plain_hot = merge_boxes(read_annotations(FIXTURES / "ava_val_sample.csv"), labels)
    pd.testing.assert_frame_equal(boxes, plain)   # the box with only action 23 is not trained
    assert (multi_hot == plain_hot).all()
    result = evaluate(df, pd.DataFrame({"video_id": ["v"], "timestamp": [902], "x1": [0.1],
                                        "y1": [0.1], "x2": [0.5], "y2": [0.5],
                                        "action_id": [23], "score": [0.9]}), labels)
    assert set(result.per_class) == set(labels.ids)
    assert sum(r.gt_count for r in result.per_class.values()) == len(lines)


def test_a_full_action_list_bounds_the_ids(tmp_path):
    labels = read_label_map(FIXTURES / "action_list_item.pbtxt")
    full = LabelMap(ids=(1, 2, 12, 17, 79, 80), names={i: str(i) for i in (1, 2, 12, 17, 79, 80)})
    path = tmp_path / "ava_train_v2.2.csv"
    path.write_text("v,0902,0.1,0.1,0.5,0.5,2,0\nv,0902,0.1,0.1,0.5,0.5,3,0\n")
    with pytest.raises(InputError, match="action_id=3 is neither in the label map nor in the "
                                         "full action list") as error:
        read_annotations(path, labels, action_list=full)
    assert "ava_train_v2.2.csv:2" in str(error.value)
    assert list(read_annotations(path, labels)["action_id"]) == [2, 3]   # both AVA actions


def test_merge_boxes_by_exact_box_equality():
    labels = read_label_map(FIXTURES / "action_list_item.pbtxt")
    df = read_annotations(FIXTURES / "ava_val_sample.csv")
    boxes, multi_hot = merge_boxes(df, labels)
    assert list(boxes["video_id"]) == ["-5KQ66BBWC4", "-5KQ66BBWC4", "1j20qq1JyX4",
                                       "1j20qq1JyX4", "1j20qq1JyX4"]
    assert list(boxes["timestamp"]) == [904, 904, 902, 902, 903]
    assert list(boxes["person_id"]) == [1, 0, 0, 1, 0]
    assert multi_hot.dtype == np.uint8 and multi_hot.shape == (5, 5)
    # ids (1, 12, 17, 79, 80): person 0 at 902 does 12, 17, 79; person 1 does 12, 80.
    assert multi_hot.tolist() == [[0, 0, 0, 0, 1], [0, 1, 0, 0, 0], [0, 1, 1, 1, 0],
                                  [0, 1, 0, 0, 1], [0, 1, 0, 0, 0]]
    subset = LabelMap(ids=(80,), names={80: "watch"})
    boxes, multi_hot = merge_boxes(df, subset)  # rows of other actions are dropped first
    assert len(boxes) == 2 and multi_hot.tolist() == [[1], [1]]


def test_exclusions_round_trip(tmp_path):
    df = read_exclusions(FIXTURES / "ava_val_excluded_sample.csv")
    assert df.values.tolist() == [["1j20qq1JyX4", 903], ["-5KQ66BBWC4", 1798]]
    write_exclusions(tmp_path / "out.csv", df)
    assert (tmp_path / "out.csv").read_bytes() == \
        (FIXTURES / "ava_val_excluded_sample.csv").read_bytes()
    (tmp_path / "bad.csv").write_text("a,0902\nb,0903,1\n")
    with pytest.raises(InputError, match="bad.csv:2: expected 2 columns"):
        read_exclusions(tmp_path / "bad.csv")


def test_results_accept_unpadded_timestamps_and_round_trip(tmp_path):
    df = read_results(FIXTURES / "results_mmaction2_sample.csv")
    assert df["timestamp"].tolist() == [902, 902, 904]
    assert df["score"].tolist() == [0.912, 0.0031, 0.5]
    write_results_csv(tmp_path / "out.csv", df)
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == \
        "1j20qq1JyX4,0902,0.0021,0.1180,0.7140,0.9770,12,0.9120"
    again = read_results(tmp_path / "out.csv")
    pd.testing.assert_frame_equal(again, df)
    write_results_parquet(tmp_path / "out.parquet", df)
    from_parquet = read_results(tmp_path / "out.parquet")
    assert from_parquet["video_id"].astype(str).tolist() == df["video_id"].astype(str).tolist()
    np.testing.assert_allclose(from_parquet["score"], df["score"], rtol=1e-7)


@pytest.mark.parametrize("row, message", [
    ("v,902,0.1,0.1,0.5,0.5,12", "expected 8 columns"),
    ("v,902,0.1,0.1,0.5,0.5,12,high", "score='high' is not a number"),
    ("v,902,0.1,0.1,0.5,0.5,12,inf", "score=inf is not finite"),
    ("v,902,0.1,0.1,0.5,0.5,0,0.5", "action_id=0 is outside"),
])
def test_result_errors_name_file_and_line(tmp_path, row, message):
    good = (FIXTURES / "results_mmaction2_sample.csv").read_text().splitlines()
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(good[:1] + [row] + good[1:]) + "\n")
    with pytest.raises(InputError, match=message) as error:
        read_results(path)
    assert "bad.csv:2" in str(error.value)


def write_pickle(path, data):
    path.write_bytes(pickle.dumps(data))
    return path


def test_proposal_pickle_round_trip_and_filter(tmp_path):
    data = {"1j20qq1JyX4,0902": np.array([[0.1, 0.1, 0.5, 0.9, 0.95],
                                          [0.2, 0.1, 0.6, 0.9, 0.5],
                                          [0.3, 0.1, 0.7, 0.9, 0.91]]),
            "-5KQ66BBWC4,0904": np.array([[0.0, 0.0, 1.0, 1.0, 0.3]]),
            "-5KQ66BBWC4,0905": np.array([[0.0, 0.0, 0.5, 0.5]])}
    df = read_proposal_pickle(write_pickle(tmp_path / "p.pkl", data))
    assert df["timestamp"].tolist() == [902, 902, 902, 904, 905]
    assert df["score"].tolist() == [0.95, 0.5, 0.91, 0.3, 1.0]
    write_proposal_pickle(tmp_path / "out.pkl", df)
    back = pickle.loads((tmp_path / "out.pkl").read_bytes())
    assert list(back) == list(data)
    np.testing.assert_array_equal(back["1j20qq1JyX4,0902"], data["1j20qq1JyX4,0902"])
    kept = filter_proposals(df, min_score=0.9)
    # 0904's best box (0.3) survives though it is below 0.9: thr = min(0.9, best score);
    # rows sorted by video, second, score descending.
    assert kept["score"].tolist() == [0.3, 1.0, 0.95, 0.91]
    capped = filter_proposals(df, min_score=0.0, max_per_keyframe=1)
    assert capped["score"].tolist() == [0.3, 1.0, 0.95]


@pytest.mark.parametrize("data, message", [
    ({"no-comma": np.zeros((1, 5))}, "not 'video_id,timestamp'"),
    ({"v,0902": np.zeros((2, 3))}, "N x 5 or N x 4"),
    ({"v,0902": np.array([[0.1, 0.1, 1.5, 0.9, 0.9]])}, "outside \\[0, 1\\]"),
])
def test_proposal_pickle_errors_name_the_key(tmp_path, data, message):
    with pytest.raises(InputError, match=message) as error:
        read_proposal_pickle(write_pickle(tmp_path / "bad.pkl", data))
    assert "bad.pkl" in str(error.value) and "key '" in str(error.value)


class RunsCode:
    """Pickles as a call of ``function(*args)``: what a hostile pickle runs while loading."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.parametrize("make, refused", [
    (lambda marker: RunsCode(os.system, f"touch {marker}"), "posix.system"),
    (lambda marker: RunsCode(exec, f"open({str(marker)!r}, 'w').write('ran')"), "builtins.exec"),
    (lambda marker: RunsCode(open, str(marker), "w"), "io.open"),
])
def test_proposal_pickle_that_would_run_code_is_refused(tmp_path, make, refused):
    marker = tmp_path / "marker"
    path = write_pickle(tmp_path / "evil.pkl", {"v,0902": np.zeros((1, 5)),
                                                "v,0903": make(marker)})
    with pytest.raises(InputError, match="refused") as error:
        read_proposal_pickle(path)
    assert str(path) in str(error.value) and refused in str(error.value)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_proposal_pickles_of_any_protocol_and_numpy_layout_load(tmp_path, protocol):
    data = {"v,0902": np.array([[0.1, 0.1, 0.5, 0.9, 0.95]]),
            "v,0903": np.array([[0.0, 0.0, 0.5, 0.5]], dtype=np.float32)}
    raw = pickle.dumps(data, protocol=protocol)
    layouts = [raw]
    if protocol == 2:   # text GLOBAL opcodes: the module names numpy 1.x writes
        layouts.append(raw.replace(b"numpy._core.", b"numpy.core."))
        assert layouts[1] != raw
    for i, layout in enumerate(layouts):
        (tmp_path / f"p{i}.pkl").write_bytes(layout)
        df = read_proposal_pickle(tmp_path / f"p{i}.pkl")
        assert df["score"].tolist() == [0.95, 1.0]
        assert df["x2"].tolist() == [0.5, 0.5]
