"""Command-line entry for ``train_baseline``, the same code path with or without torchrun.

    python -m pipeline.tasks.baseline_job job.json
    torchrun --nproc_per_node=2 -m pipeline.tasks.baseline_job job.json

``job.json`` holds ``train_baseline``'s path arguments plus ``preset`` (a model preset name),
``model`` (ModelConfig field overrides), ``train`` (TrainConfig fields) and ``data``
(DataConfig fields). Bad input prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from pipeline.data.config import DataConfig
from pipeline.tasks.pretrain_baseline import train_baseline
from pipeline.engine.config import TrainConfig
from pipeline.engine.distributed import setup_distributed, teardown_distributed
from pipeline.errors import run_reporting
from pipeline.models.config import ModelConfig
from pipeline.models.presets import get_preset

TUPLE_FIELDS = {"steps", "short_side_range"}


def _tuples(values: dict) -> dict:
    """JSON has no tuples; the configs want them for sequence fields."""
    return {k: tuple(v) if k in TUPLE_FIELDS and isinstance(v, list) else v for k, v in values.items()}


def run_job(job: dict) -> dict:
    job = dict(job)
    preset = job.pop("preset", "tiny")
    model_fields = job.pop("model", {})
    model_config = ModelConfig.from_dict({**asdict(get_preset(preset, key="preset")), **model_fields})
    train_config = TrainConfig(**_tuples(job.pop("train", {})))
    data_config = DataConfig(**_tuples(job.pop("data", {})))
    ctx = setup_distributed(train_config.device, key="train.device")
    try:
        return train_baseline(model_config=model_config, train_config=train_config,
                              data_config=data_config, preset=preset, ctx=ctx, **job)
    finally:
        teardown_distributed(ctx)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("job", type=Path, help="JSON file with train_baseline's arguments")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    def load_and_run() -> int | None:
        try:
            job = json.loads(args.job.read_text())
        except json.JSONDecodeError as e:
            print(f"error: {args.job}:{e.lineno}: {e.msg}", file=sys.stderr)
            return 2
        run_job(job)
        return None

    return run_reporting(load_and_run)


if __name__ == "__main__":
    sys.exit(main())
