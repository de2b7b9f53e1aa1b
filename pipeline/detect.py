"""``stad detect``: run a trained detector over any video file (mmaction2's spatio-temporal demo).

For every keyframe (``rate`` per second, the first at frame 0) the model reads the same clip
the frame store it was trained on would hold for it (``config.clip_len`` frames
``config.frame_interval`` apart, the keyframe at ``clip_len // 2``, indices clamped at the
video's ends), on the same clock: the checkpoint's frame timeline (AVA's 30 fps: frame ``k`` is
the source frame shown at ``k / 30`` s, whatever the video's rate; or the video's own frames)
and keyframe convention (``pyslowfast``: second ``t`` is frame ``round(fps * (t -
timestamp_start))``; ``mmaction2``: one frame later). Checkpoints that record neither (older
files, converted Kinetics recognizers) read the video's own frames, ``pyslowfast``. The clip is
resized and normalised by the training code's own test-time functions, and scores the person
boxes given for that keyframe. Outputs in ``out_dir``:

- ``detections.csv``: AVA result rows (``video_id`` = the file stem, ``timestamp`` = whole
  seconds, ``timestamp_start`` + seconds from the video's start; normalised boxes), every class
  scoring > ``MIN_ACTION_SCORE`` as the training stage writes them for evaluation;
- ``detections.parquet``: the same rows (float32, the precision the model produced);
- ``annotated.mp4``: the whole video on the model's timeline (at its own frame rate, or the
  timeline's: 30 fps for AVA models), each keyframe's detections held from
  its frame until the next keyframe's, every person box drawn with its ``top_k`` actions scoring
  >= ``score_threshold``; videos with a short side under ``ANNOTATED_MIN_SHORT_SIDE`` are
  enlarged by a whole factor (nearest neighbour) so the labels stay legible.

Person boxes come from exactly one source: a proposals file (an mmaction2/AVA pickle keyed
``"video_id,timestamp"`` or the pipeline's proposals Parquet), filtered with mmaction2's rule as
training and evaluation filter the same file (score >= ``min(person_threshold, best score of
the keyframe)``, so each keyframe keeps its best box); or a torchvision Faster R-CNN run on the
keyframe's frame, keeping persons scoring >= ``person_threshold`` (mmaction2's demo rule: no
fallback, a frame without a confident person has no detections). A keyframe without boxes
has no detections (training and evaluation would score the whole frame instead).

Timestamps stay whole seconds because the AVA result format (and every reader of it here)
stores integers, so ``rate`` must be 1/N keyframes per second (1, 0.5, ...).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from pipeline.ava.clock import CONVENTIONS, clip_frame_indices, keyframe_frame_index
from pipeline.ava.label_map import read_label_map
from pipeline.ava.proposals import read_proposal_pickle
from pipeline.ava.results import write_results_csv, write_results_parquet
from pipeline.data.collate import boxes_to_rois
from pipeline.data.dataset import filter_proposals
from pipeline.data.transforms import ClipSample, eval_transform, normalize_clips
from pipeline.detect_command import DEFAULT_SHORT_SIDE, MIN_ACTION_SCORE
from pipeline.engine.detection import detections_table
from pipeline.engine.distributed import resolve_device
from pipeline.errors import InputError
from pipeline.frames.video import VideoSource, open_video
from pipeline.io import atomic_output
from pipeline.models.checkpoint import build_detector_from_checkpoint, read_stad_checkpoint
from pipeline.proposals.table import read_proposals
from pipeline.viz import LabelledBox

MAX_PROPOSALS = 1000            # per keyframe, mmaction2's num_max_proposals
ANNOTATED_MIN_SHORT_SIDE = 240
BOX_COLOR = (255, 220, 0)
DECODE_CHUNK = 32               # frames decoded at once while writing the annotated video


@dataclass(frozen=True)
class DetectResult:
    csv: Path
    parquet: Path
    video: Path
    keyframes: int
    rows: int


def keyframe_period(rate: float) -> int:
    """Whole seconds between keyframes for ``rate`` keyframes per second (must be 1/N)."""
    if not rate > 0:
        raise InputError(f"must be > 0, got {rate!r}", key="--rate")
    period = round(1.0 / rate)
    if period < 1 or abs(period - 1.0 / rate) > 1e-3 * period:
        raise InputError(f"must be 1/N keyframes per second (1, 0.5, 0.25, ...), got {rate!r}: "
                         "AVA results hold whole-second timestamps", key="--rate")
    return period


def load_file_proposals(path: str | Path, video_id: str, timestamps: list[int], *,
                        person_threshold: float) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Normalised boxes [n, 4] and scores [n] per keyframe timestamp of ``video_id``, from a
    proposal pickle or a proposals Parquet table (by suffix); a file without this video, or
    without any of these keyframes, is an error naming the file."""
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
    kept = filter_proposals(wanted, min_score=person_threshold, max_per_keyframe=MAX_PROPOSALS)
    return {int(t): (group[["x1", "y1", "x2", "y2"]].to_numpy(np.float32),
                     group["score"].to_numpy(np.float32))
            for t, group in kept.groupby("timestamp", sort=True)}


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


def detect_video(video: str | Path, *, checkpoint: str | Path, out_dir: str | Path,
                 proposals: str | Path | None = None, detector_weights: str | Path | None = None,
                 detector_arch: str = "fasterrcnn_resnet50_fpn",
                 label_map: str | Path | None = None, rate: float = 1.0, top_k: int = 3,
                 score_threshold: float = 0.3, person_threshold: float = 0.9,
                 short_side: int | None = None, device: str = "auto", timestamp_start: int = 0,
                 convention: str | None = None, timeline_fps: int | None = None,
                 native_timeline: bool = False, progress: bool = True) -> DetectResult:
    """Detect actions in ``video`` with a stad-v1 checkpoint; see the module doc for outputs.
    ``convention``, ``timeline_fps`` or ``native_timeline`` override the clock the checkpoint
    records (for checkpoints trained elsewhere)."""
    if (proposals is None) == (detector_weights is None):
        raise InputError("give exactly one source of person boxes, --proposals FILE or "
                         "--detector-weights PATH (got "
                         f"{'both' if proposals is not None else 'neither'})")
    period = keyframe_period(rate)
    if top_k < 1:
        raise InputError(f"must be >= 1, got {top_k}", key="--top-k")
    for name, value in (("score_threshold", score_threshold),
                        ("person_threshold", person_threshold)):
        if not 0.0 <= value <= 1.0:
            raise InputError(f"must be in [0, 1], got {value}",
                             key="--" + name.replace("_", "-"))
    if timestamp_start < 0:
        raise InputError(f"must be >= 0, got {timestamp_start}", key="--timestamp-start")
    if short_side is not None and short_side < 1:
        raise InputError(f"must be a positive integer, got {short_side}", key="--short-side")
    if convention is not None and convention not in CONVENTIONS:
        raise InputError(f"must be one of {CONVENTIONS}, got {convention!r}", key="--convention")
    if timeline_fps is not None and (timeline_fps < 1 or native_timeline):
        raise InputError(f"must be a positive integer and not given with --native-timeline, "
                         f"got {timeline_fps}", key="--timeline-fps")
    try:
        torch_device = resolve_device(device)
    except RuntimeError as error:
        raise InputError(str(error), key="--device") from None
    video = Path(video)
    stad = read_stad_checkpoint(checkpoint)
    convention = convention or stad.frame_convention or "pyslowfast"
    if not native_timeline:
        timeline_fps = timeline_fps or stad.timeline_fps
    source = open_video(video.stem, video, lambda width, height: (width, height), timeline_fps)

    model = build_detector_from_checkpoint(checkpoint, stad)
    config = model.config
    if config.uses_bank:
        raise InputError(f"shared_head {config.shared_head!r} reads a long-term feature bank "
                         "built over a whole dataset (stage infer_lfb); it cannot run on a lone "
                         "video: use the baseline checkpoint or a linear/mlp/acrn head",
                         path=checkpoint, key="shared_head")
    model.eval().to(torch_device)
    if short_side is None:
        short_side = stad.test_short_side or DEFAULT_SHORT_SIDE
    action_ids, names = _classes(label_map, config.num_classes, stad.labels)
    columns = torch.tensor(action_ids, dtype=torch.long, device=torch_device)

    def frame_of(timestamp: int) -> int:
        return keyframe_frame_index(timestamp, fps=source.fps, timestamp_start=timestamp_start,
                                    convention=convention)

    timestamps = [timestamp_start]
    while frame_of(timestamps[-1] + period) < source.num_frames:
        timestamps.append(timestamps[-1] + period)
    if proposals is not None:
        given = load_file_proposals(proposals, source.video_id, timestamps,
                                    person_threshold=person_threshold)
        detector = None
    else:
        given = {}
        detector = PersonDetector(detector_weights, detector_arch, person_threshold, torch_device)

    transform = eval_transform(short_side=short_side)
    predictions = []
    for timestamp in tqdm(timestamps, desc="detect", unit="keyframe", disable=not progress):
        indices = clip_frame_indices(timestamp, fps=source.fps, timestamp_start=timestamp_start,
                                     clip_len=config.clip_len,
                                     frame_interval=config.frame_interval,
                                     convention=convention, num_frames=source.num_frames)
        clip = source.get_frames(indices)
        if detector is not None:
            boxes, person_scores = detector(clip[config.clip_len // 2])
        else:
            boxes, person_scores = given.get(timestamp, (np.zeros((0, 4), np.float32),
                                                         np.zeros(0, np.float32)))
        scores = _score(model, transform, clip, boxes, person_scores, columns, torch_device)
        predictions.append({"video_id": source.video_id, "timestamp": timestamp,
                            "boxes": boxes, "scores": scores})

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = detections_table(predictions, action_ids, min_score=MIN_ACTION_SCORE)
    result = DetectResult(csv=out_dir / "detections.csv", parquet=out_dir / "detections.parquet",
                          video=out_dir / "annotated.mp4", keyframes=len(timestamps),
                          rows=len(table))
    write_results_csv(result.csv, table)
    write_results_parquet(result.parquet, table)
    captions = [_captions(p, action_ids, names, top_k, score_threshold) for p in predictions]
    starts = [frame_of(t) for t in timestamps]
    write_annotated_video(result.video, source, starts, captions, progress=progress)
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


@torch.inference_mode()
def _score(model, transform, clip: np.ndarray, boxes: np.ndarray, person_scores: np.ndarray,
           columns: torch.Tensor, device: torch.device) -> np.ndarray:
    """Action scores [n, K] of normalised ``boxes`` on one clip, through the training code's
    test-time resize and normalisation."""
    if len(boxes) == 0:
        return np.zeros((0, len(columns)), np.float32)
    frames = torch.from_numpy(np.ascontiguousarray(clip))
    height, width = frames.shape[1], frames.shape[2]
    pixels = torch.tensor(boxes, dtype=torch.float32) * torch.tensor([width, height, width, height],
                                                    dtype=torch.float32)
    sample = ClipSample(clip=frames, gt_boxes=torch.zeros((0, 4)),
                        gt_labels=torch.zeros((0, 1), dtype=torch.uint8), proposals=pixels,
                        proposal_scores=torch.tensor(person_scores))
    sample = transform(sample, np.random.default_rng(0))
    clips = normalize_clips(sample.clip[None].to(device))
    scores = model.predict(clips, boxes_to_rois([sample.proposals]).to(device))
    return scores.float()[:, columns].cpu().numpy()


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


def write_annotated_video(path: Path, source: VideoSource, starts: list[int],
                          boxes: list[list[LabelledBox]], *, progress: bool = True) -> None:
    """Every frame of ``source`` with the boxes of the last keyframe at or before it (keyframe
    ``k`` starts at frame ``starts[k]``), H.264 at the source's frame rate, written atomically."""
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
            for start in range(0, source.num_frames, DECODE_CHUNK):
                indices = np.arange(start, min(start + DECODE_CHUNK, source.num_frames))
                for index, frame in zip(indices, source.get_frames(indices)):
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
        native_timeline=args.native_timeline)
    print(f"{result.keyframes} keyframes, {result.rows} detections: wrote {result.csv}, "
          f"{result.parquet}, {result.video}")
    return 0
