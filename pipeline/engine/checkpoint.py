"""Resume checkpoints: everything needed to continue a run exactly, saved atomically.

A checkpoint holds the unwrapped model's state (no DDP prefix), optimizer and loss-scaler
state, the position (epoch, step in epoch, global step), every rank's RNG states, the config
and the curves so far. Files are ``step_<global step>.pt`` in the checkpoint folder (kept out
of DVC's outputs: resume state is no result); the newest readable one wins and the oldest are
pruned.

They hold only tensors, containers, strings and numbers, so they are read with
``torch.load(weights_only=True)``, which never runs code from the file: a file someone else put
in the folder cannot execute anything on resume. ``save_checkpoint`` turns numpy scalars into
Python numbers and refuses anything else that such a load would refuse, naming the key, so a
run never writes a checkpoint it cannot resume from.
"""

from __future__ import annotations

import logging
import random
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.io import atomic_output, remove_path

log = logging.getLogger(__name__)

_NAME = re.compile(r"^step_(\d+)\.pt$")
_REFUSED_GLOBAL = re.compile(r"GLOBAL (\S+)")

RESUME_KEYS = ("fingerprint", "model", "optimizer", "scaler", "epoch", "step_in_epoch",
               "global_step", "rng", "history")
"""What the training loop reads back; a file without all of them is not a resume checkpoint."""

_PLAIN = (str, bytes, bool, int, float, type(None), torch.Tensor, torch.Size, torch.dtype,
          torch.device)


def checkpoint_files(checkpoint_dir: str | Path) -> list[Path]:
    """Checkpoint files, oldest first."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def plain_state(value: Any, where: str = "state") -> Any:
    """``value`` with numpy scalars as Python numbers; TypeError naming the key for anything
    ``torch.load(weights_only=True)`` would refuse. Unchanged containers are returned as they
    are (a module's state dict keeps its ``_metadata``)."""
    if isinstance(value, np.generic):      # before _PLAIN: np.float64 is a float subclass
        return value.item()
    if isinstance(value, _PLAIN):
        return value
    if type(value) in (dict, OrderedDict):
        plain = {k: plain_state(v, f"{where}.{k}") for k, v in value.items()}
        return value if all(plain[k] is v for k, v in value.items()) else dict(plain)
    if type(value) in (list, tuple):
        items = [plain_state(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value if all(a is b for a, b in zip(items, value)) else type(value)(items)
    raise TypeError(f"checkpoint {where} is a {type(value).__module__}.{type(value).__name__}, "
                    f"which torch.load(weights_only=True) does not read back")


def save_checkpoint(checkpoint_dir: str | Path, state: dict[str, Any], *, step: int,
                    keep: int = 2) -> Path:
    """Write ``state`` as ``step_<step>.pt`` atomically, then keep only the ``keep`` newest."""
    path = Path(checkpoint_dir) / f"step_{step:09d}.pt"
    state = plain_state(state)
    with atomic_output(path) as tmp:
        torch.save(state, tmp)
    for old in checkpoint_files(checkpoint_dir)[:-keep]:
        remove_path(old)
    return path


def load_latest_checkpoint(checkpoint_dir: str | Path) -> dict[str, Any] | None:
    """The newest resume checkpoint, or None. A file that does not load as plain data (a copy
    cut short outside our atomic writer, a disk error, a pickle naming code to run) or lacks
    ``RESUME_KEYS`` (some other file) is skipped with a warning naming it, never run."""
    for path in reversed(checkpoint_files(checkpoint_dir)):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file means "try the previous one"
            message = str(e).strip()
            refused = _REFUSED_GLOBAL.search(message)
            why = (f"it names {refused.group(1)}, which was not run" if refused else
                   f"{type(e).__name__}: {message.splitlines()[0] if message else ''}")
            log.warning("skipping checkpoint %s: not loadable as plain data (%s)", path, why)
            continue
        missing = [k for k in RESUME_KEYS if not isinstance(state, dict) or k not in state]
        if missing:
            log.warning("skipping checkpoint %s: not a resume checkpoint (no %s)", path,
                        ", ".join(missing))
            continue
        return state
    return None


def clear_checkpoints(checkpoint_dir: str | Path) -> None:
    for path in checkpoint_files(checkpoint_dir):
        remove_path(path)


def rng_state() -> dict[str, Any]:
    """This process's RNG states (Python, NumPy, torch CPU and CUDA), as plain data: NumPy's
    key array as a list (``np.random.set_state`` takes it back as it is)."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {"python": random.getstate(),
            "numpy": (name, keys.tolist(), position, has_gauss, cached_gaussian),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
