"""The long-term feature bank: layout, resumable / multi-rank writes, window reads."""

from __future__ import annotations

import ast
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.lfb_bank import DIM, features_of, make_boxes
from helpers.stores import name_an_unknown_codec
from pipeline.errors import InputError
from pipeline.lfb.layout import bank_layout
from pipeline.lfb.reader import FeatureBank, num_slots
from pipeline.lfb.writer import BankStorage, BankWriter, fill_bank

REPO_ROOT = Path(__file__).resolve().parents[1]
W, M = 4, 3   # window_seconds, max_per_second of most tests


def build_bank(path: Path, boxes: pd.DataFrame, dtype: str = "float32", **provenance) -> dict:
    storage = BankStorage(dim=DIM, dtype=dtype, chunk_rows=8, shard_rows=16)
    writer = BankWriter(path, boxes, storage, provenance=provenance)
    fill_bank(writer, features_of, progress=False)
    return writer.finalize()


@pytest.fixture(scope="module")
def boxes() -> pd.DataFrame:
    return make_boxes()


@pytest.fixture(scope="module")
def bank_path(tmp_path_factory, boxes) -> Path:
    path = tmp_path_factory.mktemp("lfb") / "bank"
    build_bank(path, boxes)
    return path


def expected_window(index: pd.DataFrame, video_id: str, timestamp: int, w: int, m: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Plain loop over seconds: the m best-scoring boxes (ties: first box) of each second."""
    all_features = features_of(index)
    features = np.zeros((num_slots(w, m), DIM), np.float32)
    mask = np.zeros(num_slots(w, m), bool)
    for i, second in enumerate(range(timestamp - w, timestamp + w)):
        boxes = index[(index["video_id"] == video_id) & (index["timestamp"] == second)]
        boxes = boxes.sort_values(["score", "box_index"], ascending=[False, True])
        for k, row in enumerate(boxes["row"].head(m)):
            features[i * m + k] = all_features[row]
            mask[i * m + k] = True
    return features, mask


def test_layout_sorts_rows_and_keeps_box_order(boxes):
    index = bank_layout(boxes)
    assert list(index["row"]) == list(range(len(boxes)))
    keys = list(zip(index["video_id"], index["timestamp"]))
    assert keys == sorted(keys)
    for (video_id, timestamp), group in index.groupby(["video_id", "timestamp"]):
        original = boxes[(boxes["video_id"] == video_id) & (boxes["timestamp"] == timestamp)]
        assert list(group["box_index"]) == list(range(len(group)))
        np.testing.assert_allclose(group["x1"], original["x1"], rtol=1e-6)


def test_test_time_windows_match_a_plain_loop(bank_path):
    bank = FeatureBank(bank_path)
    index = bank_layout(make_boxes())
    # keyframes at both ends of the videos, in the middle, and on empty seconds
    keys = [(v, t) for v in ("vid_a", "vid_b") for t in (900, 901, 903, 915, 920, 936, 939)]
    features, mask = bank.windows([k[0] for k in keys], [k[1] for k in keys],
                                  window_seconds=W, max_per_second=M)
    assert features.shape == (len(keys), num_slots(W, M), DIM) and features.dtype == np.float32
    for i, (video_id, timestamp) in enumerate(keys):
        want_features, want_mask = expected_window(index, video_id, timestamp, W, M)
        np.testing.assert_array_equal(mask[i], want_mask, err_msg=f"{video_id} {timestamp}")
        np.testing.assert_array_equal(features[i], want_features)


def test_window_geometry_gives_each_slot_its_box_and_time_offset(bank_path):
    """``with_geometry``: the same slots as the features, holding the row's box and its
    second relative to the keyframe; random (train) choices keep features and geometry paired."""
    bank = FeatureBank(bank_path)
    index = bank_layout(make_boxes())
    boxes = index[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
    for rng in (None, np.random.default_rng(3)):
        features, mask, geometry = bank.windows(["vid_a", "vid_b"], [915, 903], window_seconds=W,
                                                max_per_second=M, rng=rng, with_geometry=True)
        assert geometry.shape == (2, num_slots(W, M), 5)
        assert not geometry[~mask].any(), "empty slots hold zeros"
        rows = features[mask][:, 0].astype(np.int64) - 1      # features_of: column 0 = row + 1
        np.testing.assert_allclose(geometry[mask][:, :4], boxes[rows], rtol=1e-6)
        keyframe = np.repeat([915, 903], mask.sum(axis=1))
        np.testing.assert_array_equal(geometry[mask][:, 4],
                                      index["timestamp"].to_numpy()[rows] - keyframe)
        slot_second = np.nonzero(mask)[1] // M - W
        np.testing.assert_array_equal(geometry[mask][:, 4], slot_second)


def test_window_edges_empty_seconds_and_max_per_second(bank_path):
    bank = FeatureBank(bank_path)
    index = bank_layout(make_boxes())
    per_second = index[index["video_id"] == "vid_a"].groupby("timestamp").size()
    features, mask = bank.window("vid_a", 900, window_seconds=W, max_per_second=M)
    slots = mask.reshape(2 * W, M)
    assert not slots[:W].any(), "seconds before the video must be empty"
    assert not features.reshape(2 * W, M, DIM)[:W].any(), "empty slots must be zeros"
    for i, second in enumerate(range(900, 900 + W)):
        filled = min(int(per_second.get(second, 0)), M)
        assert slots[W + i].sum() == filled
        assert slots[W + i, :filled].all(), "a second's boxes fill its first slots"
    assert per_second.max() > M, "the fixture must have crowded seconds"

    _, mask_end = bank.window("vid_a", 939, window_seconds=W, max_per_second=M)
    assert not mask_end.reshape(2 * W, M)[W + 1:].any(), "seconds after the video are empty"


def test_test_time_choice_is_deterministic_and_batch_independent(bank_path):
    bank = FeatureBank(bank_path)
    alone, alone_mask = bank.window("vid_b", 920, window_seconds=W, max_per_second=M)
    again, _ = bank.window("vid_b", 920, window_seconds=W, max_per_second=M)
    np.testing.assert_array_equal(alone, again)
    batch, batch_mask = bank.windows(["vid_a", "vid_b", "vid_b", "vid_a"], [920, 921, 920, 939],
                                     window_seconds=W, max_per_second=M)
    np.testing.assert_array_equal(batch[2], alone)
    np.testing.assert_array_equal(batch_mask[2], alone_mask)


def test_train_time_choice_is_random_within_the_second(bank_path):
    bank = FeatureBank(bank_path)
    index = bank_layout(make_boxes())
    counts = index.groupby(["video_id", "timestamp"]).size()
    video_id, second = counts[counts == 7].index[0]
    crowded = set(index[(index["video_id"] == video_id) & (index["timestamp"] == second)]["row"])
    seen = set()
    for seed in range(40):
        features, mask = bank.window(video_id, second, window_seconds=W, max_per_second=M,
                                     rng=np.random.default_rng(seed))
        chosen = features.reshape(2 * W, M, DIM)[W, :, 0] - 1   # column 0 is row + 1
        assert mask.reshape(2 * W, M)[W].all()
        assert set(chosen.astype(int)) <= crowded and len(set(chosen)) == M
        seen |= set(chosen.astype(int))
    assert seen == crowded, "every box of a crowded second must be drawn sometimes"
    first = bank.window(video_id, second, window_seconds=W, max_per_second=M,
                        rng=np.random.default_rng(7))
    second_draw = bank.window(video_id, second, window_seconds=W, max_per_second=M,
                              rng=np.random.default_rng(7))
    np.testing.assert_array_equal(first[0], second_draw[0])


def test_in_memory_bank_reads_the_same(bank_path):
    on_disk, in_memory = FeatureBank(bank_path), FeatureBank(bank_path, in_memory=True)
    keys = (["vid_a", "vid_b", "vid_a"], [905, 930, 939])
    for a, b in zip(on_disk.windows(*keys, window_seconds=3, max_per_second=2),
                    in_memory.windows(*keys, window_seconds=3, max_per_second=2)):
        np.testing.assert_array_equal(a, b)


def test_bank_survives_pickling_for_loader_workers(bank_path):
    bank = FeatureBank(bank_path)
    before = bank.window("vid_a", 910, window_seconds=W, max_per_second=M)
    copy = pickle.loads(pickle.dumps(bank))   # what a spawned data-loader worker receives
    assert copy._array is None
    after = copy.window("vid_a", 910, window_seconds=W, max_per_second=M)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])


def test_float16_and_float32_banks_agree(tmp_path, bank_path, boxes):
    build_bank(tmp_path / "bank16", boxes, dtype="float16")
    bank16, bank32 = FeatureBank(tmp_path / "bank16"), FeatureBank(bank_path)
    assert bank16.dtype == "float16" and bank32.dtype == "float32"
    keys = (["vid_a", "vid_b", "vid_b"], [910, 925, 901])
    f16, m16 = bank16.windows(*keys, window_seconds=W, max_per_second=M)
    f32, m32 = bank32.windows(*keys, window_seconds=W, max_per_second=M)
    assert f16.dtype == np.float32
    np.testing.assert_array_equal(m16, m32)
    np.testing.assert_allclose(f16, f32, rtol=1e-3, atol=1e-3)
    assert m32.any()


def test_interrupted_write_resumes_without_recomputing(tmp_path, bank_path, boxes):
    storage = BankStorage(dim=DIM, dtype="float32", chunk_rows=8, shard_rows=16)
    calls: list[int] = []

    def failing_compute(rows: pd.DataFrame) -> np.ndarray:
        calls.append(int(rows["row"].iloc[0]))
        if len(calls) == 4:
            raise KeyboardInterrupt   # as if the run were stopped mid-way
        return features_of(rows)

    writer = BankWriter(tmp_path / "bank", boxes, storage)
    with pytest.raises(KeyboardInterrupt):
        fill_bank(writer, failing_compute, progress=False)
    with pytest.raises(RuntimeError, match="not written"):
        writer.finalize()
    assert not (tmp_path / "bank").exists()

    calls.clear()
    writer = BankWriter(tmp_path / "bank", boxes, storage)
    assert writer.resumed_shards == 3
    written = fill_bank(writer, lambda rows: calls.append(1) or features_of(rows), progress=False)
    assert len(calls) == len(written) == writer.num_shards - 3
    assert writer.finalize()["resumed_shards"] == 3
    assert not (tmp_path / "bank.partial").exists()

    resumed, straight = FeatureBank(tmp_path / "bank"), FeatureBank(bank_path)
    np.testing.assert_array_equal(resumed.read_rows(0, resumed.num_rows),
                                  straight.read_rows(0, straight.num_rows))
    assert not np.isnan(resumed.read_rows(0, resumed.num_rows)).any()
    assert (tmp_path / "bank" / "index.parquet").read_bytes() == \
        (bank_path / "index.parquet").read_bytes()


def test_changed_layout_or_provenance_starts_over(tmp_path, boxes):
    storage = BankStorage(dim=DIM, dtype="float32", chunk_rows=8, shard_rows=16)
    writer = BankWriter(tmp_path / "bank", boxes, storage, provenance={"checkpoint": "a"})
    writer.write_shard(0, features_of(writer.shard_boxes(0)))
    again = BankWriter(tmp_path / "bank", boxes, storage, provenance={"checkpoint": "a"})
    assert again.resumed_shards == 1
    other_checkpoint = BankWriter(tmp_path / "bank", boxes, storage,
                                  provenance={"checkpoint": "b"})
    assert other_checkpoint.resumed_shards == 0 and 0 in other_checkpoint.pending_shards()
    other_checkpoint.write_shard(0, features_of(other_checkpoint.shard_boxes(0)))
    fewer_boxes = BankWriter(tmp_path / "bank", boxes.iloc[1:], storage,
                             provenance={"checkpoint": "b"})
    assert fewer_boxes.resumed_shards == 0


_RANK_SCRIPT = """
import sys
import numpy as np, pandas as pd
sys.path.insert(0, {tests!r})
from helpers.lfb_bank import features_of, make_boxes
from pipeline.lfb.writer import BankStorage, BankWriter, fill_bank
rank = int(sys.argv[1])
writer = BankWriter({path!r}, make_boxes(), BankStorage(dim=8, dtype="float32", chunk_rows=8,
                    shard_rows=16), create=False)
print(fill_bank(writer, features_of, rank=rank, world_size=2, progress=False))
"""


def test_two_ranks_write_disjoint_whole_shards(tmp_path, boxes, bank_path):
    storage = BankStorage(dim=DIM, dtype="float32", chunk_rows=8, shard_rows=16)
    writer = BankWriter(tmp_path / "bank", boxes, storage)   # rank 0 creates
    script = _RANK_SCRIPT.format(tests=str(REPO_ROOT / "tests"), path=str(tmp_path / "bank"))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    ranks = [subprocess.Popen([sys.executable, "-c", script, str(rank)], env=env,
                              stdout=subprocess.PIPE, text=True) for rank in (0, 1)]
    outputs = [rank.communicate(timeout=60)[0] for rank in ranks]
    assert [rank.returncode for rank in ranks] == [0, 0]
    assert ast.literal_eval(outputs[0]) == list(range(0, writer.num_shards, 2))
    assert ast.literal_eval(outputs[1]) == list(range(1, writer.num_shards, 2))
    writer.finalize()
    both, single = FeatureBank(tmp_path / "bank"), FeatureBank(bank_path)
    np.testing.assert_array_equal(both.read_rows(0, both.num_rows),
                                  single.read_rows(0, single.num_rows))


def test_attaching_without_a_matching_partial_bank_fails(tmp_path, boxes):
    storage = BankStorage(dim=DIM, chunk_rows=8, shard_rows=16)
    with pytest.raises(InputError, match="bank.partial"):
        BankWriter(tmp_path / "bank", boxes, storage, create=False)


def test_write_shard_rejects_wrong_shapes_and_float16_overflow(tmp_path, boxes):
    writer = BankWriter(tmp_path / "bank", boxes, BankStorage(dim=DIM, dtype="float16",
                                                              chunk_rows=8, shard_rows=16))
    with pytest.raises(ValueError, match="shape"):
        writer.write_shard(0, np.zeros((15, DIM)))
    huge = np.full((16, DIM), 1e6, np.float32)
    with pytest.raises(ValueError, match="float16"):
        writer.write_shard(0, huge)
    assert writer.pending_shards()[0] == 0


@pytest.mark.parametrize(("change", "match"), [
    (lambda b: b.drop(columns="score"), "score"),
    (lambda b: b.assign(timestamp=b["timestamp"] + 0.5), "not a whole second"),
    (lambda b: b.assign(x2=b["x2"] + 1), "outside"),
    (lambda b: b.assign(source="detector"), "source"),
    (lambda b: b.iloc[:0], "empty"),
])
def test_bad_box_tables_name_the_problem(boxes, change, match):
    with pytest.raises(InputError, match=match):
        bank_layout(change(boxes))


def test_bad_storage_and_window_arguments(bank_path):
    with pytest.raises(InputError, match="shard_rows"):
        BankStorage(dim=DIM, chunk_rows=8, shard_rows=12)
    with pytest.raises(InputError, match="dtype"):
        BankStorage(dim=DIM, dtype="bfloat16")
    bank = FeatureBank(bank_path)
    with pytest.raises(InputError, match="vid_c"):
        bank.window("vid_c", 910, window_seconds=W, max_per_second=M)
    with pytest.raises(InputError, match="window_seconds"):
        bank.window("vid_a", 910, window_seconds=0, max_per_second=M)
    with pytest.raises(InputError, match="not a feature bank"):
        FeatureBank(bank_path.parent / "missing")


def test_a_bank_with_an_unknown_codec_is_one_line_naming_store_and_array(tmp_path, bank_path,
                                                                         capsys):
    """the bank reader and ``stad summary`` name the store instead of zarr's
    UnknownCodecError traceback."""
    from pipeline.cli import main

    copy = tmp_path / "bank"
    shutil.copytree(bank_path, copy)
    name_an_unknown_codec(copy / "features.zarr")
    for in_memory in (False, True):
        with pytest.raises(InputError, match="codec_this_install_lacks") as error:
            FeatureBank(copy, in_memory=in_memory)
        assert error.value.path == str(copy / "features.zarr")
    assert main(["summary", str(copy / "features.zarr")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(copy / "features.zarr") in err
    assert "codec_this_install_lacks" in err and "Traceback" not in err
