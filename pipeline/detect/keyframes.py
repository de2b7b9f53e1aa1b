"""One video's keyframes on one model's clock: their clips, decoded once in order, and their
scores through the function ``evaluate`` runs (``pipeline.engine.maps.score_clips``)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from tqdm import tqdm

from pipeline.ava.clock import clip_frame_indices, keyframe_frame_index
from pipeline.data.transforms import ClipSample, eval_transform
from pipeline.detect.persons import Boxes, BoxesOf
from pipeline.engine.maps import score_clips
from pipeline.frames.video import VideoSource
from pipeline.lfb.reader import FeatureBank
from pipeline.lfb.window import BankWindow
from pipeline.models.config import ModelConfig
from pipeline.models.detector import Detector


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

    def source_frame_of(self, timestamps: list[int]) -> list[int]:
        """The source frame each keyframe is shown from (the video's frame count past its end):
        the annotated video is the source's own frames, whatever the timeline."""
        frames = self.frame_of(np.asarray(timestamps))
        source = self.source
        if source.source_index is not None:
            inside = frames < source.num_frames
            frames = np.where(inside, source.source_index[np.minimum(frames,
                                                                     source.num_frames - 1)],
                              source.source_frames)
        return frames.tolist()

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

    def score(self, model: Detector, timestamps: list[int], boxes_of: BoxesOf, short_side: int,
              columns: torch.Tensor, bank: FeatureBank | None, window: BankWindow | None
              ) -> list[dict]:
        """Each keyframe with boxes: its boxes and their ``columns`` scores, as the training
        code's prediction dicts (``video_id``, ``timestamp``, ``boxes``, ``scores``)."""
        predictions = []
        for batch in self.batches(timestamps, boxes_of, short_side, "detect"):
            keys = [(self.source.video_id, timestamp) for timestamp, _, _ in batch]
            scores = score_clips(model, torch.stack([s.clip for _, s, _ in batch]),
                                 [s.proposals for _, s, _ in batch], keys, columns=columns,
                                 bank=bank, window=window, device=self.device)
            offset = 0
            for timestamp, _, (boxes, _) in batch:
                predictions.append({"video_id": self.source.video_id, "timestamp": timestamp,
                                    "boxes": boxes,
                                    "scores": scores[offset:offset + len(boxes)]})
                offset += len(boxes)
        return predictions
