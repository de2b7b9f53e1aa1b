"""``stad``: inspect the pipeline's outputs and run its standalone tools.

Bad input ends with a one-line message naming the file, line or key, and exit status 2.
Each subcommand imports its implementation when it runs, so that ``stad --help``, ``stad eval``
and ``stad params`` never load torch (seconds of start-up).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.errors import InputError, run_reporting


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    return run_reporting(lambda: args.func(args))


def build_parser() -> argparse.ArgumentParser:
    from pipeline.detect_command import add_detect_command
    from pipeline.evaluation.command import add_eval_command
    from pipeline.models.command import add_checkpoint_command

    parser = argparse.ArgumentParser(prog="stad", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(metavar="COMMAND")

    p = sub.add_parser("params", help="validate params.yaml or apply a preset to it")
    p_sub = p.add_subparsers(metavar="ACTION")
    check = p_sub.add_parser("check", help="load and validate every params group")
    check.add_argument("--file", default="params.yaml")
    check.set_defaults(func=_params_check)
    apply = p_sub.add_parser("apply", help="merge a preset (presets/NAME.yaml or a path) into params.yaml")
    apply.add_argument("preset")
    apply.add_argument("--file", default="params.yaml")
    apply.set_defaults(func=_params_apply)

    p = sub.add_parser("keyframes", help="list the keyframes of a frame store")
    p.add_argument("frames", type=Path, help="the extract_frames output folder")
    p.add_argument("--split")
    p.add_argument("--video")
    p.set_defaults(func=_keyframes)

    p = sub.add_parser("show", help="render a keyframe clip with its boxes as a PNG")
    p.add_argument("frames", type=Path, help="the extract_frames output folder")
    p.add_argument("video")
    p.add_argument("timestamp", type=int)
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    p.add_argument("--dataset", type=Path, help="dataset folder: draw its ground-truth boxes")
    p.add_argument("--proposals", type=Path, help="proposals Parquet: draw its boxes")
    p.add_argument("--clip-len", type=int, default=8, help="frames in the strip (default 8)")
    p.add_argument("--frame-interval", type=int, default=None,
                   help="timeline frames between them (default: the widest the store reaches)")
    p.set_defaults(func=_show)

    p = sub.add_parser("summary", help="summarise a Zarr store or a Parquet table")
    p.add_argument("path", type=Path)
    p.set_defaults(func=_summary)

    add_eval_command(sub)
    add_checkpoint_command(sub)
    add_detect_command(sub).set_defaults(func=_detect)
    return parser


def _detect(args) -> int:
    from pipeline.detect_command import run_detect_command

    return run_detect_command(args)


def _params_check(args) -> int:
    from pipeline.params.all import load_all

    params = load_all(args.file)
    print(f"{args.file}: valid ({', '.join(vars(params))})")
    return 0


def _params_apply(args) -> int:
    from pipeline.params.overlay import apply_overlay

    preset = Path(args.preset)
    if not preset.suffix:
        preset = Path("presets") / f"{args.preset}.yaml"
    changed = apply_overlay(args.file, preset)
    print(f"{args.file}: set {len(changed)} keys from {preset}")
    return 0


def _keyframes(args) -> int:
    index = _frame_store(args.frames).index
    if args.split:
        index = index[index["split"] == args.split]
    if args.video:
        index = index[index["video_id"] == args.video]
    print(index.to_string(index=False))
    return 0


def _show(args) -> int:
    import pandas as pd

    from pipeline.boxes import at_keyframe
    from pipeline.viz import LabelledBox, render_clip

    store = _frame_store(args.frames)
    if at_keyframe(store.index, args.video, args.timestamp).empty:
        raise InputError(f"no keyframe {args.video},{args.timestamp} in the store",
                         path=args.frames)
    interval = args.frame_interval or widest_interval(store.reach, args.clip_len)
    clip = store.clip(args.video, args.timestamp, clip_len=args.clip_len,
                      frame_interval=interval)
    boxes: list[LabelledBox] = []
    if args.dataset is not None:
        boxes += _ground_truth_boxes(args.dataset, args.video, args.timestamp)
    if args.proposals is not None:
        props = at_keyframe(pd.read_parquet(args.proposals), args.video, args.timestamp)
        boxes += [LabelledBox(r.x1, r.y1, r.x2, r.y2, f"{r.score:.2f}", (0, 200, 255))
                  for r in props.itertuples()]
    image = render_clip(clip, boxes)
    from pipeline.io import atomic_output

    with atomic_output(args.out) as tmp:
        image.save(tmp, format="PNG")
    print(f"wrote {args.out} ({len(boxes)} boxes)")
    return 0


def _ground_truth_boxes(dataset_dir: Path, video: str, timestamp: int):
    import numpy as np

    from pipeline.ava.annotations import merge_boxes, read_annotations
    from pipeline.ava.label_map import read_label_map
    from pipeline.boxes import at_keyframe
    from pipeline.sources.manifest import read_manifest
    from pipeline.viz import LabelledBox

    manifest = read_manifest(dataset_dir)
    label_map = read_label_map(manifest.path(dataset_dir, manifest.label_map))
    split = manifest.video_splits.get(video)
    if split is None:
        raise InputError(f"video {video} is not in the dataset", path=dataset_dir)
    gt = read_annotations(manifest.path(dataset_dir, manifest.splits[split].annotations), label_map)
    boxes, labels = merge_boxes(at_keyframe(gt, video, timestamp), label_map)
    result = []
    for row, hot in zip(boxes.itertuples(), labels):
        names = [label_map.names[label_map.ids[i]] for i in np.flatnonzero(hot)]
        result.append(LabelledBox(row.x1, row.y1, row.x2, row.y2, "\n".join(names)))
    return result


def widest_interval(reach: tuple[int, int], clip_len: int) -> int:
    """The largest frame interval at which a ``clip_len`` clip stays within ``reach``."""
    before, after = clip_len // 2, clip_len - 1 - clip_len // 2
    limits = [reach[0] // before if before else None, reach[1] // after if after else None]
    return max(1, min((x for x in limits if x is not None), default=1))


def _summary(args) -> int:
    path = args.path
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        meta = pq.read_metadata(path)
        print(f"{path}: {meta.num_rows} rows, {meta.num_row_groups} row groups")
        print(pq.read_schema(path))
        return 0
    from pipeline.io import zarr_arrays

    if not path.exists():
        raise InputError("no such store", path=path)
    arrays = zarr_arrays(path)
    files = [p for p in path.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    print(f"{path}: {len(files)} files, {size / 2**20:.1f} MiB on disk")
    for name, array in arrays:
        print(f"  {name or '.'}: shape={array.shape} dtype={array.dtype} "
              f"chunks={array.chunks} shards={array.shards}")
    return 0


def _store_path(frames: Path) -> Path:
    """Accept the extract_frames folder or the Zarr store itself."""
    return frames / "frames.zarr" if (frames / "frames.zarr").is_dir() else frames


def _frame_store(frames: Path):
    """The FrameStore of ``frames``, its arrays opened once with ``open_zarr`` first: an
    array zarr cannot read is named in one line (FrameStore opens them with zarr itself)."""
    from pipeline.frames.store import FrameStore
    from pipeline.io import zarr_arrays

    path = _store_path(frames)
    if (path / "zarr.json").is_file():
        zarr_arrays(path)
    return FrameStore(path)

if __name__ == "__main__":
    sys.exit(main())
