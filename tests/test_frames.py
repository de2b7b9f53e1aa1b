"""Frame extraction and the frame store: exact frames on every timeline and codec, the store's
layout and reach, checksums, bad videos, resume."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import zarr

from pipeline.ava.clock import clip_frame_indices, timeline_source_frames
from pipeline.errors import InputError
from pipeline.frames.extract import extract_frames
from pipeline.frames.spec import H264_GOP, FrameSpec, clip_reach
from pipeline.frames.store import INDEX_SCHEMA, LAYOUT, FrameStore
from pipeline.io import partial_path
from helpers.video import (COLOR_ROW, ffmpeg_rate_numbers, read_frame_number, render_frame,
                           write_avi, write_video)

FPS = 10
QUALITY = {"zstd": 3, "lz4": 3, "jpeg": 90, "h264": 18}


def _keyframes(rows: dict[str, list[int]], split: str = "train") -> pd.DataFrame:
    return pd.DataFrame([(v, t, split) for v, ts in rows.items() for t in ts],
                        columns=["video_id", "timestamp", "split"])


def _spec(**kwargs) -> FrameSpec:
    kwargs.setdefault("short_side", 32)
    kwargs.setdefault("timestamp_start", 0)
    kwargs.setdefault("reach", (8, 8))
    kwargs.setdefault("shard_frames", 16)
    if "codec" in kwargs:
        kwargs.setdefault("quality", QUALITY[kwargs["codec"]])
    return FrameSpec(**kwargs)


def _run(tmp_path: Path, videos, keyframes, spec, out: str = "out", **kwargs) -> dict:
    return extract_frames(videos, keyframes, tmp_path / out / "frames.zarr",
                          tmp_path / out / "keyframes.parquet", spec, progress=False, **kwargs)


def _store(tmp_path: Path, out: str = "out") -> FrameStore:
    return FrameStore(tmp_path / out / "frames.zarr")


def _numbers(frames) -> list[int]:
    return [read_frame_number(frame) for frame in frames]


def _stored(store: FrameStore, video_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(timeline indices, frames) of everything the store holds of one video."""
    video = store.video(video_id)
    return video.timeline, video.frames(video.timeline)


def _decode_source(path: Path) -> np.ndarray:
    """Every frame of a video, as PyAV decodes it (RGB, presentation order)."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def _luma(frame: np.ndarray) -> np.ndarray:
    """BT.601 luma, 0..255 (float)."""
    return frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _shard_files(store_path: Path, video_id: str) -> list[Path]:
    return sorted(p for p in (store_path / video_id / "frames" / "c").rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    return {
        # AVA ids can start with '-'; the portrait video checks the short side logic.
        "-landscape": write_video(root / "-landscape.mp4", num_frames=60, fps=FPS),
        "portrait": write_video(root / "portrait.mp4", num_frames=50, fps=FPS, width=64,
                                height=96),
    }


# --- exact frames, pixels, sizes ------------------------------------------------------------

@pytest.mark.parametrize("convention", ["pyslowfast", "mmaction2"])
def test_stored_frames_are_the_exact_clip_frames(tmp_path, videos, convention):
    timestamp_start = 100
    kf = _keyframes({"-landscape": [100, 102, 105], "portrait": [101, 104]})
    spec = _spec(timestamp_start=timestamp_start, convention=convention,
                 reach=clip_reach(8, 3, False))
    _run(tmp_path, videos, kf, spec)
    store = _store(tmp_path)
    assert store.convention == convention
    num_frames = {"-landscape": 60, "portrait": 50}
    for row in store.index.itertuples():
        expected = clip_frame_indices(row.timestamp, fps=FPS, timestamp_start=timestamp_start,
                                      clip_len=8, frame_interval=3, convention=convention,
                                      num_frames=num_frames[row.video_id])
        clip = store.clip(row.video_id, row.timestamp, clip_len=8, frame_interval=3)
        assert clip.shape == (8, *store.video(row.video_id).frames([0]).shape[1:])
        assert _numbers(clip) == expected.tolist()
        keyframe = FPS * (row.timestamp - timestamp_start) + (convention == "mmaction2")
        assert row.frame == keyframe
        assert read_frame_number(clip[4]) == keyframe
        assert store.keyframe_frame(row.video_id, row.timestamp) == keyframe
        assert store.frame_of(row.video_id, row.timestamp) == keyframe
    # Clamping at both ends: t=100 starts before frame 0, t=105 runs past the last frame.
    first = _numbers(store.clip("-landscape", 100, clip_len=8, frame_interval=3))
    assert first[:4] == [0, 0, 0, 0]
    last = _numbers(store.clip("-landscape", 105, clip_len=8, frame_interval=3))
    assert last[-1] == 59
    with pytest.raises(InputError, match=r"keyframe \(-landscape, 103\) is not in"):
        store.clip("-landscape", 103, clip_len=8, frame_interval=3)


def test_pixels_match_the_source_within_codec_tolerance(tmp_path, videos):
    kf = _keyframes({"-landscape": [2, 4], "portrait": [3]})
    _run(tmp_path, videos, kf, _spec(short_side=None, reach=(4, 3)))
    store = _store(tmp_path)
    clip = store.clip("-landscape", 4, clip_len=4, frame_interval=2)   # frames 36, 38, 40, 42
    indices = [36, 38, 40, 42]
    source = _decode_source(videos["-landscape"])
    np.testing.assert_array_equal(clip, source[indices])  # exactly what FFmpeg decodes
    for frame, number in zip(clip, indices):
        error = np.abs(frame.astype(np.int16) - render_frame(number, 64, 48))
        assert error.mean() < 3, error.mean()    # H.264 at crf 12 on flat cells
    # RGB order: the bottom row is red, green, blue, white.
    colors = clip[0, 40, [8, 24, 40, 56]].astype(np.int16)
    assert np.abs(colors - COLOR_ROW).max() < 40
    timeline, frames = _stored(store, "portrait")
    np.testing.assert_array_equal(frames, _decode_source(videos["portrait"])[timeline])


def test_resized_frames_keep_aspect_and_match_source(tmp_path, videos):
    kf = _keyframes({"-landscape": [2], "portrait": [2]})
    _run(tmp_path, videos, kf, _spec(short_side=32, reach=(1, 1)))
    store = _store(tmp_path)
    landscape = store.clip("-landscape", 2, clip_len=2, frame_interval=1)
    portrait = store.clip("portrait", 2, clip_len=2, frame_interval=1)
    assert landscape.shape == (2, 32, 42, 3)    # 64x48 -> short side 32, even long side
    assert portrait.shape == (2, 48, 32, 3)
    for frame, number in zip(landscape, [19, 20]):
        error = np.abs(frame.astype(np.int16) - render_frame(number, 42, 32))
        assert error.mean() < 12, error.mean()  # codec + area resampling at cell edges
    assert _numbers(portrait) == [19, 20]
    index = store.index.set_index("video_id")
    assert (index.loc["portrait", "height"], index.loc["portrait", "width"]) == (48, 32)
    assert (index.loc["-landscape", "height"], index.loc["-landscape", "width"]) == (32, 42)
    attrs = store.video("portrait").attrs
    assert (attrs["source_width"], attrs["source_height"]) == (64, 96)


# --- layout, index, reach -------------------------------------------------------------------

def test_store_layout_and_index(tmp_path, videos):
    kf = pd.concat([_keyframes({"portrait": [4, 1, 2]}, "val"),
                    _keyframes({"-landscape": [3, 1, 2, 5]}, "train")])
    spec = _spec(reach=(3, 2), shard_frames=16, quality=5)
    summary = _run(tmp_path, videos, kf, spec)
    out = tmp_path / "out"
    # -landscape: frames 7..12, 17..22, 27..32, 47..52; portrait: 7..12, 17..22, 37..42
    assert summary["videos"] == 2 and summary["keyframes"] == 7
    assert summary["stored_frames"] == 24 + 18
    assert summary["decoded_videos"] == ["-landscape", "portrait"]
    assert summary["resumed_videos"] == [] and summary["skipped_videos"] == []
    assert not partial_path(out / "frames.zarr").exists()

    group = zarr.open_group(out / "frames.zarr", mode="r")
    assert group.attrs["layout"] == LAYOUT and group.attrs["spec"] == spec.as_attrs()
    assert group.attrs["fps"] == FPS
    video = group["-landscape"]
    assert video.attrs["complete"] is True and video.attrs["fps"] == FPS
    assert video.attrs["num_frames"] == 60 and video.attrs["keyframe_frames"] == [10, 20, 30, 50]
    assert video.attrs["timestamps"] == [1, 2, 3, 5] and video.attrs["splits"] == ["train"] * 4
    timeline = video["timeline"]
    assert timeline.dtype == np.int32
    assert timeline[:].tolist() == [*range(7, 13), *range(17, 23), *range(27, 33),
                                    *range(47, 53)]
    frames = video["frames"]
    assert frames.dtype == np.uint8 and frames.shape == (24, 32, 42, 3)
    assert frames.chunks == (1, 32, 42, 3) and frames.shards == (16, 32, 42, 3)
    blosc, crc = frames.compressors
    assert isinstance(blosc, zarr.codecs.BloscCodec) and blosc.cname.value == "zstd"
    assert blosc.clevel == 5 and isinstance(crc, zarr.codecs.Crc32cCodec)
    assert group["portrait"]["frames"].shards == (16, 48, 32, 3)
    assert group["portrait"]["frames"].shape == (18, 48, 32, 3)
    # Files: root + 2 x (video group + timeline metadata + 1 timeline chunk + frames metadata)
    # + 2 + 2 frame shards.
    assert summary["store_files"] == 1 + 2 * 4 + 2 + 2

    table = pq.read_table(out / "keyframes.parquet")
    assert table.schema.equals(INDEX_SCHEMA)
    index = table.to_pandas()
    assert list(index["video_id"]) == ["-landscape"] * 4 + ["portrait"] * 3
    assert list(index["timestamp"]) == [1, 2, 3, 5, 1, 2, 4]
    assert list(index["frame"]) == [10, 20, 30, 50, 10, 20, 40]
    assert list(index["split"]) == ["train"] * 4 + ["val"] * 3
    assert set(index["height"]) == {32, 48} and set(index["width"]) == {42, 32}
    store = FrameStore(out / "frames.zarr")
    pd.testing.assert_frame_equal(store.index, index)
    assert store.video_ids() == ["-landscape", "portrait"]
    assert store.summary()["files"] == summary["store_files"]
    assert store.summary()["stored_frames"] == 42 and store.summary()["codec"] == "zstd"
    assert store.reach == (3, 2) and store.spec == spec
    # Frames come back in the order asked for, repeats allowed.
    assert _numbers(store.keyframe_images("-landscape", [3, 1])) == [30, 10]
    assert _numbers(store.video("portrait").frames([40, 8, 40, 21])) == [40, 8, 40, 21]


def test_store_holds_exactly_the_frames_within_reach(tmp_path, videos):
    """The union of [frame - before, frame + after] over keyframes, clamped to the video; a
    read outside it is refused, naming frames.reach."""
    before, after = 12, 4
    kf = _keyframes({"-landscape": [1, 2, 5], "portrait": [4]})
    _run(tmp_path, videos, kf, _spec(reach=(before, after)))
    store = _store(tmp_path)
    for video_id, centers, num_frames in [("-landscape", [10, 20, 50], 60),
                                          ("portrait", [40], 50)]:
        expected = sorted({f for c in centers for f in range(c - before, c + after + 1)
                           if 0 <= f < num_frames})
        timeline, frames = _stored(store, video_id)
        assert timeline.tolist() == expected
        assert _numbers(frames) == expected
    assert store.video("-landscape").timeline.tolist() == [*range(0, 25), *range(38, 55)]
    # Reads inside the reach work, at either end of the video too (clamped as mmaction2).
    video = store.video("-landscape")
    assert _numbers(video.frames([-3, 0, 24, 38, 54])) == [0, 0, 24, 38, 54]
    assert _numbers(store.clip("-landscape", 5, clip_len=4, frame_interval=4)) == [42, 46, 50,
                                                                                   54]
    for outside in [25, 37, 55, 59]:   # the gap, one past `after`, the video's last frame
        with pytest.raises(InputError, match="frames.reach") as info:
            video.frames([38, outside])
        assert info.value.key == "frames.reach"
        assert f"frame {outside} is not in the store" in str(info.value)
        assert "'-landscape'" in str(info.value)
    with pytest.raises(InputError, match="frames.reach"):   # the clip reaches frame 37
        store.clip("-landscape", 5, clip_len=2, frame_interval=13)
    with pytest.raises(InputError, match="frames.reach"):   # 40 + 5 > portrait's reach
        store.clip("portrait", 4, clip_len=4, frame_interval=5)


# --- codecs ---------------------------------------------------------------------------------

def test_codecs_and_shards_store_the_same_frames(tmp_path, videos):
    """Lossless codecs at any level and shard size (one or many shards, the writer threads
    overlapping each shard's compression with the next one's decoding) hold equal pixels;
    jpeg and h264 hold the same frames, each showing its own number."""
    kf = _keyframes({"-landscape": [1, 2, 3, 4, 5], "portrait": [1, 3]})
    stored = {}
    layouts = {}
    for codec, quality, shard_frames in [("zstd", 3, 256), ("zstd", 3, 16), ("lz4", 5, 32),
                                         ("lz4", 0, 16), ("zstd", 9, 48), ("jpeg", 95, 16),
                                         ("h264", 18, 32)]:
        spec = _spec(codec=codec, quality=quality, shard_frames=shard_frames, reach=(6, 5))
        out = f"{codec}{quality}-{shard_frames}"
        _run(tmp_path, videos, kf, spec, out=out)
        store = _store(tmp_path, out)
        assert store.spec.codec == codec and store.summary()["codec"] == codec
        frames = zarr.open_group(tmp_path / out / "frames.zarr", mode="r")["-landscape"]["frames"]
        layouts[codec, quality, shard_frames] = (frames.shape, frames.shards)
        stored[codec, quality, shard_frames] = {v: _stored(store, v) for v in store.video_ids()}
    n = 55 - 4 + 1   # keyframes 10..50, 10 apart: their reaches overlap into frames 4..55
    assert layouts["zstd", 3, 256] == ((n, 32, 42, 3), (n, 32, 42, 3))
    assert layouts["zstd", 3, 16] == ((n, 32, 42, 3), (16, 32, 42, 3))
    assert layouts["jpeg", 95, 16] == ((n,), (16,))
    assert layouts["h264", 18, 32] == ((-(-n // H264_GOP),), (2,))
    reference = stored["zstd", 3, 256]
    assert reference["-landscape"][0].tolist() == list(range(4, 56))
    for key, videos_stored in stored.items():
        for video_id, (timeline, frames) in videos_stored.items():
            np.testing.assert_array_equal(timeline, reference[video_id][0])
            if key[0] in ("zstd", "lz4"):
                np.testing.assert_array_equal(frames, reference[video_id][1], err_msg=str(key))
            else:
                assert _numbers(frames) == timeline.tolist(), key
                # 4:2:0 chroma on 32-pixel frames blurs the colour cells' edges
                assert _psnr(frames, reference[video_id][1]) > 26, key
                assert _psnr(_luma(frames), _luma(reference[video_id][1])) > 40, key


def test_h264_needs_an_even_frame_size(tmp_path):
    odd = write_avi(tmp_path / "odd.avi", num_frames=20, fps=FPS, width=63, height=47,
                    codec="rawvideo")
    with pytest.raises(InputError, match="even size") as info:
        _run(tmp_path, {"odd": odd}, _keyframes({"odd": [1]}),
             _spec(codec="h264", short_side=None))
    assert info.value.key == "frames.codec"
    _run(tmp_path, {"odd": odd}, _keyframes({"odd": [1]}), _spec(codec="h264", short_side=32))
    assert _numbers(_stored(_store(tmp_path), "odd")[1]) == list(range(2, 19))


@pytest.fixture(scope="module")
def film_videos(tmp_path_factory) -> dict[str, Path]:
    """3 s at 24 and 25 fps: on a 30 fps timeline some source frames show twice."""
    root = tmp_path_factory.mktemp("film")
    return {rate: write_video(root / f"r{rate}.mp4", num_frames=3 * rate, fps=rate)
            for rate in (24, 25)}


@pytest.mark.parametrize("rate", [24, 25])
@pytest.mark.parametrize("codec", ["jpeg", "h264"])
def test_lossy_codecs_keep_every_frame_exact_on_the_30fps_timeline(tmp_path, film_videos,
                                                                  codec, rate):
    """Every frame a lossy store holds shows the frame ffmpeg -r 30 gives there, and its
    pixels stay close to the lossless store's (PSNR in the test, not the codec's word)."""
    video = film_videos[rate]
    reference = ffmpeg_rate_numbers(video, 30)
    kf = _keyframes({"v": [1, 2]})
    common = dict(short_side=None, timeline_fps=30, reach=(21, 19), shard_frames=32)
    _run(tmp_path, {"v": video}, kf, _spec(codec="zstd", **common), out="zstd")
    _run(tmp_path, {"v": video}, kf, _spec(codec=codec, **common), out=codec)
    lossless, lossy = _stored(_store(tmp_path, "zstd"), "v"), _stored(_store(tmp_path, codec), "v")
    timeline = lossy[0]
    assert timeline.tolist() == list(range(9, 80))   # keyframes at 30 and 60, not GOP-aligned
    np.testing.assert_array_equal(timeline, lossless[0])
    assert _numbers(lossy[1]) == [reference[k] for k in timeline]
    assert _numbers(lossless[1]) == [reference[k] for k in timeline]
    # 4:2:0 chroma blurs the saturated colour cells' edges (about 30 dB in RGB whatever the
    # quality); luma shows the codec's own loss
    rgb = [_psnr(a, b) for a, b in zip(lossy[1], lossless[1])]
    luma = [_psnr(_luma(a), _luma(b)) for a, b in zip(lossy[1], lossless[1])]
    assert min(rgb) > 28 and min(luma) > 45, (codec, min(rgb), min(luma))
    # A clip read across H.264 groups decodes each frame from its own group.
    clip = _store(tmp_path, codec).clip("v", 1, clip_len=8, frame_interval=3)
    assert _numbers(clip) == [reference[k] for k in range(18, 42, 3)]


# --- timelines ------------------------------------------------------------------------------

# 21 s: long enough for 29.97 fps to reach its first tie (frame 500 starts at 500.5 ticks)
RATES = {"24": Fraction(24), "25": Fraction(25), "29.97": Fraction(30000, 1001), "30": Fraction(30)}


@pytest.fixture(scope="module")
def rate_videos(tmp_path_factory) -> dict[str, tuple[Path, list[int]]]:
    """Each rate's video and the frame numbers ``ffmpeg -r 30`` shows."""
    root = tmp_path_factory.mktemp("rates")
    out = {}
    for name, rate in RATES.items():
        path = write_video(root / f"r{name}.mp4", num_frames=int(21 * rate) + 1, fps=rate)
        out[name] = (path, ffmpeg_rate_numbers(path, 30))
    return out


@pytest.mark.parametrize("rate", list(RATES))
@pytest.mark.parametrize("convention", ["pyslowfast", "mmaction2"])
def test_30fps_timeline_stores_the_frames_ffmpeg_r30_gives(tmp_path, rate_videos, rate,
                                                          convention):
    """AVA's clock on 24, 25, 29.97 and 30 fps files: every stored frame (the reach covers the
    whole timeline) is the one libavfilter's fps=30 outputs there."""
    video, reference = rate_videos[rate]
    kf = _keyframes({"v": list(range(100, 121))})
    spec = _spec(short_side=None, timestamp_start=100, convention=convention, timeline_fps=30,
                 reach=(15, 30), shard_frames=256)   # the whole timeline
    _run(tmp_path, {"v": video}, kf, spec)
    store = _store(tmp_path)
    assert store.timeline_fps == 30 and store.attrs["fps"] == 30
    attrs = store.video("v").attrs
    assert attrs["num_frames"] == len(reference)
    assert attrs["source_fps"] == pytest.approx(float(RATES[rate]))
    assert attrs["source_frames"] == int(21 * RATES[rate]) + 1
    timeline, frames = _stored(store, "v")
    assert timeline.tolist() == list(range(len(reference)))
    assert _numbers(frames) == reference, rate
    offset = convention == "mmaction2"
    assert store.index["frame"].tolist() == [30 * k + offset for k in range(21)]
    for row in store.index.iloc[::4].itertuples():
        wanted = clip_frame_indices(row.timestamp, fps=30, timestamp_start=100, clip_len=8,
                                    frame_interval=4, convention=convention,
                                    num_frames=len(reference))
        shown = _numbers(store.clip("v", row.timestamp, clip_len=8, frame_interval=4))
        assert shown == [reference[k] for k in wanted], (rate, row.timestamp)


def test_mpeg4_avi_with_b_frames_stores_the_frames_ffmpeg_r30_gives(tmp_path):
    """MPEG-4 Part 2 in AVI with B-frames (decode order differs from presentation order; decord
    reports garbage timestamps for such files): frame-exact on the 30 fps timeline."""
    path = write_avi(tmp_path / "b.avi", num_frames=100, fps=25, max_b_frames=2, gop=12)
    with av.open(str(path)) as container:   # the file really has B-frames out of order
        stream = container.streams.video[0]
        assert stream.codec_context.name == "mpeg4"
        packets = [p for p in container.demux(stream) if p.size]
        assert any(p.pts != p.dts for p in packets)
    reference = ffmpeg_rate_numbers(path, 30)
    assert len(reference) == 120 and reference != sorted(set(reference))   # repeats: 25 -> 30
    kf = _keyframes({"b": [1, 2]})
    summary = _run(tmp_path, {"b": path}, kf, _spec(short_side=None, timeline_fps=30,
                                                    reach=(40, 60)))
    assert summary["stored_frames"] == 120
    store = _store(tmp_path)
    assert store.video("b").attrs["source_frames"] == 100
    timeline, frames = _stored(store, "b")
    assert timeline.tolist() == list(range(120))
    assert _numbers(frames) == reference
    # the 25 fps source's own timeline: each of its frames once, in presentation order
    _run(tmp_path, {"b": path}, kf, _spec(short_side=None, reach=(25, 74)), out="native")
    timeline, frames = _stored(_store(tmp_path, "native"), "b")
    assert _numbers(frames) == timeline.tolist() == list(range(100))


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


def test_native_timeline_store_has_no_timeline_attributes(tmp_path, videos):
    """On the video's own timeline frame k is the k-th source frame; the store records no
    source rate (there is no other timeline to map from)."""
    _run(tmp_path, videos, _keyframes({"portrait": [1, 2]}), _spec(reach=(10, 10)))
    store = _store(tmp_path)
    assert store.timeline_fps is None and store.attrs["spec"]["timeline_fps"] is None
    attrs = store.video("portrait").attrs
    assert "source_fps" not in attrs and "source_frames" not in attrs
    assert attrs["fps"] == FPS and attrs["num_frames"] == 50
    timeline, frames = _stored(store, "portrait")
    assert _numbers(frames) == timeline.tolist() == list(range(0, 31))


# --- spec and keyframe table errors ---------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("short_side", 33), ("short_side", 0), ("convention", "jpeg"), ("timeline_fps", 0),
    ("timeline_fps", 29.97), ("codec", "png"), ("quality", 10), ("quality", -1),
    ("reach", (3,)), ("reach", (-1, 4)), ("reach", (2.5, 4)), ("shard_frames", 20),
    ("shard_frames", 0)])
def test_spec_errors_name_the_params_key(field, value):
    kwargs = dict(short_side=32, timestamp_start=0)
    kwargs[field] = value
    with pytest.raises(InputError) as info:
        FrameSpec(**kwargs)
    assert info.value.key == f"frames.{field}"


@pytest.mark.parametrize("codec, quality", [("jpeg", 0), ("jpeg", 101), ("h264", 52)])
def test_quality_range_depends_on_the_codec(codec, quality):
    with pytest.raises(InputError) as info:
        FrameSpec(short_side=32, timestamp_start=0, codec=codec, quality=quality)
    assert info.value.key == "frames.quality" and repr(codec) in str(info.value)


@pytest.mark.parametrize("table, match", [
    (pd.DataFrame({"video_id": ["a"], "timestamp": [1]}), r"lacks columns \['split'\]"),
    (pd.DataFrame({"video_id": ["a", "a"], "timestamp": [1, 1], "split": "t"}), "listed twice"),
    (pd.DataFrame({"video_id": ["a"], "timestamp": [1.5], "split": "t"}), "whole second"),
    (pd.DataFrame({"video_id": ["a"], "timestamp": [None], "split": "t"}), "has no timestamp"),
    (pd.DataFrame({"video_id": [], "timestamp": [], "split": []}), "empty"),
])
def test_bad_keyframe_tables_are_rejected(tmp_path, videos, table, match):
    with pytest.raises(InputError, match=match):
        _run(tmp_path, {"a": videos["-landscape"]}, table, _spec())
    assert not os.path.exists(tmp_path / "out" / "frames.zarr")


# --- bad videos -----------------------------------------------------------------------------

def test_bad_video_fails_cleanly_then_rerun_resumes(tmp_path, videos):
    good_b = tmp_path / "b_good.mp4"
    write_video(good_b, num_frames=40, fps=FPS)
    bad_b = tmp_path / "src" / "b.mp4"
    bad_b.parent.mkdir()
    bad_b.write_bytes(good_b.read_bytes()[:300])       # truncated file: no moov atom
    inputs = {"a": videos["-landscape"], "b": bad_b}
    kf = _keyframes({"a": [1, 2, 3], "b": [1, 2]})
    spec = _spec(reach=(4, 4))
    store_path = tmp_path / "out" / "frames.zarr"

    with pytest.raises(InputError, match="video 'b'") as info:
        _run(tmp_path, inputs, kf, spec)
    assert info.value.path == str(bad_b)
    assert not store_path.exists() and not (tmp_path / "out" / "keyframes.parquet").exists()
    partial = partial_path(store_path)
    assert zarr.open_group(partial, mode="r")["a"].attrs["complete"] is True
    a_files = {p: p.stat().st_mtime_ns for p in (partial / "a").rglob("*") if p.is_file()}
    assert a_files

    bad_b.write_bytes(good_b.read_bytes())
    summary = _run(tmp_path, inputs, kf, spec)
    assert summary["resumed_videos"] == ["a"] and summary["decoded_videos"] == ["b"]
    for path, mtime in a_files.items():      # video a was not rewritten
        assert (store_path / path.relative_to(partial)).stat().st_mtime_ns == mtime
    assert not partial.exists()
    store = FrameStore(store_path)
    assert _numbers(store.keyframe_images("b", [1, 2])) == [10, 20]
    assert _numbers(store.keyframe_images("a", [1, 3])) == [10, 30]


def test_partial_store_from_another_spec_is_not_reused(tmp_path, videos):
    kf = _keyframes({"-landscape": [1, 2]})
    broken = {"-landscape": videos["-landscape"], "x": tmp_path / "missing.mp4"}
    with pytest.raises(InputError):
        _run(tmp_path, broken, pd.concat([kf, _keyframes({"x": [1]})]), _spec(reach=(2, 2)))
    assert partial_path(tmp_path / "out" / "frames.zarr").exists()
    summary = _run(tmp_path, videos, kf, _spec(reach=(1, 1)))
    assert summary["resumed_videos"] == [] and summary["decoded_videos"] == ["-landscape"]
    assert _store(tmp_path).video("-landscape").timeline.tolist() == [9, 10, 11, 19, 20, 21]


def test_incomplete_video_in_partial_store_is_decoded_again(tmp_path, videos):
    kf = _keyframes({"-landscape": [1, 2], "x": [1]})
    spec = _spec(reach=(2, 2))
    broken = {"-landscape": videos["-landscape"], "x": tmp_path / "missing.mp4"}
    with pytest.raises(InputError, match="video 'x' not found"):
        _run(tmp_path, broken, kf, spec)
    partial = zarr.open_group(partial_path(tmp_path / "out" / "frames.zarr"), mode="r+")
    partial["-landscape"].attrs["complete"] = False      # as if killed before the last shard
    fixed = {"-landscape": videos["-landscape"], "x": videos["portrait"]}
    summary = _run(tmp_path, fixed, kf, spec)
    assert summary["resumed_videos"] == [] and summary["decoded_videos"] == ["-landscape", "x"]


def test_video_changed_in_place_is_decoded_again(tmp_path, videos):
    """A video replaced by one of the same size and modification time (only its content
    differs) is not resumed from the partial store: its frames are decoded again."""
    source = write_avi(tmp_path / "src" / "a.avi", num_frames=40, fps=FPS, codec="rawvideo")
    kf = _keyframes({"a": [1, 3], "b": [1]})
    spec = _spec(reach=(3, 3))
    with pytest.raises(InputError, match="video 'b' not found"):
        _run(tmp_path, {"a": source, "b": tmp_path / "missing.mp4"}, kf, spec)
    partial = zarr.open_group(partial_path(tmp_path / "out" / "frames.zarr"), mode="r")
    assert partial["a"].attrs["complete"] is True

    before = source.stat()
    write_avi(source, num_frames=40, fps=FPS, codec="rawvideo", first_number=1000)
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = source.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    summary = _run(tmp_path, {"a": source, "b": videos["portrait"]}, kf, spec)
    assert "a" in summary["decoded_videos"] and "a" not in summary["resumed_videos"]
    timeline, frames = _stored(_store(tmp_path), "a")
    assert timeline.tolist() == [*range(7, 14), *range(27, 34)]
    assert _numbers(frames) == [1000 + k for k in timeline]


def test_store_bytes_do_not_depend_on_when_the_videos_were_written(tmp_path):
    """The same video content written at another time gives a byte-identical store, so a
    fresh ``dvc repro`` reproduces the committed lock's hash of frames.zarr."""
    kf = _keyframes({"a": [1, 2]})
    spec = _spec(reach=(2, 2))
    source = write_avi(tmp_path / "src" / "a.avi", num_frames=40, fps=FPS, codec="rawvideo")
    _run(tmp_path, {"a": source}, kf, spec, out="first")
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**12))
    _run(tmp_path, {"a": source}, kf, spec, out="second")

    def tree(out: str) -> dict[str, bytes]:
        root = tmp_path / out / "frames.zarr"
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    first, second = tree("first"), tree("second")
    assert first.keys() == second.keys() and len(first) > 2
    assert [name for name in first if first[name] != second[name]] == []


def test_skip_bad_videos_lists_them(tmp_path, videos):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video" * 100)
    short = write_video(tmp_path / "short.mp4", num_frames=15, fps=FPS)   # 1.5 s of video
    inputs = {"good": videos["-landscape"], "corrupt": corrupt, "short": short,
              "missing": tmp_path / "nope.mp4"}
    kf = _keyframes({"good": [1, 2], "corrupt": [1], "short": [1, 3], "missing": [1],
                     "no_file_given": [1]})
    summary = _run(tmp_path, inputs, kf, _spec(reach=(2, 2)), skip_bad_videos=True)
    assert summary["skipped_videos"] == ["corrupt", "missing", "no_file_given", "short"]
    assert summary["num_skipped_videos"] == 4
    assert "truncated" in summary["skip_reasons"]["short"]
    assert str(tmp_path / "nope.mp4") in summary["skip_reasons"]["missing"]
    store = _store(tmp_path)
    assert store.video_ids() == ["good"]
    assert list(pd.read_parquet(tmp_path / "out" / "keyframes.parquet")["video_id"]) == ["good"] * 2
    with pytest.raises(InputError, match="not in the frame store"):
        store.video("short")


def test_truncated_video_error_names_video_and_frame(tmp_path):
    short = write_video(tmp_path / "short.mp4", num_frames=15, fps=FPS)
    with pytest.raises(InputError, match=r"'short' has 15 frames.*keyframe 3 s needs frame 30"):
        _run(tmp_path, {"short": short}, _keyframes({"short": [1, 3]}), _spec(short_side=None))


# --- determinism and integrity --------------------------------------------------------------

@pytest.mark.parametrize("codec", ["zstd", "h264"])
def test_output_is_deterministic_across_worker_counts(tmp_path, videos, codec):
    kf = _keyframes({"-landscape": [1, 2, 3], "portrait": [2, 3]})
    spec = _spec(codec=codec, reach=(6, 5))
    one = _run(tmp_path, videos, kf, spec, out="a", workers=1)
    two = _run(tmp_path, videos, kf, spec, out="b", workers=2)
    assert one == two
    files = sorted(p for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == one["store_files"] + 1
    for path in files:
        other = tmp_path / "b" / path.relative_to(tmp_path / "a")
        assert path.read_bytes() == other.read_bytes(), path


@pytest.mark.parametrize("codec", ["zstd", "lz4", "jpeg", "h264"])
def test_corrupt_shard_fails_its_read_naming_video_and_frames(tmp_path, videos, codec):
    """32 bytes flipped in one shard: reading a frame of that shard raises an InputError naming
    the store, the video and the frame (never wrong pixels); other shards still read."""
    kf = _keyframes({"-landscape": [2, 4]})
    _run(tmp_path, videos, kf, _spec(codec=codec, reach=(10, 10), shard_frames=16))
    store_path = tmp_path / "out" / "frames.zarr"
    timeline, original = _stored(FrameStore(store_path), "-landscape")
    assert len(timeline) == 41   # frames 10..50
    shards = _shard_files(store_path, "-landscape")
    assert len(shards) == 3
    shard = shards[1]                     # stored frames 16..31
    data = bytearray(shard.read_bytes())
    middle = len(data) // 2 - 16
    data[middle:middle + 32] = bytes(b ^ 0xFF for b in data[middle:middle + 32])
    shard.write_bytes(bytes(data))

    video = FrameStore(store_path).video("-landscape")
    failed = []
    for position, frame in enumerate(timeline):
        try:
            pixels = video.frames([frame])[0]
        except InputError as err:
            assert 16 <= position < 32, (position, err)
            message = str(err)
            assert "video '-landscape'" in message and f"frames {frame}" in message, message
            assert err.path == str(store_path)
            failed.append(int(frame))
            continue
        np.testing.assert_array_equal(pixels, original[position], err_msg=str(position))
    assert failed
    with pytest.raises(InputError, match=rf"video '-landscape'.*frames .*\b{failed[0]}\b"):
        video.frames(timeline)             # a clip over the damaged frames fails as a whole
    np.testing.assert_array_equal(video.frames(timeline[:16]), original[:16])
    np.testing.assert_array_equal(video.frames(timeline[32:]), original[32:])


def test_store_in_the_old_layout_is_refused(tmp_path):
    old = tmp_path / "frames.zarr"
    group = zarr.open_group(old, mode="w", attributes={"fps": 30})
    group.create_array("clips", shape=(2, 4, 8, 8, 3), dtype="uint8")
    with pytest.raises(InputError, match=r"older version.*dvc repro -f extract_frames") as info:
        FrameStore(old)
    assert info.value.path == str(old)
    with pytest.raises(InputError, match="not a frame store"):
        FrameStore(tmp_path / "nothing")
