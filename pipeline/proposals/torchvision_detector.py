"""Person proposals from a torchvision Faster R-CNN (COCO) run on the stored keyframe frames.

Weights come only from a local file (a torchvision COCO state dict, e.g.
``fasterrcnn_resnet50_fpn_coco-258fb6c6.pth``); nothing is downloaded at run time, so the stage
is reproducible offline and the weights file is a declared DVC dependency.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torchvision.models import detection
from tqdm import tqdm

from pipeline.boxes import KEYFRAME_KEY
from pipeline.devices import resolve_device
from pipeline.errors import InputError
from pipeline.proposals.architectures import ARCHITECTURES
from pipeline.frames.store import FrameStore
from pipeline.io import write_parquet, write_text
from pipeline.proposals.table import PROPOSAL_SCHEMA, make_proposals, sort_proposals

COCO_NUM_CLASSES = 91   # torchvision's COCO label space, background included
COCO_PERSON = 1


def load_person_detector(weights_path: str | Path, arch: str = "fasterrcnn_resnet50_fpn", *,
                         score_thr: float = 0.5) -> nn.Module:
    """Build ``arch`` without any download and load its COCO weights from ``weights_path``."""
    if arch not in ARCHITECTURES:
        raise InputError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}",
                         key="proposals.detector.arch")
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise InputError("detector weights file not found (weights are never downloaded; "
                         "put a torchvision COCO state dict there)", path=weights_path)
    build = getattr(detection, arch)
    model = build(weights=None, weights_backbone=None, num_classes=COCO_NUM_CLASSES,
                  box_score_thresh=score_thr)
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, OSError) as err:
        raise InputError(f"not a state dict of {arch} with {COCO_NUM_CLASSES} COCO classes: "
                         f"{str(err)[:500]}", path=weights_path) from err
    return model.eval()


def _rows_to_run(store: FrameStore, keyframes: pd.DataFrame | None) -> pd.DataFrame:
    index = store.index.loc[:, [*KEYFRAME_KEY, "frame", "height", "width"]]
    if keyframes is None:
        return index
    wanted = keyframes.loc[:, KEYFRAME_KEY].astype(
        {"video_id": "str", "timestamp": np.int32}).drop_duplicates()
    rows = wanted.merge(index, on=KEYFRAME_KEY, how="left", indicator=True)
    missing = rows[rows["_merge"] == "left_only"]
    if len(missing):
        first = missing.iloc[0]
        raise InputError(f"keyframe ({first['video_id']}, {first['timestamp']}) is not in the "
                         f"frame store ({len(missing)} missing)", path=store.path)
    return rows.drop(columns="_merge").sort_values(KEYFRAME_KEY, kind="stable")


@torch.inference_mode()
def _detect_video(model: nn.Module, store: FrameStore, video_id: str, rows: pd.DataFrame,
                  device: torch.device, batch_size: int, bar: tqdm) -> pd.DataFrame:
    parts = []
    for start in range(0, len(rows), batch_size):
        batch = rows.iloc[start:start + batch_size]
        images = torch.from_numpy(store.video(video_id).frames(batch["frame"].to_numpy()))
        images = images.to(device).permute(0, 3, 1, 2).float().div_(255.0)
        outputs = model(list(images))
        height, width = images.shape[2], images.shape[3]
        scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=device)
        for timestamp, output in zip(batch["timestamp"], outputs):
            person = output["labels"] == COCO_PERSON
            boxes = (output["boxes"][person] / scale).clamp_(0.0, 1.0).cpu().numpy()
            keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            scores = output["scores"][person].cpu().numpy()
            parts.append(make_proposals(video_id, timestamp, boxes[keep], scores[keep]))
        bar.update(len(batch))
    return sort_proposals(pd.concat(parts, ignore_index=True))


def detect_persons(store: FrameStore, *, weights_path: str | Path,
                   arch: str = "fasterrcnn_resnet50_fpn", score_thr: float = 0.5,
                   batch_size: int = 8, device: str = "auto",
                   keyframes: pd.DataFrame | None = None, checkpoint_dir: str | Path | None = None,
                   progress: bool = True) -> pd.DataFrame:
    """Person boxes (normalised, score >= ``score_thr``) on the keyframe frame of each clip.

    ``keyframes`` (video_id, timestamp) restricts the run to those keyframes (default: all of
    the store). With ``checkpoint_dir`` every finished video is saved there, and a rerun with
    the same settings loads those videos instead of running the detector on them again.
    """
    if batch_size < 1:
        raise InputError(f"must be >= 1, got {batch_size}", key="proposals.detector.batch_size")
    torch_device = resolve_device(device, key="proposals.detector.device")
    model = load_person_detector(weights_path, arch, score_thr=score_thr).to(torch_device)
    rows = _rows_to_run(store, keyframes)
    settings = json.dumps({"weights": str(Path(weights_path).resolve()),
                           "weights_bytes": Path(weights_path).stat().st_size, "arch": arch,
                           "score_thr": score_thr, "store": str(store.path.resolve())},
                          sort_keys=True)
    done_dir = None
    if checkpoint_dir is not None:
        done_dir = Path(checkpoint_dir)
        settings_file = done_dir / "settings.json"
        if not settings_file.is_file() or settings_file.read_text() != settings:
            for stale in done_dir.glob("*.parquet"):
                stale.unlink()
            write_text(settings_file, settings)

    parts = []
    with tqdm(total=len(rows), unit="keyframe", desc="detect persons",
              disable=not progress) as bar:
        for video_id, video_rows in rows.groupby("video_id", sort=True):
            part_file = None if done_dir is None else done_dir / f"{video_id}.parquet"
            if part_file is not None and part_file.is_file():
                parts.append(pd.read_parquet(part_file))
                bar.update(len(video_rows))
                continue
            part = _detect_video(model, store, video_id, video_rows, torch_device, batch_size, bar)
            if part_file is not None:
                write_parquet(part_file, part, schema=PROPOSAL_SCHEMA)
            parts.append(part)
    if not parts:
        return make_proposals([], [], np.zeros((0, 4)), [])
    return sort_proposals(pd.concat(parts, ignore_index=True))
