"""What `dvc status` says after a params key changes, on the smoke preset: exactly the stages
that declare the key are stale, and runtime-only keys leave every stage up to date.

The repository's dvc.lock is written once by `dvc commit` over placeholder outputs: param
tracking compares params.yaml with the lock and does not depend on what the outputs hold, so
no stage has to run (a real repro is tests/test_pipeline_dvc.py's business).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline.params.all import RUNTIME_KEYS
from helpers.dvc_project import project_copy, sh
from helpers.params_tree import covered, leaf_keys


pytestmark = pytest.mark.slow

@pytest.fixture(scope="session")
def locked_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("params_repo")
    env = project_copy(root, "smoke")
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, ()):
                path = root / (entry if isinstance(entry, str) else next(iter(entry)))
                if path.suffix:                      # a file (model.pt, metrics.json, ...)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text("placeholder\n")
                else:                                # a folder (data/dataset, the bank, ...)
                    path.mkdir(parents=True, exist_ok=True)
                    (path / "placeholder").write_text("placeholder\n")
    sh(["dvc", "commit", "--force", "--quiet"], root, env)
    assert _status(root, env) == {}
    return root, env, stages, (root / "params.yaml").read_text()


def _status(root: Path, env: dict) -> dict:
    return json.loads(sh(["dvc", "status", "--json"], root, env).stdout or "{}")


def _changed_params(status: dict) -> dict[str, set[str]]:
    """Stage -> the params entries `dvc status` reports as modified (and nothing else stale)."""
    changed = {}
    for stage, reasons in status.items():
        for reason in reasons:
            assert set(reason) == {"changed deps"}, (stage, reason)
            deps = reason["changed deps"]
            assert set(deps) == {"params.yaml"}, (stage, deps)
            changed[stage] = set(deps["params.yaml"])
    return changed


def _changed_under(root: Path, env: dict, params: dict, pristine: str) -> dict[str, set[str]]:
    """The params entries ``dvc status`` reports changed, per stage, with ``params`` written
    to params.yaml; the pristine file is put back whatever happens."""
    try:
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        return _changed_params(_status(root, env))
    finally:
        (root / "params.yaml").write_text(pristine)


def _other(value):
    """A different value of the same kind (DVC compares values, it does not validate them)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return [*value, value[-1] if value else 1]
    return 1                                         # null


def _set(tree: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    for name in parents:
        tree = tree[name]
    tree[last] = value


def _get(tree: dict, key: str):
    for name in key.split("."):
        tree = tree[name]
    return tree


def test_every_key_makes_exactly_its_stages_stale(locked_repo):
    """All keys changed at once; DVC names, per stage, each modified entry it tracks, so each
    key's reruns can be read off one status (every key in turn would be ~150 dvc calls)."""
    root, env, stages, pristine = locked_repo
    params = yaml.safe_load(pristine)
    keys = leaf_keys(params)
    for key in keys:
        _set(params, key, _other(_get(params, key)))
    changed = _changed_under(root, env, params, pristine)
    for key in keys:
        expected = {name for name, stage in stages.items()
                    if any(covered(entry, key) for entry in stage.get("params", ()))}
        got = {stage for stage, entries in changed.items()
               if any(covered(entry, key) for entry in entries)}
        assert got == expected, key
        if key in RUNTIME_KEYS:
            assert got == set(), key
    assert _status(root, env) == {}


@pytest.mark.parametrize("key, stages", [
    ("baseline.train.num_workers", set()),
    ("baseline.train.device", set()),
    ("baseline.train.val_every", set()),
    ("baseline.data.test_batch_size", set()),
    ("lfb.in_memory", set()),
    ("lfb.window_seconds", {"train_head", "evaluate"}),
    ("frames.workers", set()),
    ("eval.num_threads", set()),
    ("model.head", {"train_head"}),
    ("baseline.model.clip_len", {"pretrain_baseline"}),
    # the frame store keeps frames, not clips: the model's sampling never re-extracts
    ("baseline.model.frame_interval", {"pretrain_baseline"}),
    ("baseline.data.temporal_jitter", {"pretrain_baseline", "train_head"}),
    ("frames.reach", {"extract_frames"}),
    ("frames.codec", {"extract_frames"}),
])
def test_one_key_in_turn(locked_repo, key, stages):
    root, env, _, pristine = locked_repo
    params = yaml.safe_load(pristine)
    _set(params, key, _other(_get(params, key)))
    changed = _changed_under(root, env, params, pristine)
    assert set(changed) == stages, changed


DATA_STAGES = {"make_dataset", "extract_frames", "proposals"}


def _stale_after_editing(root: Path, env: dict, files: list[str]) -> set[str]:
    """The stages ``dvc status`` reports changed once ``files`` (code of the scratch copy) get
    one more comment line; the files are put back whatever happens."""
    originals = {name: (root / name).read_bytes() for name in files}
    try:
        for name in files:
            (root / name).write_bytes(originals[name] + b"\n# edited\n")
        return set(_status(root, env))
    finally:
        for name, data in originals.items():
            (root / name).write_bytes(data)


def test_model_code_never_marks_the_data_stages_changed(locked_repo):
    """A new model preset, a changed model config or training loop: the models rerun, the
    dataset, the frame store and the proposals stay up to date (on AVA: no video decoded)."""
    root, env, _, _ = locked_repo
    stale = _stale_after_editing(root, env, ["pipeline/models/presets.py",
                                             "pipeline/models/config.py",
                                             "pipeline/engine/train.py"])
    assert stale & DATA_STAGES == set(), stale
    assert "pretrain_baseline" in stale and "train_head" in stale, stale
    assert _status(root, env) == {}


def test_frame_extraction_code_reruns_extraction_not_the_models(locked_repo):
    """The extractor and the decoder are the frame store's writers: the models read the store
    through its reader, so editing how frames are written reruns ``extract_frames`` (and what
    follows from its outputs), never a model stage by its code."""
    root, env, _, _ = locked_repo
    stale = _stale_after_editing(root, env, ["pipeline/frames/extract.py"])
    assert stale == {"extract_frames"}, stale
    assert _stale_after_editing(root, env, ["pipeline/models/resnet3d.py"]) & {
        "make_dataset", "extract_frames", "proposals"} == set()
