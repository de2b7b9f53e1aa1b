"""Frame-by-frame state of a scripted video, and the labels read off it at keyframes.

Every label is a predicate on the geometry and history of the script, evaluated at the
keyframe, so a label holds exactly when its evidence is there:

- pose (stand/walk/run/jump/crouch): the actor's segment at the keyframe;
- carry: a prop in the actor's hand; touch: the hand on a fixture;
- talk: two standing actors, arms down, facing each other 20-36 px apart (body centres, in
  pixels at a frame height of 120);
- watch: a standing or crouching actor, not talking, facing a walking/running/jumping actor
  24-90 px away;
- wait / rest: standing, empty-handed, 3-12 s after a walk / run ended;
- have put down: empty-handed, 3-12 s after putting a prop down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.boxes import BOX_COLUMNS
from pipeline.sources.synthetic.script import (HAND_HEIGHT, MOVING_POSES, PROP_SIZE, REACH,
                                       WATCH_DISTANCE, Segment, VideoScript)
from pipeline.sources.synthetic.sprites import (JUMP_HEIGHT, JUMP_PERIOD_S, PHASES, RUN_PERIOD_S,
                                        WALK_PERIOD_S, SpriteBank)

TALK_DISTANCE = (20.0, 36.0)
LONG_TERM_WINDOW_S = (2.5, 10.5)  # seconds after the evidence ended; keyframes see 3..10
CLIP_HALF_S = 1.0  # half length of the window for in-clip motion statistics
POSES = ("stand", "walk", "run", "jump", "crouch")


@dataclass
class Track:
    """Per-frame state of one actor (arrays of length n_frames)."""

    x: np.ndarray  # body centre, px (float)
    feet_y: np.ndarray  # px, lifted while jumping
    pose: np.ndarray  # index into POSES
    phase: np.ndarray  # animation phase index
    facing: np.ndarray  # +1 right, -1 left
    reach: np.ndarray  # bool, arm outstretched
    prop: np.ndarray  # index of the held prop or -1
    fixture: np.ndarray  # index of the touched fixture or -1
    segment: np.ndarray  # index into the actor's segments
    box: np.ndarray  # [n_frames, 4] pixel box x1, y1, x2, y2 (x2, y2 exclusive)


def segment_index_at(segments: list[Segment], block: np.ndarray) -> np.ndarray:
    starts = np.array([s.start for s in segments])
    return np.clip(np.searchsorted(starts, block, side="right") - 1, 0, len(segments) - 1)


def actor_tracks(script: VideoScript, *, fps: int, n_frames: int, patterns: list[str],
                 sprites: SpriteBank) -> list[Track]:
    """Per-frame state of every actor; ``patterns`` picks each actor's shirt pattern."""
    t = np.arange(n_frames) / fps
    block = np.floor(t + 0.5).astype(np.int64)
    tracks = []
    for actor, pattern in zip(script.actors, patterns):
        segments = actor.segments
        index = segment_index_at(segments, block)
        start = np.array([s.start for s in segments], np.float64)[index] - 0.5
        length = np.array([s.end - s.start for s in segments], np.float64)[index]
        x0 = np.array([s.x0 for s in segments])[index]
        x1 = np.array([s.x1 for s in segments])[index]
        elapsed = t - start
        x = x0 + (x1 - x0) * np.clip(elapsed / length, 0.0, 1.0)
        pose = np.array([POSES.index(s.pose) for s in segments])[index]
        phase = np.zeros(n_frames, np.int64)
        feet_y = np.full(n_frames, actor.feet_y)
        for name, period in (("walk", WALK_PERIOD_S), ("run", RUN_PERIOD_S)):
            moving = pose == POSES.index(name)
            phase[moving] = np.floor(elapsed[moving] / period * PHASES).astype(np.int64) % PHASES
        jumping = pose == POSES.index("jump")
        hop = JUMP_HEIGHT * script.scale * np.abs(np.sin(np.pi * elapsed / JUMP_PERIOD_S))
        feet_y[jumping] -= hop[jumping]
        phase[jumping] = (hop[jumping] > 0.35 * JUMP_HEIGHT * script.scale).astype(np.int64)
        facing = np.array([s.facing for s in segments])[index]
        reach = np.array([s.arm == "reach" for s in segments])[index]
        prop = np.array([s.prop for s in segments])[index]
        fixture = np.array([s.fixture for s in segments])[index]
        box = np.empty((n_frames, 4), np.int64)
        cx, cy = np.rint(x).astype(np.int64), np.rint(feet_y).astype(np.int64)
        for i in range(n_frames):
            stamp = sprites.get(pattern, POSES[pose[i]], int(phase[i]),
                                "reach" if reach[i] else "down", int(facing[i]))
            bx1, by1, bx2, by2 = stamp.box
            box[i] = (cx[i] + bx1, cy[i] + by1, cx[i] + bx2, cy[i] + by2)
        tracks.append(Track(x=x, feet_y=feet_y, pose=pose, phase=phase, facing=facing,
                            reach=reach, prop=prop, fixture=fixture, segment=index, box=box))
    return tracks


def prop_position(script: VideoScript, tracks: list[Track], prop_index: int,
                  frame: int, fps: int) -> tuple[float, float, bool]:
    """Centre of a prop at a frame, and whether it is held."""
    prop = script.props[prop_index]
    t = frame / fps
    if prop.carrier >= 0 and prop.pick_up - 0.5 <= t < prop.put_down - 0.5:
        track = tracks[prop.carrier]
        hand_y = track.feet_y[frame] - HAND_HEIGHT * script.scale
        x = track.x[frame] + track.facing[frame] * (REACH + PROP_SIZE / 2) * script.scale
        return x, hand_y, True
    x = prop.x_after if t >= prop.put_down - 0.5 else prop.x_before
    return x, script.lane_feet_y[prop.lane] - PROP_SIZE / 2 * script.scale, False


def _still_since(segments: list[Segment], k: int) -> tuple[float, str]:
    """When the actor's current standing spell began (s) and the pose before it."""
    while k > 0 and segments[k - 1].pose == "stand":
        k -= 1
    before = segments[k - 1].pose if k > 0 else "none"
    return segments[k].start - 0.5, before


def keyframe_states(script: VideoScript, tracks: list[Track], *, fps: int,
                    keyframe_seconds: range) -> pd.DataFrame:
    """One row per actor per keyframe: box, visible state, history and labels (bool columns)."""
    rows = []
    scale = script.scale
    half = int(round(CLIP_HALF_S * fps))
    n_frames = len(tracks[0].x)
    lo, hi = LONG_TERM_WINDOW_S
    # Long-term evidence must be visible at some keyframe (banks hold keyframe features only),
    # so an evidence spell that ended before the first keyframe's block does not count.
    first_evidence_end = keyframe_seconds.start + 0.5
    for second in keyframe_seconds:
        frame = second * fps
        clip = slice(max(0, frame - half), min(n_frames, frame + half + 1))
        for a, (actor, track) in enumerate(zip(script.actors, tracks)):
            pose = POSES[track.pose[frame]]
            segment_k = int(track.segment[frame])
            facing = int(track.facing[frame])
            holding = bool(track.prop[frame] >= 0)
            talking = False
            watching = False
            for b, other in enumerate(tracks):
                if b == a:
                    continue
                dx = other.x[frame] - track.x[frame]
                toward = facing * dx > 0
                distance = abs(dx)
                other_pose = POSES[other.pose[frame]]
                if (pose == "stand" and other_pose == "stand" and toward
                        and not track.reach[frame] and not other.reach[frame]
                        and other.facing[frame] * dx < 0
                        and TALK_DISTANCE[0] * scale <= distance <= TALK_DISTANCE[1] * scale):
                    talking = True
                if (pose in ("stand", "crouch") and other_pose in MOVING_POSES and toward
                        and WATCH_DISTANCE[0] * scale <= distance <= WATCH_DISTANCE[1] * scale):
                    watching = True
            watching = watching and not talking
            still_s, moved_before = float("nan"), ""
            if pose == "stand":
                since, moved_before = _still_since(actor.segments, segment_k)
                still_s = second - since
            put_downs = [p.put_down - 0.5 for p in script.props
                         if p.carrier == a and first_evidence_end <= p.put_down - 0.5 <= second]
            since_put_down = second - max(put_downs) if put_downs else float("nan")
            empty_handed_still = (pose == "stand" and not holding and lo <= still_s <= hi
                                  and second - still_s >= first_evidence_end)
            x_clip = track.x[clip]
            y_clip = track.box[clip, 1]
            box = np.clip(track.box[frame] / np.array(
                [script.width, script.height, script.width, script.height]), 0.0, 1.0)
            rows.append({
                "timestamp_s": second, "person_id": a,
                **dict(zip(BOX_COLUMNS, box.tolist())),
                "pose": pose, "facing": facing, "reaching": bool(track.reach[frame]),
                "holding": holding, "lane": actor.lane,
                "still_s": still_s, "moved_before": moved_before,
                "since_put_down_s": since_put_down,
                "clip_speed": float(np.abs(np.diff(x_clip)).mean() * fps),
                "clip_vertical_range": float(y_clip.max() - y_clip.min()),
                "clip_box_height": float((track.box[clip, 3] - track.box[clip, 1]).mean()),
                "stand": pose == "stand", "walk": pose == "walk", "run": pose == "run",
                "jump": pose == "jump", "crouch": pose == "crouch",
                "carry": holding, "touch": bool(track.fixture[frame] >= 0),
                "talk": talking, "watch": watching,
                "wait": empty_handed_still and moved_before == "walk",
                "rest": empty_handed_still and moved_before == "run",
                "put_down": (not holding) and lo <= since_put_down <= hi,
            })
    return pd.DataFrame(rows)
