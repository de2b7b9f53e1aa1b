"""One training story for every stage that trains a detector (``pretrain_baseline``,
``train_head``): the stage builds its model, data, loss and val predictor and hands them over;
the ``Trainer`` runs the loop (``train.train``: steps, checkpoints, resume, curves), scores
val every ``val_every`` epochs and after the last, and writes the closing files once.

What a stage adds is two plain objects:

- a **loss**: ``loss(model, batch) -> scalar tensor``, called with what the loop optimises
  (DDP-wrapped when distributed); it moves the batch to the device itself.
- a **val predictor** (``ValPredictor``): ``predict()`` runs on every rank with the model as
  trained so far and returns ``run_inference``'s rows for every val sample (normalised boxes,
  label-map-order scores) on the main rank, None on the others. The trainer turns them into
  AVA rows (``detections_table``) and scores them (``evaluate``) the same way for every stage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch
from torch import nn

from pipeline.ava.results import write_results_parquet
from pipeline.data.config import DataConfig
from pipeline.data.inputs import LoadedInputs
from pipeline.engine.config import TrainConfig
from pipeline.engine.curves import write_curves
from pipeline.engine.detection import detections_table
from pipeline.engine.distributed import DistContext
from pipeline.engine.train import TrainHistory, train
from pipeline.errors import InputError
from pipeline.evaluation.evaluator import evaluate
from pipeline.evaluation.protocols import MIN_ACTION_SCORE, TRAINING_PROTOCOL
from pipeline.evaluation.summary import write_scores
from pipeline.models.checkpoint import BankRecipe, save_stad_checkpoint
from pipeline.models.detector import Detector


class ValPredictor(Protocol):
    """Scores every val sample with the model as it is now (see the module docstring)."""

    def predict(self) -> list[dict[str, Any]] | None: ...


@dataclass
class Scored:
    """One scoring of val: ``evaluate``'s JSON result and the AVA rows it scored."""

    result: dict[str, Any]
    detections: pd.DataFrame


def val_row(result: Mapping[str, Any]) -> dict[str, float]:
    """The epochs.csv columns of a scoring: val mAP and the group means."""
    return {"val_mAP": result["mAP"],
            **{f"val_mAP_{g}": v for g, v in result["group_mAP"].items()}}


class Trainer:
    """Train a detector on loaded inputs, score val, write the stage's closing files.

    ``params_key`` (``baseline.train``, ``model.train``) names the params group in messages.
    Files go to ``out_dir`` (main rank only): ``steps.csv``, ``epochs.csv`` while training,
    then ``model.pt`` (stad-v1), ``metrics.json``, ``report.json``, ``per_class_ap.csv`` and,
    with ``write_detections``, ``val_detections.parquet`` (see ``finish``).
    """

    def __init__(self, inputs: LoadedInputs, *, train_config: TrainConfig,
                 data_config: DataConfig, ctx: DistContext, out_dir: str | Path,
                 checkpoint_dir: str | Path, params_key: str,
                 eval_protocol: str = TRAINING_PROTOCOL,
                 min_action_score: float = MIN_ACTION_SCORE):
        self.inputs, self.config, self.data_config = inputs, train_config, data_config
        self.ctx, self.params_key = ctx, params_key
        self.out_dir, self.checkpoint_dir = Path(out_dir), Path(checkpoint_dir)
        self.eval_protocol, self.min_action_score = eval_protocol, min_action_score
        self.history = TrainHistory()
        self._scored: Scored | None = None
        self._scored_epoch: int | None = None

    def columns(self, num_classes: int) -> torch.Tensor:
        """The model's output columns of the label map's classes (ids index the columns)."""
        label_map = self.inputs.label_map
        if max(label_map.ids) >= num_classes:
            raise InputError(f"label map id {max(label_map.ids)} needs num_classes > "
                             f"{max(label_map.ids)}, the model has {num_classes}",
                             path=self.inputs.files.label_map, key="num_classes")
        return torch.tensor(label_map.ids, dtype=torch.long)

    def score(self, predictor: ValPredictor) -> Scored | None:
        """Score val now: every rank predicts, the main rank evaluates (others get None)."""
        predictions = predictor.predict()
        if predictions is None:
            return None
        label_map = self.inputs.label_map
        detections = detections_table(predictions, label_map.ids, min_score=self.min_action_score)
        result = evaluate(self.inputs.gt("val"), detections, label_map,
                          exclusions=self.inputs.exclusions("val"), protocol=self.eval_protocol)
        return Scored(result.to_json(), detections)

    def fit(self, model: nn.Module, dataset: torch.utils.data.Dataset, *,
            loss: Callable[[nn.Module, Any], torch.Tensor], predictor: ValPredictor,
            fingerprint: Mapping[str, object],
            collate_fn: Callable[[list], object] | None = None,
            config: TrainConfig | None = None) -> TrainHistory:
        """Train ``model`` (what the optimiser updates: the detector, or its RoI head alone)
        for ``config.epochs`` (default: the trainer's config), resuming from the checkpoint
        folder; val is scored every ``val_every`` epochs and after the last one (once more
        here if the loop did not). Epochs 0: no training, val scored as the model is."""
        config = config or self.config
        if config.epochs == 0:
            model.to(self.ctx.device)
            if self.ctx.is_main:
                write_curves(self.out_dir, [], [])
        else:
            self.history = train(model, dataset, config=config, loss_fn=loss, ctx=self.ctx,
                                 checkpoint_dir=self.checkpoint_dir,
                                 curves_dir=self.out_dir if self.ctx.is_main else None,
                                 validate=lambda _model, epoch: self._validate(predictor, epoch),
                                 fingerprint=fingerprint, collate_fn=collate_fn,
                                 params_key=self.params_key)
        if self._scored_epoch != config.epochs:
            scored = self.score(predictor)
            if scored is not None:
                self._scored = scored
            self._scored_epoch = config.epochs
        return self.history

    def _validate(self, predictor: ValPredictor, epoch: int) -> dict[str, float]:
        scored = self.score(predictor)
        self._scored_epoch = epoch   # on every rank: all of them must agree on what runs next
        if scored is None:
            return {}
        self._scored = scored
        return val_row(scored.result)

    def finish(self, model: Detector, *, preset: str | None, write_detections: bool,
               headline_scores: bool, report_extra: Mapping[str, Any],
               bank: BankRecipe | None = None) -> dict[str, Any]:
        """The closing files (main rank; others return {}): ``model.pt`` with what ``stad
        detect`` needs (labels, test short side, the frame store's convention; ``bank``, the
        recipe of a bank head's bank), the last val scoring as ``metrics.json`` (mAP and group means
        with ``headline_scores``, else the last epoch's train loss, the head's mAP being
        ``evaluate``'s), ``report.json`` (with ``report_extra``) and ``per_class_ap.csv``; with
        ``write_detections`` its AVA rows as ``val_detections.parquet``."""
        if not self.ctx.is_main:
            return {}
        inputs, history = self.inputs, self.history
        label_map = inputs.label_map
        save_stad_checkpoint(self.out_dir / "model.pt", model=model.cpu(), preset=preset,
                             test_short_side=self.data_config.test_short_side,
                             labels={i: label_map.names[i] for i in label_map.ids},
                             frame_convention=inputs.store.convention,
                             timeline_fps=inputs.store.timeline_fps,
                             frame_short_side=inputs.store.spec.short_side,
                             bank=bank)
        if write_detections:
            write_results_parquet(self.out_dir / "val_detections.parquet",
                                  self._scored.detections)
        train_loss = history.epochs[-1]["loss"] if history.epochs else None
        counts = {"epochs": len(history.epochs), "steps": len(history.steps)}
        return write_scores(
            self.out_dir / "metrics.json", self.out_dir / "report.json",
            self.out_dir / "per_class_ap.csv", self._scored.result, label_map.groups,
            prefix="val_", headline_scores=headline_scores,
            headline_extra=None if headline_scores else {"train_loss": train_loss},
            report_extra={**({"train_loss": train_loss} if headline_scores else {}), **counts,
                          **report_extra})
