"""Stage ``train_head``: a head trained on top of the baseline detector, with the feature bank.

The detector keeps the baseline's backbone (same ``ModelConfig`` up to the head fields) and
gets a fresh RoI head: linear or MLP classifier, ACRN, or an LFB operator reading bank windows.

Frozen backbone (the default): the backbone's maps of every train and val keyframe are computed
once (``maps.py``) and only ``roi_head`` is trained, through the engine's ``Trainer`` as the
baseline is (checkpoints, resume, curves, DDP, val scoring, closing files). Training RoIs are GT boxes plus proposals assigned at the
config's IoU threshold, as in the baseline; without augmentation, since the maps are fixed.
``finetune_backbone``: the whole detector is trained on augmented clips instead (slow on CPU).
Bank windows are drawn at random within crowded seconds while training, deterministically
when scoring.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.data.collate import Batch, boxes_to_rois
from pipeline.data.config import DataConfig
from pipeline.data.config import shaping_fields as data_shaping_fields
from pipeline.data.dataset import KeyframeDataset, check_clip_reach
from pipeline.data.inputs import DatasetFiles, LoadedInputs
from pipeline.data.transforms import normalize_clips
from pipeline.devices import set_cpu_threads
from pipeline.engine.checkpoint import run_fingerprint
from pipeline.engine.config import TrainConfig
from pipeline.engine.config import shaping_fields as train_shaping_fields
from pipeline.engine.detection import scored_loss, training_rois
from pipeline.engine.distributed import DistContext, all_gather_objects, setup_distributed
from pipeline.engine.maps import (KeyframeMaps, as_features, compute_maps, predict_on_maps,
                                  predict_streaming, roi_windows)
from pipeline.engine.precision import autocast_dtype
from pipeline.engine.train import seed_everything
from pipeline.engine.trainer import Trainer
from pipeline.errors import InputError
from pipeline.evaluation.protocols import MIN_ACTION_SCORE, TRAINING_PROTOCOL
from pipeline.io import file_digest
from pipeline.lfb.reader import FeatureBank, num_slots
from pipeline.lfb.window import BankWindow
from pipeline.models.checkpoint import (BankRecipe, build_detector_from_checkpoint,
                                        load_stad_checkpoint, read_stad_checkpoint)
from pipeline.models.config import ModelConfig
from pipeline.models.detector import Detector
from pipeline.params.baseline import BaselineParams
from pipeline.params.lfb import LfbParams
from pipeline.params.model import ModelParams, baseline_differences
from pipeline.params.schema import Params

log = logging.getLogger(__name__)

# The params keys whose values shape this stage's outputs (see pretrain_baseline.PARAMS).
# The params groups this stage reads, with their schemas (all of PARAMS's groups).
GROUPS = {"baseline": BaselineParams, "lfb": LfbParams, "model": ModelParams}
PARAMS = (
    "model.head",
    "model.finetune_backbone",
    "model.with_context",
    "model.dropout",
    "model.lfb",
    "model.acrn",
    "model.lr_feature_norm",
    *(f"model.train.{key}" for key in train_shaping_fields()),
    "lfb.window_seconds",
    "lfb.max_per_second",
    *(f"baseline.data.{key}" for key in data_shaping_fields()),
)
PATHS = ("dataset", "frames", "proposals", "baseline", "bank", "out", "checkpoints")


def run(params: Params, *, dataset: Path, frames: Path, proposals: Path, baseline: Path,
        bank: Path, out: Path, checkpoints: Path) -> None:
    """The stage: the head ``model.head`` on the baseline's backbone and the bank."""
    model, lfb = params.model, params.lfb
    set_cpu_threads(model.num_threads)
    ctx = setup_distributed(model.train.device, key="model.train.device")
    baseline_config, _, _ = load_stad_checkpoint(baseline)
    train_head(
        files=DatasetFiles.from_dag(dataset=dataset, frames=frames, proposals=proposals),
        baseline_checkpoint=baseline, bank_dir=bank, out_dir=out, checkpoint_dir=checkpoints,
        model_config=model.model_config(
            baseline_config, num_slots=num_slots(lfb.window_seconds, lfb.max_per_second),
            bank_dim=FeatureBank(bank).dim),
        train_config=model.train, data_config=params.baseline.data, window=lfb.window(),
        finetune_backbone=model.finetune_backbone, bank_in_memory=lfb.in_memory,
        lr_feature_norm=model.lr_feature_norm, ctx=ctx)


@dataclass
class HeadBatch:
    """Training input of the RoI head alone: pooled maps, sampled RoIs and their targets."""

    maps: Tensor                 # [B, C, h, w]
    rois: Tensor                 # [R, 5] pixels, batch index first
    targets: Tensor              # [R, num_classes]
    lt_features: Tensor | None   # [R, S, D]
    lt_mask: Tensor | None       # [R, S]
    lt_geometry: Tensor | None   # [R, S, 5]

    def __len__(self) -> int:
        return int(self.maps.shape[0])


class KeyframeKeys(torch.utils.data.Dataset):
    """Items are the sampler's keys themselves; ``CachedBatches`` does the work."""

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: tuple[int, int]) -> tuple[int, int]:
        return key


def window_rng() -> np.random.Generator:
    """Bank-sampling randomness drawn from torch's RNG, which checkpoints save and restore."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


class CachedBatches:
    """Collate for cached maps: keys ``(index, epoch_seed)`` -> ``HeadBatch``."""

    def __init__(self, maps: KeyframeMaps, *, config: ModelConfig, columns: Tensor,
                 bank: FeatureBank | None, window: BankWindow | None):
        self.maps, self.config, self.columns = maps, config, columns
        self.bank, self.window = bank, window

    def __call__(self, keys: list[tuple[int, int]]) -> HeadBatch:
        index = [i for i, _ in keys]
        m = self.maps
        rois, targets = training_rois([m.proposals[i] for i in index],
                                      [m.gt_boxes[i] for i in index],
                                      [m.gt_labels[i] for i in index],
                                      config=self.config, columns=self.columns)
        lt, mask, geometry = roi_windows(self.bank, self.window,
                                         [m.video_ids[i] for i in index], m.timestamps[index],
                                         rois[:, 0], rng=window_rng())
        return HeadBatch(maps=m.maps[index], rois=rois, targets=targets, lt_features=lt,
                         lt_mask=mask, lt_geometry=geometry)


def _to(tensor: Tensor | None, device: torch.device) -> Tensor | None:
    return None if tensor is None else tensor.to(device, non_blocking=True)


def load_baseline_backbone(model: Detector, baseline_checkpoint: str | Path) -> None:
    """Copy the baseline's backbone weights into ``model``, whose config must be the
    baseline's up to the fields the model params set (``HEAD_FIELDS``)."""
    baseline = build_detector_from_checkpoint(baseline_checkpoint)
    differences = baseline_differences(baseline.config, model.config)
    if differences:
        raise InputError("the head's detector is not built on this baseline: "
                         + ", ".join(differences), path=baseline_checkpoint, key="config")
    model.backbone.load_state_dict(baseline.backbone.state_dict(), strict=True)


def bank_recipe(model: Detector, baseline_checkpoint: str | Path, bank: FeatureBank,
                window: BankWindow, data_config: DataConfig) -> BankRecipe:
    """What ``stad detect`` needs to build a new video's bank as ``infer_lfb`` built this
    one: the baseline's config and backbone (left out when the head's own backbone is the
    same, as after a frozen-backbone training) and the bank's rules for val rows."""
    baseline = read_stad_checkpoint(baseline_checkpoint)
    backbone = {key[len("backbone."):]: value for key, value in baseline.state_dict.items()
                if key.startswith("backbone.")}
    own = model.backbone.state_dict()
    same = own.keys() == backbone.keys() and all(
        own[k].shape == v.shape and torch.equal(own[k].cpu(), v) for k, v in backbone.items())
    provenance = bank.meta["provenance"]
    return BankRecipe(
        baseline_config=baseline.config, baseline_backbone=None if same else backbone,
        dtype=bank.dtype, min_proposal_score=float(provenance["val_min_proposal_score"]),
        max_proposals=int(provenance.get("max_proposals", data_config.max_proposals)),
        short_side=int(provenance["test_short_side"]), window_seconds=window.window_seconds,
        max_per_second=window.max_per_second,
        baseline_sha256=provenance.get("checkpoint_sha256"))


class CachedHeadLoss:
    """Frozen backbone: the RoI head's loss on cached maps (``HeadBatch``)."""

    def __init__(self, detector: Detector, columns: Tensor, device: torch.device):
        self.detector, self.columns, self.device = detector, columns, device

    def __call__(self, head: nn.Module, batch: HeadBatch) -> Tensor:
        device = self.device
        logits = head(as_features(batch.maps.to(device)), batch.rois.to(device),
                      _to(batch.lt_features, device), _to(batch.lt_mask, device),
                      _to(batch.lt_geometry, device))
        return scored_loss(self.detector, logits, batch.targets, self.columns)


class FinetuneLoss:
    """``finetune_backbone``: the whole detector on augmented clips, bank windows per RoI."""

    def __init__(self, detector: Detector, columns: Tensor, bank: FeatureBank | None,
                 window: BankWindow | None, device: torch.device):
        self.detector, self.columns, self.device = detector, columns, device
        self.bank, self.window = bank, window

    def __call__(self, model: nn.Module, batch: Batch) -> Tensor:
        device = self.device
        rois, targets = training_rois(batch.proposals, batch.gt_boxes, batch.gt_labels,
                                      config=self.detector.config, columns=self.columns)
        lt, mask, geometry = roi_windows(self.bank, self.window, [k[0] for k in batch.keys],
                                         np.array([k[1] for k in batch.keys]), rois[:, 0],
                                         rng=window_rng())
        clips = normalize_clips(batch.clips.to(device, non_blocking=True))
        logits = model(clips, rois.to(device), _to(lt, device), _to(mask, device),
                       _to(geometry, device))
        return scored_loss(self.detector, logits, targets, self.columns)


class MapsPredictor:
    """Frozen backbone: val scores of the RoI head on the cached val maps (main rank)."""

    def __init__(self, detector: Detector, maps: KeyframeMaps | None, *, columns: Tensor,
                 bank: FeatureBank | None, window: BankWindow | None, batch_size: int,
                 device: torch.device, amp_dtype: torch.dtype | None):
        self.detector, self.maps, self.columns = detector, maps, columns
        self.bank, self.window, self.batch_size = bank, window, batch_size
        self.device, self.amp_dtype = device, amp_dtype

    def predict(self) -> list[dict[str, Any]] | None:
        if self.maps is None:   # not the main rank
            return None
        return predict_on_maps(self.detector.roi_head, self.maps, columns=self.columns,
                               bank=self.bank, window=self.window, batch_size=self.batch_size,
                               device=self.device, amp_dtype=self.amp_dtype)


class StreamingPredictor:
    """``finetune_backbone``: the backbone changes, so val streams through the whole model."""

    def __init__(self, detector: Detector, dataset: KeyframeDataset, *, columns: Tensor,
                 bank: FeatureBank | None, window: BankWindow | None, batch_size: int,
                 num_workers: int, ctx: DistContext, amp_dtype: torch.dtype | None):
        self.detector, self.dataset, self.columns = detector, dataset, columns
        self.bank, self.window, self.batch_size = bank, window, batch_size
        self.num_workers, self.ctx, self.amp_dtype = num_workers, ctx, amp_dtype

    def predict(self) -> list[dict[str, Any]] | None:
        return predict_streaming(self.detector, self.dataset, columns=self.columns,
                                 bank=self.bank, window=self.window,
                                 batch_size=self.batch_size, num_workers=self.num_workers,
                                 ctx=self.ctx, amp_dtype=self.amp_dtype)


def eval_dataset(inputs: LoadedInputs, split: str, config: ModelConfig,
                 data: DataConfig) -> KeyframeDataset:
    """The split's keyframes at test time (the maps, val scoring), ``data``'s proposal filter."""
    min_score = (data.train_min_proposal_score if split == "train"
                 else data.test_min_proposal_score)
    return inputs.dataset(split, frames_per_clip=config.clip_len,
                          frame_interval=config.frame_interval, short_side=data.test_short_side,
                          min_proposal_score=min_score, max_proposals=data.max_proposals)


def roi_feature_norm(model: Detector, maps: KeyframeMaps, *, batch_size: int = 64,
                     quantile: float = 0.99) -> float:
    """The ``quantile`` of the norms of the pooled features of the train keyframes' GT boxes
    (what the head and, through the bank, the LFB operators read); 0 without boxes."""
    norms = []
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(maps), batch_size):
            boxes = maps.gt_boxes[start:start + batch_size]
            if not any(len(b) for b in boxes):
                continue
            features = model.roi_head.features(
                as_features(maps.maps[start:start + batch_size].to(device)),
                boxes_to_rois(boxes).to(device))
            norms.append(features.float().norm(dim=1))
    if not norms:
        return 0.0
    return float(torch.quantile(torch.cat(norms), quantile))


def scaled_lr(lr: float, feature_norm: float, reference: float | None) -> float:
    """``lr`` x ``(reference / feature_norm) ** 2`` where the features are larger than the
    reference. Why: SGD on a classifier over fixed inputs ``x`` is stable only below a step
    size proportional to ``1 / |x|^2``; a head's lr tuned on one baseline's features diverges
    on a baseline whose features are several times larger (bench/results/head_recipe_sweep.md)."""
    if reference is None or feature_norm <= reference:
        return lr
    return lr * (reference / feature_norm) ** 2


def train_head(*, files: DatasetFiles, baseline_checkpoint: str | Path,
               bank_dir: str | Path | None, out_dir: str | Path, checkpoint_dir: str | Path,
               model_config: ModelConfig, train_config: TrainConfig,
               data_config: DataConfig = DataConfig(), window: BankWindow | None = None,
               finetune_backbone: bool = False, bank_in_memory: bool = True,
               lr_feature_norm: float | None = None, eval_protocol: str = TRAINING_PROTOCOL,
               min_action_score: float = MIN_ACTION_SCORE,
               ctx: DistContext | None = None) -> dict[str, Any]:
    """Train the head; write ``model.pt`` (the whole detector, stad-v1), ``steps.csv``,
    ``epochs.csv`` (with val mAP and group means every ``val_every`` epochs) and
    ``metrics.json`` (the last epoch's train loss: its val mAP is ``evaluate``'s headline),
    ``report.json`` (last val mAP and group means, counts, head names, what the frame store
    lacked) and ``per_class_ap.csv`` (a plot) into ``out_dir``. Resumes from
    ``checkpoint_dir``. Returns metrics and report in one dict (main rank).

    ``bank_dir`` and ``window`` are needed by lfb heads only (others ignore the bank).
    ``lr_feature_norm``: see ``scaled_lr`` (frozen backbone only; None: ``train_config.lr``).
    """
    if train_config.epochs < 1:
        raise InputError("a fresh head needs at least one epoch", key="model.train.epochs")
    ctx = ctx or setup_distributed(train_config.device)
    device = ctx.device
    amp_dtype = autocast_dtype(device, train_config.amp, train_config.amp_dtype)
    bank = None
    if model_config.uses_bank:
        if bank_dir is None or window is None:
            raise InputError(f"head {model_config.head_name!r} needs a feature bank and a "
                             "window", key="bank")
        bank = FeatureBank(bank_dir, in_memory=bank_in_memory)
        slots = num_slots(window.window_seconds, window.max_per_second)
        if (model_config.lfb_num_lt_feat, model_config.lfb_channels) != (slots, bank.dim):
            raise InputError(f"the head reads {model_config.lfb_num_lt_feat} slots of width "
                             f"{model_config.lfb_channels}; the window gives {slots}, the bank "
                             f"{bank.dim}", path=bank_dir, key="lfb_num_lt_feat")
    inputs = LoadedInputs(files)
    lr_note: dict[str, Any] = {"lr": train_config.lr}
    trainer = Trainer(inputs, train_config=train_config, data_config=data_config, ctx=ctx,
                      out_dir=out_dir, checkpoint_dir=checkpoint_dir, params_key="model.train",
                      eval_protocol=eval_protocol, min_action_score=min_action_score)
    columns = trainer.columns(model_config.num_classes)

    seed_everything(train_config.seed, deterministic=train_config.deterministic)
    model = Detector(model_config)
    load_baseline_backbone(model, baseline_checkpoint)
    model.to(device)
    check_clip_reach(inputs.store, model_config.clip_len, model_config.frame_interval,
                     finetune_backbone and data_config.temporal_jitter)

    def maps_of(split: str) -> KeyframeMaps | None:
        model.eval()
        with torch.inference_mode():
            return compute_maps(model, eval_dataset(inputs, split, model_config, data_config),
                                batch_size=data_config.test_batch_size,
                                num_workers=train_config.num_workers, ctx=ctx,
                                desc=f"{split} maps", amp_dtype=amp_dtype)

    if finetune_backbone:
        predictor = StreamingPredictor(
            model, eval_dataset(inputs, "val", model_config, data_config), columns=columns,
            bank=bank, window=window, batch_size=data_config.test_batch_size,
            num_workers=train_config.num_workers, ctx=ctx, amp_dtype=amp_dtype)
    else:
        predictor = MapsPredictor(model, maps_of("val"), columns=columns, bank=bank,
                                  window=window, batch_size=data_config.test_batch_size,
                                  device=device, amp_dtype=amp_dtype)
    fingerprint = run_fingerprint(
        model=model_config, data=data_config, prefix="model",
        baseline=file_digest(baseline_checkpoint),
        bank=None if bank is None else bank.meta["fingerprint"],
        window=None if window is None else asdict(window), finetune_backbone=finetune_backbone,
        inputs=asdict(files))

    if finetune_backbone:
        train_set = inputs.train_dataset(frames_per_clip=model_config.clip_len,
                                         frame_interval=model_config.frame_interval,
                                         data=data_config)
        trainer.fit(model, train_set, loss=FinetuneLoss(model, columns, bank, window, device),
                    predictor=predictor, fingerprint=fingerprint)
    else:
        for param in model.backbone_parameters():
            param.requires_grad_(False)
        train_maps = maps_of("train")
        if ctx.distributed:   # every rank trains on all keyframes' maps
            train_maps = all_gather_objects(train_maps, ctx)[0]
        collate = CachedBatches(train_maps, config=model_config, columns=columns, bank=bank,
                                window=window)
        feature_norm = roi_feature_norm(model, train_maps)
        lr = scaled_lr(train_config.lr, feature_norm, lr_feature_norm)
        lr_note.update(train_feature_norm_p99=round(feature_norm, 4), lr=lr)
        if lr != train_config.lr:
            log.info("lr %.4g (model.train.lr %g x (model.lr_feature_norm %g / %.4g, the train "
                     "RoI features' 99th-percentile norm)^2)", lr, train_config.lr,
                     lr_feature_norm, feature_norm)
        # The maps live in this process's memory: no loader workers.
        trainer.fit(model.roi_head, KeyframeKeys(len(train_maps)),
                    loss=CachedHeadLoss(model, columns, device), predictor=predictor,
                    fingerprint=fingerprint, collate_fn=collate,
                    config=replace(train_config, num_workers=0, lr=lr))
    recipe = None
    if bank is not None and ctx.is_main:
        recipe = bank_recipe(model, baseline_checkpoint, bank, window, data_config)
    return trainer.finish(model, preset=None, write_detections=False, headline_scores=False,
                          bank=recipe,
                          report_extra={"head": model_config.head_name,
                                        "classifier": model_config.classifier,
                                        "relation": model_config.relation,
                                        "finetune_backbone": finetune_backbone,
                                        **lr_note,
                                        "not_in_frame_store": {
                                            split: inputs.not_in_store(split)
                                            for split in ("train", "val")}})
