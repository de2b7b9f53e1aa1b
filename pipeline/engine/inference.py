"""Batched inference over a dataset, split across ranks without padding.

Each rank takes rows ``rank::world_size`` (a padding sampler would repeat keyframes, which
duplicates detections and skews mAP), runs them in batches, and the main rank gathers the
per-sample results back into dataset order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from pipeline.data.collate import Batch
from pipeline.data.loader import make_loader
from pipeline.engine.distributed import DistContext, gather_objects
from pipeline.engine.precision import autocast

PredictFn = Callable[[nn.Module, Batch], list[dict[str, Any]]]


def run_inference(model: nn.Module, dataset: torch.utils.data.Dataset, *,
                  predict_batch: PredictFn, batch_size: int, num_workers: int,
                  ctx: DistContext, desc: str = "inference",
                  amp_dtype: torch.dtype | None = None) -> list[dict[str, Any]] | None:
    """Results of ``predict_batch`` for every sample, in dataset order, on the main rank.

    ``predict_batch(model, batch)`` returns one dict per sample with an ``"index"`` entry (the
    dataset index); it runs under autocast to ``amp_dtype`` (None: float32; see
    ``pipeline.engine.precision.autocast_dtype``) and casts what it returns to float32.
    Other ranks get None. The model is put in eval mode.
    """
    indices = list(range(ctx.rank, len(dataset), ctx.world_size))
    loader = make_loader(torch.utils.data.Subset(dataset, indices), batch_size=batch_size,
                         num_workers=num_workers, pin_memory=ctx.device.type == "cuda")
    model.eval()
    results: list[dict[str, Any]] = []
    with torch.inference_mode(), autocast(ctx.device, amp_dtype):
        for batch in tqdm(loader, desc=desc, disable=not ctx.is_main, leave=False):
            results.extend(predict_batch(model, batch))
    gathered = gather_objects(results, ctx)
    if gathered is None:
        return None
    merged = [r for part in gathered for r in part]
    return sorted(merged, key=lambda r: r["index"])
