"""Person proposals from an AVA / mmaction2 proposal pickle, filtered the way mmaction2 does."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.ava.proposals import read_proposal_pickle
from pipeline.proposals.table import check_proposals, filter_proposals, proposals_from_rows


def proposals_from_pickle(path: str | Path, *, score_thr: float = 0.9,
                          max_per_frame: int | None = 1000) -> pd.DataFrame:
    """Read the pickle and keep, per keyframe, boxes with ``score >= min(score_thr, best)``.

    The floor at the keyframe's best score is mmaction2's top-1 fallback: no keyframe that has
    boxes is left without one. Defaults are mmaction2's (``person_det_score_thr=0.9``,
    ``num_max_proposals=1000``).
    """
    table = filter_proposals(read_proposal_pickle(path), min_score=score_thr,
                             max_per_keyframe=max_per_frame)
    check_proposals(table, path=path)
    return proposals_from_rows(table)
