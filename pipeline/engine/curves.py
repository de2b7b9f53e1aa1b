"""Training curves as CSV (for ``dvc plots``), written by the main process only."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pipeline.io import write_text

STEP_FIELDS = ["step", "epoch", "loss", "lr", "clips_per_s"]


def _csv(rows: list[dict], fields: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_curves(out_dir: str | Path, steps: list[dict], epochs: list[dict]) -> None:
    """``steps.csv`` (step, epoch, loss, lr, clips_per_s) and ``epochs.csv`` (epoch, loss, lr,
    then any validation metrics), each replaced atomically."""
    out_dir = Path(out_dir)
    write_text(out_dir / "steps.csv", _csv(steps, STEP_FIELDS))
    epoch_fields = ["epoch", "loss", "lr"]
    for row in epochs:
        epoch_fields += [k for k in row if k not in epoch_fields]
    write_text(out_dir / "epochs.csv", _csv(epochs, epoch_fields))
