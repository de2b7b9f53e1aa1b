"""DataLoader construction with the settings that keep the model fed."""

from __future__ import annotations

from collections.abc import Callable

import torch
import zarr

from pipeline.data.collate import collate_samples


def _configure_worker(worker_id: int) -> None:
    # Each worker reads one clip at a time; zarr's default thread pool (one thread per CPU) in
    # every worker would oversubscribe the cores the workers themselves need.
    zarr.config.set({"threading.max_workers": 1, "async.concurrency": 4})
    torch.set_num_threads(1)


def make_loader(dataset: torch.utils.data.Dataset, *,
                batch_sampler: torch.utils.data.Sampler | None = None,
                batch_size: int | None = None, num_workers: int = 2,
                pin_memory: bool = False, prefetch_factor: int = 4,
                collate_fn: Callable[[list], object] = collate_samples
                ) -> torch.utils.data.DataLoader:
    """A DataLoader over ``dataset`` that collates into ``Batch`` (or with ``collate_fn``).

    Give either ``batch_sampler`` (training: ``EpochBatchSampler``) or ``batch_size``
    (inference: samples in order). Workers persist across epochs so their Zarr handles and
    forked memory are reused; a dedicated generator keeps the loader from drawing on the
    global torch RNG, so dropout draws are the same with or without workers.
    """
    workers = num_workers > 0
    batching = {"batch_sampler": batch_sampler} if batch_sampler is not None else {"batch_size": batch_size}
    return torch.utils.data.DataLoader(
        dataset, **batching, num_workers=num_workers, collate_fn=collate_fn,
        pin_memory=pin_memory, persistent_workers=workers,
        prefetch_factor=prefetch_factor if workers else None,
        worker_init_fn=_configure_worker if workers else None,
        generator=torch.Generator().manual_seed(0))
