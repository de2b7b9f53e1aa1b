"""Multi-process training with torchrun: rank and world from the environment, one code path.

Run as ``torchrun --nproc_per_node=N -m <module>``; without torchrun the same code runs as a
single process (world size 1) and none of the collectives below do anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from pipeline.devices import resolve_device
from pipeline.errors import PeerFailed


@dataclass(frozen=True)
class DistContext:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Only the main process writes files, logs and shows progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str = "auto", key: str = "device") -> DistContext:
    """Read RANK/LOCAL_RANK/WORLD_SIZE (set by torchrun) and join the process group:
    NCCL on GPU, gloo on CPU."""
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    resolved = resolve_device(device, local_rank, world_size=world_size, key=key)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size,
                                device_id=resolved if resolved.type == "cuda" else None)
    return DistContext(rank=rank, local_rank=local_rank, world_size=world_size, device=resolved)


def teardown_distributed(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def all_gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not ctx.distributed:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every rank when ``flag`` is true on any rank (one small all-reduce)."""
    if not ctx.distributed:
        return flag
    value = torch.tensor([1 if flag else 0], dtype=torch.int32,
                         device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


@contextmanager
def fail_together(ctx: DistContext, what: str) -> Iterator[None]:
    """Run a rank's local work (no collective inside) so that a failure on any rank stops all.

    Every rank leaves the block through one small all-reduce: the failing rank re-raises its
    own error, the others raise ``PeerFailed``. Without it the others would wait in their next
    collective for a rank that is gone (NCCL until its timeout; a torchrun agent stops only its
    own node's workers). The all-reduce also orders the ranks like a barrier.
    """
    try:
        yield
    except Exception:
        if ctx.distributed:
            try:
                any_rank(True, ctx)
            except RuntimeError:   # the process group itself is broken: the error says enough
                pass
        raise
    if any_rank(False, ctx):
        raise PeerFailed(f"{what} failed on another rank (rank {ctx.rank} of {ctx.world_size} "
                         "stops too; the cause is in that rank's error)")


def iterate_together(items: Iterable[Any], ctx: DistContext, what: str) -> Iterator[Any]:
    """``items`` one by one, each fetch under ``fail_together``: a rank whose loader fails (a
    corrupt chunk, a dead worker) stops every rank at that step. Every rank must have equally
    many items (``EpochBatchSampler`` pads to equal steps)."""
    if not ctx.distributed:
        yield from items
        return
    iterator = iter(items)
    end = object()
    while True:
        with fail_together(ctx, what):
            item = next(iterator, end)
        if item is end:
            return
        yield item


def average_tensors(tensors: list[torch.Tensor], ctx: DistContext) -> None:
    """Replace each tensor by its mean over the ranks, in place."""
    if not ctx.distributed:
        return
    for tensor in tensors:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(ctx.world_size)


def gather_objects(obj: Any, ctx: DistContext) -> list[Any] | None:
    """Every rank's ``obj`` in rank order on the main rank; None elsewhere."""
    if not ctx.distributed:
        return [obj]
    gathered: list[Any] | None = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered
