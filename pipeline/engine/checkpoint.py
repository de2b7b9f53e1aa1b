"""Resume checkpoints: everything needed to continue a run exactly, saved atomically.

A checkpoint holds the unwrapped model's state (no DDP prefix), optimizer and loss-scaler
state, the position (epoch, step in epoch, global step), every rank's RNG states, the config
and the curves so far. Files are ``step_<global step>.pt`` in the checkpoint folder (kept out
of DVC's outputs: resume state is no result); the newest readable one wins and the oldest are
pruned.

The run records the files it wrote in ``run_files.json`` in that folder (``MANIFEST``: names,
oldest first, each written there before the file). Resume, retention and the move to
``finished/`` use that list only, never names found in the folder: a file someone else put
there (a copied model, a truncated copy, another run's checkpoint) is never loaded, counted,
pruned, moved or overwritten; it is named in a warning and left where it is.

They hold only tensors, containers, strings and numbers, so they are read with
``torch.load(weights_only=True)``, which never runs code from the file: a file someone else put
in the folder cannot execute anything on resume. ``save_checkpoint`` turns numpy scalars into
Python numbers and refuses anything else that such a load would refuse, naming the key, so a
run never writes a checkpoint it cannot resume from.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.data.config import shaping_fields as data_shaping_fields
from pipeline.errors import InputError
from pipeline.io import (PARTIAL_SUFFIX, atomic_output, content_digest, remove_path,
                         write_json)

log = logging.getLogger(__name__)

MANIFEST = "run_files.json"
"""The checkpoint files this run wrote, oldest first (``{"files": [names]}``)."""
_REFUSED_GLOBAL = re.compile(r"GLOBAL (\S+)")

RESUME_KEYS = ("fingerprint", "model", "optimizer", "scaler", "epoch", "step_in_epoch",
               "global_step", "rng", "history")
"""What the training loop reads back; a file without all of them is not a resume checkpoint."""

_PLAIN = (str, bytes, bool, int, float, type(None), torch.Tensor, torch.Size, torch.dtype,
          torch.device)


def _own_names(folder: Path) -> list[str]:
    """The names the run in ``folder`` recorded in its manifest (written or about to be)."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return []
    try:
        names = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"not a checkpoint manifest ({type(e).__name__}: {e}); move the "
                         f"folder away to start over", path=manifest) from e
    return [n for n in names if isinstance(n, str) and Path(n).name == n]


def _write_manifest(folder: Path, names: list[str]) -> None:
    write_json(folder / MANIFEST, {"files": names})


def checkpoint_files(checkpoint_dir: str | Path) -> list[Path]:
    """The checkpoint files this run wrote that exist, oldest first (from ``MANIFEST``)."""
    folder = Path(checkpoint_dir)
    return [folder / n for n in _own_names(folder) if (folder / n).is_file()]


def foreign_files(checkpoint_dir: str | Path) -> list[Path]:
    """Files in the folder this run did not write (not in ``MANIFEST``), sorted by name."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return []
    own = set(_own_names(folder)) | {MANIFEST}
    own |= {n + PARTIAL_SUFFIX for n in own}        # an interrupted atomic write of ours
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name not in own)


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
    """Write ``state`` as ``step_<step>.pt`` atomically (``step_<step>.<n>.pt`` if a file the
    run did not write holds that name), then remove all but the run's ``keep`` newest files.

    The name goes into ``MANIFEST`` before the file is written, so a kill at any point leaves
    no file of ours that the manifest does not claim."""
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    own = _own_names(folder)
    name, n = f"step_{step:09d}.pt", 0
    while (folder / name).exists() and name not in own:
        n += 1
        name = f"step_{step:09d}.{n}.pt"
    own = [o for o in own if o != name] + [name]
    _write_manifest(folder, own)
    state = plain_state(state)
    with atomic_output(folder / name) as tmp:
        torch.save(state, tmp)
    if len(own) > keep:
        for old in own[:-keep]:
            remove_path(folder / old)
        _write_manifest(folder, own[-keep:])
    return folder / name


def load_latest_checkpoint(checkpoint_dir: str | Path) -> dict[str, Any] | None:
    """The newest resume checkpoint, or None. A file that does not load as plain data (a copy
    cut short outside our atomic writer, a disk error, a pickle naming code to run) or lacks
    ``RESUME_KEYS`` (some other file) is skipped with a warning naming it, never run. Only
    the run's own files (``MANIFEST``) are candidates; the others are named in a warning."""
    foreign = foreign_files(checkpoint_dir)
    if foreign:
        log.warning("%s: left in place and not used, not written by this run: %s",
                    checkpoint_dir, ", ".join(p.name for p in foreign))
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


FINISHED = "finished"
"""Sub-folder of a checkpoint folder holding finished runs, one folder each."""


class ResumeRefused(InputError):
    """The checkpoint folder holds an unfinished run that this run cannot continue."""


def fingerprint_entries(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` as flat ``prefix.key`` entries of plain JSON data (tuples as lists), the
    form a fingerprint is saved, compared and reported in."""
    flat: dict[str, Any] = {}
    for name, value in values.items():
        key = f"{prefix}.{name}" if prefix else name
        if isinstance(value, Mapping):
            flat.update(fingerprint_entries(key, value))
        else:
            flat[key] = json.loads(json.dumps(value, default=str))
    return flat


def is_finished(state: Mapping[str, Any]) -> bool:
    """Whether a checkpoint was written after the last epoch of its run."""
    epochs = (state.get("config") or {}).get("epochs")
    return epochs is not None and state["epoch"] >= epochs


def _shown(value: Any) -> str:
    text = "(absent)" if value is _ABSENT else json.dumps(value)
    return text if len(text) <= 70 else text[:67] + "..."


_ABSENT = object()


def fingerprint_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """One line per key whose value differs: ``key: saved -> current``."""
    keys = sorted(set(saved) | set(current))
    return [f"{key}: {_shown(saved.get(key, _ABSENT))} -> {_shown(current.get(key, _ABSENT))}"
            for key in keys if saved.get(key, _ABSENT) != current.get(key, _ABSENT)]


def check_resumable(state: Mapping[str, Any], fingerprint: Mapping[str, Any], *,
                    checkpoint_dir: str | Path, world_size: int, batch_key: str) -> None:
    """Raise ``ResumeRefused`` unless the unfinished run in ``state`` is the run that
    ``fingerprint`` describes, saying what differs and how to start over.

    Another number of processes is fine when the arithmetic is the same: every step consumes
    the same contiguous slice of the epoch's order (the sampler deals it out round-robin), so
    equal ``global_batch`` and ``steps_per_epoch`` give the same steps, schedule and samples.
    ``batch_key`` (e.g. ``baseline.train.batch_size``) is the per-process batch to suggest.
    """
    folder = Path(checkpoint_dir)
    saved = state["fingerprint"]
    where = (f"holds an unfinished run (epoch {state['epoch']}, global step "
             f"{state['global_step']}) that this run cannot continue; nothing was deleted.")
    start_over = (f"To start over, move the folder away yourself (e.g. `mv {folder} "
                  f"{folder}.old`) and rerun.")
    if not isinstance(saved, Mapping):
        raise ResumeRefused(f"{where} It was written by an older version of the pipeline, "
                            f"whose fingerprint cannot be compared key by key. {start_over}",
                            path=folder)
    differences = fingerprint_differences(saved, fingerprint)
    if not differences:
        return
    hint = ""
    saved_world = int(state.get("world_size", len(state["rng"])))
    differ = {d.split(":", 1)[0] for d in differences}
    if saved_world != world_size and differ & {"global_batch", "steps_per_epoch"}:
        global_batch = saved.get("global_batch")
        if ("global_batch" in differ and isinstance(global_batch, int)
                and global_batch % world_size == 0):
            hint = (f" It ran on {_processes(saved_world)} with a global batch of "
                    f"{global_batch}: on {_processes(world_size)} set {batch_key} to "
                    f"{global_batch // world_size} to continue it.")
        else:
            hint = (f" It ran on {_processes(saved_world)}; on {world_size} its steps do not "
                    f"divide the same way: continue it on {_processes(saved_world)}.")
    raise ResumeRefused(f"{where} What differs (checkpoint -> this run):\n  "
                        + "\n  ".join(differences)
                        + f"\nTo continue it, set these back.{hint} {start_over}", path=folder)


def _processes(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


def finish_run(checkpoint_dir: str | Path) -> Path | None:
    """Move the run's own checkpoint files and its ``MANIFEST`` into
    ``finished/<its newest file>-<UTC time>/`` (a rename, nothing deleted) so the next run in
    this folder starts fresh; files it did not write stay. Returns that folder."""
    folder = Path(checkpoint_dir)
    files = checkpoint_files(folder)
    if not files:
        remove_path(folder / MANIFEST)      # it names only files that were never written
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = folder / FINISHED / f"{files[-1].stem}-{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = target.with_name(f"{files[-1].stem}-{stamp}-{n}")
    target.mkdir(parents=True)
    for path in files:
        path.rename(target / path.name)
    _write_manifest(target, [p.name for p in files])
    remove_path(folder / MANIFEST)
    log.info("finished run's checkpoints kept in %s", target)
    return target


def finished_runs(checkpoint_dir: str | Path) -> list[Path]:
    """Folders of finished runs, oldest first."""
    folder = Path(checkpoint_dir) / FINISHED
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)


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


def run_fingerprint(*, model: Any, data: Any, prefix: str,
                    inputs: dict[str, str | Path | None], **more: Any) -> dict[str, Any]:
    """What decides what a training run computes, besides its TrainConfig (``train`` adds
    that): the model config (a ModelConfig), the data settings that shape results (a
    DataConfig's ``shaping_fields``), the contents of the input files (``input.<name>``:
    never their paths) and ``more``, as flat keys under ``prefix`` (e.g. ``baseline``) for a
    resume refusal to name."""
    values = asdict(data)
    data_fields = {k: values[k] for k in data_shaping_fields()}
    return {**fingerprint_entries(f"{prefix}.model", asdict(model)),
            **fingerprint_entries(f"{prefix}.data", data_fields),
            **fingerprint_entries(prefix, more),
            **{f"input.{name}": content_digest(path) for name, path in inputs.items()}}
