"""Stage proposals: person boxes for every keyframe, from a pickle, a simulation or a detector.

    python -m stages.proposals --dataset data/dataset --frames data/frames \
        --out data/proposals/proposals.parquet --metrics metrics/proposals.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pipeline.ava.annotations import read_annotations
from pipeline.data.dataset import stored_annotations
from pipeline.dataset import read_manifest
from pipeline.errors import InputError
from pipeline.frames import FrameStore
from pipeline.io import write_json
from pipeline.params import load_params
from pipeline.proposals import proposal_metrics, proposals_from_pickle, read_proposals
from pipeline.proposals import write_proposals
from pipeline.proposals.table import filter_proposals
from pipeline.proposals.torchvision_detector import detect_persons

from stages import run

# The params keys whose values shape this stage's outputs, as dvc.yaml declares them
# (tests/test_params.py checks both); runtime-only keys (pipeline.params.RUNTIME_KEYS)
# are read from the same groups but tracked by no stage.
PARAMS = (
    "proposals.source",
    "proposals.score_threshold",
    "proposals.max_per_frame",
    "proposals.train_pickle",
    "proposals.val_pickle",
    "proposals.simulated",
    "proposals.detector.arch",
    "proposals.detector.weights",
    "proposals.detector.score_threshold",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--frames", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_params(groups=PARAMS).proposals
    manifest = read_manifest(args.dataset)
    store = FrameStore(args.frames / "frames.zarr")
    gt = {split: stored_annotations(read_annotations(args.dataset / files.annotations),
                                    store.index, split)[0]
          for split, files in manifest.splits.items()}

    if params.source == "simulated":
        raw = params.simulated.detect(pd.concat(gt.values(), ignore_index=True))
    elif params.source == "pickle":
        raw = pd.concat([_read_file(path) for path in pickle_paths(params, manifest,
                                                                   args.dataset)],
                        ignore_index=True)
    else:
        detector = params.detector
        raw = detect_persons(store, weights_path=detector.weights,
                             arch=detector.arch, score_thr=detector.score_threshold,
                             batch_size=detector.batch_size, device=detector.device)
    proposals = filter_proposals(raw, min_score=params.score_threshold,
                                 max_per_keyframe=params.max_per_frame)
    write_proposals(args.out, proposals)
    metrics = {split: proposal_metrics(_split(proposals, table), table)
               for split, table in gt.items()}
    write_json(args.metrics, metrics)


def _read_file(path: Path) -> pd.DataFrame:
    """A proposal pickle, or a proposals table the dataset holds (a custom dataset's boxes
    under whole-second keys, written by ``make_dataset``)."""
    if path.suffix == ".parquet":
        return read_proposals(path)
    return proposals_from_pickle(path, score_thr=0.0, max_per_frame=None)


def pickle_paths(params, manifest, dataset: Path) -> list[Path]:
    """The train and val proposal files: the params' pickles, or else the dataset's own (an
    AVA download's FAIR dense proposals, a custom dataset's files, found by
    ``make_dataset``; relative paths are inside the dataset folder)."""
    paths = []
    for split, given in (("train", params.train_pickle), ("val", params.val_pickle)):
        path = given or manifest.path(dataset, manifest.proposals.get(split))
        if not path:
            raise InputError(f"proposals.source is 'pickle' but proposals.{split}_pickle is "
                             f"empty and the dataset has no {split} proposal pickle",
                             key=f"proposals.{split}_pickle")
        paths.append(Path(path))
    return paths


def _split(proposals: pd.DataFrame, gt: pd.DataFrame) -> pd.DataFrame:
    keys = gt[["video_id", "timestamp"]].drop_duplicates()
    return proposals.merge(keys, on=["video_id", "timestamp"])


if __name__ == "__main__":
    run(main)
