"""A dataset of plain indices and its collate, for training-loop tests that need no model data
(the training guard's tests and its two-rank script)."""

from __future__ import annotations

import torch


class Indices(torch.utils.data.Dataset):
    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


def collate_indices(items: list[int]) -> torch.Tensor:
    return torch.tensor(items)
