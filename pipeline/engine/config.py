"""How to train: one typed record, mapped from params.yaml by the caller."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

from pipeline.devices import check_device
from pipeline.errors import InputError


RUNTIME_FIELDS = ("num_workers", "prefetch_factor", "device", "val_every", "checkpoint_every_steps",
                  "keep_checkpoints")
"""TrainConfig fields that change how a run goes, not what it computes: a checkpoint written
under other values resumes (see ``pipeline.engine.checkpoint``)."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser, schedule and runtime settings of a training run.

    Defaults follow mmaction2's SlowOnly AVA 2.1 recipe (8 GPUs x 16 clips, SGD 0.2, warmup
    x0.1 over 5 epochs, steps at 10 and 15, 20 epochs, clip 40); ``batch_size`` is per process.

    The optimiser (``pipeline.engine.optimizer``): ``optimizer`` sgd (with ``momentum``) or
    adamw (with ``betas``); ``weight_decay`` on every parameter, or with ``decay_norm_bias``
    off none on 1-D parameters, biases and what the backbone exempts (position tables);
    ``layer_decay`` < 1 scales a backbone layer's lr by ``layer_decay ** (layers - 1 - layer)``
    (mmaction2's layer-wise decay; 1.0: off).

    ``base_batch_size`` scales the learning rate with the number of processes, as mmaction2's
    ``--auto-scale-lr``: the run uses ``lr * world_size * batch_size / base_batch_size``
    (``effective_lr``), so ``lr`` is the rate of a run whose total batch is
    ``base_batch_size``. None: ``lr`` is used as is, whatever the number of processes.
    """

    epochs: int = 20
    batch_size: int = 16
    lr: float = 0.2
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = 0.9           # sgd only
    betas: tuple[float, float] = (0.9, 0.999)  # adamw only
    weight_decay: float = 1e-5
    decay_norm_bias: bool = True    # False: no decay on 1-D params, biases, position tables
    layer_decay: float = 1.0        # backbone lr x layer_decay ** (layers - 1 - layer); 1: off
    warmup_epochs: float = 5.0      # linear warmup length, counted in iterations
    warmup_ratio: float = 0.1       # lr factor at iteration 0
    schedule: Literal["cosine", "step"] = "step"
    steps: tuple[int, ...] = (10, 15)  # epochs where the step schedule multiplies lr by gamma
    gamma: float = 0.1
    grad_clip: float | None = 40.0  # max L2 norm of all gradients; None: no clipping
    seed: int = 0
    deterministic: bool = False     # deterministic kernels: exact reruns and resumes, slower
    amp: bool = False               # autocast (training and inference); ignored on CPU
    amp_dtype: Literal["float16", "bfloat16"] = "float16"  # float16: with loss scaling
    num_workers: int = 2
    prefetch_factor: int = 4        # batches each loader worker prepares ahead
    device: str = "auto"            # "auto" | "cpu" | "cuda" | "cuda:N" (see check_device)
    val_every: int = 1              # validate every n epochs (and after the last); 0: never
    checkpoint_every_steps: int | None = None  # extra mid-epoch checkpoints for long epochs
    keep_checkpoints: int = 2
    base_batch_size: int | None = None  # total batch that ``lr`` is meant for; None: no scaling
    precise_bn_batches: int = 0     # BatchNorm statistics recomputed over this many train
                                    # batches before validating and at the end; 0: off

    def effective_lr(self, world_size: int) -> float:
        """The base learning rate of a run on ``world_size`` processes (linear scaling rule)."""
        if world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}")
        if self.base_batch_size is None:
            return self.lr
        return self.lr * world_size * self.batch_size / self.base_batch_size

    def __post_init__(self) -> None:
        positive_ints = ("batch_size", "keep_checkpoints", "prefetch_factor")
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 0:
            raise InputError(f"must be a non-negative integer (0: score the initial weights "
                             f"without training), got {self.epochs!r}", key="epochs")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"must be a positive integer, got {value!r}", key=name)
        for name in ("num_workers", "val_every", "seed", "precise_bn_batches"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InputError(f"must be a non-negative integer, got {value!r}", key=name)
        for name in ("lr", "momentum", "weight_decay", "layer_decay", "warmup_epochs",
                     "warmup_ratio", "gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise InputError(f"must be a finite number, got {value!r}", key=name)
        if self.lr <= 0:
            raise InputError(f"must be > 0, got {self.lr!r}", key="lr")
        if self.optimizer not in ("sgd", "adamw"):
            raise InputError(f"must be 'sgd' or 'adamw', got {self.optimizer!r}", key="optimizer")
        if not 0 <= self.momentum < 1:
            raise InputError(f"must be in [0, 1), got {self.momentum!r}", key="momentum")
        if len(self.betas) != 2 or not all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1
                for b in self.betas):
            raise InputError(f"must be two numbers in [0, 1), got {self.betas!r}", key="betas")
        if self.weight_decay < 0:
            raise InputError(f"must be >= 0, got {self.weight_decay!r}", key="weight_decay")
        if not 0 < self.layer_decay <= 1:
            raise InputError(f"must be in (0, 1] (1: off), got {self.layer_decay!r}",
                             key="layer_decay")
        if self.warmup_epochs < 0:
            raise InputError(f"must be >= 0, got {self.warmup_epochs!r}", key="warmup_epochs")
        if not 0 < self.warmup_ratio <= 1:
            raise InputError(f"must be in (0, 1], got {self.warmup_ratio!r}", key="warmup_ratio")
        if self.schedule not in ("cosine", "step"):
            raise InputError(f"must be 'cosine' or 'step', got {self.schedule!r}", key="schedule")
        if list(self.steps) != sorted(self.steps):
            raise InputError(f"must be increasing epochs, got {self.steps!r}", key="steps")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise InputError(f"must be > 0 or null, got {self.grad_clip!r}", key="grad_clip")
        if self.amp_dtype not in ("float16", "bfloat16"):
            raise InputError(f"must be 'float16' or 'bfloat16', got {self.amp_dtype!r}",
                             key="amp_dtype")
        check_device(self.device)
        if self.base_batch_size is not None and (
                not isinstance(self.base_batch_size, int) or isinstance(self.base_batch_size, bool)
                or self.base_batch_size < 1):
            raise InputError(f"must be a positive integer or null, got {self.base_batch_size!r}",
                             key="base_batch_size")
        if self.checkpoint_every_steps is not None and self.checkpoint_every_steps < 1:
            raise InputError(f"must be a positive integer or null, got {self.checkpoint_every_steps!r}",
                             key="checkpoint_every_steps")


def shaping_fields() -> tuple[str, ...]:
    """TrainConfig fields that shape what a run computes (all but ``RUNTIME_FIELDS``), in
    declaration order: what a training stage declares in dvc.yaml under ``<group>.train``."""
    return tuple(f.name for f in fields(TrainConfig) if f.name not in RUNTIME_FIELDS)
