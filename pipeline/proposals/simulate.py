"""A SIMULATED person detector for the synthetic dataset: proposals made from ground truth.

This is not a detector. It perturbs the ground-truth person boxes the way a real detector's
output differs from them, with every property a parameter, so the rest of the pipeline (RoI
heads, evaluation) can be exercised on synthetic videos where no trained detector exists:

- recall: each ground-truth person is found with probability ``recall``;
- localisation: found boxes move by Gaussian noise, ``box_noise`` x the box's width/height
  per coordinate;
- false positives: a Poisson(``false_positives_per_frame``) number of random boxes per keyframe;
- score calibration: scores are ``sigmoid(logit(mean) + score_spread * N(0, 1))`` with
  ``mean = score_mean_tp`` for found persons and ``score_mean_fp`` for false positives, so the
  spread sets how well the score separates the two (0: perfectly, large: not at all).

Found persons and false positives use separate random streams, so changing the false-positive
rate leaves the found boxes unchanged, and lowering ``recall`` drops boxes without moving the
others. Output is deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.errors import InputError, check_columns
from pipeline.boxes import BOX_COLUMNS, KEYFRAME_KEY, normalise_keys
from pipeline.proposals.table import make_proposals

MIN_BOX_SIZE = 1e-3        # normalised; boxes are widened to at least this after clipping
FP_SIZE_RANGE = (0.05, 0.5)  # normalised width/height range of false-positive boxes
GT_COLUMNS = KEYFRAME_KEY + BOX_COLUMNS


def clip_boxes(boxes: np.ndarray, min_size: float = MIN_BOX_SIZE) -> np.ndarray:
    """Clip normalised xyxy boxes to [0, 1] and widen degenerate ones to ``min_size``."""
    boxes = np.clip(boxes, 0.0, 1.0)
    for lo, hi in ((0, 2), (1, 3)):
        small = boxes[:, hi] - boxes[:, lo] < min_size
        start = np.minimum(boxes[small, lo], 1.0 - min_size)
        boxes[small, lo], boxes[small, hi] = start, start + min_size
    return boxes


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _scores(rng: np.random.Generator, mean: float, spread: float, n: int) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(_logit(mean) + spread * rng.standard_normal(n))))


@dataclass(frozen=True)
class SimulatedDetector:
    """Simulated person detector (module docstring); errors name ``proposals.simulated.*``."""

    recall: float = 0.9
    box_noise: float = 0.05
    false_positives_per_frame: float = 0.5
    score_mean_tp: float = 0.9
    score_mean_fp: float = 0.3
    score_spread: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "recall": 0.0 <= self.recall <= 1.0,
            "box_noise": self.box_noise >= 0.0,
            "false_positives_per_frame": self.false_positives_per_frame >= 0.0,
            "score_mean_tp": 0.0 < self.score_mean_tp < 1.0,
            "score_mean_fp": 0.0 < self.score_mean_fp < 1.0,
            "score_spread": self.score_spread >= 0.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise InputError(f"out of range: {getattr(self, name)!r}",
                                 key=f"proposals.simulated.{name}")

    def detect(self, gt_boxes: pd.DataFrame) -> pd.DataFrame:
        """Proposals for every keyframe of ``gt_boxes`` (one row per person, or per action:
        identical boxes on a keyframe count as one person)."""
        check_columns(gt_boxes.columns, GT_COLUMNS, what="ground-truth table")
        gt = (normalise_keys(gt_boxes.loc[:, GT_COLUMNS])
              .drop_duplicates()
              .sort_values(GT_COLUMNS, kind="stable")
              .reset_index(drop=True))
        true_rng, false_rng = np.random.default_rng(self.seed).spawn(2)

        boxes = gt.loc[:, BOX_COLUMNS].to_numpy(dtype=np.float64)
        size = np.tile(boxes[:, 2:] - boxes[:, :2], 2)
        found = true_rng.random(len(gt)) < self.recall
        moved = clip_boxes(boxes + self.box_noise * size * true_rng.standard_normal(boxes.shape))
        true_scores = _scores(true_rng, self.score_mean_tp, self.score_spread, len(gt))

        keyframes = gt.loc[:, KEYFRAME_KEY].drop_duplicates()
        counts = false_rng.poisson(self.false_positives_per_frame, len(keyframes))
        n_false = int(counts.sum())
        centers = false_rng.random((n_false, 2))
        sizes = false_rng.uniform(*FP_SIZE_RANGE, size=(n_false, 2))
        false_boxes = clip_boxes(np.concatenate([centers - sizes / 2, centers + sizes / 2], 1))
        false_scores = _scores(false_rng, self.score_mean_fp, self.score_spread, n_false)

        return make_proposals(
            np.concatenate([gt["video_id"].to_numpy(dtype=object)[found],
                            np.repeat(keyframes["video_id"].to_numpy(dtype=object), counts)]),
            np.concatenate([gt["timestamp"].to_numpy()[found],
                            np.repeat(keyframes["timestamp"].to_numpy(), counts)]),
            np.concatenate([moved[found], false_boxes]),
            np.concatenate([true_scores[found], false_scores]))
