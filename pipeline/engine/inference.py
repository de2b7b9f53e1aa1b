"""Batched inference over a dataset, split across ranks by whole batches, without padding.

The dataset is cut into consecutive batches of ``batch_size`` as one process would; rank ``r``
of ``W`` runs batches ``r, r + W, ...`` and the main rank gathers the per-sample results back
into dataset order. Every sample is thus computed in the same batch (same neighbours, same
padding to the batch's largest clip) whatever the number of ranks, so a torchrun run gives the
rows of a one-process run exactly. A padding sampler would repeat keyframes, which duplicates
detections and skews mAP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from pipeline.data.collate import Batch
from pipeline.data.loader import make_loader
from pipeline.engine.distributed import DistContext, fail_together, gather_objects
from pipeline.engine.precision import autocast

PredictFn = Callable[[nn.Module, Batch], list[dict[str, Any]]]


def rank_indices(num_samples: int, batch_size: int, rank: int, world_size: int) -> list[int]:
    """The dataset indices rank ``rank`` runs: whole batches ``rank, rank + world_size, ...``
    of the one-process batching."""
    return [i for start in range(rank * batch_size, num_samples, world_size * batch_size)
            for i in range(start, min(start + batch_size, num_samples))]


def run_inference(model: nn.Module, dataset: torch.utils.data.Dataset, *,
                  predict_batch: PredictFn, batch_size: int, num_workers: int,
                  ctx: DistContext, desc: str = "inference",
                  amp_dtype: torch.dtype | None = None) -> list[dict[str, Any]] | None:
    """Results of ``predict_batch`` for every sample, in dataset order, on the main rank.

    ``predict_batch(model, batch)`` returns one dict per sample with an ``"index"`` entry (the
    dataset index); it runs under autocast to ``amp_dtype`` (None: float32; see
    ``pipeline.engine.precision.autocast_dtype``) and casts what it returns to float32.
    Other ranks get None. The model is put in eval mode. A failure on one rank stops every
    rank (``fail_together``) before the results are gathered.
    """
    indices = rank_indices(len(dataset), batch_size, ctx.rank, ctx.world_size)
    model.eval()
    results: list[dict[str, Any]] = []
    with fail_together(ctx, desc), torch.inference_mode(), autocast(ctx.device, amp_dtype):
        loader = make_loader(torch.utils.data.Subset(dataset, indices), batch_size=batch_size,
                             num_workers=num_workers, pin_memory=ctx.device.type == "cuda")
        for batch in tqdm(loader, desc=desc, disable=not ctx.is_main, leave=False):
            results.extend(predict_batch(model, batch))
    gathered = gather_objects(results, ctx)
    if gathered is None:
        return None
    merged = [r for part in gathered for r in part]
    return sorted(merged, key=lambda r: r["index"])
