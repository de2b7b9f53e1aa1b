"""Stage ``evaluate``: the trained head on val, as files for people, DVC and other tools.

Writes (all atomically):

- ``results_dir/val_results.csv`` (AVA result CSV, what reference evaluators read) and
  ``val_results.parquet`` (same rows, float32 precision);
- ``metrics_path`` (JSON for ``dvc metrics``): mAP and group means, and
  ``results_dir/eval_report.json``: protocol, counts, why any is undefined, val keyframes
  not in the frame store (``pipeline.evaluation.summary.write_scores``);
- ``plots_dir/per_class_ap.csv`` (class, group, AP, counts, why undefined: a
  ``bar_horizontal`` plot) and ``plots_dir/pr_curves.csv`` (class, recall, precision);
- ``results_dir/keyframes/*.png``: a few val keyframes with true boxes (yellow, their labels)
  and predicted boxes (cyan, their top scores).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline.ava.annotations import merge_boxes
from pipeline.ava.results import write_results_csv, write_results_parquet
from pipeline.boxes import BOX_COLUMNS, at_keyframe
from pipeline.data.config import DataConfig
from pipeline.data.dataset import check_clip_reach
from pipeline.frames.spec import clip_offsets
from pipeline.data.inputs import DatasetFiles, LoadedInputs
from pipeline.devices import set_cpu_threads
from pipeline.engine.detection import detections_table
from pipeline.engine.distributed import DistContext, setup_distributed
from pipeline.engine.maps import predict_streaming
from pipeline.engine.precision import autocast_dtype
from pipeline.errors import InputError
from pipeline.evaluation.evaluator import EvaluationResult, describe, evaluate
from pipeline.evaluation.protocols import MIN_ACTION_SCORE, TRAINING_PROTOCOL
from pipeline.evaluation.summary import write_csv, write_scores
from pipeline.io import atomic_output
from pipeline.lfb.reader import FeatureBank
from pipeline.lfb.window import BankWindow
from pipeline.models.checkpoint import build_detector_from_checkpoint
from pipeline.params.baseline import BaselineParams
from pipeline.params.evaluation import EvalParams
from pipeline.params.lfb import LfbParams
from pipeline.params.schema import Params
from pipeline.viz import LabelledBox, render_clip

# The params keys whose values shape this stage's outputs (see pretrain_baseline.PARAMS).
# The params groups this stage reads, with their schemas (all of PARAMS's groups).
GROUPS = {"baseline": BaselineParams, "eval": EvalParams, "lfb": LfbParams}
PARAMS = (
    "eval.protocol",
    "eval.score_threshold",
    "eval.amp",
    "eval.amp_dtype",
    "eval.render_keyframes",
    "lfb.window_seconds",
    "lfb.max_per_second",
    "baseline.data.test_short_side",
    "baseline.data.test_min_proposal_score",
    "baseline.data.max_proposals",
)
PATHS = ("dataset", "frames", "proposals", "model", "bank", "results", "metrics", "plots")

GT_COLOR = (255, 220, 0)
PRED_COLOR = (0, 230, 255)


def pr_table(result: EvaluationResult) -> pd.DataFrame:
    points = result.pr_points()
    names = result.label_map.names
    return pd.DataFrame({"class": [f"{i} {names[i]}" for i in points["action_id"]],
                         "recall": points["recall"], "precision": points["precision"]})


def render_keyframes(out_dir: Path, inputs: LoadedInputs, predictions: list[dict[str, Any]],
                     gt: pd.DataFrame, *, count: int, offsets: np.ndarray, top_labels: int = 2,
                     min_score: float = 0.3) -> list[Path]:
    """Draw ``count`` val keyframes spread over the split, each above the strip of its clip's
    frames (``offsets`` from the keyframe: the model's clip); returns the PNG paths."""
    if count == 0 or not predictions:
        return []
    names = inputs.label_map.names
    ids = inputs.label_map.ids
    keys = inputs.keyframes.assign(video_id=inputs.keyframes["video_id"].astype(str))
    picks = np.unique(np.linspace(0, len(predictions) - 1, num=count).round().astype(int))
    written = []
    for pick in picks:
        p = predictions[pick]
        row = at_keyframe(keys, p["video_id"], p["timestamp"])
        clip = inputs.store.video(p["video_id"]).clip(int(row["frame"].iloc[0]), offsets)
        boxes = []
        # the label map's actions only: a box with none of them is neither trained nor scored
        gt_boxes, gt_labels = merge_boxes(at_keyframe(gt, p["video_id"], p["timestamp"]),
                                          inputs.label_map)
        for box, hot in zip(gt_boxes[BOX_COLUMNS].to_numpy(), gt_labels):
            caption = "\n".join(names[ids[k]].split(" (")[0] for k in np.flatnonzero(hot))
            boxes.append(LabelledBox(*map(float, box), caption=caption, color=GT_COLOR))
        for box, scores in zip(p["boxes"], p["scores"]):
            best = np.argsort(-scores)[:top_labels]
            lines = [f"{names[ids[k]].split(' (')[0]} {scores[k]:.2f}" for k in best
                     if scores[k] >= min_score]
            boxes.append(LabelledBox(*map(float, box), caption="\n".join(lines),
                                     color=PRED_COLOR))
        path = out_dir / f"{p['video_id']}_{p['timestamp']}.png"
        with atomic_output(path) as tmp:
            render_clip(np.asarray(clip), boxes).save(tmp, format="PNG")
        written.append(path)
    return written


def evaluate_head(*, files: DatasetFiles, checkpoint: str | Path, bank_dir: str | Path | None,
                  results_dir: str | Path, metrics_path: str | Path, plots_dir: str | Path,
                  window: BankWindow | None = None, data_config: DataConfig = DataConfig(),
                  protocol: str = TRAINING_PROTOCOL,
                  score_threshold: float = MIN_ACTION_SCORE,
                  render_count: int = 6, batch_size: int = 16, num_workers: int = 1,
                  bank_in_memory: bool = True, ctx: DistContext | None = None,
                  amp_dtype: torch.dtype | None = None) -> dict[str, Any] | None:
    """Score val with the detector in ``checkpoint`` and write every output (module doc);
    the model runs under autocast to ``amp_dtype`` (None: float32).

    Returns metrics and report in one dict on the main rank (None on the others).
    """
    ctx = ctx or setup_distributed("auto")
    results_dir, plots_dir = Path(results_dir), Path(plots_dir)
    inputs = LoadedInputs(files)
    model = build_detector_from_checkpoint(checkpoint).to(ctx.device).eval()
    bank = None
    if model.config.uses_bank:
        if bank_dir is None or window is None:
            raise InputError("this head reads a feature bank: give the bank and its window",
                             path=checkpoint, key="bank")
        bank = FeatureBank(bank_dir, in_memory=bank_in_memory)
    columns = torch.tensor(inputs.label_map.ids, dtype=torch.long)
    check_clip_reach(inputs.store, model.config.clip_len, model.config.frame_interval)
    dataset = inputs.dataset("val", frames_per_clip=model.config.clip_len,
                             frame_interval=model.config.frame_interval,
                             short_side=data_config.test_short_side,
                             min_proposal_score=data_config.test_min_proposal_score,
                             max_proposals=data_config.max_proposals)
    predictions = predict_streaming(model, dataset, columns=columns, bank=bank, window=window,
                                    batch_size=batch_size, num_workers=num_workers, ctx=ctx,
                                    amp_dtype=amp_dtype)
    if predictions is None:
        return None
    detections = detections_table(predictions, inputs.label_map.ids, min_score=score_threshold)
    write_results_csv(results_dir / "val_results.csv", detections)
    write_results_parquet(results_dir / "val_results.parquet", detections)
    gt = inputs.gt("val")
    result = evaluate(gt, detections, inputs.label_map, exclusions=inputs.exclusions("val"),
                      protocol=protocol)
    scored = result.to_json()
    metrics = write_scores(metrics_path, results_dir / "eval_report.json",
                           plots_dir / "per_class_ap.csv", scored, inputs.label_map.groups,
                           report_extra={"not_in_frame_store": inputs.not_in_store("val")})
    write_csv(plots_dir / "pr_curves.csv", pr_table(result))
    render_keyframes(results_dir / "keyframes", inputs, predictions, gt, count=render_count,
                     offsets=clip_offsets(model.config.clip_len, model.config.frame_interval))
    return metrics


def run(params: Params, *, dataset: Path, frames: Path, proposals: Path, model: Path,
        bank: Path, results: Path, metrics: Path, plots: Path) -> None:
    """The stage: the head's val results, metrics, plots and drawn keyframes."""
    ev, lfb = params.eval, params.lfb
    set_cpu_threads(ev.num_threads)
    ctx = setup_distributed(ev.device, key="eval.device")
    summary = evaluate_head(
        files=DatasetFiles.from_dag(dataset=dataset, frames=frames, proposals=proposals),
        checkpoint=model, bank_dir=bank, results_dir=results, metrics_path=metrics,
        plots_dir=plots, window=lfb.window(), data_config=params.baseline.data,
        protocol=ev.protocol, score_threshold=ev.score_threshold,
        render_count=ev.render_keyframes, batch_size=ev.batch_size,
        num_workers=ev.num_workers, bank_in_memory=lfb.in_memory, ctx=ctx,
        amp_dtype=autocast_dtype(ctx.device, ev.amp, ev.amp_dtype))
    if summary is not None:
        print(f"val {describe(summary)}")
