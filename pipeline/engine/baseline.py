"""Train the baseline detector (SlowOnly by default) on the train split and score the val split.

One function does the whole stage so the DVC stage stays a thin wrapper and a test can call it
directly; it runs unchanged as one process or under ``torchrun`` (see ``launch.py``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline.ava.annotations import merge_boxes, read_annotations
from pipeline.ava.clock import jitter_span
from pipeline.ava.exclusions import read_exclusions
from pipeline.ava.label_map import read_label_map
from pipeline.ava.results import write_results_parquet
from pipeline.data.config import DataConfig
from pipeline.data.dataset import KeyframeDataset, clip_frame_subset, stored_annotations
from pipeline.data.transforms import eval_transform, train_transform
from pipeline.engine.checkpoint import fingerprint_entries
from pipeline.engine.config import TrainConfig
from pipeline.engine.detection import detection_loss, detections_table, predict_detections
from pipeline.engine.distributed import DistContext, setup_distributed
from pipeline.engine.inference import run_inference
from pipeline.engine.precision import autocast_dtype
from pipeline.engine.curves import write_curves
from pipeline.engine.train import TrainHistory, seed_everything, train
from pipeline.errors import InputError
from pipeline.evaluation.evaluator import evaluate
from pipeline.evaluation.protocols import MIN_ACTION_SCORE, TRAINING_PROTOCOL
from pipeline.evaluation.summary import headline, per_class_table, write_csv
from pipeline.frames.store import FrameStore
from pipeline.io import content_digest, file_digest, write_json
from pipeline.models.config import ModelConfig
from pipeline.models.detector import Detector
from pipeline.models.checkpoint import (FORMAT, load_into, load_mmaction2_checkpoint,
                                        load_stad_checkpoint, read_checkpoint,
                                        save_stad_checkpoint)
from pipeline.proposals.table import read_proposals

log = logging.getLogger(__name__)

def frame_stride(store: FrameStore, model_config: ModelConfig,
                 temporal_jitter: bool = False) -> int:
    """Stored frames between two model frames (the model's raw-frame interval / the store's);
    checks that the model's clip fits in the stored one, and with ``temporal_jitter`` that the
    store holds every frame the jitter reaches, before any worker starts."""
    stored = int(store.attrs["frame_interval"])
    if model_config.frame_interval % stored:
        raise InputError(f"the model reads every {model_config.frame_interval}th frame but the "
                         f"store keeps every {stored}th; re-extract with a divisor of "
                         f"{model_config.frame_interval}", path=store.path, key="frame_interval")
    stride = model_config.frame_interval // stored
    try:
        clip_frame_subset(int(store.attrs["clip_len"]), model_config.clip_len, stride,
                          store.keyframe_position)
    except ValueError as e:
        raise InputError(f"the model's {model_config.clip_len}x{model_config.frame_interval} clip "
                         f"is not inside the stored clips: {e}", path=store.path, key="clip_len") from e
    if temporal_jitter:
        needed = jitter_span(model_config.clip_len, model_config.frame_interval)
        held = np.asarray(store.attrs.get("jitter_offsets", []))
        if not store.attrs.get("train_jitter") or not np.isin(needed, held).all():
            raise InputError(f"temporal jitter of the model's {model_config.clip_len}x"
                             f"{model_config.frame_interval} clip reaches frames "
                             f"{needed[0]}..{needed[-1]} from the keyframe; the store's train "
                             "clips do not hold them: extract with frames.train_jitter: true "
                             "and the model's clip_len and frame_interval",
                             path=store.path, key="train_jitter")
    return stride


def initialise(model: Detector, path: str | Path) -> None:
    """Load a project checkpoint or an mmaction2 detector/recognizer checkpoint into ``model``."""
    obj = read_checkpoint(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        _, state_dict, _ = load_stad_checkpoint(path)
    else:
        state_dict = load_mmaction2_checkpoint(path)
    report = load_into(model, state_dict, path=path)
    log.info("initialised from %s (%s, %d tensors)", path, report.kind, report.num_tensors)


def run_fingerprint(*, model: ModelConfig, data: DataConfig, prefix: str,
                    inputs: dict[str, str | Path | None], **more: Any) -> dict[str, Any]:
    """What decides what a training run computes, besides its TrainConfig (``train`` adds
    that): the model config, the data settings that reach training, the contents of the input
    files (``input.<name>``: never their paths) and ``more``, as flat keys under ``prefix``
    (e.g. ``baseline``) for a resume refusal to name."""
    data_fields = {k: v for k, v in asdict(data).items() if k != "test_batch_size"}
    return {**fingerprint_entries(f"{prefix}.model", asdict(model)),
            **fingerprint_entries(f"{prefix}.data", data_fields),
            **fingerprint_entries(prefix, more),
            **{f"input.{name}": content_digest(path) for name, path in inputs.items()}}


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
    (val mAP, group means and counts under ``eval_protocol``) and ``per_class_ap.csv`` (val AP
    per class, a plot). Returns the metrics (main rank).

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
    stride = frame_stride(store, model_config, data_config.temporal_jitter)
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
                               frames_per_clip=model_config.clip_len, frame_stride=stride,
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
                         frame_short_side=store.attrs.get("short_side"))
    write_results_parquet(out_dir / "val_detections.parquet", last_val["detections"])
    result = last_val["result"]
    per_class_plot = out_dir / "per_class_ap.csv"
    write_csv(per_class_plot, per_class_table(result, label_map.groups))
    top = headline(result, per_class_plot.name)   # beside metrics.json
    metrics = {"val_mAP": top["mAP"], "val_group_mAP": top["group_mAP"],
               "protocol": top["protocol"], "val_counts": top["counts"],
               "undefined": top["undefined"],
               "train_loss": history.epochs[-1]["loss"] if history.epochs else None,
               "epochs": len(history.epochs),
               "steps": len(history.steps), "train_clips": len(train_set),
               "val_clips": len(val_set),
               "not_in_frame_store": {"train": train_not_stored, "val": val_not_stored}}
    write_json(out_dir / "metrics.json", metrics)
    return metrics
