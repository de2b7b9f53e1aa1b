"""Drawing the frames of a scripted video and encoding them to H.264 mp4 with PyAV.

Backgrounds are muted and textured (a horizon, far blocks, low-frequency and fine noise) so
actors and objects stand out by colour but a detector still has to look for their shape.
The encoder runs single-threaded with a fixed GOP of one second, so the same script gives the
same bytes and every keyframe second starts a GOP (cheap seeking for clip decoding).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from pipeline.sources.synthetic.scene import POSES, Track, prop_position
from pipeline.sources.synthetic.script import FIXTURE_SIZE, PROP_SIZE, VideoScript
from pipeline.sources.synthetic.sprites import (BAG, DARK, HAIR, N_PARTS, PATTERN, PATTERNS, SHIRT, SHOES,
                                        SKIN, TROUSERS, SpriteBank)

SHIRT_COLOURS = [(205, 35, 35), (35, 75, 210), (35, 165, 55), (245, 140, 20), (145, 45, 175),
                 (25, 175, 195), (235, 215, 35), (225, 70, 155), (240, 240, 240), (40, 40, 40)]
TROUSER_COLOURS = [(40, 45, 115), (30, 30, 30), (105, 70, 40), (115, 115, 115), (175, 155, 105)]
SKIN_COLOURS = [(240, 200, 170), (215, 165, 125), (165, 115, 80), (105, 72, 48)]
HAIR_COLOURS = [(30, 20, 10), (95, 58, 25), (205, 175, 95), (155, 155, 155)]
PROP_COLOURS = [(255, 225, 0), (0, 225, 225), (255, 0, 205), (255, 125, 0), (130, 255, 60)]
FIXTURE_COLOUR = (150, 100, 50)


@dataclass(frozen=True)
class Appearance:
    """How one actor looks: a palette indexed by sprite part id, and a shirt pattern."""

    palette: np.ndarray  # uint8 [N_PARTS, 3]
    pattern: str


def draw_appearances(rng: np.random.Generator, n_actors: int) -> list[Appearance]:
    """Distinct shirt colours within a video, so each actor is recognisable across clips."""
    shirts = rng.choice(len(SHIRT_COLOURS), size=n_actors, replace=False)
    appearances = []
    for shirt in shirts:
        palette = np.zeros((N_PARTS, 3), np.uint8)
        colour = np.array(SHIRT_COLOURS[int(shirt)])
        palette[SHIRT] = colour
        palette[PATTERN] = (30, 30, 30) if colour.mean() > 150 else (235, 235, 235)
        palette[SKIN] = SKIN_COLOURS[int(rng.integers(len(SKIN_COLOURS)))]
        palette[HAIR] = HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))]
        palette[TROUSERS] = TROUSER_COLOURS[int(rng.integers(len(TROUSER_COLOURS)))]
        palette[SHOES] = (25, 25, 25)
        palette[DARK] = (12, 12, 12)
        palette[BAG] = (70, 50, 35)
        appearances.append(Appearance(palette=palette,
                                      pattern=PATTERNS[int(rng.integers(len(PATTERNS)))]))
    return appearances


def _muted(rng: np.random.Generator, amount: float = 0.35) -> np.ndarray:
    colour = rng.uniform(40, 215, size=3)
    return colour.mean() + (colour - colour.mean()) * amount


def draw_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A static textured backdrop: sky and far blocks above a horizon, ground below."""
    image = np.empty((height, width, 3), np.float64)
    horizon = int(height * rng.uniform(0.28, 0.42))
    rows = np.arange(height)[:, None, None]
    sky_top, sky_bottom, ground = _muted(rng), _muted(rng), _muted(rng)
    fraction = np.clip(rows / max(horizon, 1), 0, 1)
    image[:] = sky_top + (sky_bottom - sky_top) * fraction
    image[horizon:] = ground + 12.0 * np.sin(rows[horizon:] * 0.9) * np.sqrt(
        (rows[horizon:] - horizon) / height)
    for _ in range(int(rng.integers(3, 8))):
        w = int(rng.integers(width // 16, width // 4))
        h = int(rng.integers(height // 12, horizon + 1))
        x = int(rng.integers(0, width - w))
        image[max(0, horizon - h):horizon, x:x + w] = _muted(rng, 0.25)
    coarse = rng.normal(0.0, 1.0, size=(6, 8, 3))
    smooth = np.stack([np.asarray(Image.fromarray(coarse[..., c].astype(np.float32)).resize(
        (width, height), Image.BILINEAR)) for c in range(3)], axis=-1)
    image += 16.0 * smooth + rng.normal(0.0, 5.0, size=(height, width, 1))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _paste(frame: np.ndarray, ids: np.ndarray, palette: np.ndarray, left: int, top: int) -> None:
    h, w = ids.shape
    fh, fw = frame.shape[:2]
    r0, c0 = max(0, top), max(0, left)
    r1, c1 = min(fh, top + h), min(fw, left + w)
    if r0 >= r1 or c0 >= c1:
        return
    sub = ids[r0 - top:r1 - top, c0 - left:c1 - left]
    mask = sub > 0
    frame[r0:r1, c0:c1][mask] = palette[sub[mask]]


def _block(size_w: float, size_h: float, scale: float, stripes: bool) -> np.ndarray:
    """Part ids of a filled rectangle with a dark outline (1 = fill, 2 = outline)."""
    w, h = max(3, round(size_w * scale)), max(3, round(size_h * scale))
    ids = np.full((h, w), 2, np.uint8)
    ids[1:-1, 1:-1] = 1
    if stripes:
        ids[1:-1][::4] = 2
    return ids


class FrameRenderer:
    """Draws one frame at a time for one scripted video."""

    def __init__(self, script: VideoScript, tracks: list[Track], appearances: list[Appearance],
                 background: np.ndarray, sprites: SpriteBank, fps: int):
        self.script, self.tracks, self.appearances = script, tracks, appearances
        self.background, self.sprites, self.fps = background, sprites, fps
        self.prop_ids = _block(PROP_SIZE, PROP_SIZE, script.scale, stripes=False)
        self.fixture_ids = _block(*FIXTURE_SIZE, script.scale, stripes=True)
        self.prop_palettes = [np.array([(0, 0, 0), PROP_COLOURS[k % len(PROP_COLOURS)],
                                        (20, 20, 20)], np.uint8) for k in range(len(script.props))]
        self.fixture_palette = np.array([(0, 0, 0), FIXTURE_COLOUR, (70, 45, 20)], np.uint8)

    def frame(self, i: int) -> np.ndarray:
        script = self.script
        image = self.background.copy()
        # (depth, order within a lane, draw call): far lanes first; on a lane, objects on the
        # ground, then actors, then props in hand.
        items = []
        for fixture in script.fixtures:
            fy = script.lane_feet_y[fixture.lane]
            h, w = self.fixture_ids.shape
            items.append((fy, 0, self.fixture_ids, self.fixture_palette,
                          int(round(fixture.x)) - w // 2, int(round(fy)) - h))
        for k in range(len(script.props)):
            x, y, held = prop_position(script, self.tracks, k, i, self.fps)
            h, w = self.prop_ids.shape
            depth = script.lane_feet_y[script.props[k].lane]
            items.append((depth, 2 if held else 0, self.prop_ids, self.prop_palettes[k],
                          int(round(x)) - w // 2, int(round(y)) - h // 2))
        for track, actor, look in zip(self.tracks, script.actors, self.appearances):
            stamp = self.sprites.get(look.pattern, POSES[track.pose[i]], int(track.phase[i]),
                                     "reach" if track.reach[i] else "down", int(track.facing[i]))
            ox, oy = stamp.origin
            items.append((actor.feet_y, 1, stamp.ids, look.palette,
                          int(np.rint(track.x[i])) - ox, int(np.rint(track.feet_y[i])) - oy))
        for _, _, ids, palette, left, top in sorted(items, key=lambda item: item[:2]):
            _paste(image, ids, palette, left, top)
        return image


def encode_mp4(path: str | Path, frames, *, width: int, height: int, fps: int, crf: int) -> None:
    """H.264 (libx264, yuv420p) with a keyframe every ``fps`` frames, single-threaded so the
    bytes are reproducible."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        gop = f"keyint={fps}:min-keyint={fps}:scenecut=0:bframes=0:threads=1"
        stream.options = {"crf": str(crf), "preset": "veryfast", "x264-params": gop}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
