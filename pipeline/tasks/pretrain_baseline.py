"""Stage ``pretrain_baseline``: train the baseline detector (SlowOnly by default) on the train
split and score the val split.

``run`` is the stage (params and DAG paths in, files out); ``train_baseline`` the same work on
explicit files and configs, for tests, ``baseline_job`` and other datasets. It runs unchanged
as one process or under ``torchrun``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from pipeline.ava.annotations import merge_boxes, read_annotations
from pipeline.ava.exclusions import read_exclusions
from pipeline.ava.label_map import read_label_map
from pipeline.ava.results import write_results_parquet
from pipeline.data.config import DataConfig
from pipeline.data.config import shaping_fields as data_shaping_fields
from pipeline.data.dataset import KeyframeDataset, check_clip_reach, stored_annotations
from pipeline.data.transforms import eval_transform, train_transform
from pipeline.devices import set_cpu_threads
from pipeline.engine.checkpoint import run_fingerprint
from pipeline.engine.config import TrainConfig
from pipeline.engine.config import shaping_fields as train_shaping_fields
from pipeline.engine.curves import write_curves
from pipeline.engine.detection import detection_loss, detections_table, predict_detections
from pipeline.engine.distributed import DistContext, setup_distributed
from pipeline.engine.inference import run_inference
from pipeline.engine.precision import autocast_dtype
from pipeline.engine.train import TrainHistory, seed_everything, train
from pipeline.errors import InputError
from pipeline.evaluation.evaluator import evaluate
from pipeline.evaluation.protocols import MIN_ACTION_SCORE, TRAINING_PROTOCOL
from pipeline.evaluation.summary import write_scores
from pipeline.frames.store import FrameStore
from pipeline.io import file_digest
from pipeline.models.checkpoint import initialise, save_stad_checkpoint
from pipeline.models.config import ModelConfig
from pipeline.models.detector import Detector
from pipeline.params.baseline import BaselineParams
from pipeline.params.schema import Params
from pipeline.proposals.table import read_proposals
from pipeline.sources.manifest import read_manifest

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
        checkpoints: Path) -> None:
    """The stage: the manifest's files of both splits, the baseline params."""
    baseline = params.baseline
    set_cpu_threads(baseline.num_threads)
    ctx = setup_distributed(baseline.train.device, key="baseline.train.device")
    manifest = read_manifest(dataset)
    label_map_path = manifest.path(dataset, manifest.label_map)
    num_classes = max(read_label_map(label_map_path).ids) + 1
    train, val = manifest.splits["train"], manifest.splits["val"]
    train_baseline(
        frames_dir=frames / "frames.zarr", keyframes_index=frames / "keyframes.parquet",
        train_annotations=manifest.path(dataset, train.annotations),
        val_annotations=manifest.path(dataset, val.annotations),
        train_exclusions=manifest.path(dataset, train.exclusions),
        val_exclusions=manifest.path(dataset, val.exclusions),
        label_map_path=label_map_path, proposals_path=proposals,
        out_dir=out, checkpoint_dir=checkpoints,
        model_config=baseline.model_config(num_classes), train_config=baseline.train,
        data_config=baseline.data, init_checkpoint=baseline.init_checkpoint or None,
        preset=baseline.preset, ctx=ctx)


def train_baseline(*, frames_dir: str | Path, keyframes_index: str | Path,
                   train_annotations: str | Path, val_annotations: str | Path,
                   label_map_path: str | Path, proposals_path: str | Path,
                   out_dir: str | Path, checkpoint_dir: str | Path,
                   model_config: ModelConfig, train_config: TrainConfig,
                   data_config: DataConfig = DataConfig(),
                   train_exclusions: str | Path | None = None,
                   val_exclusions: str | Path | None = None,
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
    """
    if model_config.uses_bank:
        raise InputError(f"shared_head {model_config.shared_head!r} needs a long-term feature "
                         "bank, which the baseline is trained to produce; pick a preset without one",
                         key="shared_head")
    ctx = ctx or setup_distributed(train_config.device)
    out_dir = Path(out_dir)
    label_map = read_label_map(label_map_path)
    if max(label_map.ids) >= model_config.num_classes:
        raise InputError(f"label map id {max(label_map.ids)} needs num_classes > "
                         f"{max(label_map.ids)}, the model has {model_config.num_classes}",
                         path=label_map_path, key="num_classes")
    columns = torch.tensor(label_map.ids, dtype=torch.long)
    store = FrameStore(frames_dir)
    check_clip_reach(store, model_config.clip_len, model_config.frame_interval,
                     data_config.temporal_jitter)
    if not Path(keyframes_index).is_file():
        raise InputError("keyframe index not found (run frame extraction first)", path=keyframes_index)
    keyframes = pd.read_parquet(keyframes_index)
    proposals = read_proposals(proposals_path)
    train_gt, train_not_stored = stored_annotations(
        read_annotations(train_annotations, label_map), keyframes, "train")
    val_gt, val_not_stored = stored_annotations(read_annotations(val_annotations, label_map),
                                                keyframes, "val")
    val_excluded = read_exclusions(val_exclusions) if val_exclusions else None

    def dataset(annotations: pd.DataFrame, split: str, exclusions, transform,
                min_score: float) -> KeyframeDataset:
        boxes, labels = merge_boxes(annotations, label_map)
        return KeyframeDataset(frames_dir, keyframes, boxes=boxes, labels=labels,
                               proposals=proposals, exclusions=exclusions, split=split,
                               frames_per_clip=model_config.clip_len,
                               frame_interval=model_config.frame_interval,
                               transform=transform, num_classes=label_map.num_classes,
                               min_proposal_score=min_score,
                               max_proposals=data_config.max_proposals,
                               temporal_jitter=data_config.temporal_jitter and split == "train")

    train_set = dataset(train_gt, "train",
                        read_exclusions(train_exclusions) if train_exclusions else None,
                        train_transform(short_side_range=data_config.short_side_range,
                                        crop_size=data_config.crop_size, flip_p=data_config.flip_p,
                                        min_box_size=data_config.min_box_size),
                        data_config.train_min_proposal_score)
    val_set = dataset(val_gt, "val", val_excluded,
                      eval_transform(short_side=data_config.test_short_side),
                      data_config.test_min_proposal_score)
    if len(train_set) == 0:
        raise InputError("no annotated train keyframe is in the frame store", path=train_annotations)

    seed_everything(train_config.seed, deterministic=train_config.deterministic)
    model = Detector(model_config)
    if init_checkpoint is not None:
        initialise(model, init_checkpoint)
    device = ctx.device
    amp_dtype = autocast_dtype(device, train_config.amp, train_config.amp_dtype)

    def loss_fn(wrapped: torch.nn.Module, batch) -> torch.Tensor:
        return detection_loss(wrapped, batch, detector=model, columns=columns, device=device)

    def score_val() -> tuple[pd.DataFrame, dict] | None:
        predictions = run_inference(
            model, val_set, batch_size=data_config.test_batch_size,
            num_workers=train_config.num_workers, ctx=ctx, desc="val", amp_dtype=amp_dtype,
            predict_batch=lambda m, b: predict_detections(m, b, columns=columns, device=device))
        if predictions is None:
            return None
        detections = detections_table(predictions, label_map.ids, min_score=min_action_score)
        result = evaluate(val_gt, detections, label_map, exclusions=val_excluded,
                          protocol=eval_protocol)
        return detections, result.to_json()

    last_val: dict[str, Any] = {}

    def validate(_model: torch.nn.Module, epoch: int) -> dict[str, float]:
        scored = score_val()
        last_val["epoch"] = epoch  # on every rank: all of them must agree on what runs next
        if scored is None:
            return {}
        last_val.update(detections=scored[0], result=scored[1])
        return {"val_mAP": scored[1]["mAP"],
                **{f"val_mAP_{g}": v for g, v in scored[1]["group_mAP"].items()}}

    fingerprint = run_fingerprint(
        model=model_config, data=data_config, prefix="baseline",
        init_checkpoint=None if init_checkpoint is None else file_digest(init_checkpoint),
        inputs={"frames": frames_dir, "keyframes": keyframes_index,
                "train_annotations": train_annotations, "label_map": label_map_path,
                "proposals": proposals_path, "train_exclusions": train_exclusions})
    if train_config.epochs == 0:
        # score a released (e.g. mmaction2) checkpoint as it is: no training, empty curves
        if init_checkpoint is None:
            raise InputError("epochs 0 scores baseline.init_checkpoint without training, but "
                             "none is set", key="baseline.train.epochs")
        model.to(device)
        history = TrainHistory()
        if ctx.is_main:
            write_curves(out_dir, [], [])
    else:
        history = train(model, train_set, config=train_config, loss_fn=loss_fn, ctx=ctx,
                        params_key="baseline.train",
                        checkpoint_dir=checkpoint_dir,
                        curves_dir=out_dir if ctx.is_main else None, validate=validate,
                        fingerprint=fingerprint)

    if last_val.get("epoch") != train_config.epochs:
        scored = score_val()
        if scored is not None:
            last_val.update(epoch=train_config.epochs, detections=scored[0], result=scored[1])
    if not ctx.is_main:
        return {}
    save_stad_checkpoint(out_dir / "model.pt", model=model.cpu(), preset=preset,
                         test_short_side=data_config.test_short_side,
                         labels={i: label_map.names[i] for i in label_map.ids},
                         frame_convention=store.convention, timeline_fps=store.timeline_fps,
                         frame_short_side=store.spec.short_side)
    write_results_parquet(out_dir / "val_detections.parquet", last_val["detections"])
    return write_scores(
        out_dir / "metrics.json", out_dir / "report.json", out_dir / "per_class_ap.csv",
        last_val["result"], label_map.groups, prefix="val_",
        report_extra={"train_loss": history.epochs[-1]["loss"] if history.epochs else None,
                      "epochs": len(history.epochs),
                      "steps": len(history.steps), "train_clips": len(train_set),
                      "val_clips": len(val_set),
                      "not_in_frame_store": {"train": train_not_stored,
                                             "val": val_not_stored}})
