"""The synthetic dataset's action classes: AVA ids and names, and the group of each.

The groups differ in where the evidence for a label lies, so that detector heads can be told
apart by their per-group AP:

- ``movement``: the actor's own box within one clip (pose and motion);
- ``object``: the scene just outside the box (an object moving with the actor or touched);
- ``interaction``: another actor in the same clip, further away than the actor's own width;
- ``long_term``: the same actor in other clips of the video, 3 to 12 s earlier.

Ids follow AVA v2.2 where AVA has the action; the long-term classes use unused ids above 80.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.ava.label_map import LabelMap


@dataclass(frozen=True)
class ActionClass:
    id: int
    name: str
    group: str
    key: str  # the boolean column of the scene table that holds this label


CROUCH = ActionClass(3, "crouch/kneel", "movement", "crouch")
JUMP = ActionClass(7, "jump/leap", "movement", "jump")
RUN = ActionClass(10, "run/jog", "movement", "run")
STAND = ActionClass(12, "stand", "movement", "stand")
WALK = ActionClass(14, "walk", "movement", "walk")
CARRY = ActionClass(17, "carry/hold (an object)", "object", "carry")
TOUCH = ActionClass(59, "touch (an object)", "object", "touch")
TALK = ActionClass(79, "talk to (e.g., self, a person, a group)", "interaction", "talk")
WATCH = ActionClass(80, "watch (a person)", "interaction", "watch")
WAIT = ActionClass(81, "wait (after walking in)", "long_term", "wait")
REST = ActionClass(82, "rest (after running)", "long_term", "rest")
PUT_DOWN = ActionClass(83, "have put down (an object)", "long_term", "put_down")

ACTION_CLASSES: tuple[ActionClass, ...] = (
    CROUCH, JUMP, RUN, STAND, WALK, CARRY, TOUCH, TALK, WATCH, WAIT, REST, PUT_DOWN)

GROUPS = ("movement", "object", "interaction", "long_term")


def synthetic_label_map() -> LabelMap:
    """The label map written next to the annotations (``label_type`` records the group)."""
    return LabelMap(ids=tuple(c.id for c in ACTION_CLASSES),
                    names={c.id: c.name for c in ACTION_CLASSES},
                    groups={c.id: c.group for c in ACTION_CLASSES})
