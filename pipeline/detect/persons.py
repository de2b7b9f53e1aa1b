"""The person boxes of each keyframe: from a proposals file or from a person detector.

Each source answers twice, because the two uses filter differently: the boxes scored
(mmaction2's rule for a file, the detector's threshold) and the boxes a feature bank stores
(the bank's own rule, ``pipeline.lfb.layout.proposal_rows``, as ``infer_lfb`` applies it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.ava.proposals import read_proposal_pickle
from pipeline.boxes import BOX_COLUMNS, normalise_keys
from pipeline.errors import InputError
from pipeline.lfb.layout import proposal_rows
from pipeline.models.checkpoint import BankRecipe
from pipeline.proposals.table import filter_proposals, read_proposals

MAX_PROPOSALS = 1000            # per keyframe, mmaction2's num_max_proposals
NO_BOXES = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

Boxes = tuple[np.ndarray, np.ndarray]          # normalised [n, 4] float32, scores [n]
BoxesOf = Callable[[int, np.ndarray], Boxes]   # (timestamp, decoded clip) -> a keyframe's boxes


def read_video_proposals(path: str | Path, video_id: str, timestamps: list[int]
                         ) -> pd.DataFrame:
    """The rows (video_id, timestamp, x1..y2, score, normalised) of ``video_id`` at
    ``timestamps`` in a proposal pickle or a proposals Parquet table (by suffix); a file
    without this video, or without any of these keyframes, is an error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError("proposals file not found", path=path)
    table = read_proposals(path) if path.suffix == ".parquet" else read_proposal_pickle(path)
    table = normalise_keys(table)
    mine = table[table["video_id"] == video_id]
    if mine.empty:
        others = sorted(table["video_id"].unique())[:3]
        raise InputError(f"no proposals for video '{video_id}' (the video's file stem); the file "
                         f"has {table['video_id'].nunique()} other videos, e.g. {others}",
                         path=path)
    wanted = mine[mine["timestamp"].isin(timestamps)]
    if wanted.empty:
        raise InputError(f"proposals for video '{video_id}' are at timestamps "
                         f"{mine['timestamp'].min()}..{mine['timestamp'].max()}, none at this "
                         f"video's keyframes {timestamps[0]}..{timestamps[-1]} (seconds from "
                         "the start plus --timestamp-start)", path=path)
    return wanted.reset_index(drop=True)


def per_keyframe(table: pd.DataFrame) -> dict[int, Boxes]:
    """Normalised boxes and scores per timestamp, in the table's order."""
    return {int(t): (group[BOX_COLUMNS].to_numpy(np.float32),
                     group["score"].to_numpy(np.float32))
            for t, group in table.groupby("timestamp", sort=True)}


class ProposalBoxes:
    """A proposals file's boxes: scored ones by mmaction2's rule (score >= ``min(threshold,
    best of the keyframe)``), bank ones by the bank's rule; read once, for all seconds."""

    def __init__(self, path: str | Path, video_id: str, timestamps: list[int],
                 person_threshold: float, recipe: BankRecipe | None):
        rows = read_video_proposals(path, video_id, timestamps)
        self.given = per_keyframe(filter_proposals(rows, min_score=person_threshold,
                                                   max_per_keyframe=MAX_PROPOSALS))
        self.in_bank: dict[int, Boxes] = {}
        if recipe is not None:
            self.in_bank = per_keyframe(proposal_rows(rows, min_score=recipe.min_proposal_score,
                                                      max_proposals=recipe.max_proposals))

    def scored(self, timestamp: int, clip: np.ndarray) -> Boxes:
        return self.given.get(timestamp, NO_BOXES)

    def bank(self, timestamp: int, clip: np.ndarray) -> Boxes:
        return self.in_bank[timestamp]

    def bank_seconds(self, seconds: list[int]) -> list[int]:
        """The seconds the bank holds rows for: those with a box the bank's rule keeps."""
        return [t for t in seconds if t in self.in_bank]


class PersonDetector:
    """A torchvision Faster R-CNN on the keyframe's frame: person boxes >= the threshold."""

    def __init__(self, weights: str | Path, arch: str, threshold: float, device: torch.device):
        from pipeline.proposals.torchvision_detector import load_person_detector

        self.model = load_person_detector(weights, arch, score_thr=threshold).to(device)
        self.threshold = threshold
        self.device = device

    @torch.inference_mode()
    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from pipeline.proposals.torchvision_detector import COCO_PERSON

        height, width = frame.shape[:2]
        image = torch.from_numpy(frame).to(self.device).permute(2, 0, 1).float().div_(255.0)
        output = self.model([image])[0]
        keep = (output["labels"] == COCO_PERSON) & (output["scores"] >= self.threshold)
        scale = torch.tensor([width, height, width, height], dtype=torch.float32,
                             device=self.device)
        boxes = (output["boxes"][keep] / scale).clamp_(0.0, 1.0).cpu().numpy()
        scores = output["scores"][keep].cpu().numpy()
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return boxes[valid].astype(np.float32), scores[valid].astype(np.float32)


class DetectedBoxes:
    """A person detector's boxes on each keyframe's frame (the clip's middle, as the store
    holds it), found once per keyframe whether scored, stored in the bank, or both."""

    def __init__(self, detector: PersonDetector, keyframe_index: int,
                 recipe: BankRecipe | None):
        self.detector, self.keyframe_index, self.recipe = detector, keyframe_index, recipe
        self.found: dict[int, Boxes] = {}

    def scored(self, timestamp: int, clip: np.ndarray) -> Boxes:
        if timestamp not in self.found:
            self.found[timestamp] = self.detector(clip[self.keyframe_index])
        return self.found[timestamp]

    def bank(self, timestamp: int, clip: np.ndarray) -> Boxes:
        boxes, scores = self.scored(timestamp, clip)
        if len(boxes) == 0:
            return NO_BOXES
        table = pd.DataFrame({"video_id": "", "timestamp": timestamp,
                              **dict(zip(BOX_COLUMNS, boxes.T)), "score": scores})
        kept = proposal_rows(table, min_score=self.recipe.min_proposal_score,
                             max_proposals=self.recipe.max_proposals)
        return kept[BOX_COLUMNS].to_numpy(np.float32), kept["score"].to_numpy(np.float32)

    def bank_seconds(self, seconds: list[int]) -> list[int]:
        """Every second: the detector has not run yet, so none is known to be empty."""
        return seconds
