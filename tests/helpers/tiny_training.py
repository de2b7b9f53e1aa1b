"""Small training setups: the CPU context, data config and bank window of the head tests, the
model config of a head on a tiny baseline (``head_config``), the launch job of the tiny
preset (``make_job``)."""

from __future__ import annotations

from pathlib import Path

import torch

from helpers.tiny_data import TinyData
from pipeline.data.config import DataConfig
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


def make_job(data: TinyData, out: Path, *, preset: str = "tiny", **train) -> dict:
    """A launch job for the tiny preset (SlowOnly 8x8 layout at 1/8 width) on tiny clips."""
    return {
        "frames_dir": str(data.frames_dir), "keyframes_index": str(data.keyframes_path),
        "train_annotations": str(data.annotations["train"]),
        "val_annotations": str(data.annotations["val"]),
        "train_exclusions": str(data.exclusions["train"]),
        "val_exclusions": str(data.exclusions["val"]),
        "label_map_path": str(data.label_map_path), "proposals_path": str(data.proposals_path),
        "out_dir": str(out / "out"), "checkpoint_dir": str(out / "checkpoints"),
        "preset": preset,
        "train": {"epochs": 2, "batch_size": 4, "lr": 0.05, "warmup_epochs": 0.5,
                  "schedule": "cosine", "num_workers": 0, "deterministic": True, **train},
        "data": {"short_side_range": [32, 48], "crop_size": 32, "test_short_side": 32,
                 "test_batch_size": 4},
    }
