"""Pictures for a person to look at: a keyframe clip with its boxes and labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw


@dataclass(frozen=True)
class LabelledBox:
    """A normalised box with a caption; ``color`` tells ground truth from predictions."""

    x1: float
    y1: float
    x2: float
    y2: float
    caption: str = ""
    color: tuple[int, int, int] = (255, 220, 0)


def render_clip(clip: np.ndarray, boxes: list[LabelledBox], *, scale: int = 3,
                max_strip_frames: int = 8) -> Image.Image:
    """The keyframe (middle frame of ``clip``) enlarged with its boxes, above a strip of frames.

    ``clip`` is ``[T, H, W, 3]`` uint8 with the keyframe at ``T // 2``, as stored by
    ``extract_frames``. The strip shows the clip's motion at a glance.
    """
    if clip.ndim != 4 or clip.shape[-1] != 3:
        raise ValueError(f"expected a clip of shape [T, H, W, 3], got {clip.shape}")
    t, h, w, _ = clip.shape
    key = Image.fromarray(clip[t // 2]).resize((w * scale, h * scale), Image.NEAREST)
    draw = ImageDraw.Draw(key)
    for box in boxes:
        xy = (box.x1 * w * scale, box.y1 * h * scale, box.x2 * w * scale, box.y2 * h * scale)
        draw.rectangle(xy, outline=box.color, width=2)
        if box.caption:
            for i, line in enumerate(box.caption.split("\n")):
                draw.text((xy[0] + 3, xy[1] + 2 + 11 * i), line, fill=box.color)
    picks = np.linspace(0, t - 1, num=min(t, max_strip_frames)).round().astype(int)
    strip_w = key.width // len(picks)
    strip_h = max(1, round(h * strip_w / w))
    canvas = Image.new("RGB", (key.width, key.height + strip_h), (0, 0, 0))
    canvas.paste(key, (0, 0))
    for i, index in enumerate(picks):
        frame = Image.fromarray(clip[index]).resize((strip_w, strip_h), Image.BILINEAR)
        canvas.paste(frame, (i * strip_w, key.height))
    return canvas
