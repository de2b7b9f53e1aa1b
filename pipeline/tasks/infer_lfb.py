"""Stage ``infer_lfb``: the trained baseline fills a long-term feature bank.

One bank holds both splits (their videos differ, so windows never mix them): train rows are
ground-truth boxes or proposals (``train_boxes``; the LFB paper uses ground truth, mmaction2's
bank-inference config runs on proposals >= 0.9), val rows are proposals, always, because that
is all a test-time model has (``lfb.val_min_proposal_score``, 0.9 in mmaction2). Every
keyframe of the store is covered, not only the annotated ones, so windows have no holes.

Work is split by bank shard (``pipeline.lfb.writer``): a shard's keyframes are run through the
backbone in batches, their boxes pooled from the maps, and the whole shard written at once.
Under ``torchrun`` rank ``r`` of ``W`` writes shards ``r, r + W, ...``; a rerun after an
interruption skips the shards already written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

from pipeline.ava.annotations import merge_boxes
from pipeline.boxes import BOX_COLUMNS, KEYFRAME_KEY, normalise_keys
from pipeline.data.config import DataConfig
from pipeline.data.dataset import check_clip_reach
from pipeline.data.inputs import DatasetFiles, LoadedInputs
from pipeline.devices import set_cpu_threads
from pipeline.engine.distributed import DistContext, fail_together, setup_distributed
from pipeline.engine.maps import box_features, compute_maps
from pipeline.engine.precision import autocast, autocast_dtype
from pipeline.errors import InputError
from pipeline.io import file_digest
from pipeline.lfb.layout import BANK_BOX_COLUMNS, proposal_rows
from pipeline.lfb.writer import BankStorage, BankWriter, fill_bank
from pipeline.models.checkpoint import build_detector_from_checkpoint
from pipeline.params.baseline import BaselineParams
from pipeline.params.lfb import LfbParams
from pipeline.params.schema import Params

log = logging.getLogger(__name__)

# The params keys whose values shape this stage's outputs (see pretrain_baseline.PARAMS).
# The params groups this stage reads, with their schemas (all of PARAMS's groups).
GROUPS = {"baseline": BaselineParams, "lfb": LfbParams}
PARAMS = (
    "lfb.train_boxes",
    "lfb.val_min_proposal_score",
    "lfb.dtype",
    "lfb.amp",
    "lfb.amp_dtype",
    "lfb.chunk_rows",
    "lfb.shard_rows",
    "baseline.data.test_short_side",
    "baseline.data.train_min_proposal_score",
    "baseline.data.max_proposals",
)
PATHS = ("dataset", "frames", "proposals", "baseline", "out")


def run(params: Params, *, dataset: Path, frames: Path, proposals: Path, baseline: Path,
        out: Path) -> None:
    """The stage: the bank of both splits under ``out``, on ``lfb.device`` (every rank)."""
    lfb = params.lfb
    set_cpu_threads(lfb.num_threads)
    ctx = setup_distributed(lfb.device, key="lfb.device")
    summary = infer_lfb(
        files=DatasetFiles.from_dag(dataset=dataset, frames=frames, proposals=proposals),
        baseline_checkpoint=baseline, out_dir=out, storage_dtype=lfb.dtype,
        chunk_rows=lfb.chunk_rows, shard_rows=lfb.shard_rows, train_boxes=lfb.train_boxes,
        data_config=params.baseline.data, val_min_proposal_score=lfb.val_min_proposal_score,
        batch_size=lfb.batch_size, num_workers=lfb.num_workers, ctx=ctx,
        amp_dtype=autocast_dtype(ctx.device, lfb.amp, lfb.amp_dtype))
    if summary is not None:
        print(f"feature bank: {summary}")


def bank_boxes(inputs: LoadedInputs, *, train_boxes: Literal["gt", "proposals"],
               data_config: DataConfig, val_min_proposal_score: float = 0.9) -> pd.DataFrame:
    """The box table of ``pipeline.lfb.layout.bank_layout``: every box of every stored
    keyframe of both splits (train: GT or proposals, val: proposals).

    Proposals keep scores >= min(threshold, the keyframe's best): train rows
    ``data_config.train_min_proposal_score``, val rows ``val_min_proposal_score`` (params
    ``lfb.val_min_proposal_score``; mmaction2's bank-inference config uses 0.9)."""
    stored = normalise_keys(inputs.keyframes)
    proposals = normalise_keys(inputs.proposals)
    parts = []
    for split in ("train", "val"):
        keys = stored.loc[stored["split"] == split, KEYFRAME_KEY]
        if split == "train" and train_boxes == "gt":
            boxes, _ = merge_boxes(inputs.gt("train"), inputs.label_map)
            boxes = normalise_keys(boxes).assign(score=1.0, source="gt")
        else:
            min_score = (data_config.train_min_proposal_score if split == "train"
                         else val_min_proposal_score)
            boxes = proposal_rows(proposals.merge(keys, on=KEYFRAME_KEY), min_score=min_score,
                                  max_proposals=data_config.max_proposals)
        boxes = boxes.merge(keys, on=KEYFRAME_KEY)   # keyframes the store holds
        parts.append(boxes.assign(split=split)[BANK_BOX_COLUMNS])
    table = pd.concat(parts, ignore_index=True)
    if table.empty:
        raise InputError("no boxes to put in the feature bank (no annotations or proposals "
                         "for the stored keyframes)", path=inputs.files.proposals)
    return table


def infer_lfb(*, files: DatasetFiles, baseline_checkpoint: str | Path, out_dir: str | Path,
              storage_dtype: Literal["float16", "float32"] = "float16", chunk_rows: int = 64,
              shard_rows: int = 8192, train_boxes: Literal["gt", "proposals"] = "gt",
              data_config: DataConfig = DataConfig(), val_min_proposal_score: float = 0.9,
              batch_size: int = 16, num_workers: int = 1, ctx: DistContext | None = None,
              progress: bool = True, amp_dtype: torch.dtype | None = None) -> dict | None:
    """Fill the bank at ``out_dir`` (``features.zarr``, ``index.parquet``, ``bank.json``),
    the model run under autocast to ``amp_dtype`` (None: float32; rows stored as
    ``storage_dtype``).

    Returns the writer's summary on the main rank (None elsewhere). Resumes from
    ``<out_dir>.partial`` when it holds shards of the same layout, storage and checkpoint.
    """
    ctx = ctx or setup_distributed("auto")
    inputs = LoadedInputs(files)
    model = build_detector_from_checkpoint(baseline_checkpoint).to(ctx.device).eval()
    check_clip_reach(inputs.store, model.config.clip_len, model.config.frame_interval)
    boxes = bank_boxes(inputs, train_boxes=train_boxes, data_config=data_config,
                       val_min_proposal_score=val_min_proposal_score)
    storage = BankStorage(dim=model.feature_channels, dtype=storage_dtype,
                          chunk_rows=chunk_rows, shard_rows=shard_rows)
    provenance = {"checkpoint_sha256": file_digest(baseline_checkpoint),
                  "test_short_side": data_config.test_short_side, "train_boxes": train_boxes,
                  "val_min_proposal_score": val_min_proposal_score,
                  "max_proposals": data_config.max_proposals}
    with fail_together(ctx, "creating the partial bank"):   # rank 0 creates, the others wait
        if ctx.is_main:
            writer = BankWriter(out_dir, boxes, storage, provenance=provenance, create=True)
            if writer.resumed_shards:
                log.info("resuming: %d of %d shards already written", writer.resumed_shards,
                         writer.num_shards)
    solo = DistContext(rank=0, local_rank=ctx.local_rank, world_size=1, device=ctx.device)

    @torch.inference_mode()
    def compute(shard_boxes: pd.DataFrame) -> np.ndarray:
        dataset = inputs.dataset(None, frames_per_clip=model.config.clip_len,
                                 frame_interval=model.config.frame_interval,
                                 short_side=data_config.test_short_side, min_proposal_score=0.0,
                                 max_proposals=1, keyframes=shard_boxes)
        # every rank computes its own shards alone: no collective inside
        maps = compute_maps(model, dataset, batch_size=batch_size, num_workers=num_workers,
                            ctx=solo, desc="bank maps", amp_dtype=amp_dtype)
        where = {(v, int(t)): i for i, (v, t) in enumerate(zip(maps.video_ids, maps.timestamps))}
        keyframe = np.array([where[(v, int(t))] for v, t in
                             zip(shard_boxes["video_id"], shard_boxes["timestamp"])])
        with autocast(ctx.device, amp_dtype):
            return box_features(model, maps.maps, maps.image_sizes, keyframe,
                                shard_boxes[BOX_COLUMNS].to_numpy(np.float32),
                                ctx.device)

    # every rank writes its own shards; all of them are done before rank 0 moves the bank
    with fail_together(ctx, "filling the feature bank"):
        if not ctx.is_main:
            writer = BankWriter(out_dir, boxes, storage, provenance=provenance, create=False)
        written = fill_bank(writer, compute, rank=ctx.rank, world_size=ctx.world_size,
                            progress=progress and ctx.is_main)
        log.info("rank %d wrote %d shards", ctx.rank, len(written))
    if not ctx.is_main:
        return None
    return writer.finalize()
