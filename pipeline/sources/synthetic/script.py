"""The choreography of one synthetic video: what every actor does, second by second.

A director walks through the video in one-second blocks. Block ``b`` covers the seconds
``[b - 0.5, b + 0.5)``, so every keyframe (a whole second) lies in the middle of a block and at
least half a second away from any change of action. At each block the director may start a
conversation between two available actors, and gives every idle actor its next *episode*: a
short sequence of segments, each with one pose, a linear path and a fixed facing.

The episodes are chosen so that every class has look-alike negatives:

- ``arrive``/``dash``: walk or run somewhere, then stand (later labelled "wait" / "rest");
- ``linger``, ``crouch``, ``jump``: stand after no walk or run (the same look, other labels);
- ``touch``: stand with an arm on a fixture; ``gesture``: the same arm pose in the air;
- ``fetch``: walk to a prop, carry it, put it down and leave (later "have put down");
- ``watch``: stand facing an actor who is moving; conversations: two actors face each other.

Labels are not decided here: :mod:`pipeline.sources.synthetic.labels` reads them off the resulting
geometry, so a label is true exactly when its evidence is on screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Design units: pixels at a frame height of 120 px; multiplied by the frame's scale.
WALK_SPEED = (12.0, 20.0)  # px/s
RUN_SPEED = (30.0, 48.0)
MARGIN = 20.0  # actor centres stay this far from the left/right edges
TALK_GAP = (10.0, 20.0)  # free space between the two bodies of a conversation
BODY_HALF_WIDTH = 5.5
REACH = 13.0  # from the body centre to the tip of an outstretched hand (sprites.py)
HAND_HEIGHT = 23.5  # of an outstretched hand above the feet (sprites.py)
PROP_SIZE = 7.0
FIXTURE_SIZE = (10.0, 18.0)  # width, height
FETCH_COOLDOWN_S = 18  # at most one carried prop per actor in this many seconds

MOVING_POSES = ("walk", "run", "jump")

EPISODE_WEIGHTS = {
    "arrive": 2.0, "dash": 3.5, "linger": 0.8, "crouch": 2.0, "jump": 2.0, "gesture": 1.2,
    "touch": 2.0, "fetch": 2.5, "wander": 0.8,
}
TALK_PROBABILITY = 0.08  # per block, when two actors are available
WATCH_PROBABILITY = 0.6  # for an idle actor, when another actor is moving within range
WATCH_DISTANCE = (24.0, 90.0)  # centre distance at which a moving actor is watched


@dataclass
class Segment:
    """One action of one actor over blocks ``[start, end)``, i.e. seconds
    ``[start - 0.5, end - 0.5)``; the body centre moves linearly from ``x0`` to ``x1``."""

    start: int
    end: int
    pose: str
    x0: float
    x1: float
    facing: int
    arm: str = "down"
    prop: int = -1  # index of the prop held, -1 for none
    fixture: int = -1  # index of the fixture touched, -1 for none
    interruptible: bool = False  # an idle stand that a conversation may cut short


@dataclass
class Actor:
    lane: int
    feet_y: float  # px, at the actor's lane
    segments: list[Segment] = field(default_factory=list)
    last_put_down: int = -10**6  # block of the last put-down, for the fetch cooldown

    @property
    def end(self) -> int:
        return self.segments[-1].end if self.segments else 0

    @property
    def x(self) -> float:
        return self.segments[-1].x1

    @property
    def facing(self) -> int:
        return self.segments[-1].facing


@dataclass
class Prop:
    """A small object on the ground, or in the hand of ``carrier`` between two blocks."""

    lane: int
    x_before: float  # ground position before pick-up (centre)
    carrier: int = -1
    pick_up: int = 10**6  # block at whose start it is lifted
    put_down: int = 10**6  # block at whose start it is put back on the ground
    x_after: float = 0.0


@dataclass
class Fixture:
    """A crate standing on a lane, touched by actors and otherwise a distractor."""

    lane: int
    x: float  # centre


@dataclass
class VideoScript:
    duration_s: int
    width: int
    height: int
    scale: float
    lane_feet_y: list[float]
    actors: list[Actor]
    props: list[Prop]
    fixtures: list[Fixture]


class _Director:
    def __init__(self, *, duration_s: int, width: int, height: int, n_actors: int,
                 n_distractor_objects: int, rng: np.random.Generator):
        self.rng = rng
        self.duration_s = duration_s
        self.width, self.height = width, height
        self.scale = height / 120.0
        self.last_block = duration_s  # block of the last frame
        self.lane_feet_y = list(np.linspace(0.6 * height, 0.95 * height, n_actors))
        lanes = rng.permutation(n_actors)
        self.actors = [Actor(lane=int(lane), feet_y=float(self.lane_feet_y[lane]))
                       for lane in lanes]
        self.props: list[Prop] = []
        self.fixtures: list[Fixture] = []
        self.xmin = MARGIN * self.scale
        self.xmax = width - MARGIN * self.scale
        for actor in self.actors:
            x = float(rng.uniform(self.xmin, self.xmax))
            facing = int(rng.choice((-1, 1)))
            actor.segments.append(Segment(0, 0, "stand", x, x, facing))  # zero-length start
        for _ in range(n_distractor_objects):
            lane = int(rng.integers(n_actors))
            x = float(rng.uniform(self.xmin, self.xmax))
            if rng.random() < 0.5:
                self.props.append(Prop(lane=lane, x_before=x))
            else:
                self.fixtures.append(Fixture(lane=lane, x=x))
        self.last_talk = -10**6

    # -- segment helpers -------------------------------------------------------------------

    def _append(self, actor: Actor, n: int, pose: str, dx: float = 0.0, *,
                facing: int | None = None, **kwargs) -> None:
        if n <= 0:
            return
        x0 = actor.x
        if facing is None:
            facing = actor.facing if dx == 0 else (1 if dx > 0 else -1)
        actor.segments.append(Segment(actor.end, actor.end + n, pose, x0, x0 + dx, facing,
                                      **kwargs))

    def _in_bounds(self, x: float) -> bool:
        return self.xmin <= x <= self.xmax

    def _move_plan(self, actor: Actor, speed: tuple[float, float], blocks: tuple[int, int],
                   direction: int | None = None) -> tuple[int, float] | None:
        """(blocks, dx) of a walk or run that stays in the frame, or None if there is no room."""
        vmin, vmax = speed[0] * self.scale, speed[1] * self.scale
        directions = [direction] if direction else [int(self.rng.choice((-1, 1)))]
        if not direction:
            directions.append(-directions[0])
        for d in directions:
            for _ in range(4):
                n = int(self.rng.integers(blocks[0], blocks[1] + 1))
                dx = d * n * float(self.rng.uniform(vmin, vmax))
                if self._in_bounds(actor.x + dx):
                    return n, dx
            room = (self.xmax - actor.x) if d > 0 else (actor.x - self.xmin)
            for n in range(blocks[1], blocks[0] - 1, -1):
                if room / n >= vmin:
                    return n, d * float(self.rng.uniform(vmin, min(vmax, room / n)))
        return None

    def _idle(self, actor: Actor, blocks: tuple[int, int], *,
              turn_probability: float = 0.3) -> None:
        facing = actor.facing * (-1 if self.rng.random() < turn_probability else 1)
        self._append(actor, int(self.rng.integers(blocks[0], blocks[1] + 1)), "stand",
                     facing=facing, interruptible=True)

    # -- episodes ---------------------------------------------------------------------------

    def _arrive(self, actor: Actor, pose: str, blocks: tuple[int, int]) -> bool:
        """Walk or run somewhere, then stand: the origin of "wait" and "rest" labels."""
        move = self._move_plan(actor, WALK_SPEED if pose == "walk" else RUN_SPEED, blocks)
        if move is None:
            return False
        n, dx = move
        self._append(actor, n, pose, dx)
        self._idle(actor, (4, 10), turn_probability=0.2)
        return True

    def _fixture_in_front(self, actor: Actor) -> int:
        """Index of a fixture just out of reach in front of the actor (made if missing)."""
        x = actor.x + actor.facing * (REACH + FIXTURE_SIZE[0] / 2) * self.scale
        for k, fixture in enumerate(self.fixtures):
            if fixture.lane == actor.lane and abs(fixture.x - x) < 1.0:
                return k
        self.fixtures.append(Fixture(lane=actor.lane, x=x))
        return len(self.fixtures) - 1

    def _touch(self, actor: Actor) -> bool:
        """Put a hand on a crate, after walking up to it or where the actor stands."""
        if self.rng.random() < 0.5:
            move = self._move_plan(actor, WALK_SPEED, (2, 4))
            if move is None:
                return False
            self._append(actor, move[0], "walk", move[1])
        elif self.rng.random() < 0.5:
            self._append(actor, 1, "stand", facing=-actor.facing)  # turn around first
        far_edge = actor.x + actor.facing * (REACH + FIXTURE_SIZE[0]) * self.scale
        if not 0 <= far_edge <= self.width:
            return False
        fixture = self._fixture_in_front(actor)
        self._append(actor, int(self.rng.integers(3, 6)), "stand", arm="reach", fixture=fixture)
        self._idle(actor, (1, 6), turn_probability=0.5)
        return True

    def _fetch(self, actor: Actor) -> bool:
        """Walk to a prop, carry it, put it down and walk away: "carry", then "have put down"."""
        approach = self._move_plan(actor, WALK_SPEED, (2, 4))
        if approach is None:
            return False
        self._append(actor, approach[0], "walk", approach[1])
        pick_up = actor.end
        x_ground = actor.x + actor.facing * (REACH + PROP_SIZE / 2) * self.scale
        prop_index = len(self.props)
        carry = self._move_plan(actor, WALK_SPEED, (2, 4))
        if carry is None:
            self._idle(actor, (2, 4))
            return True  # the prop is not created: the approach was just a walk
        self._append(actor, carry[0], "walk", carry[1], arm="reach", prop=prop_index)
        hold = int(self.rng.integers(1, 4))
        self._append(actor, hold, "stand", arm="reach", prop=prop_index)
        put_down = actor.end
        x_after = actor.x + actor.facing * (REACH + PROP_SIZE / 2) * self.scale
        self.props.append(Prop(lane=actor.lane, x_before=x_ground, carrier=self.actors.index(actor),
                               pick_up=pick_up, put_down=put_down, x_after=x_after))
        actor.last_put_down = put_down
        # Walk away (turning round if there is room) so the prop is not left at the actor's
        # feet: having put it down must not be visible in the clips that carry the label.
        leave = (self._move_plan(actor, WALK_SPEED, (2, 3), direction=-actor.facing)
                 or self._move_plan(actor, WALK_SPEED, (2, 3)))
        if leave is not None:
            self._append(actor, leave[0], "walk", leave[1])
        self._idle(actor, (1, 4))
        return True

    def _episode(self, actor: Actor, b: int) -> None:
        names = list(EPISODE_WEIGHTS)
        weights = np.array([EPISODE_WEIGHTS[name] for name in names])
        if b - actor.last_put_down < FETCH_COOLDOWN_S or b + 12 > self.last_block:
            weights[names.index("fetch")] = 0.0
        while True:
            name = names[int(self.rng.choice(len(names), p=weights / weights.sum()))]
            done = True
            if name == "arrive":
                done = self._arrive(actor, "walk", (3, 6))
            elif name == "dash":
                done = self._arrive(actor, "run", (2, 3))
            elif name == "linger":
                self._idle(actor, (2, 6), turn_probability=0.5)
            elif name in ("crouch", "jump"):
                self._append(actor, int(self.rng.integers(3, 6)), name)
                self._idle(actor, (1, 6), turn_probability=0.3)
            elif name == "gesture":
                self._append(actor, int(self.rng.integers(2, 4)), "stand", arm="reach")
                self._idle(actor, (1, 4), turn_probability=0.3)
            elif name == "touch":
                done = self._touch(actor)
            elif name == "fetch":
                done = self._fetch(actor)
            elif name == "wander":
                move = self._move_plan(actor, WALK_SPEED, (2, 5))
                done = move is not None
                if done:
                    self._append(actor, move[0], "walk", move[1])
            if done:
                return
            weights[names.index(name)] = 0.0

    def _watch(self, actor: Actor, b: int) -> bool:
        """Stand (or crouch) facing an actor who keeps moving for at least two more blocks."""
        targets = []
        for other in self.actors:
            if other is actor:
                continue
            segment = next((s for s in other.segments if s.start <= b < s.end), None)
            if segment is None or segment.pose not in MOVING_POSES or segment.end - b < 2:
                continue
            x_other = segment.x0 + (segment.x1 - segment.x0) * (b - segment.start) / (
                segment.end - segment.start)
            distance = abs(x_other - actor.x)
            if WATCH_DISTANCE[0] * self.scale <= distance <= WATCH_DISTANCE[1] * self.scale:
                targets.append((x_other, segment.end - b))
        if not targets or self.rng.random() >= WATCH_PROBABILITY:
            return False
        x_other, remaining = targets[int(self.rng.integers(len(targets)))]
        n = min(remaining, int(self.rng.integers(2, 5)))
        pose = "crouch" if self.rng.random() < 0.25 else "stand"
        self._append(actor, n, pose, facing=1 if x_other > actor.x else -1)
        return True

    def _available(self, actor: Actor, b: int) -> bool:
        last = actor.segments[-1]
        if last.prop >= 0:
            return False
        return actor.end == b or (last.interruptible and last.start + 2 <= b < last.end)

    def _talk(self, b: int) -> None:
        """Two available actors meet: one walks up to the other, then both face each other."""
        available = [a for a in self.actors if self._available(a, b)]
        if (len(available) < 2 or b - self.last_talk < 6 or b + 8 > self.last_block
                or self.rng.random() >= TALK_PROBABILITY):
            return
        pick = self.rng.choice(len(available), size=2, replace=False)
        walker, host = available[int(pick[0])], available[int(pick[1])]
        for actor in (walker, host):
            if actor.end > b:
                actor.segments[-1].end = b
        distance = (2 * BODY_HALF_WIDTH + float(self.rng.uniform(*TALK_GAP))) * self.scale
        side = 1 if walker.x > host.x else -1
        if not self._in_bounds(host.x + side * distance):
            side = -side
        dx = host.x + side * distance - walker.x
        n = int(np.ceil(abs(dx) / (WALK_SPEED[1] * self.scale)))
        self._append(walker, n, "walk", dx)
        self._append(host, n, "stand", facing=side)
        talk = int(self.rng.integers(3, 7))
        self._append(walker, talk, "stand", facing=-side)
        self._append(host, talk, "stand", facing=side)
        self.last_talk = b

    def run(self) -> VideoScript:
        for b in range(self.last_block + 1):
            self._talk(b)
            for k in self.rng.permutation(len(self.actors)):
                actor = self.actors[int(k)]
                if actor.end <= b:
                    if not self._watch(actor, b):
                        self._episode(actor, b)
        for actor in self.actors:
            actor.segments = [s for s in actor.segments if s.end > s.start]
        return VideoScript(duration_s=self.duration_s, width=self.width, height=self.height,
                           scale=self.scale, lane_feet_y=self.lane_feet_y, actors=self.actors,
                           props=self.props, fixtures=self.fixtures)


def plan_video(*, duration_s: int, width: int, height: int, n_actors: int,
               n_distractor_objects: int, rng: np.random.Generator) -> VideoScript:
    """The choreography of one video, deterministic given ``rng``'s state."""
    return _Director(duration_s=duration_s, width=width, height=height, n_actors=n_actors,
                     n_distractor_objects=n_distractor_objects, rng=rng).run()
