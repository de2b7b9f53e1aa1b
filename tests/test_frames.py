"""Frame extraction: exact frames, codec tolerance, store layout, bad videos, resume."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import decord
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import zarr

from pipeline.ava.clock import clip_frame_indices, timeline_source_frames
from pipeline.errors import InputError
from pipeline.frames.extract import extract_frames
from pipeline.frames.spec import FrameSpec
from pipeline.frames.store import INDEX_SCHEMA, FrameStore
from pipeline.io import partial_path
from video_utils import (COLOR_ROW, ffmpeg_rate_numbers, read_frame_number, render_frame,
                         write_video)

FPS = 10


def _keyframes(rows: dict[str, list[int]], split: str = "train") -> pd.DataFrame:
    return pd.DataFrame([(v, t, split) for v, ts in rows.items() for t in ts],
                        columns=["video_id", "timestamp", "split"])


def _run(tmp_path: Path, videos, keyframes, spec, **kwargs) -> dict:
    return extract_frames(videos, keyframes, tmp_path / "out" / "frames.zarr",
                          tmp_path / "out" / "keyframes.parquet", spec, progress=False, **kwargs)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    return {
        # AVA ids can start with '-'; the portrait video checks the short side logic.
        "-landscape": write_video(root / "-landscape.mp4", num_frames=60, fps=FPS),
        "portrait": write_video(root / "portrait.mp4", num_frames=50, fps=FPS, width=64,
                                height=96),
    }


@pytest.mark.parametrize("convention", ["pyslowfast", "mmaction2"])
def test_stored_frames_are_the_exact_clip_frames(tmp_path, videos, convention):
    timestamp_start = 100
    kf = _keyframes({"-landscape": [100, 102, 105], "portrait": [101, 104]})
    spec = FrameSpec(clip_len=8, frame_interval=3, short_side=32,
                     timestamp_start=timestamp_start, convention=convention, shard_clips=2)
    _run(tmp_path, videos, kf, spec)
    store = FrameStore(tmp_path / "out" / "frames.zarr")
    num_frames = {"-landscape": 60, "portrait": 50}
    for row in store.index.itertuples():
        expected = clip_frame_indices(row.timestamp, fps=FPS, timestamp_start=timestamp_start,
                                      clip_len=8, frame_interval=3, convention=convention,
                                      num_frames=num_frames[row.video_id])
        clip = store.clip(row.video_id, row.row)
        assert [read_frame_number(frame) for frame in clip] == expected.tolist()
        keyframe = read_frame_number(clip[store.keyframe_position])
        assert keyframe == FPS * (row.timestamp - timestamp_start) + (convention == "mmaction2")
    # Clamping at both ends: t=100 starts before frame 0, t=105 runs past the last frame.
    first = [read_frame_number(f) for f in store.clip("-landscape", 0)]
    assert first[:4] == [0, 0, 0, 0]
    last = [read_frame_number(f) for f in store.clip("-landscape", 2)]
    assert last[-1] == 59


def test_pixels_match_the_source_within_codec_tolerance(tmp_path, videos):
    kf = _keyframes({"-landscape": [2, 4], "portrait": [3]})
    spec = FrameSpec(clip_len=4, frame_interval=2, short_side=None, timestamp_start=0)
    _run(tmp_path, videos, kf, spec)
    store = FrameStore(tmp_path / "out" / "frames.zarr")
    clip = store.clip("-landscape", 1)          # frames 36, 38, 40, 42 at 64x48
    indices = [36, 38, 40, 42]
    decoded = decord.VideoReader(str(videos["-landscape"])).get_batch(indices).asnumpy()
    np.testing.assert_array_equal(clip, decoded)  # the store holds exactly what decord decodes
    for frame, number in zip(clip, indices):
        error = np.abs(frame.astype(np.int16) - render_frame(number, 64, 48))
        assert error.mean() < 3, error.mean()    # H.264 at crf 12 on flat cells
    # RGB order: the bottom row is red, green, blue, white.
    colors = clip[0, 40, [8, 24, 40, 56]].astype(np.int16)
    assert np.abs(colors - COLOR_ROW).max() < 40


def test_resized_frames_keep_aspect_and_match_source(tmp_path, videos):
    kf = _keyframes({"-landscape": [2], "portrait": [2]})
    spec = FrameSpec(clip_len=2, frame_interval=1, short_side=32, timestamp_start=0)
    _run(tmp_path, videos, kf, spec)
    store = FrameStore(tmp_path / "out" / "frames.zarr")
    landscape, portrait = store.clip("-landscape", 0), store.clip("portrait", 0)
    assert landscape.shape == (2, 32, 42, 3)    # 64x48 -> short side 32, even long side
    assert portrait.shape == (2, 48, 32, 3)
    for frame, number in zip(landscape, [19, 20]):
        error = np.abs(frame.astype(np.int16) - render_frame(number, 42, 32))
        assert error.mean() < 12, error.mean()  # codec + bilinear blur at cell edges
    index = store.index.set_index("video_id")
    assert (index.loc["portrait", "height"], index.loc["portrait", "width"]) == (48, 32)


def test_store_layout_and_index(tmp_path, videos):
    kf = pd.concat([_keyframes({"portrait": [4, 1, 2]}, "val"),
                    _keyframes({"-landscape": [3, 1, 2, 4, 5]}, "train")])
    spec = FrameSpec(clip_len=4, frame_interval=2, short_side=32, timestamp_start=0,
                     shard_clips=2, clevel=3)
    summary = _run(tmp_path, videos, kf, spec)
    out = tmp_path / "out"
    assert summary["videos"] == 2 and summary["clips"] == 8
    assert summary["decoded_videos"] == ["-landscape", "portrait"]
    assert not partial_path(out / "frames.zarr").exists()

    group = zarr.open_group(out / "frames.zarr", mode="r")
    array = group["-landscape"]
    assert array.dtype == np.uint8 and array.shape == (5, 4, 32, 42, 3)
    assert array.chunks == (1, 4, 32, 42, 3) and array.shards == (2, 4, 32, 42, 3)
    compressor = array.compressors[0]
    assert isinstance(compressor, zarr.codecs.BloscCodec) and compressor.cname.value == "zstd"
    assert compressor.clevel == 3
    assert array.attrs["complete"] is True and array.attrs["fps"] == FPS
    assert group["portrait"].shards == (2, 4, 48, 32, 3)
    assert group.attrs["fps"] == FPS and group.attrs["offsets"] == [-4, -2, 0, 2]
    assert group.attrs["convention"] == "pyslowfast" and group.attrs["keyframe_position"] == 2
    # Files: group + 2 array metadata + ceil(5/2) + ceil(3/2) shard files.
    assert summary["store_files"] == 3 + 3 + 2

    table = pq.read_table(out / "keyframes.parquet")
    assert table.schema.equals(INDEX_SCHEMA)
    index = table.to_pandas()
    assert list(index["video_id"]) == ["-landscape"] * 5 + ["portrait"] * 3
    assert list(index["timestamp"]) == [1, 2, 3, 4, 5, 1, 2, 4]
    assert list(index["row"]) == [0, 1, 2, 3, 4, 0, 1, 2]
    assert list(index["split"]) == ["train"] * 5 + ["val"] * 3
    store = FrameStore(out / "frames.zarr")
    pd.testing.assert_frame_equal(store.index, index)
    assert store.summary()["files"] == summary["store_files"]
    # Clips come back in the order asked for.
    both = store.clips("-landscape", [3, 0])
    np.testing.assert_array_equal(both[0], store.clip("-landscape", 3))
    assert [read_frame_number(f) for f in store.keyframe_images("-landscape", [3, 0])] == [40, 10]


def test_output_is_deterministic_across_worker_counts(tmp_path, videos):
    kf = _keyframes({"-landscape": [1, 2, 3], "portrait": [2, 3]})
    spec = FrameSpec(clip_len=4, frame_interval=2, short_side=32, timestamp_start=0,
                     shard_clips=2)
    one = extract_frames(videos, kf, tmp_path / "a" / "frames.zarr", tmp_path / "a" / "k.parquet",
                         spec, workers=1, progress=False)
    two = extract_frames(videos, kf, tmp_path / "b" / "frames.zarr", tmp_path / "b" / "k.parquet",
                         spec, workers=2, progress=False)
    assert one["store_files"] == two["store_files"]
    for path in sorted((tmp_path / "a").rglob("*")):
        if path.is_file():
            other = tmp_path / "b" / path.relative_to(tmp_path / "a")
            assert path.read_bytes() == other.read_bytes(), path


def test_bad_video_fails_cleanly_then_rerun_resumes(tmp_path, videos):
    good_b = tmp_path / "b_good.mp4"
    write_video(good_b, num_frames=40, fps=FPS)
    bad_b = tmp_path / "src" / "b.mp4"
    bad_b.parent.mkdir()
    bad_b.write_bytes(good_b.read_bytes()[:300])       # truncated file: no moov atom
    inputs = {"a": videos["-landscape"], "b": bad_b}
    kf = _keyframes({"a": [1, 2, 3], "b": [1, 2]})
    spec = FrameSpec(clip_len=4, frame_interval=2, short_side=32, timestamp_start=0,
                     shard_clips=2)
    store_path = tmp_path / "out" / "frames.zarr"

    with pytest.raises(InputError, match="video 'b'") as info:
        _run(tmp_path, inputs, kf, spec)
    assert info.value.path == str(bad_b)
    assert not store_path.exists() and not (tmp_path / "out" / "keyframes.parquet").exists()
    partial = partial_path(store_path)
    assert zarr.open_group(partial, mode="r")["a"].attrs["complete"] is True
    a_shards = {p: p.stat().st_mtime_ns for p in (partial / "a").rglob("*") if p.is_file()}

    bad_b.write_bytes(good_b.read_bytes())
    summary = _run(tmp_path, inputs, kf, spec)
    assert summary["resumed_videos"] == ["a"] and summary["decoded_videos"] == ["b"]
    for path, mtime in a_shards.items():      # video a was not rewritten
        assert (store_path / path.relative_to(partial)).stat().st_mtime_ns == mtime
    assert not partial.exists()
    store = FrameStore(store_path)
    assert [read_frame_number(f) for f in store.keyframe_images("b", [0, 1])] == [10, 20]
    assert [read_frame_number(f) for f in store.keyframe_images("a", [0, 2])] == [10, 30]


def test_partial_store_from_another_spec_is_not_reused(tmp_path, videos):
    kf = _keyframes({"-landscape": [1, 2]})
    old = FrameSpec(clip_len=4, frame_interval=2, short_side=32, timestamp_start=0)
    broken = {"-landscape": videos["-landscape"], "x": tmp_path / "missing.mp4"}
    with pytest.raises(InputError):
        _run(tmp_path, broken, pd.concat([kf, _keyframes({"x": [1]})]), old)
    new = FrameSpec(clip_len=2, frame_interval=2, short_side=32, timestamp_start=0)
    summary = _run(tmp_path, videos, kf, new)
    assert summary["resumed_videos"] == [] and summary["decoded_videos"] == ["-landscape"]
    assert FrameStore(tmp_path / "out" / "frames.zarr").clip("-landscape", 0).shape[0] == 2


def test_skip_bad_videos_lists_them(tmp_path, videos):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video" * 100)
    short = write_video(tmp_path / "short.mp4", num_frames=15, fps=FPS)   # 1.5 s of video
    inputs = {"good": videos["-landscape"], "corrupt": corrupt, "short": short,
              "missing": tmp_path / "nope.mp4"}
    kf = _keyframes({"good": [1, 2], "corrupt": [1], "short": [1, 3], "missing": [1],
                     "no_file_given": [1]})
    spec = FrameSpec(clip_len=2, frame_interval=2, short_side=32, timestamp_start=0)
    summary = _run(tmp_path, inputs, kf, spec, skip_bad_videos=True)
    assert summary["skipped_videos"] == ["corrupt", "missing", "no_file_given", "short"]
    assert summary["num_skipped_videos"] == 4
    assert "truncated" in summary["skip_reasons"]["short"]
    assert str(tmp_path / "nope.mp4") in summary["skip_reasons"]["missing"]
    store = FrameStore(tmp_path / "out" / "frames.zarr")
    assert store.video_ids() == ["good"]
    assert list(pd.read_parquet(tmp_path / "out" / "keyframes.parquet")["video_id"]) == ["good"] * 2


def test_truncated_video_error_names_video_and_frame(tmp_path):
    short = write_video(tmp_path / "short.mp4", num_frames=15, fps=FPS)
    spec = FrameSpec(clip_len=2, frame_interval=2, short_side=None, timestamp_start=0)
    with pytest.raises(InputError, match=r"'short' has 15 frames.*keyframe 3 s needs frame 30"):
        _run(tmp_path, {"short": short}, _keyframes({"short": [1, 3]}), spec)


# 21 s: long enough for 29.97 fps to reach its first tie (frame 500 starts at 500.5 ticks)
RATES = {"24": Fraction(24), "25": Fraction(25), "29.97": Fraction(30000, 1001), "30": Fraction(30)}


@pytest.fixture(scope="module")
def rate_videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rates")
    return {name: write_video(root / f"r{name}.mp4", num_frames=int(21 * rate) + 1, fps=rate)
            for name, rate in RATES.items()}


@pytest.mark.parametrize("rate", list(RATES))
@pytest.mark.parametrize("convention", ["pyslowfast", "mmaction2"])
def test_30fps_timeline_stores_the_frames_ffmpeg_r30_gives(tmp_path, rate_videos, rate,
                                                          convention):
    """AVA's clock on 24, 25, 29.97 and 30 fps files: every stored frame (30 per keyframe,
    stride 1, so every frame of the timeline) is the one libavfilter's fps=30 outputs there."""
    video = rate_videos[rate]
    reference = ffmpeg_rate_numbers(video, 30)
    kf = _keyframes({"v": list(range(100, 121))})
    spec = FrameSpec(clip_len=30, frame_interval=1, short_side=None, timestamp_start=100,
                     convention=convention, shard_clips=8, timeline_fps=30)
    _run(tmp_path, {"v": video}, kf, spec)
    store = FrameStore(tmp_path / "out" / "frames.zarr")
    assert store.timeline_fps == 30 and store.attrs["fps"] == 30
    attrs = store.array("v").attrs
    assert attrs["num_frames"] == len(reference)
    assert attrs["source_fps"] == pytest.approx(float(RATES[rate]))
    assert attrs["source_frames"] == int(21 * RATES[rate]) + 1
    checked = 0
    for row in store.index.itertuples():
        wanted = clip_frame_indices(row.timestamp, fps=30, timestamp_start=100, clip_len=30,
                                    frame_interval=1, convention=convention,
                                    num_frames=len(reference))
        shown = [read_frame_number(frame) for frame in store.clip("v", row.row)]
        assert shown == [reference[k] for k in wanted], (rate, row.timestamp)
        checked += len(shown)
    assert checked == 21 * 30


def test_timeline_ties_fall_as_ffmpeg_rounds_them():
    """A 24 fps frame starting exactly between two 30 fps ticks belongs to the later tick
    (halves away from zero), so tick 2 still shows frame 1; 29.97 fps frame 500 likewise."""
    film = timeline_source_frames(np.arange(10) * 512, time_base=Fraction(1, 12288),
                                  end_pts=10 * 512, rate=30)
    assert film.tolist() == [0, 1, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 9]   # ends at 12.5 ticks: 13
    ntsc = timeline_source_frames(np.arange(600) * 1001, time_base=Fraction(1, 30000),
                                  end_pts=600 * 1001, rate=30)
    assert ntsc[499:503].tolist() == [499, 499, 500, 501] and len(ntsc) == 601
    # the timeline counts from the first frame, wherever the container's clock starts
    shifted = timeline_source_frames(np.arange(10) * 512 + 700, time_base=Fraction(1, 12288),
                                     end_pts=10 * 512 + 700, rate=30)
    assert shifted.tolist() == film.tolist()


def test_train_jitter_stores_the_span_of_train_videos_only(tmp_path, videos):
    """4 frames 4 apart: a train clip holds offsets -10..5 at stride 1 (every frame mmaction2's
    jitter of [-2, 2) per frame reaches); a val clip the 4 frames themselves."""
    kf = pd.concat([_keyframes({"-landscape": [2, 3]}, "train"),
                    _keyframes({"portrait": [2]}, "val")])
    spec = FrameSpec(clip_len=4, frame_interval=4, short_side=32, timestamp_start=0,
                     train_jitter=True)
    _run(tmp_path, videos, kf, spec)
    store = FrameStore(tmp_path / "out" / "frames.zarr")
    assert store.attrs["train_jitter"] is True
    assert store.attrs["jitter_offsets"] == list(range(-10, 6))
    assert store.array("-landscape").shape[1] == 16
    assert store.keyframe_position_of("-landscape") == 10
    for row, t in enumerate([2, 3]):
        shown = [read_frame_number(f) for f in store.clip("-landscape", row)]
        assert shown == list(range(10 * t - 10, 10 * t + 6))
    assert store.array("portrait").shape[1] == 4 and "offsets" not in store.array("portrait").attrs
    assert [read_frame_number(f) for f in store.clip("portrait", 0)] == [12, 16, 20, 24]
    assert [read_frame_number(f) for f in store.keyframe_images("-landscape", [0, 1])] == [20, 30]
    assert store.positions("-landscape", [-8, 0, 4]).tolist() == [2, 10, 14]
    with pytest.raises(ValueError, match="not offset -2"):
        store.positions("portrait", [-2])


def test_native_timeline_store_has_no_timeline_attributes(tmp_path, videos):
    """The native timeline writes exactly what stores held before the timeline existed."""
    spec = FrameSpec(clip_len=2, frame_interval=2, short_side=32, timestamp_start=0)
    _run(tmp_path, videos, _keyframes({"portrait": [1, 2]}), spec)
    store = FrameStore(tmp_path / "out" / "frames.zarr")
    assert store.timeline_fps is None and "timeline_fps" not in store.attrs["spec"]
    assert "source_fps" not in store.array("portrait").attrs
    assert "train_jitter" not in store.attrs and "train_jitter" not in store.attrs["spec"]


@pytest.mark.parametrize("field, value", [("short_side", 33), ("clip_len", 0),
                                          ("convention", "jpeg"), ("shuffle", "zip"),
                                          ("timeline_fps", 0), ("timeline_fps", 29.97)])
def test_spec_errors_name_the_params_key(field, value):
    kwargs = dict(clip_len=4, frame_interval=2, short_side=32, timestamp_start=0)
    kwargs[field] = value
    with pytest.raises(InputError) as info:
        FrameSpec(**kwargs)
    assert info.value.key == f"frames.{field}"


@pytest.mark.parametrize("table, match", [
    (pd.DataFrame({"video_id": ["a"], "timestamp": [1]}), "no column 'split'"),
    (pd.DataFrame({"video_id": ["a", "a"], "timestamp": [1, 1], "split": "t"}), "listed twice"),
    (pd.DataFrame({"video_id": ["a"], "timestamp": [1.5], "split": "t"}), "whole second"),
])
def test_bad_keyframe_tables_are_rejected(tmp_path, videos, table, match):
    spec = FrameSpec(clip_len=2, frame_interval=1, short_side=None, timestamp_start=0)
    with pytest.raises(InputError, match=match):
        _run(tmp_path, {"a": videos["-landscape"]}, table, spec)
    assert not os.path.exists(tmp_path / "out" / "frames.zarr")


def test_incomplete_video_in_partial_store_is_decoded_again(tmp_path, videos):
    kf = _keyframes({"-landscape": [1, 2], "x": [1]})
    spec = FrameSpec(clip_len=2, frame_interval=2, short_side=32, timestamp_start=0)
    broken = {"-landscape": videos["-landscape"], "x": tmp_path / "missing.mp4"}
    with pytest.raises(InputError, match="video 'x' not found"):
        _run(tmp_path, broken, kf, spec)
    partial = zarr.open_group(partial_path(tmp_path / "out" / "frames.zarr"), mode="r+")
    partial["-landscape"].attrs["complete"] = False      # as if killed before the last shard
    fixed = {"-landscape": videos["-landscape"], "x": videos["portrait"]}
    summary = _run(tmp_path, fixed, kf, spec)
    assert summary["resumed_videos"] == [] and summary["decoded_videos"] == ["-landscape", "x"]


def test_codecs_and_shards_store_the_same_frames(tmp_path, videos):
    """lz4, zstd, uncompressed and one- or many-shard writes (the writer thread overlaps each
    shard's compression with the next shard's decoding) hold equal pixels; zstd, the default,
    is absent from the stored spec, so stores written before ``codec`` existed still resume."""
    kf = _keyframes({"-landscape": [1, 2, 3, 4, 5], "portrait": [1, 3]})
    stored = {}
    for codec, clevel, shard_clips in [("zstd", 3, 16), ("zstd", 3, 2), ("lz4", 5, 2),
                                       ("lz4", 0, 1)]:
        spec = FrameSpec(clip_len=4, frame_interval=2, short_side=32, timestamp_start=0,
                         shard_clips=shard_clips, clevel=clevel, codec=codec)
        out = tmp_path / f"{codec}{clevel}-{shard_clips}"
        extract_frames(videos, kf, out / "frames.zarr", out / "keyframes.parquet", spec,
                       progress=False)
        group = zarr.open_group(out / "frames.zarr", mode="r")
        assert group["-landscape"].compressors[0].cname.value == codec
        assert ("codec" in group.attrs["spec"]) == (codec != "zstd")
        store = FrameStore(out / "frames.zarr")
        stored[(codec, clevel, shard_clips)] = {v: store.clips(v, range(len(ts)))
                                                for v, ts in (("-landscape", range(5)),
                                                              ("portrait", range(2)))}
    reference = stored[("zstd", 3, 16)]
    for arrays in stored.values():
        for video_id, clips in arrays.items():
            np.testing.assert_array_equal(clips, reference[video_id])
    with pytest.raises(InputError, match="frames.codec"):
        FrameSpec(clip_len=4, frame_interval=2, short_side=32, timestamp_start=0, codec="jpeg")
