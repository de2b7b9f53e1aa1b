"""Small training setups: the CPU context, data config and bank window of the head tests, the
model config of a head on a tiny baseline (``head_config``), the tiny preset's baseline params
and its runs through ``pretrain_baseline.run`` or the stage's command line."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch
import yaml

from helpers.tiny_data import TinyData
from pipeline.data.config import DataConfig
from pipeline.engine.config import TrainConfig
from pipeline.sources.manifest import DatasetManifest, SplitFiles, write_manifest
from pipeline.engine.distributed import DistContext
from pipeline.lfb.reader import num_slots
from pipeline.lfb.window import BankWindow
from pipeline.models.checkpoint import build_detector_from_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
CPU = DistContext(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
DATA = DataConfig(short_side_range=(32, 48), crop_size=32, test_short_side=32, test_batch_size=4)
WINDOW = BankWindow(window_seconds=2, max_per_second=3)


def head_config(baseline: Path, head: str):
    """params.yaml's model group with ``head`` (small widths), on the baseline's config."""
    from pipeline.params.model import ModelParams
    from pipeline.params.schema import build
    import yaml
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["model"]
    raw["head"] = head
    raw["lfb"]["latent_channels"] = 16
    raw["acrn"]["out_channels"] = 32
    params = build(ModelParams, raw, key="model")
    baseline_config = build_detector_from_checkpoint(baseline).config
    return params.model_config(baseline_config, bank_dim=256,
                               num_slots=num_slots(WINDOW.window_seconds, WINDOW.max_per_second))


def baseline_group(*, preset: str = "tiny", model: dict | None = None, data: dict | None = None,
                   **train) -> dict:
    """The params file's ``baseline`` group for the tiny preset (SlowOnly 8x8 layout at 1/8
    width) on tiny clips: TrainConfig's and DataConfig's defaults with small runs' values and
    ``train``/``data`` on top, the preset's model as it is unless ``model`` overrides it."""
    return json.loads(json.dumps({    # lists, as a YAML file gives them
        "preset": preset, "backbone": "slowonly", "model": dict(model or {}),
        "train": {**asdict(TrainConfig()), "epochs": 2, "batch_size": 4, "lr": 0.05,
                  "warmup_epochs": 0.5, "schedule": "cosine", "num_workers": 0,
                  "deterministic": True, **train},
        "data": {**asdict(DataConfig()), "short_side_range": [32, 48], "crop_size": 32,
                 "test_short_side": 32, "test_batch_size": 4, **(data or {})},
        "init_checkpoint": "", "num_threads": 0,
    }))


def dag_paths(data: TinyData, root: Path) -> dict[str, Path]:
    """``pretrain_baseline``'s DAG paths on tiny data: the data folder is both the dataset
    (a manifest is written next to its files) and the frames folder, wherever ``data.root``
    now is (a copied folder: ``replace(data, root=...)``); outputs under ``root``."""
    splits = {split: SplitFiles(annotations=data.annotations[split].name,
                                exclusions=data.exclusions[split].name)
              for split in ("train", "val")}
    write_manifest(data.root, DatasetManifest(
        source="synthetic", timestamp_start=0.0, label_map=data.label_map_path.name,
        splits=splits, videos={}))
    assert (data.frames_dir.name, data.keyframes_path.name) == ("frames.zarr",
                                                                 "keyframes.parquet")
    return {"dataset": data.root, "frames": data.root,
            "proposals": data.root / data.proposals_path.name,
            "out": root / "out", "checkpoints": root / "checkpoints"}


def run_baseline(data: TinyData, root: Path, group: dict) -> dict:
    """``pretrain_baseline.run`` on tiny data with the params group ``group`` (validated as a
    params file's would be); outputs in ``root/out``, checkpoints in ``root/checkpoints``."""
    from pipeline.params.baseline import BaselineParams
    from pipeline.params.schema import Params, build
    from pipeline.tasks import pretrain_baseline

    params = Params(baseline=build(BaselineParams, group, key="baseline"))
    return pretrain_baseline.run(params, **dag_paths(data, root))


def stage_command(data: TinyData, root: Path, group: dict, *, launcher: tuple[str, ...] = ()
                  ) -> tuple[list[str], Path]:
    """The ``pretrain_baseline`` stage's command line (after ``launcher``, e.g. torchrun's
    arguments) and the folder to run it in, whose ``params.yaml`` holds ``group``."""
    cwd = root / "stage"
    cwd.mkdir(parents=True, exist_ok=True)
    (cwd / "params.yaml").write_text(yaml.safe_dump({"baseline": group}))
    paths = dag_paths(data, root)
    command = [sys.executable, *launcher, "-m", "stages.pretrain_baseline"]
    for name, path in paths.items():
        command += [f"--{name}", str(path)]
    return command, cwd
