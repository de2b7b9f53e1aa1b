"""Resume checkpoints: everything needed to continue a run exactly, saved atomically.

A checkpoint holds the unwrapped model's state (no DDP prefix), optimizer and loss-scaler
state, the position (epoch, step in epoch, global step), every rank's RNG states, the config
and the curves so far. Files are ``step_<global step>.pt`` in the checkpoint folder (a DVC
``persist`` output); the newest readable one wins and the oldest are pruned.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.io import atomic_output, remove_path

log = logging.getLogger(__name__)

_NAME = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_files(checkpoint_dir: str | Path) -> list[Path]:
    """Checkpoint files, oldest first."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(checkpoint_dir: str | Path, state: dict[str, Any], *, step: int,
                    keep: int = 2) -> Path:
    """Write ``state`` as ``step_<step>.pt`` atomically, then keep only the ``keep`` newest."""
    path = Path(checkpoint_dir) / f"step_{step:09d}.pt"
    with atomic_output(path) as tmp:
        torch.save(state, tmp)
    for old in checkpoint_files(checkpoint_dir)[:-keep]:
        remove_path(old)
    return path


def load_latest_checkpoint(checkpoint_dir: str | Path) -> dict[str, Any] | None:
    """The newest checkpoint that loads, or None. Unreadable files (a copy cut short outside
    our atomic writer, a disk error) are skipped with a warning rather than ending the run."""
    for path in reversed(checkpoint_files(checkpoint_dir)):
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001 - any unreadable file means "try the previous one"
            log.warning("skipping unreadable checkpoint %s: %s", path, e)
    return None


def clear_checkpoints(checkpoint_dir: str | Path) -> None:
    for path in checkpoint_files(checkpoint_dir):
        remove_path(path)


def rng_state() -> dict[str, Any]:
    """This process's RNG states (Python, NumPy, torch CPU and CUDA)."""
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
