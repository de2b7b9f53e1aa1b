"""The Kinetics part of AVA-Kinetics in miniature, next to a short AVA fixture
(``helpers.ava_fixture``): 10-s clips at 25 and 30 fps named as Kinetics-700's cut windows
``{youtube_id}_{time_start:06d}_{time_end:06d}.mp4`` and one full clip ``{youtube_id}.mp4``,
the 7-column ``kinetics_{train,val}_v1.0.csv`` (no person id, 6-decimal float timestamps in
seconds of the YouTube video, AVA's action ids), a train keyframe whose clip is missing (a
video gone from YouTube), and mmaction2-style Kinetics proposal pickles keyed
``"{youtube_id},{int(t):04d}"``. Every frame paints its own number (``helpers.video``).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.video import write_video

# clip stem -> (split, youtube id, first second, own rate, keyframe times in YouTube seconds)
CLIPS = {
    "o3lCwWyyc_s_000012_000022": ("train", "o3lCwWyyc_s", 12, Fraction(25),
                                  (14.037000, 17.010000, 20.062311)),
    "Zr1xZ0Hc4ws_000100_000110": ("train", "Zr1xZ0Hc4ws", 100, Fraction(30),
                                  (102.000000, 105.033333)),
    "b9Yd2Lq3VwE": ("train", "b9Yd2Lq3VwE", 0, Fraction(25), (3.040000, 5.020000)),
    "Hq8yVb1xYcM_000030_000040": ("val", "Hq8yVb1xYcM", 30, Fraction(30),
                                  (32.012000, 35.050000, 38.000000)),
}
MISSING = ("kZ0e4Bw6pUQ", 454.032156)   # annotated in train, its clip is not downloaded
CLIP_SECONDS = 10


@dataclass(frozen=True)
class KineticsFixture:
    root: Path
    keyframes: pd.DataFrame   # clip, youtube_id, time, start, fps, split of usable keyframes


def make_kinetics_fixture(root: str | Path, *, width: int = 64, height: int = 48,
                          seed: int = 0) -> KineticsFixture:
    root = Path(root)
    rng = np.random.default_rng(seed)
    lines = {"train": [], "val": []}
    proposals = {"train": {}, "val": {}}
    keyframes = []
    for clip, (split, youtube_id, start, fps, times) in CLIPS.items():
        write_video(root / "videos" / f"{clip}.mp4", num_frames=CLIP_SECONDS * int(fps),
                    fps=fps, width=width, height=height, gop=2 * int(fps))
        for t in times:
            keyframes.append((clip, youtube_id, t, float(start), fps, split))
            boxes = []
            for person in range(2):
                x1 = round(0.05 + 0.5 * person + rng.uniform(0, 0.05), 3)
                box = (x1, 0.2, round(x1 + 0.4, 3), 0.95)
                boxes.append([*box, 0.9 - 0.1 * person])
                for action in (12 if person else 14, 17 + 3 * person, 80):   # AVA's ids
                    lines[split].append(f"{youtube_id},{t:.6f},{box[0]:.3f},{box[1]:.3f},"
                                        f"{box[2]:.3f},{box[3]:.3f},{action}")
            proposals[split][f"{youtube_id},{int(t):04d}"] = np.asarray(boxes, np.float64)
    lines["train"].append(f"{MISSING[0]},{MISSING[1]:.6f},0.100,0.100,0.500,0.900,12")
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        (ann / f"kinetics_{split}_v1.0.csv").write_text("\n".join(lines[split]) + "\n")
        with open(ann / f"kinetics_proposals_{split}.pkl", "wb") as f:
            pickle.dump(proposals[split], f)
    return KineticsFixture(root, pd.DataFrame(
        keyframes, columns=["clip", "youtube_id", "time", "start", "fps", "split"]))
