"""The synthetic dataset generator: determinism, formats, and the evidence behind each label.

The evidence tests simulate many videos without drawing them (fast) and check, per class
group, that the label's evidence lies where the design says: in the box (movement), just
outside it (object), at another actor (interaction), or only in other clips (long-term).
"""

from __future__ import annotations

import re
from pathlib import Path

import decord
import numpy as np
import pandas as pd
import pytest

from pipeline.ava.annotations import read_annotations
from pipeline.ava.exclusions import read_exclusions
from pipeline.ava.label_map import read_label_map
from pipeline.sources.synthetic import (ACTION_CLASSES, SyntheticConfig, annotation_path,
                                exclusions_path, generate_dataset, label_map_path, video_id)
from pipeline.sources.synthetic.render import draw_appearances
from pipeline.sources.synthetic.script import PROP_SIZE, RUN_SPEED, WALK_SPEED
from pipeline.sources.synthetic.scene import prop_position
from pipeline.sources.synthetic.sprites import JUMP_HEIGHT
from pipeline.sources.synthetic.video import scene_rows, simulate_video

TINY = SyntheticConfig(seed=7, n_train_videos=2, n_val_videos=1, duration_s=12,
                       excluded_fraction=0.05)
POSES = ("stand", "walk", "run", "jump", "crouch")
LONG_TERM_EVIDENCE = {"wait": "walk", "rest": "run", "put_down": "carry"}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthetic") / "data"
    summary = generate_dataset(out, TINY, workers=1, progress=False)
    return out, summary


@pytest.fixture(scope="module")
def many_keyframes() -> pd.DataFrame:
    """Keyframe rows of 40 simulated (not drawn) default-size videos."""
    config = SyntheticConfig(seed=11)
    frames = []
    for index in range(40):
        video = simulate_video(config, "train", index)
        frames.append(scene_rows(config, video).assign(video=index))
    return pd.concat(frames, ignore_index=True)


# -- files, formats, determinism ------------------------------------------------------------


def test_same_seed_gives_same_bytes_with_any_worker_count(tiny, tmp_path):
    out, summary = tiny
    again = tmp_path / "again"
    assert generate_dataset(again, TINY, workers=2, progress=False) == summary
    first, second = _files(out), _files(again)
    assert sorted(first) == sorted(second)
    for name in first:
        assert first[name] == second[name], name
    assert not list(out.parent.glob("*.partial"))


def test_other_seed_gives_other_data(tiny, tmp_path):
    out, _ = tiny
    other = tmp_path / "other"
    generate_dataset(other, SyntheticConfig(**{**TINY.__dict__, "seed": 8}), workers=1,
                     progress=False)
    assert (annotation_path(out, "train").read_bytes()
            != annotation_path(other, "train").read_bytes())


def test_files_are_ava_format_and_consistent(tiny):
    out, summary = tiny
    label_map = read_label_map(label_map_path(out))
    assert label_map.ids == tuple(c.id for c in ACTION_CLASSES)
    assert {label_map.groups[c.id] for c in ACTION_CLASSES} == {
        "movement", "object", "interaction", "long_term"}
    assert "label_type: LONG_TERM" in label_map_path(out).read_text()
    scene = pd.read_parquet(out / "scene.parquet")
    for split, n_videos in (("train", TINY.n_train_videos), ("val", TINY.n_val_videos)):
        rows = read_annotations(annotation_path(out, split), label_map)
        excluded = read_exclusions(exclusions_path(out, split))
        ids = sorted(rows["video_id"].unique())
        assert len(ids) == n_videos
        assert all(re.fullmatch(r"[A-Za-z0-9_-]{11}", v) for v in ids)
        timestamps = rows["timestamp"].to_numpy()
        assert timestamps.min() >= TINY.timestamp_start + 2
        assert timestamps.max() <= TINY.timestamp_start + TINY.duration_s - 2
        assert len(excluded) == summary["excluded"][split] >= 1
        keys = set(zip(rows["video_id"], rows["timestamp"]))
        assert not keys & set(zip(excluded["video_id"], excluded["timestamp"]))
        # Every annotated person has exactly one pose, as in AVA.
        pose_ids = [c.id for c in ACTION_CLASSES if c.group == "movement"]
        per_box = rows.groupby(["video_id", "timestamp", "person_id"])["action_id"]
        assert (per_box.apply(lambda a: int(np.isin(a, pose_ids).sum())) == 1).all()
        assert per_box.ngroups == summary["boxes"][split]
        split_scene = scene[(scene["split"] == split) & ~scene["excluded"]]
        assert len(split_scene) == summary["boxes"][split]
        counts = rows["action_id"].value_counts()
        assert {c.id: int(counts.get(c.id, 0)) for c in ACTION_CLASSES} == \
            summary["positives"][split]


def test_decord_reads_the_videos_and_keyframes_match_the_boxes(tiny):
    out, _ = tiny
    scene = pd.read_parquet(out / "scene.parquet")
    videos = sorted((out / "videos").glob("*.mp4"))
    assert len(videos) == TINY.n_train_videos + TINY.n_val_videos
    reader = decord.VideoReader(str(videos[0]))
    assert len(reader) == TINY.n_frames
    assert reader.get_avg_fps() == pytest.approx(TINY.fps)
    assert reader[0].shape == (TINY.height, TINY.width, 3)
    assert list(reader.get_key_indices()) == list(range(0, TINY.n_frames, TINY.fps))
    # The keyframe frame (pyslowfast convention: fps * (t - start)) is the frame that was
    # labelled: the decoded image matches the re-drawn one far better than its neighbours.
    index = next(k for k in range(TINY.n_train_videos)
                 if f"{video_id(TINY.seed, 'train', k)}.mp4" == videos[0].name)
    video = simulate_video(TINY, "train", index)
    renderer = video.renderer(TINY.fps)
    rows = scene[scene["video_id"] == videos[0].stem]
    moving = rows[rows["clip_speed"] > 0]
    timestamp = int((moving if len(moving) else rows)["timestamp"].iloc[0])
    frame = TINY.fps * (timestamp - TINY.timestamp_start)
    decoded = reader[frame].asnumpy().astype(np.float64)
    errors = {k: np.abs(decoded - renderer.frame(k)).mean() for k in (frame - 2, frame, frame + 2)}
    assert errors[frame] < 6.0
    assert errors[frame] < min(errors[frame - 2], errors[frame + 2])


def test_stale_output_is_replaced_and_config_is_validated(tmp_path):
    out = tmp_path / "data"
    (out / "videos").mkdir(parents=True)
    (out / "videos" / "stale.mp4").write_bytes(b"old")
    small = SyntheticConfig(seed=1, n_train_videos=1, n_val_videos=1, duration_s=8,
                            excluded_fraction=0.0)
    summary = generate_dataset(out, small, workers=1, progress=False)
    assert not (out / "videos" / "stale.mp4").exists()
    assert summary["excluded"] == {"train": 0, "val": 0}
    assert exclusions_path(out, "val").read_text() == ""
    with pytest.raises(ValueError, match="width"):
        SyntheticConfig(width=161)
    with pytest.raises(ValueError, match="n_actors"):
        SyntheticConfig(n_actors=1)
    with pytest.raises(ValueError, match="duration_s"):
        SyntheticConfig(duration_s=5)


def test_video_ids_are_ava_like_and_distinct():
    ids = {video_id(0, split, k) for split in ("train", "val") for k in range(500)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{11}", v) for v in ids)
    assert video_id(0, "train", 3) == video_id(0, "train", 3) != video_id(1, "train", 3)


def test_default_config_has_enough_positives_per_class():
    """Every class must be measurable by AP on val: count positives without drawing."""
    config = SyntheticConfig()
    rows = pd.concat([scene_rows(config, simulate_video(config, "val", k))
                      for k in range(config.n_val_videos)])
    counts = {c.key: int(rows[c.key].sum()) for c in ACTION_CLASSES}
    assert min(counts.values()) >= 50, counts


# -- evidence per class group ----------------------------------------------------------------


def test_movement_is_visible_in_the_box(many_keyframes):
    df = many_keyframes
    assert (df[list(POSES)].sum(axis=1) == 1).all()
    walk, run = df[df["walk"]], df[df["run"]]
    assert walk["clip_speed"].median() == pytest.approx(np.mean(WALK_SPEED), rel=0.25)
    assert run["clip_speed"].median() > walk["clip_speed"].quantile(0.95)
    assert run["clip_speed"].max() <= RUN_SPEED[1] + 1e-6
    still = df[df["stand"] | df["crouch"]]
    assert (still["clip_speed"].median() == 0) and (df[df["jump"]]["clip_speed"].median() == 0)
    assert df[df["jump"]]["clip_vertical_range"].min() >= 0.5 * JUMP_HEIGHT
    assert df[df["stand"]]["clip_vertical_range"].median() == 0
    height = (df["y2"] - df["y1"]) * 120
    assert height[df["crouch"]].max() < 0.8 * height[df["stand"]].median()


def test_object_classes_need_the_scene_outside_the_box():
    config = SyntheticConfig(seed=5)
    carried_outside = touched_outside = gestures = distractors = 0
    for index in range(12):
        video = simulate_video(config, "train", index)
        script, tracks = video.script, video.tracks
        touched = {int(k) for track in tracks for k in np.unique(track.fixture) if k >= 0}
        distractors += len(script.fixtures) - len(touched)
        distractors += sum(prop.carrier < 0 for prop in script.props)
        for frame in range(0, config.n_frames, config.fps):
            for a, track in enumerate(tracks):
                x1, y1, x2, y2 = track.box[frame]
                facing = track.facing[frame]
                edge = x2 if facing > 0 else x1
                held = [k for k in range(len(script.props))
                        if prop_position(script, tracks, k, frame, config.fps)[2]
                        and script.props[k].carrier == a]
                assert (track.prop[frame] >= 0) == bool(held)
                for k in held:  # in hand: just outside the box, on the facing side
                    px = prop_position(script, tracks, k, frame, config.fps)[0]
                    near_side = px - facing * PROP_SIZE / 2
                    assert abs(near_side - edge) <= 2.0
                    assert not x1 < px < x2
                    carried_outside += 1
                if track.fixture[frame] >= 0:  # touched: a crate against the hand
                    fixture = script.fixtures[track.fixture[frame]]
                    assert fixture.lane == script.actors[a].lane
                    assert abs(fixture.x - edge) <= 8.0 and facing * (fixture.x - edge) > 0
                    touched_outside += 1
                elif track.reach[frame] and track.prop[frame] < 0:
                    gestures += 1  # the same arm pose with nothing there: a look-alike
    assert carried_outside > 50 and touched_outside > 50 and gestures >= 10
    assert distractors >= 12 * SyntheticConfig().n_distractor_objects  # never used objects


def test_interactions_need_another_actor(many_keyframes):
    df = many_keyframes
    for label in ("talk", "watch"):
        pos = df[df[label]]
        # The partner is another actor further away than the actor's own width.
        partners = 0
        for _, row in pos.iterrows():
            same = df[(df["video"] == row["video"]) & (df["timestamp"] == row["timestamp"])
                      & (df["person_id"] != row["person_id"])]
            dx = ((same["x1"] + same["x2"]) - (row["x1"] + row["x2"])) / 2 * 160
            toward = dx * row["facing"] > 0
            if label == "talk":
                ok = same["talk"] & toward & (same["facing"] * dx < 0)
            else:
                ok = (same["walk"] | same["run"] | same["jump"]) & toward
            ok &= dx.abs() > (row["x2"] - row["x1"]) * 160
            partners += bool(ok.any())
        assert partners == len(pos), label
        # In the box alone the label is ambiguous: look-alikes (same pose, same arm) abound.
        lookalike = df[df["pose"].isin(pos["pose"].unique()) & ~df["reaching"]]
        assert 0.05 < lookalike[label].mean() < 0.5, label


def _average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    hits = labels[order].astype(np.float64)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def test_long_term_labels_are_not_predictable_from_the_clip(many_keyframes):
    df = many_keyframes
    signature = df["pose"] + df["holding"].astype(str) + df["reaching"].astype(str)
    for label in LONG_TERM_EVIDENCE:
        # No in-clip state gives the label away...
        share = df.groupby(signature)[label].mean()
        assert share.max() < 0.5, (label, share.to_dict())
        # ...and positives move like negatives of the same pose within the clip: the means
        # differ by less than a small absolute amount or a fraction of the spread.
        floor = {"clip_speed": 1.5, "clip_vertical_range": 1.5, "clip_box_height": 1.0}
        for pose, group in df.groupby("pose"):
            pos, neg = group[group[label]], group[~group[label] & ~group["holding"]]
            if len(pos) < 30:
                continue
            for stat, limit in floor.items():
                difference = abs(pos[stat].mean() - neg[stat].mean())
                assert difference < max(limit, 0.7 * group[stat].std()), (label, pose, stat)


def test_long_term_evidence_is_in_the_same_actors_other_clips(many_keyframes):
    """The evidence lies 3-12 s earlier; an unordered +-10 s window of the same actor's states
    (what a feature bank sees) beats the best clip-only guess."""
    df = many_keyframes.sort_values(["video", "person_id", "timestamp"]).reset_index(drop=True)
    signature = df["pose"] + df["holding"].astype(str) + df["reaching"].astype(str)
    gains = {}
    for label, evidence in LONG_TERM_EVIDENCE.items():
        window_share = np.zeros(len(df))
        for _, group in df.groupby(["video", "person_id"]):
            t = group["timestamp"].to_numpy()
            e = group[evidence].to_numpy(np.float64)
            for i, row in enumerate(group.index):
                far = (np.abs(t - t[i]) <= 10) & (np.abs(t - t[i]) > 1)
                window_share[row] = e[far].mean()
                if df.at[row, label]:
                    earlier = (t[i] - t >= 3) & (t[i] - t <= 11)
                    assert e[earlier].any(), (label, row)
        labels = df[label].to_numpy()
        clip_score = df.groupby(signature)[label].transform("mean").to_numpy()
        tie_break = np.random.default_rng(0).random(len(df)) * 1e-9
        clip_ap = _average_precision(clip_score + tie_break, labels)
        bank_ap = _average_precision(clip_score * (1 + 4 * window_share) + tie_break, labels)
        gains[label] = bank_ap - clip_ap
    assert min(gains.values()) > 0.05 and np.mean(list(gains.values())) > 0.15, gains


def test_actors_of_a_video_look_different():
    rng = np.random.default_rng(0)
    for _ in range(20):
        looks = draw_appearances(rng, 6)
        shirts = {tuple(look.palette[3]) for look in looks}
        assert len(shirts) == 6
