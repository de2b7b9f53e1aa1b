"""params.yaml loads into typed groups; every bad value is named by its key; dvc.yaml declares
exactly the groups each stage reads."""

import functools
import importlib
import shutil
from pathlib import Path

import pytest
import yaml

from helpers.params_tree import covered, leaf_keys
from pipeline.errors import InputError
from pipeline.params.all import GROUPS, RUNTIME_KEYS, UpscaledClipsWarning, load_all
from pipeline.params.overlay import apply_overlay
from pipeline.sources.synthetic import SyntheticConfig

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    return path


def _edit(path: Path, dotted: str, value):
    raw = yaml.safe_load(path.read_text())
    *parents, last = dotted.split(".")
    node = raw
    for name in parents:
        node = node[name]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    path.write_text(yaml.safe_dump(raw))


_DELETE = object()


def test_repository_params_load_into_typed_groups():
    params = load_all(REPO / "params.yaml")
    assert set(vars(params)) == set(GROUPS)
    assert isinstance(params.data.synthetic, SyntheticConfig)
    assert params.frames.reach == (40, 32) and isinstance(params.frames.quality, int)
    assert params.frames.spec(timestamp_start=900).timestamp_start == 900


@pytest.mark.parametrize("key, value, message", [
    ("frames.quality", "high", "expected an integer"),
    ("frames.shard_frames", 25.5, "expected an integer"),
    ("frames.reach", [40], "expected 2 items"),
    ("frames.skip_bad_videos", "yes", "expected true or false"),
    ("frames.convention", "slowfast", "must be one of"),
    ("frames.codec", "png", "must be one of"),
    ("baseline.train.amp_dtype", "float8", "must be one of"),
    ("model.train.amp_dtype", "half", "must be one of"),
    ("lfb.amp_dtype", "float32", "must be one of"),
    ("eval.amp_dtype", "bf16", "must be one of"),
    ("eval.amp", "yes", "expected true or false"),
    ("proposals.simulated.recall", "high", "expected a number"),
    ("data.synthetic.n_train_videos", True, "expected an integer"),
])
def test_wrong_type_names_the_key(params_file, key, value, message):
    _edit(params_file, key, value)
    with pytest.raises(InputError, match=message) as info:
        load_all(params_file)
    assert info.value.key == key
    assert str(params_file) in str(info.value)


@pytest.mark.parametrize("key, value", [
    ("frames.quality", 12),           # zstd: Blosc level 0..9
    ("frames.shard_frames", 100),     # not a multiple of the 16-frame H.264 group
    ("frames.reach", [-1, 32]),
    ("proposals.score_threshold", 1.5),
    ("proposals.simulated.recall", 1.5),
    ("data.synthetic.fps", 1000),
    # the machine settings lfb and eval share (InferenceRuntime), checked in either group
    ("lfb.batch_size", 0), ("eval.batch_size", 0), ("lfb.num_workers", -1),
    ("eval.num_threads", -1), ("eval.render_keyframes", -1),
])
def test_impossible_value_names_the_key(params_file, key, value):
    _edit(params_file, key, value)
    with pytest.raises(InputError) as info:
        load_all(params_file)
    assert key.rsplit(".", 1)[0] in str(info.value)
    assert key.rsplit(".", 1)[1] in str(info.value)


def test_unknown_and_missing_keys_are_named(params_file):
    _edit(params_file, "frames.clip_length", 8)
    with pytest.raises(InputError, match="unknown key") as info:
        load_all(params_file)
    assert info.value.key == "frames.clip_length"

    shutil.copy(REPO / "params.yaml", params_file)
    _edit(params_file, "frames.short_side", _DELETE)
    with pytest.raises(InputError, match="missing key") as info:
        load_all(params_file)
    assert info.value.key == "frames.short_side"

    shutil.copy(REPO / "params.yaml", params_file)
    _edit(params_file, "framez", {})
    with pytest.raises(InputError, match="unknown params group"):
        load_all(params_file)


def test_stage_loads_only_its_groups(params_file):
    _edit(params_file, "proposals.simulated.recall", "broken")
    frames_only = load_all(params_file, groups=("frames",))
    assert set(vars(frames_only)) == {"frames"}


_RAW = yaml.safe_load((REPO / "params.yaml").read_text())
FLOAT_KEYS = [key for key in leaf_keys(_RAW)
              if isinstance(functools.reduce(dict.get, key.split("."), _RAW), float)]


@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_every_float_key_refuses_nan_and_infinity(params_file, key):
    """a NaN passes every range check (``nan <= 0`` is false), so the type
    conversion refuses non-finite numbers for every float key, naming it."""
    pristine = params_file.read_text()
    for value in (float("nan"), float("inf"), float("-inf")):
        params_file.write_text(pristine)
        _edit(params_file, key, value)
        with pytest.raises(InputError, match="expected a finite number") as info:
            load_all(params_file)
        assert info.value.key == key


def test_a_key_given_twice_is_refused_naming_both_lines(params_file, tmp_path):
    """plain YAML keeps the last of two equal keys silently."""
    lines = params_file.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("  short_side:"))
    lines.insert(at + 2, "  short_side: 48\n")             # frames.short_side again, 2 lines on
    params_file.write_text("".join(lines))
    with pytest.raises(InputError, match=f"given twice, at lines {at + 1} and {at + 3}") as info:
        load_all(params_file)
    assert info.value.key == "frames.short_side" and str(params_file) in str(info.value)

    overlay = tmp_path / "twice.yaml"
    overlay.write_text("baseline:\n  train:\n    lr: 0.1\n    epochs: 2\n    lr: 0.3\n")
    clean = REPO / "params.yaml"
    shutil.copy(clean, params_file)
    with pytest.raises(InputError, match="given twice, at lines 3 and 5") as info:
        apply_overlay(params_file, overlay)
    assert info.value.key == "baseline.train.lr" and str(overlay) in str(info.value)
    assert params_file.read_text() == clean.read_text()


def test_dvc_yaml_declares_exactly_the_keys_that_shape_each_stage():
    """Each stage tracks the keys its module declares; every key of params.yaml is either
    tracked by some stage or runtime-only, never both."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert stages, "dvc.yaml has no stages"
    leaves = set(leaf_keys(yaml.safe_load((REPO / "params.yaml").read_text())))
    tracked = set()
    for name, stage in stages.items():
        module = importlib.import_module(f"stages.{name}")
        assert f"stages.{name}" in stage["cmd"]
        assert tuple(stage.get("params", ())) == module.PARAMS, name
        assert f"stages/{name}.py" in stage["deps"]
        for entry in module.PARAMS:
            keys = {key for key in leaves if covered(entry, key)}
            assert keys, f"{name}: params entry {entry} is no key of params.yaml"
            assert not keys & set(RUNTIME_KEYS), f"{name} tracks runtime keys {keys & set(RUNTIME_KEYS)}"
            tracked |= keys
    assert set(RUNTIME_KEYS) <= leaves, set(RUNTIME_KEYS) - leaves
    assert tracked | set(RUNTIME_KEYS) == leaves, leaves - tracked - set(RUNTIME_KEYS)


@pytest.mark.parametrize("key, stages", [
    # the examples: the bank does not read the window nor RAM use; runtime knobs rerun
    # nothing; a value read by several stages reruns each of them
    ("lfb.window_seconds", {"train_head", "evaluate"}),
    ("lfb.in_memory", set()),
    ("lfb.dtype", {"infer_lfb"}),
    ("baseline.train.num_workers", set()),
    ("baseline.train.device", set()),
    ("baseline.train.val_every", set()),
    ("baseline.train.lr", {"pretrain_baseline"}),
    ("baseline.data.test_batch_size", set()),
    ("baseline.data.test_short_side", {"pretrain_baseline", "infer_lfb", "train_head", "evaluate"}),
    ("baseline.data.crop_size", {"pretrain_baseline", "train_head"}),
    ("baseline.model.clip_len", {"pretrain_baseline"}),
    ("model.head", {"train_head"}),
    ("model.train.keep_checkpoints", set()),
    ("eval.batch_size", set()),
    ("eval.score_threshold", {"evaluate"}),
    ("frames.workers", set()),
    ("frames.short_side", {"extract_frames"}),
    ("frames.reach", {"extract_frames"}),
    ("frames.codec", {"extract_frames"}),
    # the model's sampling is read from the store at train time: it never re-extracts
    ("baseline.model.frame_interval", {"pretrain_baseline"}),
    ("baseline.data.temporal_jitter", {"pretrain_baseline", "train_head"}),
    ("proposals.detector.device", set()),
    ("proposals.simulated.recall", {"proposals"}),
])
def test_keys_are_tracked_by_the_stages_that_read_them(key, stages):
    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert {name for name, stage in declared.items()
            if any(covered(entry, key) for entry in stage.get("params", ()))} == stages


def test_presets_apply_and_validate(params_file):
    before = params_file.read_text()
    changed = apply_overlay(params_file, REPO / "presets" / "smoke.yaml")
    assert "data.synthetic.n_train_videos" in changed
    params = load_all(params_file)
    assert params.data.synthetic.n_train_videos == 2
    assert "# Every stage's configuration" in params_file.read_text()  # comments survive
    assert params_file.read_text() != before


def test_overlay_with_unknown_key_is_rejected(params_file, tmp_path):
    overlay = tmp_path / "bad.yaml"
    overlay.write_text("frames:\n  clip_lenght: 4\n")
    before = params_file.read_text()
    with pytest.raises(InputError, match="does not exist") as info:
        apply_overlay(params_file, overlay)
    assert info.value.key == "frames.clip_lenght"
    assert params_file.read_text() == before


DEVICE_KEYS = ["baseline.train.device", "model.train.device", "lfb.device", "eval.device",
               "proposals.detector.device"]


@pytest.mark.parametrize("key", DEVICE_KEYS)
def test_devices_are_auto_cpu_cuda_or_cuda_n(params_file, key):
    for good in ("auto", "cpu", "cuda", "cuda:0", "cuda:3"):
        _edit(params_file, key, good)
        load_all(params_file)
    for bad in ("gpu", "cuda:", "cuda:x", "cuda0", "CUDA", "cuda:-1"):
        _edit(params_file, key, bad)
        with pytest.raises(InputError, match="auto, cpu, cuda or cuda:N") as info:
            load_all(params_file)
        assert info.value.key == key


@pytest.mark.parametrize("key, module", [
    ("baseline.train.device", "pipeline.tasks.pretrain_baseline"),
    ("model.train.device", "pipeline.tasks.train_head"),
])
def test_a_gpu_that_is_not_there_names_the_stage_params_key(params_file, tmp_path, key, module):
    """``cuda:7`` on a machine without it names ``baseline.train.device``, not
    the TrainConfig field ``device``. The stage checks it before reading any input."""
    _edit(params_file, key, "cuda:7")
    task = importlib.import_module(module)
    params = load_all(params_file, groups=task.PARAMS)
    with pytest.raises(InputError, match="cuda:7") as info:
        task.run(params, **{name: tmp_path / name for name in task.PATHS})
    assert info.value.key == key


def test_a_named_gpu_is_used_or_refused_never_replaced_by_the_cpu():
    """``cuda:N`` resolves to GPU N (lfb.device, eval.device reach it through
    setup_distributed), or fails naming the key; it never falls back to the CPU."""
    import torch

    from pipeline.devices import resolve_device
    from pipeline.engine.distributed import setup_distributed

    assert resolve_device("cpu", key="lfb.device") == torch.device("cpu")
    if torch.cuda.is_available():
        last = torch.cuda.device_count() - 1
        assert resolve_device(f"cuda:{last}", key="eval.device") == torch.device("cuda", last)
        assert setup_distributed(f"cuda:{last}", key="lfb.device").device == torch.device("cuda", last)
        with pytest.raises(InputError, match="GPU") as info:
            resolve_device(f"cuda:{last + 1}", key="eval.device")
    else:
        with pytest.raises(InputError, match="CUDA is not available") as info:
            setup_distributed("cuda:0", key="eval.device")
    assert info.value.key == "eval.device"
    if torch.cuda.is_available():
        with pytest.raises(InputError, match="under torchrun") as info:
            resolve_device("cuda:0", local_rank=1, world_size=2, key="lfb.device")
        assert info.value.key == "lfb.device"


@pytest.mark.parametrize("field, value, message", [
    ("clip_len", "eight", "expected an integer, got str 'eight'"),
    ("clip_len", 8.0, "expected an integer"),
    ("spatial_strides", [1, 2, 1], "expected 4 items"),
    ("spatial_strides", [1, 2, "x", 1], "expected an integer"),
    ("dropout", "half", "expected a number"),
    ("with_context", "no", "expected true or false"),
    ("acrn_out_channels", "wide", "no allowed type matches"),
    ("temporal_pool", "median", "must be one of avg, max"),
    ("clip_len", 0, "must be positive"),
    ("num_classes", 81, "not an overridable ModelConfig field"),
    ("backbone", "slowfast", "not an overridable ModelConfig field"),
    ("clip_length", 8, "not an overridable ModelConfig field"),
])
def test_baseline_model_overrides_are_typed_as_the_model_config(params_file, field, value, message):
    _edit(params_file, f"baseline.model.{field}", value)
    with pytest.raises(InputError, match=message) as info:
        load_all(params_file)
    assert info.value.key.startswith(f"baseline.model.{field}")
    assert str(params_file) in str(info.value)


def test_baseline_model_overrides_arrive_typed(params_file):
    _edit(params_file, "baseline.model.spatial_strides", [1, 2, 2, 1])
    _edit(params_file, "baseline.model.dropout", 0)
    baseline = load_all(params_file).baseline
    assert baseline.model["spatial_strides"] == (1, 2, 2, 1)
    config = baseline.model_config(num_classes=81)
    assert config.spatial_strides == (1, 2, 2, 1) and isinstance(config.dropout, float)


def test_train_rescale_above_the_stored_frames_warns_naming_both_keys(params_file):
    _edit(params_file, "frames.short_side", 100)
    _edit(params_file, "baseline.data.short_side_range", [96, 120])
    with pytest.warns(UpscaledClipsWarning) as caught:
        load_all(params_file)
    message = str(caught[0].message)
    assert "baseline.data.short_side_range" in message and "frames.short_side 100" in message


@pytest.mark.parametrize("edits, key, other", [
    ({"frames.short_side": 120, "baseline.data.test_short_side": 128},
     "baseline.data.test_short_side", "frames.short_side"),
    ({"baseline.model.clip_len": 16, "baseline.model.frame_interval": 8}, "frames.reach",
     "baseline.model.clip_len"),
    ({"frames.reach": [8, 6], "baseline.data.temporal_jitter": True}, "frames.reach",
     "baseline.data.temporal_jitter"),
])
def test_cross_field_checks_name_both_keys(params_file, edits, key, other):
    for dotted, value in edits.items():
        _edit(params_file, dotted, value)
    with pytest.raises(InputError) as info:
        load_all(params_file)
    assert info.value.key == key and other in str(info.value)
    load_all(params_file, groups=("baseline",))    # a stage reading one group: unchecked

