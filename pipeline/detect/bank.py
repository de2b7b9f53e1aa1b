"""The video's own feature bank, for feature-bank heads (``lfb_*``): built as ``infer_lfb``
builds a val video's rows, so the head reads windows like those it was trained on."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.boxes import BOX_COLUMNS
from pipeline.detect.keyframes import VideoDetection
from pipeline.detect.persons import BoxesOf
from pipeline.engine.maps import box_features, pooled_maps
from pipeline.errors import InputError
from pipeline.lfb.reader import FeatureBank, num_slots
from pipeline.lfb.writer import BankStorage, BankWriter, fill_bank
from pipeline.models.checkpoint import BankRecipe, StadCheckpoint, read_stad_checkpoint
from pipeline.models.detector import Detector
from pipeline.params.model import baseline_differences

# mmaction2's bank rules, for a converted zoo head given --bank-baseline (its LFB configs)
ZOO_BANK = {"dtype": "float16", "min_proposal_score": 0.9, "max_proposals": 1000}
ZOO_WINDOW = (30, 5)


def bank_recipe_of(stad: StadCheckpoint, checkpoint: Path, bank_baseline: str | Path | None,
                   short_side: int, window: tuple[int, int] | None) -> BankRecipe:
    """How to build the head's bank: as its checkpoint records, or for a head trained elsewhere
    (a converted zoo LFB head) with ``bank_baseline``'s backbone, mmaction2's rules and
    ``window`` (seconds, boxes per second; mmaction2's 30 x 5 by default)."""
    config = stad.config
    if bank_baseline is None:
        if stad.bank is None:
            raise InputError(f"relation {config.relation!r} reads a long-term feature bank "
                             "and this checkpoint records no baseline to build one with (not "
                             "written by train_head): give --bank-baseline, the bank-inference "
                             "checkpoint (stad-v1, e.g. mmaction2's infer model converted)",
                             path=checkpoint, key="bank")
        return stad.bank
    baseline = read_stad_checkpoint(bank_baseline)
    window_seconds, max_per_second = window or ZOO_WINDOW
    if num_slots(window_seconds, max_per_second) != config.lfb_num_lt_feat:
        raise InputError(f"a window of {window_seconds} s x {max_per_second} boxes gives "
                         f"{num_slots(window_seconds, max_per_second)} slots; the head reads "
                         f"{config.lfb_num_lt_feat}", path=checkpoint, key="--bank-window")
    backbone = {k[len("backbone."):]: v for k, v in baseline.state_dict.items()
                if k.startswith("backbone.")}
    return BankRecipe(baseline_config=baseline.config, baseline_backbone=backbone,
                      short_side=short_side, window_seconds=window_seconds,
                      max_per_second=max_per_second, **ZOO_BANK)


def bank_model(recipe: BankRecipe, head: Detector) -> Detector:
    """The baseline that computes the bank: its backbone (the head's own when the recipe stores
    none) and its RoI pooling. Its classifier never runs, so it is left uninitialised."""
    differences = baseline_differences(recipe.baseline_config, head.config)
    if differences:
        raise InputError("the head is not built on the bank's baseline: "
                         + ", ".join(differences), key="bank")
    with torch.device("meta"):
        model = Detector(recipe.baseline_config)
    model.roi_head.to_empty(device="cpu")
    state = head.backbone.state_dict() if recipe.baseline_backbone is None \
        else recipe.baseline_backbone
    model.backbone.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def bank_seconds(scored: list[int], recipe: BankRecipe, timestamp_start: int,
                 last: int) -> list[int]:
    """Every second within the scored keyframes' windows' reach, inside the video."""
    w = recipe.window_seconds
    return list(range(max(timestamp_start, scored[0] - w),
                      min(timestamp_start + last, scored[-1] + w - 1) + 1))


@torch.inference_mode()
def build_bank(run: VideoDetection, path: Path, baseline: Detector, recipe: BankRecipe,
               timestamps: list[int], boxes_of: BoxesOf) -> FeatureBank:
    """The video's bank at ``path``: the baseline's features of ``boxes_of``'s boxes at
    ``timestamps``, in the bank's dtype, written by the bank writer (shard by shard from
    a scratch file, so memory does not grow with the video)."""
    parts: list[pd.DataFrame] = []
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=path.parent) as scratch:
        for batch in run.batches(timestamps, boxes_of, recipe.short_side, "bank"):
            clips = torch.stack([sample.clip for _, sample, _ in batch])
            maps = pooled_maps(baseline, clips.to(run.device)).float().cpu()
            sizes = torch.tensor([[s.height, s.width] for _, s, _ in batch])
            counts = [len(boxes) for _, _, (boxes, _) in batch]
            boxes = np.concatenate([boxes for _, _, (boxes, _) in batch])
            features = box_features(baseline, maps, sizes,
                                    np.repeat(np.arange(len(batch)), counts), boxes,
                                    run.device)
            scratch.write(np.ascontiguousarray(features, dtype=np.float32).tobytes())
            for timestamp, _, (keyframe_boxes, scores) in batch:
                parts.append(pd.DataFrame({
                    "video_id": run.source.video_id, "timestamp": timestamp,
                    **dict(zip(BOX_COLUMNS, keyframe_boxes.T)), "score": scores,
                    "split": "val", "source": "proposal"}))
        if not parts:
            raise InputError(f"video '{run.source.video_id}' has no person box in the "
                             "seconds the feature bank covers", path=run.source.path)
        table = pd.concat(parts, ignore_index=True)
        features = np.memmap(scratch, dtype=np.float32, mode="r",
                             shape=(len(table), baseline.feature_channels))
        storage = BankStorage(dim=baseline.feature_channels, dtype=recipe.dtype)
        writer = BankWriter(path, table, storage,
                            provenance={"video": str(run.source.path),
                                        "baseline_sha256": recipe.baseline_sha256})
        # rows in time order already: the layout keeps them where they were written
        assert (writer.index["timestamp"].to_numpy() == table["timestamp"].to_numpy()).all()
        fill_bank(writer, lambda shard: np.asarray(features[shard["row"].to_numpy()]),
                  progress=False)
        writer.finalize()
    return FeatureBank(path)
