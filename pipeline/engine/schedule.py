"""Learning rate as a pure function of the iteration, so resuming needs only the step count."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.engine.config import TrainConfig


@dataclass(frozen=True)
class LRSchedule:
    """Linear warmup from ``warmup_ratio * base_lr``, then cosine to 0 or steps of ``gamma``.

    Warmup is counted in iterations (smooth even for long epochs); step milestones are whole
    epochs, as in mmaction2's AVA configs.
    """

    base_lr: float
    total_steps: int
    steps_per_epoch: int
    warmup_steps: int
    warmup_ratio: float
    schedule: str
    milestones: tuple[int, ...]
    gamma: float

    @classmethod
    def from_config(cls, config: TrainConfig, steps_per_epoch: int) -> LRSchedule:
        return cls(base_lr=config.lr, total_steps=config.epochs * steps_per_epoch,
                   steps_per_epoch=steps_per_epoch,
                   warmup_steps=round(config.warmup_epochs * steps_per_epoch),
                   warmup_ratio=config.warmup_ratio, schedule=config.schedule,
                   milestones=tuple(config.steps), gamma=config.gamma)

    def __call__(self, step: int) -> float:
        # 1. warmup: linear from warmup_ratio to 1 over warmup_steps
        if step < self.warmup_steps:
            fraction = step / self.warmup_steps
            return self.base_lr * (self.warmup_ratio + (1.0 - self.warmup_ratio) * fraction)
        # 2. step: multiply by gamma at each milestone epoch reached
        if self.schedule == "step":
            epoch = step // self.steps_per_epoch
            return self.base_lr * self.gamma ** sum(epoch >= m for m in self.milestones)
        # 3. cosine: from base_lr at the end of warmup to 0 at the last step
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
