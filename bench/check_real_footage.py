"""Extract real clips with an AVA preset's frames group and check every stored frame against
``ffmpeg -r 30``: the source frame it shows, and its PSNR to that frame decoded exactly.

    .venv/bin/python bench/check_real_footage.py --footage /tmp/footage \
        --preset presets/ava22-slowonly-r50-4x16.yaml

For each clip: keyframes every second from 2 s to the end - 1 s (all train, so the store
keeps every frame within ``frames.reach``), extracted by ``extract_frames`` with the preset's
``frames`` group on top of params.yaml's. The reference is libavfilter's ``fps=30`` over the
decoded stream with the timestamps ffmpeg's CLI gives frames (the decoder's pts, or its dts
where the pts run backwards, as in AVI files with packed MPEG-4 B-frames such as
``Megamind.avi``); each reference frame is matched to the source frame it is, so a stored
frame that shows another source frame counts as wrong, whatever the codec's loss. PSNR
compares a stored frame with the same source frame resized by the same code path, so it is
the codec's loss alone.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from footage import add_footage_args, footage_videos  # noqa: E402
from pipeline.frames.extract import extract_frames  # noqa: E402
from pipeline.frames.store import FrameStore  # noqa: E402
from pipeline.frames.video import open_video  # noqa: E402
from pipeline.params.frames import FramesParams  # noqa: E402
from pipeline.params.schema import build  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def ffmpeg_r30_sources(path: Path) -> list[int]:
    """Source frame (presentation order) shown by each frame ``ffmpeg -i path -r 30`` gives."""
    thumbs, shown = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        graph = av.filter.Graph()
        source = graph.add_buffer(template=stream)
        fps = graph.add("fps", "fps=30")
        sink = graph.add("buffersink")
        source.link_to(fps)
        fps.link_to(sink)
        graph.configure()
        decoded = list(container.decode(stream))
        pts = [f.pts for f in decoded]
        if any(b < a for a, b in zip(pts, pts[1:])):   # ffmpeg's guess: dts when pts is faulty
            pts = [f.dts if f.dts is not None else None for f in decoded]
            for i, p in enumerate(pts):
                pts[i] = p if p is not None else pts[i - 1] + 1
        first = pts[0]

        def drain() -> None:
            while True:
                try:
                    frame = graph.pull()
                except (av.BlockingIOError, av.EOFError):
                    return
                small = frame.to_ndarray(format="gray")[::4, ::4].astype(np.int32)
                shown.append(int(np.argmin([np.abs(t - small).sum() for t in thumbs])))

        for frame, p in zip(decoded, pts):
            thumbs.append(frame.to_ndarray(format="gray")[::4, ::4].astype(np.int32))
            frame.pts = p - first
            graph.push(frame)
            drain()
        graph.push(None)
        drain()
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_footage_args(parser)
    parser.add_argument("--preset", type=Path, default=REPO / "presets/ava22-slowonly-r50-4x16.yaml")
    args = parser.parse_args()
    params = yaml.safe_load((REPO / "params.yaml").read_text())["frames"]
    params.update(yaml.safe_load(args.preset.read_text())["frames"])
    frames = build(FramesParams, params, key="frames")
    print(f"frames group of {args.preset.name}: codec {frames.codec} quality {frames.quality}, "
          f"short side {frames.short_side}, timeline {frames.timeline_fps} fps, "
          f"{frames.convention}, reach {list(frames.reach)}")
    print(f"{'clip':<16}{'container':<22}{'frames':>8}{'stored':>8}{'wrong':>7}"
          f"{'kB/frame':>10}{'PSNR min':>10}{'median':>8}{'s':>7}")
    workdir = Path(tempfile.mkdtemp(prefix="footage_"))
    for name, path in footage_videos(args, workdir).items():
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            kind = f"{path.suffix[1:]} {stream.codec_context.name}"
            seconds = float(container.duration / 1e6)
        keyframes = pd.DataFrame({"video_id": name, "timestamp": range(2, int(seconds)),
                                  "split": "train"})
        spec = frames.spec(timestamp_start=0)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            summary = extract_frames({name: path}, keyframes, Path(tmp) / "frames.zarr",
                                     Path(tmp) / "keyframes.parquet", spec, progress=False)
            took = time.perf_counter() - start
            video = FrameStore(Path(tmp) / "frames.zarr").video(name)
            reference = ffmpeg_r30_sources(path)
            exact = open_video(name, path, spec.output_size, spec.timeline_fps)
            wrong = sum(int(exact.source_index[t]) != reference[t] for t in video.timeline
                        if t < len(reference))
            wrong += sum(t >= len(reference) for t in video.timeline)
            psnr = []
            for timeline, frame in exact.iter_frames(video.timeline):
                stored = video.frames(timeline[:1])[0].astype(np.float64)
                mse = np.mean((stored - frame) ** 2)
                psnr.append(99.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse))
        print(f"{name:<16}{kind:<22}{len(reference):>8}{summary['stored_frames']:>8}"
              f"{wrong:>7}{summary['store_bytes'] / summary['stored_frames'] / 1e3:>10.1f}"
              f"{min(psnr):>10.1f}{np.median(psnr):>8.1f}{took:>7.1f}")


if __name__ == "__main__":
    main()
