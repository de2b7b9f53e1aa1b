"""Which samples each rank sees, in which order: a pure function of (seed, epoch, rank).

Deterministic order is what lets an interrupted run resume mid-epoch and continue exactly:
the resumed run rebuilds the same permutation and skips the batches already done.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 63-bit seed for one epoch (order and augmentations)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


class EpochBatchSampler(torch.utils.data.Sampler):
    """Batches of ``(index, epoch_seed)`` for one rank, for training.

    Each epoch shuffles all indices with a generator seeded by (seed, epoch), pads the order by
    repeating its head to a multiple of ``world_size`` (so every rank runs the same number of
    steps, as DistributedSampler does) and gives rank r every world_size-th index from r.
    ``set_epoch(epoch, start_batch)`` selects the epoch and how many of its batches to skip.
    """

    def __init__(self, num_samples: int, batch_size: int, *, seed: int, shuffle: bool = True,
                 drop_last: bool = True, rank: int = 0, world_size: int = 1):
        if num_samples < 1 or batch_size < 1:
            raise ValueError(f"need samples and batch_size >= 1, got {num_samples}, {batch_size}")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start_batch = 0
        if self.batches_per_epoch == 0:
            raise ValueError(f"{num_samples} samples over {world_size} ranks give no full batch of "
                             f"{batch_size}; lower the batch size or set drop_last=False")

    @property
    def samples_per_rank(self) -> int:
        return -(-self.num_samples // self.world_size)

    @property
    def batches_per_epoch(self) -> int:
        if self.drop_last:
            return self.samples_per_rank // self.batch_size
        return -(-self.samples_per_rank // self.batch_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def rank_order(self) -> np.ndarray:
        """This rank's sample indices for the current epoch, before batching."""
        if self.shuffle:
            order = np.random.default_rng(epoch_seed(self.seed, self.epoch)).permutation(self.num_samples)
        else:
            order = np.arange(self.num_samples)
        padded = self.samples_per_rank * self.world_size
        order = np.resize(order, padded)  # repeats the head to fill
        return order[self.rank::self.world_size]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = self.rank_order()
        seed = epoch_seed(self.seed, self.epoch)
        for b in range(self.start_batch, self.batches_per_epoch):
            chunk = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield [(int(i), seed) for i in chunk]

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch
