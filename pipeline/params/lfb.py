"""The ``lfb`` group: the long-term feature bank (``infer_lfb``) and its window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.errors import InputError
from pipeline.lfb.window import BankWindow
from pipeline.params.runtime import InferenceRuntime
from pipeline.params.schema import positive


@dataclass(frozen=True)
class LfbParams(InferenceRuntime):
    """The long-term feature bank (``infer_lfb``) and the window a head reads from it.

    ``train_boxes``: whose features the train split's bank rows hold, ground-truth boxes (as
    the LFB paper) or detector proposals (as mmaction2's bank-inference config, which runs its
    detector on the train split's proposals >= 0.9); val rows are always proposals.
    The machine settings (batch size, workers, device, autocast, threads): ``InferenceRuntime``.
    ``val_min_proposal_score``: the val rows' proposals keep scores >= min(this, the
    keyframe's best), as mmaction2's ``person_det_score_thr`` of its bank-inference config
    (0.9); separate from ``baseline.data.test_min_proposal_score``, the boxes the heads score
    (mmaction2's LFB configs use 0.85 there).
    ``window_seconds``/``max_per_second``: see ``pipeline.lfb.reader``.
    """

    train_boxes: Literal["gt", "proposals"]
    val_min_proposal_score: float
    dtype: Literal["float16", "float32"]
    chunk_rows: int
    shard_rows: int
    window_seconds: int
    max_per_second: int
    in_memory: bool

    def __post_init__(self):
        super().__post_init__()
        positive(self, "chunk_rows", "shard_rows", "window_seconds", "max_per_second")
        if self.shard_rows % self.chunk_rows:
            raise ValueError(f"shard_rows={self.shard_rows} must be a multiple of "
                             f"chunk_rows={self.chunk_rows}")
        if not 0.0 <= self.val_min_proposal_score <= 1.0:
            raise InputError(f"must be in [0, 1], got {self.val_min_proposal_score}",
                             key="lfb.val_min_proposal_score")

    def window(self) -> BankWindow:
        """The bank rows a keyframe's RoIs read (train_head and evaluate read the same)."""
        return BankWindow(window_seconds=self.window_seconds, max_per_second=self.max_per_second)
