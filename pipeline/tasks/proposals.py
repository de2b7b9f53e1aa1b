"""Stage ``proposals``: person boxes for every keyframe, from a pickle, a simulation or a detector,
filtered by mmaction2's rule (``filter_proposals``), with their recall of the ground truth."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.ava.annotations import read_annotations
from pipeline.boxes import KEYFRAME_KEY
from pipeline.data.dataset import stored_annotations
from pipeline.errors import InputError
from pipeline.frames.store import FrameStore
from pipeline.io import write_json
from pipeline.params.proposals import ProposalParams
from pipeline.params.schema import Params
from pipeline.proposals.metrics import proposal_metrics
from pipeline.proposals.pickle_source import proposals_from_pickle
from pipeline.proposals.table import filter_proposals, read_proposals, write_proposals
from pipeline.proposals.torchvision_detector import detect_persons
from pipeline.sources.manifest import read_manifest

# The params keys whose values shape this stage's outputs (see pretrain_baseline.PARAMS).
# The params groups this stage reads, with their schemas (all of PARAMS's groups).
GROUPS = {"proposals": ProposalParams}
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
PATHS = ("dataset", "frames", "out", "metrics")


def run(params: Params, *, dataset: Path, frames: Path, out: Path, metrics: Path) -> None:
    """The stage: ``out`` (the proposals table) and recall per split in ``metrics``."""
    manifest = read_manifest(dataset)
    params = params.proposals
    store = FrameStore(frames / "frames.zarr")
    gt = {split: stored_annotations(read_annotations(dataset / files.annotations),
                                    store.index, split)[0]
          for split, files in manifest.splits.items()}

    if params.source == "simulated":
        raw = params.simulated.detect(pd.concat(gt.values(), ignore_index=True))
    elif params.source == "pickle":
        raw = pd.concat([_read_file(path) for path in pickle_paths(params, manifest, dataset)],
                        ignore_index=True)
    else:
        detector = params.detector
        raw = detect_persons(store, weights_path=detector.weights,
                             arch=detector.arch, score_thr=detector.score_threshold,
                             batch_size=detector.batch_size, device=detector.device)
    proposals = filter_proposals(raw, min_score=params.score_threshold,
                                 max_per_keyframe=params.max_per_frame)
    write_proposals(out, proposals)
    write_json(metrics, {split: proposal_metrics(_split(proposals, table), table)
                         for split, table in gt.items()})


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
    return proposals.merge(gt[KEYFRAME_KEY].drop_duplicates(), on=KEYFRAME_KEY)
