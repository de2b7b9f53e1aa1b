"""An AVA-shaped download in miniature: the official layout, names, ids and clock, tiny pixels.

Each video is what mmaction2's preparation script cuts from a movie: seconds 900..1801, every
frame painting its own number (``helpers.video``), so a stored clip can be checked frame-exactly
against AVA's clock. The videos keep their movies' rates, 24, 25, 29.97 and 30 fps
(``FPS_OF``), as AVA's do: on AVA's 30-fps timeline each is 27,030 frames, the frames
``ffmpeg -r 30`` gives. Annotations, exclusions and FAIR-style
proposal pickles use the official file names of the chosen version, 11-character video ids,
zero-padded timestamps inside 902..1798 and AVA's action ids: the CSVs hold all 80 actions on
the annotated seconds, the label map is the 60 evaluated ones, and the full 80-action list is
there too, as in AVA's download. Like FAIR's pickles, the proposals lack some keyframes; with
``missing_video`` one annotated video has no file (``data.ava.skip_missing_videos``).
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.ava.annotations import write_annotations
from pipeline.ava.exclusions import write_exclusions
from pipeline.ava.label_map import LabelMap, ava_group_of, write_label_map
from pipeline.sources.manifest import AVA_FILES
from helpers.video import write_video

FPS, VIDEO_START, FRAMES = 30, 900, 27030
ACTIONS = {   # AVA's 80 actions (ava_action_list_v2.2.pbtxt)
    1: "bend/bow (at the waist)", 2: "crawl", 3: "crouch/kneel", 4: "dance", 5: "fall down",
    6: "get up", 7: "jump/leap", 8: "lie/sleep", 9: "martial art", 10: "run/jog", 11: "sit",
    12: "stand", 13: "swim", 14: "walk", 15: "answer phone", 16: "brush teeth",
    17: "carry/hold (an object)", 18: "catch (an object)", 19: "chop", 20: "climb (e.g., a "
    "mountain)", 21: "clink glass", 22: "close (e.g., a door, a box)", 23: "cook", 24: "cut",
    25: "dig", 26: "dress/put on clothing", 27: "drink", 28: "drive (e.g., a car, a truck)",
    29: "eat", 30: "enter", 31: "exit", 32: "extract", 33: "fishing", 34: "hit (an object)",
    35: "kick (an object)", 36: "lift/pick up", 37: "listen (e.g., to music)", 38: "open (e.g., "
    "a window, a car door)", 39: "paint", 40: "play board game", 41: "play musical instrument",
    42: "play with pets", 43: "point to (an object)", 44: "press", 45: "pull (an object)",
    46: "push (an object)", 47: "put down", 48: "read", 49: "ride (e.g., a bike, a car, a "
    "horse)", 50: "row boat", 51: "sail boat", 52: "shoot", 53: "shovel", 54: "smoke",
    55: "stir", 56: "take a photo", 57: "text on/look at a cellphone", 58: "throw",
    59: "touch (an object)", 60: "turn (e.g., a screwdriver)", 61: "watch (e.g., TV)",
    62: "work on a computer", 63: "write", 64: "fight/hit (a person)", 65: "give/serve (an "
    "object) to (a person)", 66: "grab (a person)", 67: "hand clap", 68: "hand shake",
    69: "hand wave", 70: "hug (a person)", 71: "kick (a person)", 72: "kiss (a person)",
    73: "lift (a person)", 74: "listen to (a person)", 75: "play with kids",
    76: "push (another person)", 77: "sing to (e.g., self, a person, a group)",
    78: "take (an object) from (a person)", 79: "talk to (e.g., self, a person, a group)",
    80: "watch (a person)"}
NOT_EVALUATED = (2, 16, 18, 19, 21, 23, 25, 31, 32, 33, 35, 39, 40, 42, 44, 50, 53, 55, 71, 75)
# the 60 evaluated actions (item form, as ava_action_list_v2.2_for_activitynet_2019.pbtxt)
LABELS = {i: name for i, name in ACTIONS.items() if i not in NOT_EVALUATED}
TRAIN_IDS = ("-5KQ66BBWC4", "1j20qq1JyX4")
VAL_IDS = ("2qQs3Y9OJX0", "5BDj0ow5hnA")
FPS_OF = {"-5KQ66BBWC4": Fraction(24), "1j20qq1JyX4": Fraction(25), "2qQs3Y9OJX0": Fraction(30),
          "5BDj0ow5hnA": Fraction(30000, 1001)}   # each video's own rate
MISSING_ID = "4ZpjKfu6Cl8"   # annotated in train, no video file (with ``missing_video``)
NO_PROPOSALS_EVERY = 5       # every 5th annotated second of a video has no proposal key


@dataclass(frozen=True)
class AvaFixture:
    root: Path
    version: str
    keyframes: pd.DataFrame   # video_id, timestamp, split of every annotated keyframe


def annotated_seconds(every: int, first: int = 902) -> np.ndarray:
    """first, first + every, ... and always the last annotated second, 1798."""
    return np.unique(np.r_[np.arange(first, 1799, every), 1798])


def _people(rng: np.random.Generator, video_id: str, t: int, first: int) -> list[dict]:
    """Two people; each does a pose, an interaction and three more of AVA's 80 actions in turn
    from the ``first``-th (so every action is on a split's first 27 seconds)."""
    rows = []
    for person in range(2):
        x1 = 0.1 + 0.45 * person + rng.uniform(0, 0.05)
        box = dict(video_id=video_id, timestamp=t, x1=round(x1, 3), y1=0.4,
                   x2=round(x1 + 0.3, 3), y2=0.95, person_id=person)
        actions = [12 if (t // 30 + person) % 2 else 14, 80 if person else 79]
        turn = [(first + 3 * person + k) % len(ACTIONS) + 1 for k in range(3)]
        actions += [a for a in turn if a not in actions]
        rows += [dict(box, action_id=a) for a in actions]
    return rows


def _write_action_list(path: Path) -> None:
    """The full list, in its official ``label`` form."""
    groups = {"movement": "PERSON_MOVEMENT", "object": "OBJECT_MANIPULATION",
              "interaction": "PERSON_INTERACTION"}
    path.write_text("".join(f'label {{\n  name: "{name}"\n  label_id: {i}\n  label_type: '
                            f'{groups[ava_group_of(i)]}\n}}\n' for i, name in ACTIONS.items()))


def make_ava_fixture(root: str | Path, *, version: str = "2.2", every: int = 60,
                     video_start: int = VIDEO_START, width: int = 64, height: int = 48,
                     seed: int = 0, missing_video: bool = False) -> AvaFixture:
    """Write the download under ``root`` (``annotations/``, ``videos/``).

    ``video_start`` later than 900 makes shorter videos (they end at 1801 s) with annotations
    from ``video_start + 2`` on: quick fixtures for tests that need no movie-length video.
    ``missing_video``: ``MISSING_ID`` is annotated in train but has no file (``keyframes``
    lists only the videos that exist).
    """
    root = Path(root)
    names = AVA_FILES[version]
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    write_label_map(ann / names["label_map"],
                    LabelMap(ids=tuple(LABELS), names=LABELS, groups={}))
    _write_action_list(ann / names["action_list"])
    keyframes = []
    train_ids = TRAIN_IDS + ((MISSING_ID,) if missing_video else ())
    for split, ids in (("train", train_ids), ("val", VAL_IDS)):
        rows, proposals, first = [], {}, 0
        for video_id in ids:
            if video_id != MISSING_ID:   # seconds video_start..1801 at the video's own rate
                rate = FPS_OF[video_id]
                seconds = VIDEO_START + FRAMES // FPS - video_start
                write_video(root / "videos" / f"{video_id}.mp4",
                            num_frames=math.ceil(seconds * rate), fps=rate, width=width,
                            height=height, gop=8 * round(rate))
            for k, t in enumerate(annotated_seconds(every, first=video_start + 2)):
                people = _people(rng, video_id, int(t), first)
                first += 6
                rows += people
                boxes = {(p["x1"], p["y1"], p["x2"], p["y2"]) for p in people}
                if k % NO_PROPOSALS_EVERY != 1:
                    proposals[f"{video_id},{t:04d}"] = np.array(
                        [[*b, 0.97] for b in sorted(boxes)] + [[0.0, 0.0, 0.2, 0.3, 0.5]],
                        dtype=np.float32)
                if video_id != MISSING_ID:
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
