"""Read mmaction2 checkpoints, report how they fit a model, and write the project's own format.

mmaction2 (mmengine) checkpoints are ``torch.save`` dicts with a ``state_dict`` entry next to
``meta``, ``optimizer``, ``message_hub`` ... Those side entries may hold objects of classes this
project does not have (mmengine's ``HistoryBuffer``, numpy arrays). Loading always uses
``torch.load(weights_only=True)``, so no code from the file runs: if the first attempt meets such
classes, their names are read from the file (``get_unsafe_globals_in_checkpoint``) and mapped
to an inert stand-in that only records its arguments, then the file is loaded again, still
weights-only. Globals from modules torch blocks (``os``, ``sys`` ...) are still refused.

Two checkpoint kinds load into a ``Detector``:
- a detector (keys ``backbone.*`` + ``roi_head.*``, the latter including the relation, ACRN
  or a feature-bank operator, as ``roi_head.shared_head``): every key must match, strictly;
- a Kinetics recognizer (``backbone.*`` + ``cls_head.*``): ``cls_head.*`` and the keys the
  backbone declares recognizer-only (``recognizer_only_keys``: a VideoMAE recognizer's
  ``fc_norm``) are dropped, the rest of the backbone must match exactly, and what the
  recognizer cannot provide (the RoI head; the backbone's ``detector_only_keys``, a ViT
  detector's final ``norm``) keeps its fresh initialisation, as in mmaction2's non-strict
  ``init_cfg`` load.

The project's own format is a plain dict ``{"format": "stad-v1", "preset", "config",
"state_dict", "test_short_side", "labels", "frame_convention", "timeline_fps",
"frame_short_side", "bank"}`` where ``config`` is ``dataclasses.asdict(ModelConfig)`` (a
file that stores ``classifier`` and ``relation`` under their earlier names ``head`` and
``shared_head`` reads the same);
``frame_convention``, ``timeline_fps`` and ``frame_short_side`` say which frames the model was
trained on (the keyframe convention, the frame timeline and the decode-time resize of its frame
store), so that ``stad detect`` reads the same pixels from any video. ``bank`` (feature-bank
heads only, :class:`BankRecipe`) is how the DAG built the head's feature bank: the baseline that
computed it and the bank's rules, so that ``stad detect`` builds a new video's own bank from
the head checkpoint alone.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..ava.clock import AVA_FPS
from ..errors import InputError
from ..io import atomic_output
from .config import ModelConfig
from .detector import Detector
from .presets import get_preset

log = logging.getLogger(__name__)

FORMAT = "stad-v1"
# state-dict key prefixes, as mmaction2 spells them
CLS_HEAD = "cls_head."      # a recognizer's classifier
ROI_HEAD = "roi_head."      # a detector's RoI head
BACKBONE = "backbone."
# ModelConfig fields under their earlier names, as older stad-v1 files store them
RENAMED_CONFIG_FIELDS = {"head": "classifier", "shared_head": "relation"}


class UnresolvedObject:
    """Inert stand-in for a class or function a checkpoint refers to but we do not import."""

    def __new__(cls, *args: Any, **kwargs: Any) -> UnresolvedObject:
        obj = super().__new__(cls)
        obj.args = args
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except ValueError as error:  # legacy (pre-zip) file: names cannot be listed
            raise InputError(f"checkpoint holds objects other than tensors and is not in "
                             f"torch's zip format, so it cannot be read safely: {error}",
                             path=path) from None
        with torch.serialization.safe_globals([(UnresolvedObject, name) for name in names]):
            return torch.load(path, map_location="cpu", weights_only=True)


def read_checkpoint(path: str | Path) -> Any:
    """The object stored in a ``torch.save`` file, loaded weights-only (see module doc)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint file not found", path=path)
    try:
        return _torch_load(path)
    except InputError:
        raise
    except Exception as error:  # a damaged file fails in many ways; all are bad input here
        raise InputError(f"cannot read as a torch checkpoint: {type(error).__name__}: {error}",
                         path=path) from None


def load_mmaction2_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """The ``state_dict`` of an mmaction2 checkpoint (or the file itself if it is one)."""
    obj = read_checkpoint(path)
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict) or not state:
        raise InputError("no 'state_dict' entry and not a state dict itself", path=path)
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise InputError(f"state dict entry is not a named tensor ({type(value).__name__})",
                             path=path, key=str(key))
    return dict(state)


@dataclass
class LoadReport:
    """How a state dict fits a model. ``ok`` when nothing is missing, extra or mis-shaped."""

    kind: str                                   # "detector" or "recognizer"
    num_tensors: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)   # a recognizer's cls_head.*, fc_norm.*
    fresh: list[str] = field(default_factory=list)     # model keys a recognizer cannot provide

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def lines(self) -> list[str]:
        out = [f"{self.kind} checkpoint, {self.num_tensors} tensors"]
        sections = [("missing from checkpoint", self.missing),
                    ("unexpected in checkpoint", self.unexpected),
                    ("shape mismatch (checkpoint vs model)",
                     [f"{k} {list(a)} vs {list(b)}" for k, a, b in self.mismatched]),
                    ("ignored (recognizer-only: classification head, pooled norm)", self.ignored),
                    ("left at initialisation (not in a recognizer)", self.fresh)]
        for title, keys in sections:
            if keys:
                out.append(f"{title}: {len(keys)}")
                out.extend(f"  {key}" for key in keys)
        out.append("OK" if self.ok else "MISMATCH")
        return out


def inspect_state_dict(state_dict: dict[str, Tensor], model: Detector) -> LoadReport:
    """Compare a checkpoint's state dict with ``model`` (works on a meta-device model too)."""
    model_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    is_detector = any(k.startswith(ROI_HEAD) for k in state_dict)
    report = LoadReport(kind="detector" if is_detector else "recognizer",
                        num_tensors=len(state_dict))
    if is_detector:
        wanted = model_shapes
    else:
        unused = (CLS_HEAD, *(BACKBONE + key for key in model.backbone.recognizer_only_keys))
        report.ignored = sorted(k for k in state_dict if k.startswith(unused))
        own = tuple(BACKBONE + key for key in model.backbone.detector_only_keys)
        wanted = {k: s for k, s in model_shapes.items()
                  if k.startswith(BACKBONE) and not k.startswith(own)}
        report.fresh = sorted(set(model_shapes) - set(wanted))
    given = {k: tuple(v.shape) for k, v in state_dict.items() if k not in report.ignored}
    report.missing = sorted(set(wanted) - set(given))
    report.unexpected = sorted(set(given) - set(wanted))
    report.mismatched = sorted((k, given[k], wanted[k]) for k in set(given) & set(wanted)
                               if given[k] != wanted[k])
    return report


def load_into(model: Detector, state_dict: dict[str, Tensor], *,
              path: str | Path | None = None) -> LoadReport:
    """Load a detector or recognizer state dict; any mismatch raises InputError with details."""
    report = inspect_state_dict(state_dict, model)
    if not report.ok:
        raise InputError("checkpoint does not fit the model:\n" + "\n".join(report.lines()),
                         path=path)
    kept = {k: v for k, v in state_dict.items() if k not in report.ignored}
    model.load_state_dict(kept, strict=report.kind == "detector")
    return report


@dataclass(frozen=True)
class BankRecipe:
    """How a feature-bank head's bank was built (stage ``infer_lfb``), recorded in the head's
    checkpoint: the baseline's config and backbone (None: the head's own backbone, unchanged
    by a frozen-backbone training, so not stored twice), the bank's rules for a test video's
    rows (proposals scoring >= min(``min_proposal_score``, the keyframe's best), at most
    ``max_proposals`` per keyframe, clips rescaled to ``short_side``, stored as ``dtype``) and
    the window the head reads."""

    baseline_config: ModelConfig
    baseline_backbone: dict[str, Tensor] | None
    dtype: str
    min_proposal_score: float
    max_proposals: int
    short_side: int
    window_seconds: int
    max_per_second: int
    baseline_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values (``asdict`` would deep-copy the backbone's tensors)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**values, "baseline_config": asdict(self.baseline_config)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BankRecipe:
        return cls(**{**values, "baseline_config": stored_model_config(values["baseline_config"])})


def stored_model_config(values: dict[str, Any]) -> ModelConfig:
    """A ``ModelConfig`` as a stad-v1 file stores it, earlier field names mapped to today's."""
    values = {RENAMED_CONFIG_FIELDS.get(name, name): value for name, value in values.items()}
    return ModelConfig.from_dict(values)


def save_stad_checkpoint(path: str | Path, *, model: Detector, preset: str | None,
                         test_short_side: int | None = None,
                         labels: dict[int, str] | None = None,
                         frame_convention: str | None = None,
                         timeline_fps: int | None = None,
                         frame_short_side: int | None = None,
                         bank: BankRecipe | None = None) -> None:
    """Write the project's checkpoint format atomically. ``test_short_side``, ``labels`` (the
    label map it was trained on, id -> name), ``frame_convention``, ``timeline_fps`` and
    ``frame_short_side`` (its frame store's keyframe convention, timeline, None = native, and
    decode-time short side, None = the source size) let ``stad detect`` run it on any video
    with its training's frames, resize and class names; ``bank`` with its feature bank."""
    payload = {"format": FORMAT, "preset": preset, "config": asdict(model.config),
               "state_dict": model.state_dict(), "test_short_side": test_short_side,
               "labels": None if labels is None else {int(k): v for k, v in labels.items()},
               "frame_convention": frame_convention, "timeline_fps": timeline_fps,
               "frame_short_side": frame_short_side,
               "bank": None if bank is None else bank.to_dict()}
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


@dataclass(frozen=True)
class StadCheckpoint:
    """A ``stad-v1`` file's contents; ``test_short_side``, ``labels``, ``frame_convention``,
    ``timeline_fps``, ``frame_short_side`` and ``bank`` are None in files written before they
    were recorded (``timeline_fps`` None also means the native timeline, ``frame_short_side``
    None the source size)."""

    config: ModelConfig
    state_dict: dict[str, Tensor]
    preset: str | None
    test_short_side: int | None
    labels: dict[int, str] | None
    frame_convention: str | None = None
    timeline_fps: int | None = None
    frame_short_side: int | None = None
    bank: BankRecipe | None = None


def read_stad_checkpoint(path: str | Path) -> StadCheckpoint:
    """Everything ``save_stad_checkpoint`` wrote, read once."""
    obj = read_checkpoint(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise InputError(f"not a {FORMAT} checkpoint (format: {found!r}); convert mmaction2 "
                         "checkpoints with 'stad checkpoint convert'", path=path, key="format")
    try:
        config = stored_model_config(obj["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"bad model config: {error}", path=path, key="config") from None
    labels = obj.get("labels")
    try:
        bank = None if obj.get("bank") is None else BankRecipe.from_dict(obj["bank"])
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"bad feature-bank recipe: {error}", path=path, key="bank") from None
    return StadCheckpoint(config=config, state_dict=obj["state_dict"], preset=obj.get("preset"),
                          test_short_side=obj.get("test_short_side"),
                          labels={int(k): str(v) for k, v in labels.items()} if labels else None,
                          frame_convention=obj.get("frame_convention"),
                          timeline_fps=obj.get("timeline_fps"),
                          frame_short_side=obj.get("frame_short_side"), bank=bank)


def load_stad_checkpoint(path: str | Path) -> tuple[ModelConfig, dict[str, Tensor], str | None]:
    """``(config, state_dict, preset)`` from a file written by ``save_stad_checkpoint``."""
    checkpoint = read_stad_checkpoint(path)
    return checkpoint.config, checkpoint.state_dict, checkpoint.preset


def build_detector_from_checkpoint(path: str | Path,
                                   checkpoint: StadCheckpoint | None = None) -> Detector:
    """A ``Detector`` with the configuration and weights of a ``stad-v1`` checkpoint;
    ``checkpoint``: the file's contents when the caller has already read them."""
    checkpoint = checkpoint or read_stad_checkpoint(path)
    config, state_dict = checkpoint.config, checkpoint.state_dict
    with torch.device("meta"):
        model = Detector(config)
    report = inspect_state_dict(state_dict, model)
    if not report.ok or report.kind != "detector":
        raise InputError("state dict does not fit its own config:\n" + "\n".join(report.lines()),
                         path=path, key="state_dict")
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model


def convert(checkpoint: str | Path, *, preset: str, out: str | Path) -> LoadReport:
    """mmaction2 checkpoint -> ``stad-v1`` file for ``preset``.

    A recognizer checkpoint gives a detector whose RoI head is freshly initialised from a fixed
    seed, so converting the same file twice writes the same weights. A detector checkpoint is
    recorded with the clock mmaction2 1.x trains and scores AVA on (30-fps frames, keyframe
    convention ``mmaction2``), which ``stad detect`` then uses; a recognizer records none.
    """
    config = get_preset(preset, key="preset")
    state_dict = load_mmaction2_checkpoint(checkpoint)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Detector(config)
    report = load_into(model, state_dict, path=checkpoint)
    detector = report.kind == "detector"
    save_stad_checkpoint(out, model=model, preset=preset,
                         frame_convention="mmaction2" if detector else None,
                         timeline_fps=AVA_FPS if detector else None)
    return report


def initialise(model: Detector, path: str | Path) -> None:
    """Load a project checkpoint or an mmaction2 detector/recognizer checkpoint into ``model``."""
    obj = read_checkpoint(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        _, state_dict, _ = load_stad_checkpoint(path)
    else:
        state_dict = load_mmaction2_checkpoint(path)
    report = load_into(model, state_dict, path=path)
    log.info("initialised from %s (%s, %d tensors)", path, report.kind, report.num_tensors)
