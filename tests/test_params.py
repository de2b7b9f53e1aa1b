"""params.yaml loads into typed groups; every bad value is named by its key; dvc.yaml declares
exactly the groups each stage reads."""

import importlib
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.errors import InputError
from pipeline.params import GROUPS, apply_overlay, load_params
from pipeline.synthetic import SyntheticConfig

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
    params = load_params(REPO / "params.yaml")
    assert set(vars(params)) == set(GROUPS)
    assert isinstance(params.data.synthetic, SyntheticConfig)
    assert isinstance(params.frames.clip_len, int)
    assert params.frames.spec(timestamp_start=900).timestamp_start == 900


@pytest.mark.parametrize("key, value, message", [
    ("frames.clip_len", "eight", "expected an integer"),
    ("frames.clip_len", 8.5, "expected an integer"),
    ("frames.skip_bad_videos", "yes", "expected true or false"),
    ("frames.convention", "slowfast", "must be one of"),
    ("frames.codec", "jpeg", "must be one of"),
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
        load_params(params_file)
    assert info.value.key == key
    assert str(params_file) in str(info.value)


@pytest.mark.parametrize("key, value", [
    ("frames.clip_len", 0),
    ("frames.clevel", 12),
    ("proposals.score_threshold", 1.5),
    ("proposals.simulated.recall", 1.5),
    ("data.synthetic.fps", 1000),
])
def test_impossible_value_names_the_key(params_file, key, value):
    _edit(params_file, key, value)
    with pytest.raises(InputError) as info:
        load_params(params_file)
    assert key.rsplit(".", 1)[0] in str(info.value)
    assert key.rsplit(".", 1)[1] in str(info.value)


def test_unknown_and_missing_keys_are_named(params_file):
    _edit(params_file, "frames.clip_length", 8)
    with pytest.raises(InputError, match="unknown key") as info:
        load_params(params_file)
    assert info.value.key == "frames.clip_length"

    shutil.copy(REPO / "params.yaml", params_file)
    _edit(params_file, "frames.short_side", _DELETE)
    with pytest.raises(InputError, match="missing key") as info:
        load_params(params_file)
    assert info.value.key == "frames.short_side"

    shutil.copy(REPO / "params.yaml", params_file)
    _edit(params_file, "framez", {})
    with pytest.raises(InputError, match="unknown params group"):
        load_params(params_file)


def test_stage_loads_only_its_groups(params_file):
    _edit(params_file, "proposals.simulated.recall", "broken")
    frames_only = load_params(params_file, groups=("frames",))
    assert set(vars(frames_only)) == {"frames"}


def test_dvc_yaml_declares_exactly_the_groups_each_stage_reads():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert stages, "dvc.yaml has no stages"
    for name, stage in stages.items():
        module = importlib.import_module(f"stages.{name}")
        assert f"stages.{name}" in stage["cmd"]
        assert tuple(stage.get("params", ())) == module.PARAMS, name
        assert f"stages/{name}.py" in stage["deps"]


def test_presets_apply_and_validate(params_file):
    before = params_file.read_text()
    changed = apply_overlay(params_file, REPO / "presets" / "smoke.yaml")
    assert "data.synthetic.n_train_videos" in changed
    params = load_params(params_file)
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
