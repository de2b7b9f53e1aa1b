"""``stad detect``: run a trained detector over any video file (mmaction2's spatio-temporal demo).

Frames are read as the model's frame store read them: the same decoder, resize at decode time
(the checkpoint's ``frame_short_side``), timeline (AVA's 30 fps: frame ``k`` is the source frame
shown at ``k / 30`` s, whatever the video's rate; or the video's own frames) and keyframe
convention (``pyslowfast``: second ``t`` is frame ``round(fps * (t - timestamp_start))``;
``mmaction2``: one frame later). For every keyframe (``rate`` per second, whole seconds from
``start`` to ``end``) the model reads the clip the store would hold (``config.clip_len``
frames ``config.frame_interval`` apart, the keyframe at ``clip_len // 2``, indices clamped at
the video's ends), rescaled to the test short side by the training code's own transform, and
scores the person boxes given for it, keyframes batched, through the same function
``evaluate`` runs (``pipeline.engine.maps.score_clips``). The frames are decoded once, in
order, holding only a few clips (``VideoSource.iter_clips``): memory does not grow with the
video. Checkpoints that record no clock or size (older files, converted zoo checkpoints) read
the video's own frames at the source size, ``pyslowfast``.

Feature-bank heads (``lfb_*``) first build the video's own bank, as ``infer_lfb`` builds a val
video's rows: the baseline the head's checkpoint records (``BankRecipe``) runs over every
second within the window's reach of the scored keyframes, its proposals filtered by the bank's
own rule (``pipeline.lfb.layout.proposal_rows``), features stored in the bank's dtype by the
bank writer; the head then reads its windows from it as ``evaluate`` does. A converted zoo
head records no baseline: ``bank_baseline`` names one (mmaction2's bank-inference model,
converted), with mmaction2's bank rules.

Outputs in ``out_dir``:

- ``detections.csv``: AVA result rows (``video_id`` = the file stem, ``timestamp`` = whole
  seconds, ``timestamp_start`` + seconds from the video's start; normalised boxes), every class
  scoring > ``MIN_ACTION_SCORE`` as the training stage writes them for evaluation;
- ``detections.parquet``: the same rows (float32, the precision the model produced);
- ``annotated.mp4`` (unless ``write_video`` is off): every frame of the video at its own size
  (enlarged by a whole factor, nearest neighbour, when its short side is under
  ``ANNOTATED_MIN_SHORT_SIDE``), frame rate and frame count, each keyframe's detections held
  from its frame for one keyframe period, every person box drawn with its ``top_k`` actions
  scoring >= ``score_threshold``;
- ``bank/`` (feature-bank heads): the video's feature bank (``pipeline.lfb`` format).

Person boxes come from exactly one source: a proposals file (an mmaction2/AVA pickle keyed
``"video_id,timestamp"`` or the pipeline's proposals Parquet), filtered with mmaction2's rule as
training and evaluation filter the same file (score >= ``min(person_threshold, best score of
the keyframe)``, so each keyframe keeps its best box); or a torchvision Faster R-CNN run on
the keyframe's frame (as the store holds it, like the DAG's detector proposals), keeping persons
scoring >= ``person_threshold`` (mmaction2's demo rule: no fallback, a frame without a confident
person has no detections). A keyframe without boxes has no detections (training and
evaluation would score the whole frame instead; every other keyframe scores as there).

Timestamps stay whole seconds because the AVA result format (and every reader of it here)
stores integers, so ``rate`` must be 1/N keyframes per second (1, 0.5, ...).
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from pipeline.ava.clock import CONVENTIONS, clip_frame_indices, keyframe_frame_index
from pipeline.ava.label_map import read_label_map
from pipeline.ava.proposals import read_proposal_pickle
from pipeline.ava.results import write_results_csv, write_results_parquet
from pipeline.proposals.table import filter_proposals
from pipeline.data.transforms import ClipSample, eval_transform
from pipeline.detect_command import DEFAULT_SHORT_SIDE
from pipeline.evaluation.protocols import MIN_ACTION_SCORE
from pipeline.engine.detection import detections_table
from pipeline.devices import resolve_device
from pipeline.boxes import BOX_COLUMNS
from pipeline.errors import InputError
from pipeline.frames.spec import decoded_size
from pipeline.frames.video import VideoSource, open_video
from pipeline.lfb.layout import proposal_rows
from pipeline.engine.maps import box_features, pooled_maps, score_clips
from pipeline.io import atomic_output
from pipeline.lfb.reader import FeatureBank, num_slots
from pipeline.lfb.window import BankWindow
from pipeline.lfb.writer import BankStorage, BankWriter, fill_bank
from pipeline.models.checkpoint import (BankRecipe, StadCheckpoint,
                                        build_detector_from_checkpoint, read_stad_checkpoint)
from pipeline.models.config import ModelConfig
from pipeline.models.detector import Detector
from pipeline.proposals.table import read_proposals
from pipeline.viz import LabelledBox

MAX_PROPOSALS = 1000            # per keyframe, mmaction2's num_max_proposals
ANNOTATED_MIN_SHORT_SIDE = 240
BOX_COLOR = (255, 220, 0)
# mmaction2's bank rules, for a converted zoo head given --bank-baseline (its LFB configs)
ZOO_BANK = {"dtype": "float16", "min_proposal_score": 0.9, "max_proposals": 1000}
ZOO_WINDOW = (30, 5)
NO_BOXES = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

Boxes = tuple[np.ndarray, np.ndarray]          # normalised [n, 4] float32, scores [n]
BoxesOf = Callable[[int, np.ndarray], Boxes]   # (timestamp, decoded clip) -> a keyframe's boxes


@dataclass(frozen=True)
class DetectResult:
    csv: Path
    parquet: Path
    video: Path | None
    keyframes: int
    rows: int
    bank: Path | None = None


def keyframe_period(rate: float) -> int:
    """Whole seconds between keyframes for ``rate`` keyframes per second (must be 1/N)."""
    if not rate > 0:
        raise InputError(f"must be > 0, got {rate!r}", key="--rate")
    period = round(1.0 / rate)
    if period < 1 or abs(period - 1.0 / rate) > 1e-3 * period:
        raise InputError(f"must be 1/N keyframes per second (1, 0.5, 0.25, ...), got {rate!r}: "
                         "AVA results hold whole-second timestamps", key="--rate")
    return period


def read_video_proposals(path: str | Path, video_id: str, timestamps: list[int]
                         ) -> pd.DataFrame:
    """The rows (video_id, timestamp, x1..y2, score, normalised) of ``video_id`` at
    ``timestamps`` in a proposal pickle or a proposals Parquet table (by suffix); a file
    without this video, or without any of these keyframes, is an error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError("proposals file not found", path=path)
    table = read_proposals(path) if path.suffix == ".parquet" else read_proposal_pickle(path)
    table = table.assign(video_id=table["video_id"].astype(str),
                         timestamp=table["timestamp"].astype(np.int64))
    mine = table[table["video_id"] == video_id]
    if mine.empty:
        others = sorted(table["video_id"].unique())[:3]
        raise InputError(f"no proposals for video '{video_id}' (the video's file stem); the file "
                         f"has {table['video_id'].nunique()} other videos, e.g. {others}",
                         path=path)
    wanted = mine[mine["timestamp"].isin(timestamps)]
    if wanted.empty:
        raise InputError(f"proposals for video '{video_id}' are at timestamps "
                         f"{mine['timestamp'].min()}..{mine['timestamp'].max()}, none at this "
                         f"video's keyframes {timestamps[0]}..{timestamps[-1]} (seconds from "
                         "the start plus --timestamp-start)", path=path)
    return wanted.reset_index(drop=True)


def per_keyframe(table: pd.DataFrame) -> dict[int, Boxes]:
    """Normalised boxes and scores per timestamp, in the table's order."""
    return {int(t): (group[BOX_COLUMNS].to_numpy(np.float32),
                     group["score"].to_numpy(np.float32))
            for t, group in table.groupby("timestamp", sort=True)}


class PersonDetector:
    """A torchvision Faster R-CNN on the keyframe's frame: person boxes >= the threshold."""

    def __init__(self, weights: str | Path, arch: str, threshold: float, device: torch.device):
        from pipeline.proposals.torchvision_detector import load_person_detector

        self.model = load_person_detector(weights, arch, score_thr=threshold).to(device)
        self.threshold = threshold
        self.device = device

    @torch.inference_mode()
    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from pipeline.proposals.torchvision_detector import COCO_PERSON

        height, width = frame.shape[:2]
        image = torch.from_numpy(frame).to(self.device).permute(2, 0, 1).float().div_(255.0)
        output = self.model([image])[0]
        keep = (output["labels"] == COCO_PERSON) & (output["scores"] >= self.threshold)
        scale = torch.tensor([width, height, width, height], dtype=torch.float32,
                             device=self.device)
        boxes = (output["boxes"][keep] / scale).clamp_(0.0, 1.0).cpu().numpy()
        scores = output["scores"][keep].cpu().numpy()
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return boxes[valid].astype(np.float32), scores[valid].astype(np.float32)


def bank_recipe_of(stad: StadCheckpoint, checkpoint: Path, bank_baseline: str | Path | None,
                   short_side: int, window: tuple[int, int] | None) -> BankRecipe:
    """How to build the head's bank: as its checkpoint records, or for a head trained elsewhere
    (a converted zoo LFB head) with ``bank_baseline``'s backbone, mmaction2's rules and
    ``window`` (seconds, boxes per second; mmaction2's 30 x 5 by default)."""
    config = stad.config
    if bank_baseline is None:
        if stad.bank is None:
            raise InputError(f"shared_head {config.shared_head!r} reads a long-term feature bank "
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
    for field in ("backbone", "depth", "base_channels", "clip_len", "frame_interval"):
        if getattr(recipe.baseline_config, field) != getattr(head.config, field):
            raise InputError(f"the bank's baseline has {field}="
                             f"{getattr(recipe.baseline_config, field)!r}, the head "
                             f"{getattr(head.config, field)!r}", key=field)
    with torch.device("meta"):
        model = Detector(recipe.baseline_config)
    model.roi_head.to_empty(device="cpu")
    state = head.backbone.state_dict() if recipe.baseline_backbone is None \
        else recipe.baseline_backbone
    model.backbone.load_state_dict(state, strict=True, assign=True)
    return model.eval()


class VideoDetection:
    """One video on one model's clock: its keyframes, their clips, batches through models."""

    def __init__(self, source: VideoSource, config: ModelConfig, *, timestamp_start: int,
                 convention: str, batch_size: int, device: torch.device, progress: bool):
        self.source, self.config = source, config
        self.timestamp_start, self.convention = timestamp_start, convention
        self.batch_size, self.device, self.progress = batch_size, device, progress

    def frame_of(self, timestamp):
        """The timeline frame of a keyframe (scalars or arrays)."""
        return keyframe_frame_index(timestamp, fps=self.source.fps,
                                    timestamp_start=self.timestamp_start,
                                    convention=self.convention)

    def last_second(self) -> int:
        """The last whole second (from the video's start) whose keyframe is in the video."""
        last = int(self.source.num_frames / self.source.fps) + 1
        while last > 0 and self.frame_of(self.timestamp_start + last) >= self.source.num_frames:
            last -= 1
        return last

    def clips(self, timestamps: list[int]) -> np.ndarray:
        """``[K, clip_len]`` timeline frames of the keyframes' clips (clamped at the ends)."""
        clips = clip_frame_indices(np.asarray(timestamps, dtype=np.int64), fps=self.source.fps,
                                   timestamp_start=self.timestamp_start,
                                   clip_len=self.config.clip_len,
                                   frame_interval=self.config.frame_interval,
                                   convention=self.convention, num_frames=self.source.num_frames)
        return clips.reshape(len(timestamps), self.config.clip_len)

    def batches(self, timestamps: list[int], boxes_of: BoxesOf, short_side: int, desc: str
                ) -> Iterator[list[tuple[int, ClipSample, Boxes]]]:
        """The keyframes with boxes, ``batch_size`` at a time: (timestamp, test-time sample,
        normalised boxes and scores). Clips are decoded in one ordered pass."""
        transform = eval_transform(short_side=short_side)
        batch: list[tuple[int, ClipSample, Boxes]] = []
        decoded = self.source.iter_clips(self.clips(timestamps))
        for timestamp, clip in tqdm(zip(timestamps, decoded), desc=desc, total=len(timestamps),
                                    unit="keyframe", disable=not self.progress):
            boxes, scores = boxes_of(timestamp, clip)
            if len(boxes) == 0:
                continue
            frames = torch.from_numpy(clip)
            height, width = frames.shape[1], frames.shape[2]
            scale = torch.tensor([width, height, width, height], dtype=torch.float32)
            sample = transform(ClipSample(
                clip=frames, gt_boxes=torch.zeros((0, 4)),
                gt_labels=torch.zeros((0, 1), dtype=torch.uint8),
                proposals=torch.from_numpy(np.array(boxes)) * scale,
                proposal_scores=torch.from_numpy(scores)), np.random.default_rng(0))
            batch.append((timestamp, sample, (boxes, scores)))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    @torch.inference_mode()
    def build_bank(self, path: Path, baseline: Detector, recipe: BankRecipe,
                   timestamps: list[int], boxes_of: BoxesOf) -> FeatureBank:
        """The video's bank at ``path``: the baseline's features of ``boxes_of``'s boxes at
        ``timestamps``, in the bank's dtype, written by the bank writer (shard by shard from
        a scratch file, so memory does not grow with the video)."""
        parts: list[pd.DataFrame] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent) as scratch:
            for batch in self.batches(timestamps, boxes_of, recipe.short_side, "bank"):
                clips = torch.stack([sample.clip for _, sample, _ in batch])
                maps = pooled_maps(baseline, clips.to(self.device)).float().cpu()
                sizes = torch.tensor([[s.height, s.width] for _, s, _ in batch])
                counts = [len(boxes) for _, _, (boxes, _) in batch]
                boxes = np.concatenate([boxes for _, _, (boxes, _) in batch])
                features = box_features(baseline, maps, sizes,
                                        np.repeat(np.arange(len(batch)), counts), boxes,
                                        self.device)
                scratch.write(np.ascontiguousarray(features, dtype=np.float32).tobytes())
                for timestamp, _, (keyframe_boxes, scores) in batch:
                    parts.append(pd.DataFrame({
                        "video_id": self.source.video_id, "timestamp": timestamp,
                        **dict(zip(BOX_COLUMNS, keyframe_boxes.T)), "score": scores,
                        "split": "val", "source": "proposal"}))
            if not parts:
                raise InputError(f"video '{self.source.video_id}' has no person box in the "
                                 "seconds the feature bank covers", path=self.source.path)
            table = pd.concat(parts, ignore_index=True)
            features = np.memmap(scratch, dtype=np.float32, mode="r",
                                 shape=(len(table), baseline.feature_channels))
            storage = BankStorage(dim=baseline.feature_channels, dtype=recipe.dtype)
            writer = BankWriter(path, table, storage,
                                provenance={"video": str(self.source.path),
                                            "baseline_sha256": recipe.baseline_sha256})
            # rows in time order already: the layout keeps them where they were written
            assert (writer.index["timestamp"].to_numpy() == table["timestamp"].to_numpy()).all()
            fill_bank(writer, lambda shard: np.asarray(features[shard["row"].to_numpy()]),
                      progress=False)
            writer.finalize()
        return FeatureBank(path)


def detect_video(video: str | Path, *, checkpoint: str | Path, out_dir: str | Path,
                 proposals: str | Path | None = None, detector_weights: str | Path | None = None,
                 detector_arch: str = "fasterrcnn_resnet50_fpn",
                 label_map: str | Path | None = None, rate: float = 1.0, top_k: int = 3,
                 score_threshold: float = 0.3, person_threshold: float = 0.9,
                 short_side: int | None = None, device: str = "auto", timestamp_start: int = 0,
                 convention: str | None = None, timeline_fps: int | None = None,
                 native_timeline: bool = False, start: int = 0, end: int | None = None,
                 batch_size: int = 8, bank_baseline: str | Path | None = None,
                 bank_window: tuple[int, int] | None = None, write_video: bool = True,
                 progress: bool = True) -> DetectResult:
    """Detect actions in ``video`` with a stad-v1 checkpoint; see the module doc for outputs.
    ``start``/``end``: the first and last second (from the video's first frame) scored.
    ``convention``, ``timeline_fps`` or ``native_timeline`` override the clock the checkpoint
    records (for checkpoints trained elsewhere)."""
    if (proposals is None) == (detector_weights is None):
        raise InputError("give exactly one source of person boxes, --proposals FILE or "
                         "--detector-weights PATH (got "
                         f"{'both' if proposals is not None else 'neither'})")
    period = keyframe_period(rate)
    for name, value in (("--top-k", top_k), ("--batch-size", batch_size)):
        if value < 1:
            raise InputError(f"must be >= 1, got {value}", key=name)
    for name, value in (("score_threshold", score_threshold),
                        ("person_threshold", person_threshold)):
        if not 0.0 <= value <= 1.0:
            raise InputError(f"must be in [0, 1], got {value}",
                             key="--" + name.replace("_", "-"))
    if timestamp_start < 0:
        raise InputError(f"must be >= 0, got {timestamp_start}", key="--timestamp-start")
    if start < 0 or (end is not None and end < start):
        raise InputError(f"need 0 <= --start <= --end, got {start} and {end}", key="--start")
    if short_side is not None and short_side < 1:
        raise InputError(f"must be a positive integer, got {short_side}", key="--short-side")
    if convention is not None and convention not in CONVENTIONS:
        raise InputError(f"must be one of {CONVENTIONS}, got {convention!r}", key="--convention")
    if timeline_fps is not None and (timeline_fps < 1 or native_timeline):
        raise InputError(f"must be a positive integer and not given with --native-timeline, "
                         f"got {timeline_fps}", key="--timeline-fps")
    try:
        torch_device = resolve_device(device, key="--device")
    except RuntimeError as error:
        raise InputError(str(error), key="--device") from None
    video, checkpoint = Path(video), Path(checkpoint)
    stad = read_stad_checkpoint(checkpoint)
    convention = convention or stad.frame_convention or "pyslowfast"
    if not native_timeline:
        timeline_fps = timeline_fps or stad.timeline_fps
    if short_side is None:
        short_side = stad.test_short_side or DEFAULT_SHORT_SIDE
    model = build_detector_from_checkpoint(checkpoint, stad)
    config = model.config
    recipe = baseline = None
    if config.uses_bank:
        recipe = bank_recipe_of(stad, checkpoint, bank_baseline, short_side, bank_window)
        baseline = bank_model(recipe, model).to(torch_device)
    model.eval().to(torch_device)
    action_ids, names = _classes(label_map, config.num_classes, stad.labels)
    columns = torch.tensor(action_ids, dtype=torch.long, device=torch_device)

    # the frame store's decoder and decode-time resize, on its timeline
    source = open_video(video.stem, video,
                        lambda width, height: decoded_size(width, height, stad.frame_short_side),
                        timeline_fps)
    run = VideoDetection(source, config, timestamp_start=timestamp_start, convention=convention,
                         batch_size=batch_size, device=torch_device, progress=progress)
    last = run.last_second()
    if start > last:
        raise InputError(f"the video's last keyframe is at second {last}", key="--start")
    scored = list(range(timestamp_start + start, timestamp_start + (last if end is None else min(end, last)) + 1,
                        period))
    bank_seconds = scored
    if recipe is not None:   # every second within the scored windows' reach
        w = recipe.window_seconds
        bank_seconds = list(range(max(timestamp_start, scored[0] - w),
                                  min(timestamp_start + last, scored[-1] + w - 1) + 1))

    if proposals is not None:
        rows = read_video_proposals(proposals, source.video_id, sorted(set(scored + bank_seconds)))
        given = per_keyframe(filter_proposals(rows, min_score=person_threshold,
                                              max_per_keyframe=MAX_PROPOSALS))

        def boxes_of(timestamp: int, clip: np.ndarray) -> Boxes:
            return given.get(timestamp, NO_BOXES)

        if recipe is not None:
            in_bank = per_keyframe(proposal_rows(rows, min_score=recipe.min_proposal_score,
                                                 max_proposals=recipe.max_proposals))
            bank_seconds = [t for t in bank_seconds if t in in_bank]

            def bank_boxes_of(timestamp: int, clip: np.ndarray) -> Boxes:
                return in_bank[timestamp]
    else:
        person = PersonDetector(detector_weights, detector_arch, person_threshold, torch_device)
        found: dict[int, Boxes] = {}

        def boxes_of(timestamp: int, clip: np.ndarray) -> Boxes:
            if timestamp not in found:
                found[timestamp] = person(clip[config.clip_len // 2])
            return found[timestamp]

        def bank_boxes_of(timestamp: int, clip: np.ndarray) -> Boxes:
            boxes, scores = boxes_of(timestamp, clip)
            if len(boxes) == 0:
                return NO_BOXES
            table = pd.DataFrame({"video_id": "", "timestamp": timestamp,
                                  **dict(zip(BOX_COLUMNS, boxes.T)), "score": scores})
            kept = proposal_rows(table, min_score=recipe.min_proposal_score,
                                 max_proposals=recipe.max_proposals)
            return kept[BOX_COLUMNS].to_numpy(np.float32), kept["score"].to_numpy(np.float32)

    out_dir = Path(out_dir)
    bank = bank_path = window = None
    if recipe is not None:
        bank_path = out_dir / "bank"
        bank = run.build_bank(bank_path, baseline, recipe, bank_seconds, bank_boxes_of)
        window = BankWindow(recipe.window_seconds, recipe.max_per_second)
        del baseline

    predictions = []
    for batch in run.batches(scored, boxes_of, short_side, "detect"):
        keys = [(source.video_id, timestamp) for timestamp, _, _ in batch]
        scores = score_clips(model, torch.stack([s.clip for _, s, _ in batch]),
                             [s.proposals for _, s, _ in batch], keys, columns=columns,
                             bank=bank, window=window, device=torch_device)
        offset = 0
        for timestamp, _, (boxes, _) in batch:
            predictions.append({"video_id": source.video_id, "timestamp": timestamp,
                                "boxes": boxes, "scores": scores[offset:offset + len(boxes)]})
            offset += len(boxes)

    out_dir.mkdir(parents=True, exist_ok=True)
    table = detections_table(predictions, action_ids, min_score=MIN_ACTION_SCORE)
    result = DetectResult(csv=out_dir / "detections.csv", parquet=out_dir / "detections.parquet",
                          video=out_dir / "annotated.mp4" if write_video else None,
                          keyframes=len(scored), rows=len(table), bank=bank_path)
    write_results_csv(result.csv, table)
    write_results_parquet(result.parquet, table)
    if write_video:
        drawn = {p["timestamp"]: _captions(p, action_ids, names, top_k, score_threshold)
                 for p in predictions}
        # keyframe k is drawn from its frame for one period; frames as the source's own
        starts = run.frame_of(np.asarray(scored + [scored[-1] + period]))
        if source.source_index is not None:
            inside = starts < source.num_frames
            starts = np.where(inside, source.source_index[np.minimum(starts,
                                                                     source.num_frames - 1)],
                              source.source_frames)
        write_annotated_video(result.video, video, source.video_id, starts.tolist(),
                              [drawn.get(t, []) for t in scored] + [[]], progress=progress)
    return result


def _classes(label_map: str | Path | None, num_classes: int,
             stored: dict[int, str] | None = None) -> tuple[tuple[int, ...], dict[int, str]]:
    """Scored action ids and their names: the given label map's (as evaluation scores them),
    else the one the checkpoint records, else every model column but the unused column 0,
    named "class N"."""
    if label_map is None and stored:
        return tuple(stored), dict(stored)
    if label_map is None:
        ids = tuple(range(1, num_classes))
        return ids, {i: f"class {i}" for i in ids}
    labels = read_label_map(label_map)
    if max(labels.ids) >= num_classes:
        raise InputError(f"class id {max(labels.ids)} is beyond the checkpoint's "
                         f"{num_classes - 1} action columns: not the label map it was trained "
                         "with", path=label_map)
    return labels.ids, dict(labels.names)


def _captions(prediction: dict, action_ids: tuple[int, ...], names: dict[int, str], top_k: int,
              threshold: float) -> list[LabelledBox]:
    """One box per person with its ``top_k`` actions scoring >= ``threshold``, best first."""
    out = []
    for box, scores in zip(prediction["boxes"], prediction["scores"]):
        best = [k for k in np.argsort(-scores, kind="stable")[:top_k] if scores[k] >= threshold]
        caption = "\n".join(f"{names[action_ids[k]]} {scores[k]:.2f}" for k in best)
        out.append(LabelledBox(*map(float, box), caption, BOX_COLOR))
    return out


def annotated_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the annotated video: the source enlarged by the smallest whole factor
    that brings its short side to ``ANNOTATED_MIN_SHORT_SIDE``, rounded up to even (H.264)."""
    factor = max(1, math.ceil(ANNOTATED_MIN_SHORT_SIDE / min(width, height)))
    return width * factor + (width * factor) % 2, height * factor + (height * factor) % 2


def draw_boxes(frame: np.ndarray, boxes: list[LabelledBox], size: tuple[int, int],
               font: ImageFont.ImageFont) -> np.ndarray:
    """``frame`` resized to ``size`` (nearest) with each box and its caption on a dark band."""
    image = Image.fromarray(frame)
    if image.size != size:
        image = image.resize(size, Image.NEAREST)
    draw = ImageDraw.Draw(image)
    width, height = size
    line = max(1, round(min(size) / 160))
    for box in boxes:
        x1, y1, x2, y2 = box.x1 * width, box.y1 * height, box.x2 * width, box.y2 * height
        draw.rectangle((x1, y1, x2, y2), outline=box.color, width=line)
        if box.caption:
            left, top, right, bottom = draw.multiline_textbbox((x1 + 2 * line, y1 + 2 * line),
                                                               box.caption, font=font)
            draw.rectangle((left - line, top - line, right + line, bottom + line), fill=(0, 0, 0))
            draw.multiline_text((x1 + 2 * line, y1 + 2 * line), box.caption, fill=box.color,
                                font=font)
    return np.asarray(image)


def write_annotated_video(path: Path, video: Path, video_id: str, starts: list[int],
                          boxes: list[list[LabelledBox]], *, progress: bool = True) -> None:
    """Every frame of ``video`` at its own size (enlarged to ``annotated_size``), frame rate
    and frame count, with the boxes of the last keyframe starting at or before it (keyframe
    ``k`` starts at source frame ``starts[k]``), H.264, written atomically."""
    source = open_video(video_id, video, lambda width, height: (width, height))
    size = annotated_size(source.width, source.height)
    font = ImageFont.load_default(size=max(10, min(size) // 24))
    rate = Fraction(source.fps).limit_denominator(1001)
    starts_array = np.asarray(starts)
    with atomic_output(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        with tqdm(total=source.num_frames, desc="annotate", unit="frame",
                  disable=not progress) as bar:
            for indices, frame in source.iter_frames(np.arange(source.num_frames)):
                for index in indices:
                    k = int(np.searchsorted(starts_array, index, side="right")) - 1
                    image = draw_boxes(frame, boxes[k] if k >= 0 else [], size, font)
                    for packet in stream.encode(av.VideoFrame.from_ndarray(image,
                                                                           format="rgb24")):
                        container.mux(packet)
                bar.update(len(indices))
        for packet in stream.encode():
            container.mux(packet)


def run_detect_command(args: argparse.Namespace) -> int:
    """``stad detect``: the parser is ``pipeline.detect_command``."""
    result = detect_video(
        args.video, checkpoint=args.checkpoint, out_dir=args.out, proposals=args.proposals,
        detector_weights=args.detector_weights, detector_arch=args.detector_arch,
        label_map=args.label_map, rate=args.rate, top_k=args.top_k,
        score_threshold=args.score_threshold, person_threshold=args.person_threshold,
        short_side=args.short_side, device=args.device, timestamp_start=args.timestamp_start,
        convention=args.convention, timeline_fps=args.timeline_fps,
        native_timeline=args.native_timeline, start=args.start, end=args.end,
        batch_size=args.batch_size, bank_baseline=args.bank_baseline,
        bank_window=args.bank_window, write_video=not args.no_video)
    written = [result.csv, result.parquet, *(p for p in (result.video, result.bank) if p)]
    print(f"{result.keyframes} keyframes, {result.rows} detections: wrote "
          f"{', '.join(map(str, written))}")
    return 0
