"""Stage ``pretrain_baseline``: train the baseline detector (SlowOnly by default) on the train
split and score the val split.

``run`` is the stage (params and DAG paths in, files out); ``train_baseline`` the same work on
explicit files and configs (tests, other datasets). It runs unchanged as one process or under
``torchrun``. The loop, val scoring and closing files are the engine's ``Trainer``; this
module adds the detector, its loss and its val predictor.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.ava.label_map import read_label_map
from pipeline.data.config import DataConfig
from pipeline.data.config import shaping_fields as data_shaping_fields
from pipeline.data.dataset import KeyframeDataset, check_clip_reach
from pipeline.data.inputs import DatasetFiles, LoadedInputs
from pipeline.devices import set_cpu_threads
from pipeline.engine.checkpoint import run_fingerprint
from pipeline.engine.config import TrainConfig
from pipeline.engine.config import shaping_fields as train_shaping_fields
from pipeline.engine.detection import detection_loss, predict_detections
from pipeline.engine.distributed import DistContext, setup_distributed
from pipeline.engine.inference import run_inference
from pipeline.engine.precision import autocast_dtype
from pipeline.engine.train import seed_everything
from pipeline.engine.trainer import Trainer
from pipeline.errors import InputError
from pipeline.evaluation.protocols import MIN_ACTION_SCORE, TRAINING_PROTOCOL
from pipeline.io import file_digest
from pipeline.models.checkpoint import initialise
from pipeline.models.config import ModelConfig
from pipeline.models.detector import Detector
from pipeline.params.baseline import BaselineParams
from pipeline.params.schema import Params

log = logging.getLogger(__name__)

# The params keys whose values shape this stage's outputs, as dvc.yaml declares them
# (tests/test_params.py checks both); runtime-only keys (pipeline.params.all.RUNTIME_KEYS) are
# read from the same groups but tracked by no stage.
# The params groups this stage reads, with their schemas (all of PARAMS's groups).
GROUPS = {"baseline": BaselineParams}
PARAMS = (
    "baseline.preset",
    "baseline.backbone",
    "baseline.model",
    *(f"baseline.train.{key}" for key in train_shaping_fields()),
    *(f"baseline.data.{key}" for key in data_shaping_fields()),
    "baseline.init_checkpoint",
)
PATHS = ("dataset", "frames", "proposals", "out", "checkpoints")


def run(params: Params, *, dataset: Path, frames: Path, proposals: Path, out: Path,
        checkpoints: Path) -> dict[str, Any]:
    """The stage: the manifest's files of both splits, the baseline params. Returns
    ``train_baseline``'s metrics and report (main rank)."""
    baseline = params.baseline
    set_cpu_threads(baseline.num_threads)
    ctx = setup_distributed(baseline.train.device, key="baseline.train.device")
    # A bad backbone field names its params key before any data is read (the class count,
    # not known yet, does not shape the backbone).
    baseline.check_backbone(baseline.model_config(num_classes=2))
    files = DatasetFiles.from_dag(dataset=dataset, frames=frames, proposals=proposals)
    num_classes = max(read_label_map(files.label_map).ids) + 1
    model_config = baseline.model_config(num_classes)
    return train_baseline(files=files, out_dir=out, checkpoint_dir=checkpoints,
                          model_config=model_config,
                          train_config=baseline.train, data_config=baseline.data,
                          init_checkpoint=baseline.init_checkpoint or None,
                          preset=baseline.preset, ctx=ctx)


class DetectionLoss:
    """The baseline's loss: the whole detector on augmented clips (``detection_loss``)."""

    def __init__(self, detector: Detector, columns: torch.Tensor, device: torch.device):
        self.detector, self.columns, self.device = detector, columns, device

    def __call__(self, model: nn.Module, batch) -> torch.Tensor:
        return detection_loss(model, batch, detector=self.detector, columns=self.columns,
                              device=self.device)


class ClipPredictor:
    """Val scores of the whole detector run on test-time clips, batch by batch."""

    def __init__(self, detector: Detector, dataset: KeyframeDataset, *, columns: torch.Tensor,
                 batch_size: int, num_workers: int, ctx: DistContext,
                 amp_dtype: torch.dtype | None):
        self.detector, self.dataset, self.columns = detector, dataset, columns
        self.batch_size, self.num_workers, self.ctx = batch_size, num_workers, ctx
        self.amp_dtype = amp_dtype

    def _predict_batch(self, model: nn.Module, batch) -> list[dict[str, Any]]:
        return predict_detections(model, batch, columns=self.columns, device=self.ctx.device)

    def predict(self) -> list[dict[str, Any]] | None:
        return run_inference(self.detector, self.dataset, batch_size=self.batch_size,
                             num_workers=self.num_workers, ctx=self.ctx, desc="val",
                             amp_dtype=self.amp_dtype, predict_batch=self._predict_batch)


def train_baseline(*, files: DatasetFiles, out_dir: str | Path, checkpoint_dir: str | Path,
                   model_config: ModelConfig, train_config: TrainConfig,
                   data_config: DataConfig = DataConfig(),
                   init_checkpoint: str | Path | None = None, preset: str | None = None,
                   eval_protocol: str = TRAINING_PROTOCOL,
                   min_action_score: float = MIN_ACTION_SCORE,
                   ctx: DistContext | None = None) -> dict[str, Any]:
    """Train, then write into ``out_dir``: ``model.pt`` (stad-v1), ``steps.csv``,
    ``epochs.csv``, ``val_detections.parquet`` (one row per proposal box and
    class with score > ``min_action_score``, as mmaction2's bbox2result), ``metrics.json``
    (val mAP and group means under ``eval_protocol``), ``report.json`` (train loss, counts,
    undefined reasons, what the frame store lacked) and ``per_class_ap.csv`` (val AP
    per class, a plot). Returns metrics and report in one dict (main rank).

    Resumes from ``checkpoint_dir`` when it holds checkpoints of the same configuration.
    Epochs 0 scores ``init_checkpoint`` as it is (e.g. a released mmaction2 checkpoint).
    """
    if model_config.uses_bank:
        raise InputError(f"relation {model_config.relation!r} needs a long-term feature "
                         "bank, which the baseline is trained to produce; pick a preset without one",
                         key="relation")
    if train_config.epochs == 0 and init_checkpoint is None:
        raise InputError("epochs 0 scores baseline.init_checkpoint without training, but "
                         "none is set", key="baseline.train.epochs")
    ctx = ctx or setup_distributed(train_config.device)
    inputs = LoadedInputs(files)
    trainer = Trainer(inputs, train_config=train_config, data_config=data_config, ctx=ctx,
                      out_dir=out_dir, checkpoint_dir=checkpoint_dir,
                      params_key="baseline.train", eval_protocol=eval_protocol,
                      min_action_score=min_action_score)
    columns = trainer.columns(model_config.num_classes)
    check_clip_reach(inputs.store, model_config.clip_len, model_config.frame_interval,
                     data_config.temporal_jitter)
    train_set = inputs.train_dataset(frames_per_clip=model_config.clip_len,
                                     frame_interval=model_config.frame_interval, data=data_config)
    val_set = inputs.dataset("val", frames_per_clip=model_config.clip_len,
                             frame_interval=model_config.frame_interval,
                             short_side=data_config.test_short_side,
                             min_proposal_score=data_config.test_min_proposal_score,
                             max_proposals=data_config.max_proposals)
    if len(train_set) == 0:
        raise InputError("no annotated train keyframe is in the frame store",
                         path=files.train_annotations)

    seed_everything(train_config.seed, deterministic=train_config.deterministic)
    model = Detector(model_config)
    if init_checkpoint is not None:
        initialise(model, init_checkpoint)
    device = ctx.device
    predictor = ClipPredictor(model, val_set, columns=columns,
                              batch_size=data_config.test_batch_size,
                              num_workers=train_config.num_workers, ctx=ctx,
                              amp_dtype=autocast_dtype(device, train_config.amp,
                                                       train_config.amp_dtype))
    fingerprint = run_fingerprint(
        model=model_config, data=data_config, prefix="baseline",
        init_checkpoint=None if init_checkpoint is None else file_digest(init_checkpoint),
        inputs={"frames": files.frames_dir, "keyframes": files.keyframes_index,
                "train_annotations": files.train_annotations, "label_map": files.label_map,
                "proposals": files.proposals, "train_exclusions": files.train_exclusions})
    trainer.fit(model, train_set, loss=DetectionLoss(model, columns, device),
                predictor=predictor, fingerprint=fingerprint)
    return trainer.finish(model, preset=preset, write_detections=True, headline_scores=True,
                          report_extra={"train_clips": len(train_set), "val_clips": len(val_set),
                                        "not_in_frame_store": {
                                            split: inputs.not_in_store(split)
                                            for split in ("train", "val")}})
