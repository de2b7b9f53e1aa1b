"""A custom dataset in miniature: a folder of mp4 files at 10 and 24 fps and AVA-format CSVs
whose timestamps are seconds from each video's first frame, from 0, whole and fractional.

Every frame paints its own number (``helpers.video``), so a stored clip can be checked
frame-exactly against the clock: the keyframe at ``t`` s is frame ``round(t * fps)`` of its
video (``expected_keyframe_frame``). Train rows carry a person id (8 columns), val rows do not
(7 columns); the label map has four actions of the user's own ids (not AVA's); the train
proposals are an mmaction2-style pickle with fractional keys, the val proposals a Parquet table;
val has an exclusions file.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.ava.label_map import LabelMap, write_label_map
from helpers.video import write_video

DURATION_S = 8
FPS_OF = {"kitchen_cam1": Fraction(10), "yard_cam2": Fraction(24),
          "kitchen_cam3": Fraction(10), "yard_cam4": Fraction(24)}
SPLIT_OF = {"kitchen_cam1": "train", "yard_cam2": "train", "kitchen_cam3": "val",
            "yard_cam4": "val"}
LABELS = {3: "pour", 7: "stir", 12: "open door", 40: "wave"}
# seconds from each video's first frame: 0 itself, whole seconds, and fractions that fall
# between frames (2.52 s: frame 60.48 at 24 fps, 25.2 at 10 fps; 4.37 s: 104.88 and 43.7)
TIMES = (0.0, 1.0, 2.52, 3.3, 4.37, 5.0, 6.7)
EXCLUDED = ("kitchen_cam3", 5.0)


@dataclass(frozen=True)
class CustomFixture:
    root: Path
    keyframes: pd.DataFrame   # video_id, time, split


def expected_keyframe_frame(time: float, fps: Fraction) -> int:
    """The documented convention (pyslowfast): frame ``round(t * fps)`` of the video, written
    out independently of ``pipeline.ava.clock`` (the fixture's times are no ties)."""
    return round(float(time) * float(fps))


def make_custom_fixture(root: str | Path, *, width: int = 64, height: int = 48,
                        seed: int = 0) -> CustomFixture:
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = {"train": [], "val": []}
    proposals = {"train": {}, "val": []}
    for video_id, fps in FPS_OF.items():
        split = SPLIT_OF[video_id]
        write_video(root / "videos" / f"{video_id}.mp4", num_frames=int(DURATION_S * fps),
                    fps=fps, width=width, height=height)
        for t in TIMES:
            for person in range(2):
                x1 = round(0.05 + 0.5 * person + rng.uniform(0, 0.05), 4)
                box = dict(video_id=video_id, timestamp=t, x1=x1, y1=0.3, x2=round(x1 + 0.4, 4),
                           y2=0.9)
                actions = [list(LABELS)[(person + int(t)) % 4], list(LABELS)[(person + 2) % 4]]
                rows[split] += [dict(box, action_id=a, person_id=person) for a in actions]
                score = 0.98 - 0.05 * person   # both above proposals.score_threshold 0.9
                if split == "train":
                    proposals["train"].setdefault(f"{video_id},{t:.6f}", []).append(
                        [box["x1"], box["y1"], box["x2"], box["y2"], score])
                else:
                    proposals["val"].append(dict(video_id=video_id, timestamp=t, x1=box["x1"],
                                                 y1=box["y1"], x2=box["x2"], y2=box["y2"],
                                                 score=score))
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    for split, split_rows in rows.items():
        table = pd.DataFrame(split_rows)
        columns = ["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id"]
        if split == "train":
            columns.append("person_id")
        lines = [",".join([r.video_id, f"{r.timestamp:g}", *(f"{getattr(r, c):.4f}" for c in
                                                          ("x1", "y1", "x2", "y2")),
                           str(r.action_id), *([str(r.person_id)] if split == "train" else [])])
                 for r in table.itertuples()]
        (ann / f"{split}.csv").write_text("\n".join(lines) + "\n")
    write_label_map(ann / "label_map.pbtxt", LabelMap(ids=tuple(LABELS), names=LABELS))
    (ann / "val_excluded_timestamps.csv").write_text(f"{EXCLUDED[0]},{EXCLUDED[1]:.1f}\n")
    (root / "proposals").mkdir(exist_ok=True)
    with open(root / "proposals" / "train.pkl", "wb") as f:
        pickle.dump({key: np.asarray(boxes, np.float32) for key, boxes in
                     proposals["train"].items()}, f)
    pd.DataFrame(proposals["val"]).to_parquet(root / "proposals" / "val.parquet")
    keyframes = pd.DataFrame([(v, t, SPLIT_OF[v]) for v in FPS_OF for t in TIMES],
                             columns=["video_id", "time", "split"])
    return CustomFixture(root, keyframes)
