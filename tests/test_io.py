"""Atomic outputs and the input digest that decides whether a training checkpoint may resume."""

import pytest

from pipeline.io import atomic_output, content_digest, partial_path


def test_atomic_output_renames_on_success_and_cleans_up_on_failure(tmp_path):
    target = tmp_path / "out" / "table.txt"
    with atomic_output(target) as tmp:
        assert tmp == partial_path(target)
        tmp.write_text("done")
    assert target.read_text() == "done" and not partial_path(target).exists()

    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "done" and not partial_path(target).exists()


def test_atomic_output_keeps_the_partial_for_resume(tmp_path):
    target = tmp_path / "store"
    with pytest.raises(RuntimeError):
        with atomic_output(target, resume=True) as tmp:
            tmp.mkdir()
            (tmp / "shard0").write_text("kept")
            raise RuntimeError("interrupted")
    with atomic_output(target, resume=True) as tmp:
        assert (tmp / "shard0").read_text() == "kept"
    assert (target / "shard0").is_file()


def test_content_digest_follows_content_not_paths(tmp_path):
    table = tmp_path / "annotations.csv"
    store = tmp_path / "frames.zarr"
    (store / "video").mkdir(parents=True)
    table.write_text("a,1\n")
    (store / "zarr.json").write_text("{}")
    (store / "video" / "c").write_bytes(b"x" * 10)
    first = content_digest(table), content_digest(store)
    assert (content_digest(table), content_digest(store)) == first

    table.write_text("a,2\n")
    assert content_digest(table) != first[0]
    table.write_text("a,1\n")
    (store / "video" / "c").write_bytes(b"y" * 11)        # a regenerated shard
    assert content_digest(store) != first[1]
    (store / "video" / "c").write_bytes(b"x" * 10)
    assert content_digest(store) == first[1]
    assert content_digest(tmp_path / "missing") == "missing" and content_digest(None) is None
    # a moved checkout: same contents elsewhere, same digests
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    table.rename(moved / "annotations.csv")
    store.rename(moved / "frames.zarr")
    assert (content_digest(moved / "annotations.csv"), content_digest(moved / "frames.zarr")) \
        == first
