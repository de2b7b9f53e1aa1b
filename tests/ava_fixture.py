"""An AVA-shaped download in miniature: the official layout, names, ids and clock, tiny pixels.

Each video is what mmaction2's preparation script cuts from a movie: seconds 900..1801 at
30 fps, 27,030 frames, every frame painting its own number (``video_utils``), so a stored clip
can be checked frame-exactly against AVA's clock. Annotations, exclusions and FAIR-style
proposal pickles use the official file names of the chosen version, 11-character video ids,
zero-padded timestamps inside 902..1798 and AVA action ids, one of them outside the label map
(as AVA's CSVs hold all 80 classes and the list evaluates 60).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.ava.annotations import write_annotations
from pipeline.ava.exclusions import write_exclusions
from pipeline.ava.label_map import LabelMap, write_label_map
from pipeline.dataset import AVA_FILES
from video_utils import write_video

FPS, VIDEO_START, FRAMES = 30, 900, 27030
# a few AVA v2.2 classes (item form, as the official 60-class list)
LABELS = {12: "stand", 14: "walk", 17: "carry/hold (an object)", 79: "talk to (e.g., self, a "
          "person, a group)", 80: "watch (a person)"}
NOT_EVALUATED = 2   # "bend/bow (at the waist)" is in AVA's CSVs but not in this list
TRAIN_IDS = ("-5KQ66BBWC4", "1j20qq1JyX4")
VAL_IDS = ("2qQs3Y9OJX0",)


@dataclass(frozen=True)
class AvaFixture:
    root: Path
    version: str
    keyframes: pd.DataFrame   # video_id, timestamp, split of every annotated keyframe


def annotated_seconds(every: int, first: int = 902) -> np.ndarray:
    """first, first + every, ... and always the last annotated second, 1798."""
    return np.unique(np.r_[np.arange(first, 1799, every), 1798])


def _people(rng: np.random.Generator, video_id: str, t: int) -> list[dict]:
    rows = []
    for person in range(2):
        x1 = 0.1 + 0.45 * person + rng.uniform(0, 0.05)
        box = dict(video_id=video_id, timestamp=t, x1=round(x1, 3), y1=0.4,
                   x2=round(x1 + 0.3, 3), y2=0.95, person_id=person)
        actions = [12 if (t // 30 + person) % 2 else 14, 80 if person else 79]
        if t % 4 == 0:
            actions.append(NOT_EVALUATED)
        rows += [dict(box, action_id=a) for a in actions]
    return rows


def make_ava_fixture(root: str | Path, *, version: str = "2.2", every: int = 60,
                     video_start: int = VIDEO_START, width: int = 64, height: int = 48,
                     seed: int = 0) -> AvaFixture:
    """Write the download under ``root`` (``annotations/``, ``videos/``).

    ``video_start`` later than 900 makes shorter videos (they end at 1801 s) with annotations
    from ``video_start + 2`` on: quick fixtures for tests that need no movie-length video.
    """
    root = Path(root)
    names = AVA_FILES[version]
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    write_label_map(ann / names["label_map"],
                    LabelMap(ids=tuple(LABELS), names=LABELS, groups={}))
    keyframes = []
    for split, ids in (("train", TRAIN_IDS), ("val", VAL_IDS)):
        rows, proposals = [], {}
        for video_id in ids:
            write_video(root / "videos" / f"{video_id}.mp4",
                        num_frames=FRAMES - (video_start - VIDEO_START) * FPS, fps=FPS,
                        width=width, height=height, gop=8 * FPS)
            for t in annotated_seconds(every, first=video_start + 2):
                people = _people(rng, video_id, int(t))
                rows += people
                boxes = {(p["x1"], p["y1"], p["x2"], p["y2"]) for p in people}
                proposals[f"{video_id},{t:04d}"] = np.array(
                    [[*b, 0.97] for b in sorted(boxes)] + [[0.0, 0.0, 0.2, 0.3, 0.5]],
                    dtype=np.float32)
                keyframes.append((video_id, int(t), split))
        write_annotations(ann / names["annotations"].format(split=split), pd.DataFrame(rows))
        excluded = pd.DataFrame({"video_id": [ids[0]], "timestamp": [video_start + 3]})
        write_exclusions(ann / names["exclusions"].format(split=split), excluded)
        with open(ann / f"ava_dense_proposals_{split}.FAIR.recall_93.9.pkl", "wb") as f:
            pickle.dump(proposals, f)
    return AvaFixture(root, version,
                      pd.DataFrame(keyframes, columns=["video_id", "timestamp", "split"]))


def expected_keyframe_frame(timestamp: int, convention: str) -> int:
    """AVA's clock, written out independently of ``pipeline.ava.clock``."""
    return (timestamp - VIDEO_START) * FPS + (1 if convention == "mmaction2" else 0)
