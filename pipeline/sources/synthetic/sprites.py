"""Person-like sprites drawn procedurally: one small part-id image ("stamp") per pose frame.

A stamp holds part ids (skin, hair, shirt, shirt pattern, trousers, shoes, dark details), not
colours, so one set of stamps serves every actor; an actor's palette maps ids to its own
colours, which makes its identity visible across the video. Geometry is designed at a frame
height of 120 px (actor 36 px tall) and scaled by ``scale``. Stamps face right; facing left
is the mirror image. Facing shows at several scales: the cap brim, eye and shoe tips point
forward and a backpack sits on the back, so it stays visible in small or blurred frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SKIN, HAIR, SHIRT, PATTERN, TROUSERS, SHOES, DARK, BAG = 1, 2, 3, 4, 5, 6, 7, 8
N_PARTS = 9
PATTERNS = ("solid", "horizontal_stripes", "vertical_stripes")

WALK_PERIOD_S = 0.8
RUN_PERIOD_S = 0.44
JUMP_PERIOD_S = 0.6
JUMP_HEIGHT = 10.0  # px at scale 1
PHASES = 8  # animation frames per walk/run cycle

_CANVAS_W, _CANVAS_H, _FEET_Y = 44, 46, 43  # at scale 1; feet centre at (_CANVAS_W / 2, _FEET_Y)


@dataclass(frozen=True)
class Stamp:
    """Part ids of one pose frame facing right, and where it sits relative to the feet.

    ``box`` is the tight box of drawn pixels relative to the feet centre (x1, y1, x2, y2, with
    x2/y2 exclusive); ``hand`` is the hand position relative to the feet centre.
    """

    ids: np.ndarray  # uint8 [h, w]
    origin: tuple[int, int]  # (column, row) of the feet centre inside ``ids``
    box: tuple[int, int, int, int]
    hand: tuple[float, float]

    def mirrored(self) -> "Stamp":
        w = self.ids.shape[1]
        ox, oy = self.origin
        x1, y1, x2, y2 = self.box
        return Stamp(ids=np.ascontiguousarray(self.ids[:, ::-1]), origin=(w - ox, oy),
                     box=(-x2, y1, -x1, y2), hand=(-self.hand[0], self.hand[1]))


class _Canvas:
    """Rasterises primitives at pixel centres, in coordinates relative to the feet centre."""

    def __init__(self, scale: float):
        self.scale = scale
        self.w, self.h = round(_CANVAS_W * scale), round(_CANVAS_H * scale)
        self.ox, self.oy = self.w // 2, round(_FEET_Y * scale)
        self.ids = np.zeros((self.h, self.w), np.uint8)
        ys, xs = np.mgrid[0:self.h, 0:self.w]
        # Pixel centres in design units relative to the feet centre.
        self.x = (xs + 0.5 - self.ox) / scale
        self.y = (ys + 0.5 - self.oy) / scale

    def capsule(self, p0, p1, radius, part):
        (x0, y0), (x1, y1) = p0, p1
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy
        u = np.clip(((self.x - x0) * dx + (self.y - y0) * dy) / length2, 0, 1) if length2 else 0
        dist2 = (self.x - x0 - u * dx) ** 2 + (self.y - y0 - u * dy) ** 2
        self.ids[dist2 <= radius * radius] = part

    def limb(self, points, radius, part):
        for p0, p1 in zip(points[:-1], points[1:]):
            self.capsule(p0, p1, radius, part)

    def polygon(self, points, part, where=None):
        """Fill a convex polygon given clockwise in screen coordinates (y down)."""
        inside = np.ones(self.ids.shape, bool)
        for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]):
            inside &= (x1 - x0) * (self.y - y0) - (y1 - y0) * (self.x - x0) >= 0
        if where is not None:
            inside &= where
        self.ids[inside] = part
        return inside


def _torso(c: _Canvas, hip, neck, half_width, pattern):
    (hx, hy), (nx, ny) = hip, neck
    # Backpack behind the upper torso (drawn first, the torso overlaps its front half).
    top, bottom = ny + 1.0, ny + 0.65 * (hy - ny)
    lean = (nx - hx) / (ny - hy)
    back_top, back_bottom = nx - half_width, hx - half_width + (bottom - hy) * lean
    c.polygon([(back_top - 3.2, top), (back_top + 1.0, top), (back_bottom + 1.0, bottom),
               (back_bottom - 3.2, bottom)], BAG)
    inside = c.polygon([(nx - half_width, ny), (nx + half_width, ny),
                        (hx + half_width, hy), (hx - half_width, hy)], SHIRT)
    if pattern == "horizontal_stripes":
        band = np.floor((c.y - ny) / 2.5).astype(int) % 2 == 1
        c.ids[inside & band] = PATTERN
    elif pattern == "vertical_stripes":
        offset = (c.x - (hx + nx) / 2) - (c.y - hy) * (nx - hx) / (ny - hy)
        c.ids[inside & (np.abs(offset) <= 1.3)] = PATTERN


def _head(c: _Canvas, centre):
    cx, cy = centre
    r = 4.3
    head = (c.x - cx) ** 2 + (c.y - cy) ** 2 <= r * r
    c.ids[head] = SKIN
    c.ids[head & (c.y < cy - 1.2)] = HAIR
    c.ids[head & (c.x < cx - 2.2) & (c.y < cy + 1.5)] = HAIR
    c.polygon([(cx + 1.0, cy - 2.6), (cx + 7.0, cy - 2.6), (cx + 7.0, cy - 1.0),
               (cx + 1.0, cy - 1.0)], DARK)  # cap brim: shows the facing direction
    c.capsule((cx + 2.3, cy + 0.4), (cx + 2.3, cy + 0.4), 0.9, DARK)  # eye


def _leg(c: _Canvas, hip, knee, foot):
    c.limb([hip, knee, foot], 1.9, TROUSERS)
    c.capsule((foot[0] - 0.5, foot[1]), (foot[0] + 2.2, foot[1]), 1.4, SHOES)


def _arm(c: _Canvas, shoulder, elbow, hand):
    c.limb([shoulder, elbow, hand], 1.6, SHIRT)
    c.capsule(hand, hand, 1.5, SKIN)


def _draw(pose: str, phase: float, arm: str, pattern: str, scale: float) -> Stamp:
    """One pose frame. ``phase`` in [0, 1) is the position in the walk/run/jump cycle."""
    c = _Canvas(scale)
    s = math.sin(2 * math.pi * phase)
    co = math.cos(2 * math.pi * phase)
    if pose in ("stand", "walk"):
        stride = 0.0 if pose == "stand" else 5.5 * s
        hip, neck, head = (0.0, -16.0), (0.0, -28.5), (0.5, -33.0)
        feet = [(-2.0 + stride, -1.6), (2.0 - stride, -1.6)]
        lift = [0.0, 0.0] if pose == "stand" else [1.5 * max(0.0, co), 1.5 * max(0.0, -co)]
        for (fx, fy), up in zip(feet, lift):
            _leg(c, (hip[0] + 0.4 * fx, hip[1]), (0.5 * fx + 0.6, -8.5 - up), (fx, fy - up))
        _torso(c, hip, neck, 4.6, pattern)
        _head(c, head)
        shoulder = (1.0, -27.0)
        if arm == "reach":
            hand = (11.5, -23.5)
            _arm(c, shoulder, (6.0, -25.0), hand)
        else:
            swing = 0.0 if pose == "stand" else -4.0 * s
            hand = (1.5 + swing, -17.0)
            _arm(c, shoulder, (1.2 + 0.5 * swing, -22.0), hand)
    elif pose == "run":
        lean = 3.0
        hip, neck, head = (0.0, -15.5), (lean, -27.5), (lean + 1.0, -32.0)
        stride = 8.5 * s
        feet = [(stride, -1.6 - 5.0 * max(0.0, co)), (-stride, -1.6 - 5.0 * max(0.0, -co))]
        for fx, fy in feet:
            _leg(c, hip, (0.5 * fx + 3.0, -9.0 - 0.3 * (-1.6 - fy)), (fx, fy))
        _torso(c, hip, neck, 4.4, pattern)
        _head(c, head)
        shoulder = (lean, -26.0)
        swing = -5.0 * s
        hand = (lean + swing + 3.0, -20.0)
        if arm == "reach":
            hand = (lean + 10.5, -23.0)
        _arm(c, shoulder, (lean + 0.6 * swing, -21.0), hand)
    elif pose == "jump":
        airborne = phase >= 0.5  # jump stamps use phase 0 (take-off) and 0.5 (in the air)
        hip, neck, head = (0.0, -16.0), (0.0, -28.5), (0.5, -33.0)
        if airborne:
            for dx in (-1.5, 1.5):
                _leg(c, (dx, -16.0), (dx + 4.0, -11.0), (dx + 0.5, -6.5))
        else:
            for dx in (-2.0, 2.0):
                _leg(c, (dx * 0.6, -16.0), (dx + 3.0, -8.5), (dx, -1.6))
        _torso(c, hip, neck, 4.6, pattern)
        _head(c, head)
        shoulder = (1.0, -27.5)
        hand = (4.5, -40.0)
        _arm(c, shoulder, (3.0, -33.5), hand)
    elif pose == "crouch":
        hip, neck, head = (-1.5, -8.0), (1.5, -19.5), (2.5, -24.0)
        for dx in (-1.0, 1.0):
            _leg(c, (hip[0] + dx, hip[1]), (5.0 + dx, -9.0), (3.0 + dx, -1.6))
        _torso(c, hip, neck, 4.6, pattern)
        _head(c, head)
        shoulder = (2.5, -18.5)
        hand = (12.0, -16.0) if arm == "reach" else (7.5, -9.5)
        _arm(c, shoulder, (6.0, -14.5) if arm != "reach" else (7.0, -17.5), hand)
    else:
        raise ValueError(f"unknown pose {pose!r}")
    rows = np.flatnonzero(c.ids.any(axis=1))
    cols = np.flatnonzero(c.ids.any(axis=0))
    box = (int(cols[0]) - c.ox, int(rows[0]) - c.oy, int(cols[-1]) + 1 - c.ox,
           int(rows[-1]) + 1 - c.oy)
    return Stamp(ids=c.ids, origin=(c.ox, c.oy), box=box,
                 hand=(hand[0] * scale, hand[1] * scale))


class SpriteBank:
    """All stamps for one frame scale, drawn once and looked up per frame.

    Keys are ``(pattern, pose, phase_index, arm, facing)``; walk and run have ``PHASES``
    phases, jump has two (on the ground, in the air), stand and crouch one.
    """

    def __init__(self, scale: float):
        self.scale = scale
        self._stamps: dict[tuple, Stamp] = {}

    def get(self, pattern: str, pose: str, phase_index: int, arm: str, facing: int) -> Stamp:
        key = (pattern, pose, phase_index, arm, facing)
        stamp = self._stamps.get(key)
        if stamp is None:
            if facing < 0:
                stamp = self.get(pattern, pose, phase_index, arm, 1).mirrored()
            else:
                phase = phase_index / (2 if pose == "jump" else PHASES)
                stamp = _draw(pose, phase, arm, pattern, self.scale)
            self._stamps[key] = stamp
        return stamp
