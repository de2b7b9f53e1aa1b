"""One synthetic video: simulate it from its own seed, draw and encode it, list its keyframes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.sources.synthetic.config import SyntheticConfig
from pipeline.sources.synthetic.render import (Appearance, FrameRenderer, draw_appearances,
                                       draw_background, encode_mp4)
from pipeline.sources.synthetic.scene import Track, actor_tracks, keyframe_states
from pipeline.sources.synthetic.script import VideoScript, plan_video
from pipeline.sources.synthetic.sprites import SpriteBank

SPLITS = ("train", "val")


@dataclass
class SimulatedVideo:
    script: VideoScript
    tracks: list[Track]
    appearances: list[Appearance]
    background: np.ndarray
    sprites: SpriteBank

    def renderer(self, fps: int) -> FrameRenderer:
        return FrameRenderer(self.script, self.tracks, self.appearances, self.background,
                             self.sprites, fps)


def simulate_video(config: SyntheticConfig, split: str, index: int) -> SimulatedVideo:
    """Everything about video ``index`` of ``split``, drawn from the seed (config.seed, split,
    index) alone, so a video does not depend on how many others are generated."""
    rng = np.random.default_rng([config.seed, SPLITS.index(split), index])
    script = plan_video(duration_s=config.duration_s, width=config.width, height=config.height,
                        n_actors=config.n_actors,
                        n_distractor_objects=config.n_distractor_objects, rng=rng)
    appearances = draw_appearances(rng, config.n_actors)
    background = draw_background(rng, config.width, config.height)
    sprites = SpriteBank(script.scale)
    tracks = actor_tracks(script, fps=config.fps, n_frames=config.n_frames,
                          patterns=[look.pattern for look in appearances], sprites=sprites)
    return SimulatedVideo(script, tracks, appearances, background, sprites)


def scene_rows(config: SyntheticConfig, video: SimulatedVideo) -> pd.DataFrame:
    """Keyframe rows of a simulated video, timestamps on the AVA clock."""
    scene = keyframe_states(video.script, video.tracks, fps=config.fps,
                            keyframe_seconds=config.keyframe_seconds)
    scene.insert(0, "timestamp", scene.pop("timestamp_s") + config.timestamp_start)
    return scene


def make_video(config: SyntheticConfig, split: str, index: int, video_id: str,
               path: str | Path) -> pd.DataFrame:
    """Simulate, draw and encode one video to ``path``; return its keyframe rows."""
    video = simulate_video(config, split, index)
    renderer = video.renderer(config.fps)
    encode_mp4(path, (renderer.frame(i) for i in range(config.n_frames)), width=config.width,
               height=config.height, fps=config.fps, crf=config.crf)
    scene = scene_rows(config, video)
    scene.insert(0, "split", split)
    scene.insert(1, "video_id", video_id)
    return scene
