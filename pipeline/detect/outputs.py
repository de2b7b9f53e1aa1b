"""What a run writes besides the tables' rows: the scored classes and their names, and the
annotated video (every source frame, each keyframe's boxes and top actions drawn on it)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from pipeline.ava.label_map import read_label_map
from pipeline.errors import InputError
from pipeline.frames.video import open_video
from pipeline.io import atomic_output
from pipeline.viz import LabelledBox

ANNOTATED_MIN_SHORT_SIDE = 240
BOX_COLOR = (255, 220, 0)


@dataclass(frozen=True)
class DetectResult:
    """The files a run wrote and how much it found."""

    csv: Path
    parquet: Path
    video: Path | None
    keyframes: int
    rows: int
    bank: Path | None = None


def label_classes(label_map: str | Path | None, num_classes: int,
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


def captions(prediction: dict, action_ids: tuple[int, ...], names: dict[int, str], top_k: int,
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
