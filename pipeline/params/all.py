"""Every params group at once: ``stad params check``, preset overlays and the tests.

Here live what concerns the whole file: the class of each group, the checks between groups
(run when both are loaded) and the keys no stage declares because they change only how fast or
where a stage runs. Stages do not import this module (their code deps would then hold every
group's code); they load their own groups (``pipeline.tasks.<stage>.GROUPS``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.data.config import RUNTIME_FIELDS as DATA_RUNTIME_FIELDS
from pipeline.engine.config import RUNTIME_FIELDS
from pipeline.errors import InputError
from pipeline.frames.spec import clip_reach
from pipeline.params.baseline import BaselineParams
from pipeline.params.data import DataParams
from pipeline.params.evaluation import EvalParams
from pipeline.params.frames import FramesParams
from pipeline.params.lfb import LfbParams
from pipeline.params.model import ModelParams
from pipeline.params.proposals import ProposalParams
from pipeline.params.schema import GROUP_NAMES, PARAMS_FILE, Params, load_params

GROUPS: dict[str, type] = {
    "data": DataParams,
    "frames": FramesParams,
    "proposals": ProposalParams,
    "baseline": BaselineParams,
    "lfb": LfbParams,
    "model": ModelParams,
    "eval": EvalParams,
}
assert tuple(GROUPS) == GROUP_NAMES


RUNTIME_KEYS: tuple[str, ...] = (
    "frames.workers",
    "proposals.detector.batch_size", "proposals.detector.device",
    *(f"{group}.train.{name}" for group in ("baseline", "model") for name in RUNTIME_FIELDS),
    *(f"baseline.data.{name}" for name in DATA_RUNTIME_FIELDS),
    "baseline.num_threads", "model.num_threads",
    "lfb.in_memory", "lfb.batch_size", "lfb.num_workers", "lfb.device", "lfb.num_threads",
    "eval.batch_size", "eval.num_workers", "eval.device", "eval.num_threads",
)
"""Keys that change how fast or where a stage runs, never what it writes (workers, threads,
devices, inference batch sizes, validation and checkpoint frequency, holding the bank in RAM):
no stage declares them in dvc.yaml, so changing one reruns nothing (tests/test_params.py and
tests/test_params_dvc.py check it). Resume treats them alike (``RUNTIME_FIELDS``)."""


def load_all(path: str | Path = PARAMS_FILE, groups: tuple[str, ...] | None = None) -> Params:
    """Load and validate ``groups`` (all when None; a dotted key loads its whole group) and
    check the constraints between the loaded groups."""
    names = GROUP_NAMES if groups is None else tuple(dict.fromkeys(
        name.split(".")[0] for name in groups))
    for name in names:
        if name not in GROUPS:
            raise InputError(f"unknown params group; known groups: {', '.join(sorted(GROUPS))}",
                             path=path, key=name)
    loaded = load_params({name: GROUPS[name] for name in names}, path)
    check_across_groups(vars(loaded), path=Path(path))
    return loaded


class UpscaledClipsWarning(UserWarning):
    """Train clips rescaled above the stored frames' short side."""


def check_across_groups(loaded: Mapping[str, Any], *, path: Path | None = None) -> None:
    """Constraints between groups, checked when both groups are loaded (``stad params check``
    loads all); the error names both keys."""
    frames, baseline = loaded.get("frames"), loaded.get("baseline")
    if frames is None or baseline is None:
        return

    def fail(key: str, message: str) -> None:
        raise InputError(message, path=path, key=key)

    data = baseline.data
    if frames.short_side is not None:
        if max(data.short_side_range) > frames.short_side:
            # allowed (a scale augmentation may upscale; the embedded default does, and its
            # seed table was measured so), but never silent
            warnings.warn(f"baseline.data.short_side_range rescales train clips up to a short "
                          f"side of {max(data.short_side_range)}, above the stored "
                          f"frames.short_side {frames.short_side}: those clips are upscaled "
                          "from the stored frames (lower the range or store larger frames "
                          "to avoid it)", UpscaledClipsWarning, stacklevel=2)
        if data.test_short_side > frames.short_side:
            fail("baseline.data.test_short_side",
                 f"{data.test_short_side} is above the stored frames.short_side "
                 f"{frames.short_side}: test clips would be upscaled")
    model = baseline.model_config(num_classes=81)
    needed = clip_reach(model.clip_len, model.frame_interval, data.temporal_jitter)
    if needed[0] > frames.reach[0] or needed[1] > frames.reach[1]:
        fail("frames.reach",
             f"{list(frames.reach)} frames (before, after each keyframe) are stored, but the "
             f"baseline's {model.clip_len}x{model.frame_interval} clip (baseline.model.clip_len, "
             "baseline.model.frame_interval"
             + (", with baseline.data.temporal_jitter" if data.temporal_jitter else "")
             + f") reads {list(needed)}: raise frames.reach or shorten the clip")
