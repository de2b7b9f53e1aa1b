"""Training engine: optimiser and schedule, resumable loop, DDP helpers, batched inference."""

from pipeline.engine.baseline import train_baseline
from pipeline.engine.config import TrainConfig
from pipeline.engine.distributed import DistContext, setup_distributed, teardown_distributed
from pipeline.engine.inference import run_inference
from pipeline.engine.schedule import LRSchedule
from pipeline.engine.train import TrainHistory, build_optimizer, seed_everything, train

__all__ = [
    "DistContext", "LRSchedule", "TrainConfig", "TrainHistory", "build_optimizer",
    "run_inference", "seed_everything", "setup_distributed", "teardown_distributed", "train",
    "train_baseline",
]
