"""Typed params: params.yaml loaded into frozen dataclasses and validated once, at load.

params.yaml is the single source of configuration. Each top-level group (``data``, ``frames``,
``proposals``, ...) maps onto one dataclass, and every key must be present in the file: no
hidden defaults in code, so what DVC tracks is exactly what a stage runs with. A stage loads only
the groups it declares in dvc.yaml (``load_params(groups=...)``); a test checks the two agree,
so a change to an undeclared key can never go unnoticed by DVC.

Errors name the file and the dotted key: an unknown key, a key given twice (with both lines),
a missing key, a value of the wrong type, a number that is not finite (every float key), or an
impossible value (checked by the dataclasses' ``__post_init__``).
"""

from __future__ import annotations

import dataclasses
import io
import math
import types
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline.errors import InputError
from pipeline.io import write_text
from pipeline.data.config import RUNTIME_FIELDS as DATA_RUNTIME_FIELDS
from pipeline.data.config import DataConfig
from pipeline.devices import check_device
from pipeline.engine.config import RUNTIME_FIELDS, TrainConfig
from pipeline.frames.spec import FrameSpec
from pipeline.lfb.window import BankWindow
from pipeline.models.config import ModelConfig
from pipeline.models.presets import get_preset
from pipeline.proposals.simulate import SimulatedDetector
from pipeline.sources.synthetic import SyntheticConfig

PARAMS_FILE = "params.yaml"


# --------------------------------------------------------------------------------------------
# Groups. Library dataclasses are reused where a group maps onto one 1:1.

@dataclass(frozen=True)
class AvaSourceParams:
    """A real AVA download (``data.source: ava``), laid out as ``pipeline.sources.manifest`` reads it."""

    root: str                  # folder with annotations/ and videos/
    version: Literal["2.1", "2.2"]
    video_start: int           # movie second at each video's first frame (900: cut clips, 0: movies)
    skip_missing_videos: bool  # True: leave out missing or truncated videos, counted in metrics


@dataclass(frozen=True)
class CustomSourceParams:
    """A folder of your own videos and AVA-format CSVs (``data.source: custom``), laid out as
    ``pipeline.sources.custom`` reads it."""

    root: str                  # folder with videos/, annotations/ (and optionally proposals/)
    skip_missing_videos: bool  # True: leave out missing, unreadable or short videos, listed in metrics


@dataclass(frozen=True)
class KineticsSourceParams:
    """The Kinetics part of AVA-Kinetics (``data.source: ava_kinetics``; the AVA part is
    ``data.ava``), laid out as ``pipeline.sources.ava_kinetics`` reads it."""

    root: str                  # folder with annotations/kinetics_{train,val}_v1.0.csv and videos/
    skip_missing_clips: bool   # True: leave out missing or corrupt clips, listed in metrics
    use_val: bool              # True: val is AVA-Kinetics val (+ kinetics_val_v1.0.csv); False: AVA v2.2 val


@dataclass(frozen=True)
class DataParams:
    """Which dataset the DAG runs on (``make_dataset``)."""

    source: Literal["synthetic", "ava", "custom", "ava_kinetics"]
    synthetic: SyntheticConfig
    ava: AvaSourceParams
    custom: CustomSourceParams
    kinetics: KineticsSourceParams

    def __post_init__(self):
        if self.source in ("ava", "ava_kinetics") and not self.ava.root:
            raise InputError(f"data.source is '{self.source}' but data.ava.root is empty: set "
                             "it to the folder holding annotations/ and videos/",
                             key="data.ava.root")
        if self.source == "custom" and not self.custom.root:
            raise InputError("data.source is 'custom' but data.custom.root is empty: set it to "
                             "the folder holding videos/ and annotations/",
                             key="data.custom.root")
        if self.source == "ava_kinetics":
            if not self.kinetics.root:
                raise InputError("data.source is 'ava_kinetics' but data.kinetics.root is "
                                 "empty: set it to the folder holding annotations/ and videos/ "
                                 "of the Kinetics part", key="data.kinetics.root")
            if self.ava.version != "2.2":
                raise InputError("AVA-Kinetics is AVA v2.2 plus Kinetics: set data.ava.version: "
                                 f'"2.2" (got {self.ava.version!r})', key="data.ava.version")


@dataclass(frozen=True)
class FramesParams:
    """Clip frames stored per keyframe (``extract_frames``); see pipeline.frames.FrameSpec."""

    clip_len: int
    frame_interval: int
    short_side: int | None
    convention: Literal["pyslowfast", "mmaction2"]
    timeline_fps: int | None
    train_jitter: bool
    shard_clips: int
    clevel: int
    shuffle: Literal["noshuffle", "shuffle", "bitshuffle"]
    codec: Literal["zstd", "lz4"]
    skip_bad_videos: bool
    workers: int

    def __post_init__(self):
        _positive(self, "workers")
        self.spec(timestamp_start=0)  # FrameSpec checks the rest and names the bad key

    def spec(self, timestamp_start: float) -> FrameSpec:
        return FrameSpec(clip_len=self.clip_len, frame_interval=self.frame_interval,
                         short_side=self.short_side, timestamp_start=timestamp_start,
                         convention=self.convention, shard_clips=self.shard_clips,
                         clevel=self.clevel, shuffle=self.shuffle, codec=self.codec,
                         timeline_fps=self.timeline_fps, train_jitter=self.train_jitter)


@dataclass(frozen=True)
class DetectorParams:
    """A torchvision Faster R-CNN person detector; weights from a local file, never downloaded."""

    arch: str
    weights: str
    score_threshold: float
    batch_size: int
    device: str                # auto | cpu | cuda | cuda:N

    def __post_init__(self):
        check_device(self.device, "proposals.detector.device")


@dataclass(frozen=True)
class ProposalParams:
    """Person boxes per keyframe (``proposals``).

    Every source's boxes go through mmaction2's filter: per keyframe keep boxes scoring at least
    ``min(score_threshold, best score)`` (the best box always survives), at most
    ``max_per_frame``.
    """

    source: Literal["simulated", "pickle", "detector"]
    score_threshold: float
    max_per_frame: int
    train_pickle: str
    val_pickle: str
    simulated: SimulatedDetector
    detector: DetectorParams

    def __post_init__(self):
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        _positive(self, "max_per_frame")


def _positive(obj, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")


@dataclass(frozen=True)
class BaselineParams:
    """The baseline detector and how it is trained (``pretrain_baseline``).

    ``preset`` names any model preset (mmaction2 config stems, or ``tiny`` for CPU);
    ``backbone`` swaps the preset's backbone kind; ``model`` overrides single ModelConfig
    fields. The number of output columns always follows the label map (largest id + 1).
    """

    preset: str
    backbone: Literal["slowonly", "slowfast"]
    model: dict[str, Any]
    train: TrainConfig
    data: DataConfig
    init_checkpoint: str            # "" = random initialisation
    num_threads: int                # torch CPU threads; 0 = torch's default

    def __post_init__(self):
        # each override typed as its ModelConfig field (a tuple field's list becomes a tuple)
        hints = typing.get_type_hints(ModelConfig)
        for name in self.model:
            if name not in hints or name in ("num_classes", "backbone"):
                raise InputError("not an overridable ModelConfig field (num_classes follows "
                                 "the label map, backbone is baseline.backbone); fields: "
                                 + ", ".join(n for n in hints if n not in ("num_classes",
                                                                           "backbone")),
                                 key=f"baseline.model.{name}")
        object.__setattr__(self, "model", {
            name: _convert(hints[name], value, key=f"baseline.model.{name}", path=None)
            for name, value in self.model.items()})
        self.model_config(num_classes=81)  # validates preset and overrides at load time
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {self.num_threads}")

    def model_config(self, num_classes: int) -> ModelConfig:
        """The preset, its backbone swapped, the overrides on top; a value the model config
        refuses names the params key it came from."""
        preset = get_preset(self.preset, key="baseline.preset")
        values = {**dataclasses.asdict(preset), **self.model, "backbone": self.backbone,
                  "num_classes": num_classes}
        try:
            return ModelConfig.from_dict(values)
        except ValueError as exc:   # "ModelConfig.<field>=<value>: why"
            field = str(exc).removeprefix("ModelConfig.").split("=", 1)[0]
            key = (f"baseline.model.{field}" if field in self.model else
                   "baseline.backbone" if field == "backbone" else
                   f"baseline.preset (its {field})")
            raise InputError(str(exc), key=key) from exc


@dataclass(frozen=True)
class LfbParams:
    """The long-term feature bank (``infer_lfb``) and the window a head reads from it.

    ``train_boxes``: whose features the train split's bank rows hold, ground-truth boxes (as
    the LFB paper) or detector proposals (as mmaction2's bank-inference config, which runs its
    detector on the train split's proposals >= 0.9); val rows are always proposals.
    ``amp``/``amp_dtype``: the model's autocast on CUDA (``pipeline.engine.precision``).
    ``val_min_proposal_score``: the val rows' proposals keep scores >= min(this, the
    keyframe's best), as mmaction2's ``person_det_score_thr`` of its bank-inference config
    (0.9); separate from ``baseline.data.test_min_proposal_score``, the boxes the heads score
    (mmaction2's LFB configs use 0.85 there).
    ``window_seconds``/``max_per_second``: see ``pipeline.lfb.reader``.
    """

    train_boxes: Literal["gt", "proposals"]
    val_min_proposal_score: float
    dtype: Literal["float16", "float32"]
    chunk_rows: int
    shard_rows: int
    window_seconds: int
    max_per_second: int
    in_memory: bool
    batch_size: int
    num_workers: int
    device: str
    amp: bool
    amp_dtype: Literal["float16", "bfloat16"]
    num_threads: int

    def __post_init__(self):
        _positive(self, "chunk_rows", "shard_rows", "window_seconds", "max_per_second",
                  "batch_size")
        if self.shard_rows % self.chunk_rows:
            raise ValueError(f"shard_rows={self.shard_rows} must be a multiple of "
                             f"chunk_rows={self.chunk_rows}")
        if self.num_workers < 0 or self.num_threads < 0:
            raise ValueError("num_workers and num_threads must be >= 0")
        if not 0.0 <= self.val_min_proposal_score <= 1.0:
            raise InputError(f"must be in [0, 1], got {self.val_min_proposal_score}",
                             key="lfb.val_min_proposal_score")
        check_device(self.device, "lfb.device")

    def window(self) -> BankWindow:
        """The bank rows a keyframe's RoIs read (train_head and evaluate read the same)."""
        return BankWindow(window_seconds=self.window_seconds, max_per_second=self.max_per_second)


@dataclass(frozen=True)
class LfbOperatorParams:
    """The bank operators; see ModelConfig's ``lfb_*`` fields. ``include_empty_slots`` acts on
    lfb_nl, lfb_max and lfb_avg (True: mmaction2's zero-filled slots, for the zoo's heads and
    checkpoints); the rest on lfb_nl only."""

    latent_channels: int
    num_layers: int
    st_dropout: float
    lt_dropout: float
    nl_dropout: float
    pre_activate: bool
    layer_norm: bool
    zero_init_out_conv: bool
    include_empty_slots: bool
    position: bool


@dataclass(frozen=True)
class AcrnParams:
    """The ACRN relation head; ``out_channels`` null = the RoI feature width."""

    out_channels: int | None
    stride: int
    num_convs: int


HEAD_CHOICES = ("linear", "mlp", "acrn", "lfb_nl", "lfb_max", "lfb_avg")


@dataclass(frozen=True)
class ModelParams:
    """The head trained on top of the baseline (``train_head``).

    ``head``: linear | mlp (plain classifiers on the RoI vector), acrn (actor-context
    relations), lfb_nl | lfb_max | lfb_avg (long-term feature bank operators). The backbone is
    the baseline's, frozen unless ``finetune_backbone``.
    """

    head: Literal["linear", "mlp", "acrn", "lfb_nl", "lfb_max", "lfb_avg"]
    finetune_backbone: bool
    with_context: bool
    dropout: float
    lfb: LfbOperatorParams
    acrn: AcrnParams
    train: TrainConfig
    num_threads: int

    def __post_init__(self):
        base = ModelConfig(num_classes=81)
        self.model_config(base, num_slots=1, bank_dim=1)  # validates the combination now
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {self.num_threads}")

    def model_config(self, baseline: ModelConfig, *, num_slots: int, bank_dim: int
                     ) -> ModelConfig:
        """The head's detector: the baseline's backbone and RoI pooling, this head on top.

        ``num_slots``/``bank_dim`` (window slots, bank feature width) matter for lfb heads only.
        """
        head = "mlp" if self.head == "mlp" else "linear"
        shared = self.head if self.head not in ("linear", "mlp") else "none"
        try:
            return dataclasses.replace(
                baseline, head=head, shared_head=shared, with_context=self.with_context,
                dropout=self.dropout, acrn_out_channels=self.acrn.out_channels,
                acrn_stride=self.acrn.stride, acrn_num_convs=self.acrn.num_convs,
                lfb_channels=bank_dim, lfb_num_lt_feat=num_slots,
                lfb_latent_channels=self.lfb.latent_channels,
                lfb_num_layers=self.lfb.num_layers, lfb_st_dropout=self.lfb.st_dropout,
                lfb_lt_dropout=self.lfb.lt_dropout, lfb_nl_dropout=self.lfb.nl_dropout,
                lfb_pre_activate=self.lfb.pre_activate, lfb_layer_norm=self.lfb.layer_norm,
                lfb_zero_init_out_conv=self.lfb.zero_init_out_conv,
                lfb_include_empty_slots=self.lfb.include_empty_slots,
                lfb_position=self.lfb.position)
        except ValueError as exc:
            raise InputError(str(exc), key="model") from exc


@dataclass(frozen=True)
class EvalParams:
    """Scoring the trained head on val (``evaluate``).

    Detections scoring <= ``score_threshold`` are not written (mmaction2's bbox2result);
    ``render_keyframes`` val keyframes are drawn as PNG for a person to look at. ``amp``/
    ``amp_dtype``: the model's autocast on CUDA (``pipeline.engine.precision``).
    """

    protocol: Literal["mmaction2", "activitynet", "pyslowfast", "activitynet2020"]
    score_threshold: float
    render_keyframes: int
    batch_size: int
    num_workers: int
    device: str
    amp: bool
    amp_dtype: Literal["float16", "bfloat16"]
    num_threads: int

    def __post_init__(self):
        if not 0.0 <= self.score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in [0, 1), got {self.score_threshold}")
        if self.render_keyframes < 0 or self.num_workers < 0 or self.num_threads < 0:
            raise ValueError("render_keyframes, num_workers and num_threads must be >= 0")
        _positive(self, "batch_size")
        check_device(self.device, "eval.device")


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


Params = types.SimpleNamespace
"""What ``load_params`` returns: one attribute per loaded group (``params.baseline``, ...),
each its typed record; a task's ``run`` takes it."""


GROUPS: dict[str, type] = {
    "data": DataParams,
    "frames": FramesParams,
    "proposals": ProposalParams,
    "baseline": BaselineParams,
    "lfb": LfbParams,
    "model": ModelParams,
    "eval": EvalParams,
}


# --------------------------------------------------------------------------------------------
# Loading

def load_params(path: str | Path = PARAMS_FILE, groups: tuple[str, ...] | None = None
                ) -> types.SimpleNamespace:
    """Load and validate ``groups`` (all known groups when None) from a params file; a
    dotted key (a stage's ``PARAMS`` entry, e.g. ``lfb.dtype``) loads its whole group."""
    path = Path(path)
    if groups is not None:
        groups = tuple(dict.fromkeys(name.split(".")[0] for name in groups))
    raw = read_yaml(path)
    known = GROUPS
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise InputError(f"unknown params group; known groups: {', '.join(sorted(known))}",
                         path=path, key=unknown[0])
    wanted = tuple(known) if groups is None else groups
    loaded = {}
    for group in wanted:
        if group not in known:
            raise InputError(f"unknown params group; known groups: {', '.join(sorted(known))}",
                             path=path, key=group)
        if group not in raw:
            raise InputError("missing params group", path=path, key=group)
        loaded[group] = build(known[group], raw[group], key=group, path=path)
    check_across_groups(loaded, path=path)
    return types.SimpleNamespace(**loaded)


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
    if model.frame_interval % frames.frame_interval:
        fail("baseline.model.frame_interval",
             f"the model reads every {model.frame_interval}th frame, not a multiple of "
             f"frames.frame_interval {frames.frame_interval} (the frames stored)")
    if data.temporal_jitter and not frames.train_jitter:
        fail("baseline.data.temporal_jitter",
             "is true but frames.train_jitter is false: the store would not hold the frames "
             "the jitter reaches")


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that names a key twice (plain YAML keeps the
    last one silently, so an edit above a forgotten copy would do nothing). The error names
    the dotted key and both lines."""

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        self._check_keys(node, "")
        return self.construct_document(node)

    def _check_keys(self, node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._check_keys(item, f"{prefix}[{i}]")
        if not isinstance(node, yaml.MappingNode):
            return
        lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            name = self.construct_object(key_node, deep=True)
            dotted = f"{prefix}.{name}" if prefix else str(name)
            line = key_node.start_mark.line + 1
            if name in lines:
                raise DuplicateKey(dotted, lines[name], line)
            lines[name] = line
            self._check_keys(value_node, dotted)


class DuplicateKey(Exception):
    """A key given twice in one mapping (``UniqueKeyLoader``)."""

    def __init__(self, key: str, first: int, second: int):
        super().__init__(f"given twice, at lines {first} and {second}")
        self.key = key


def read_yaml(path: Path) -> dict:
    """A params or overlay file as plain data (``UniqueKeyLoader``); a clear error otherwise."""
    if not path.exists():
        raise InputError("params file not found", path=path)
    try:
        raw = yaml.load(path.read_text(), Loader=UniqueKeyLoader)
    except DuplicateKey as exc:
        raise InputError(str(exc), path=path, key=exc.key) from exc
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}", path=path) from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError("expected a mapping of params groups", path=path)
    return raw


def build(cls: type, data: Any, *, key: str, path: Path | None = None):
    """Build dataclass ``cls`` from a mapping, checking keys and types recursively."""
    if not isinstance(data, Mapping):
        raise InputError(f"expected a mapping, got {_describe(data)}", path=path, key=key)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in data:
        if name not in fields:
            raise InputError(f"unknown key; valid keys here: {', '.join(fields)}",
                             path=path, key=f"{key}.{name}")
    kwargs = {}
    for name in fields:
        if name not in data:
            raise InputError("missing key (every key must be set in the params file)",
                             path=path, key=f"{key}.{name}")
        kwargs[name] = _convert(hints[name], data[name], key=f"{key}.{name}", path=path)
    try:
        return cls(**kwargs)
    except InputError as exc:  # library configs name their own key, with or without the group
        inner = exc.key if exc.key is None or "." in exc.key else f"{key}.{exc.key}"
        raise InputError(exc.reason, path=path, key=inner or key) from exc
    except (ValueError, TypeError) as exc:
        raise InputError(str(exc), path=path, key=key) from exc


def _convert(tp: Any, value: Any, *, key: str, path: Path | None):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key=key, path=path)
    if origin is Literal:
        if value not in args:
            raise InputError(f"must be one of {', '.join(map(repr, args))}, got {value!r}",
                             path=path, key=key)
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _convert(option, value, key=key, path=path)
            except InputError as exc:
                errors.append(str(exc))
        raise InputError(f"no allowed type matches {_describe(value)}: " + "; ".join(errors),
                         path=path, key=key)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"expected a list, got {_describe(value)}", path=path, key=key)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise InputError(f"expected {len(args)} items, got {len(value)}",
                                 path=path, key=key)
            items = [_convert(t, v, key=f"{key}[{i}]", path=path)
                     for i, (t, v) in enumerate(zip(args, value))]
        else:
            item_type = args[0] if args else Any
            items = [_convert(item_type, v, key=f"{key}[{i}]", path=path)
                     for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise InputError(f"expected a mapping, got {_describe(value)}", path=path, key=key)
        value_type = args[1] if args else Any
        return {str(k): _convert(value_type, v, key=f"{key}.{k}", path=path)
                for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"expected true or false, got {_describe(value)}", path=path, key=key)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"expected an integer, got {_describe(value)}", path=path, key=key)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"expected a number, got {_describe(value)}", path=path, key=key)
        if not math.isfinite(value):    # NaN passes every comparison a range check makes
            raise InputError(f"expected a finite number, got {value}", path=path, key=key)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise InputError(f"expected a string, got {_describe(value)}", path=path, key=key)
        return value
    raise TypeError(f"params type {tp!r} of key {key} is not supported")


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


# --------------------------------------------------------------------------------------------
# Presets: overlay files merged into params.yaml (comments kept).

def apply_overlay(params_path: str | Path, overlay_path: str | Path) -> list[str]:
    """Merge an overlay YAML (e.g. ``presets/smoke.yaml``) into the params file in place.

    Every overlay key must already exist in the params file (as with ``dvc exp run -S``), and
    the merged file must validate. Returns the dotted keys that were set.
    """
    from ruamel.yaml import YAML

    params_path, overlay_path = Path(params_path), Path(overlay_path)
    read_yaml(params_path)   # both mappings of valid YAML without a key given twice, or a
    read_yaml(overlay_path)  # clear error (ruamel's own would be a traceback)
    rt = YAML()
    rt.preserve_quotes = True
    rt.representer.add_representer(  # keep `null` spelled out (ruamel writes nothing)
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    doc = rt.load(params_path.read_text())
    # Round-trip scalars keep the overlay's own spelling: a plain float would be re-written as
    # e.g. ``1e-05``, which YAML 1.1 (PyYAML, DVC) reads back as a string.
    overlay = rt.load(overlay_path.read_text()) or {}
    changed: list[str] = []

    def merge(target, source, prefix):
        for name, value in source.items():
            key = f"{prefix}.{name}" if prefix else name
            if name not in target:
                raise InputError("overlay key does not exist in the params file",
                                 path=overlay_path, key=key)
            if isinstance(value, Mapping):
                merge(target[name], value, key)
            else:
                target[name] = value
                changed.append(key)

    merge(doc, overlay, "")
    buffer = io.StringIO()
    rt.dump(doc, buffer)
    text = buffer.getvalue()
    tmp = params_path.with_name(params_path.name + ".check")
    tmp.write_text(text)
    try:
        load_params(tmp)
    finally:
        tmp.unlink()
    write_text(params_path, text)
    return changed
