"""Training engine: schedule, config checks, checkpoints, curves, and real training runs of the
tiny detector on a real frame store (loss falls; kill and resume reaches the same weights)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.ava.results import COLUMNS as RESULT_COLUMNS
from pipeline.ava.results import read_results
from pipeline.engine.config import TrainConfig
from pipeline.engine.schedule import LRSchedule
from pipeline.data.sampler import EpochBatchSampler
from pipeline.engine.checkpoint import (MANIFEST, RESUME_KEYS, ResumeRefused, check_resumable,
                                        checkpoint_files, finished_runs, load_latest_checkpoint,
                                        rng_state, save_checkpoint, set_rng_state)
from pipeline.engine.curves import write_curves
from pipeline.errors import InputError
from pipeline.models.checkpoint import build_detector_from_checkpoint, load_stad_checkpoint
from pipeline.frames.spec import clip_reach
from helpers.tiny_data import TinyData, build_tiny_data
from helpers.tiny_training import baseline_group, run_baseline, stage_command

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def torch_globals():
    """One compute thread (tiny tensors gain nothing from more, and a busy 2-core machine
    makes an OpenMP pool crawl); deterministic runs switch torch's global flag on: leave both
    as other tests expect them."""
    threads, enabled = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(enabled)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> TinyData:
    # The tiny preset reads 8 frames 8 apart: store what that clip reaches.
    return build_tiny_data(tmp_path_factory.mktemp("engine_data"), videos=3, seconds=8,
                           width=64, height=48, reach=clip_reach(8, 8, False))


def test_schedule_warmup_then_step():
    config = TrainConfig(epochs=20, lr=0.2, warmup_epochs=5, warmup_ratio=0.1,
                         schedule="step", steps=(10, 15), gamma=0.1)
    lr = LRSchedule.from_config(config, steps_per_epoch=10)
    assert lr(0) == pytest.approx(0.02)
    assert lr(25) == pytest.approx(0.02 + 0.18 * 0.5)
    assert lr(50) == pytest.approx(0.2) and lr(99) == pytest.approx(0.2)
    assert lr(100) == pytest.approx(0.02) and lr(150) == pytest.approx(0.002)
    assert all(lr(s) <= lr(s + 1) for s in range(49))               # warmup increases


def test_schedule_cosine_reaches_zero_and_is_pure():
    config = TrainConfig(epochs=10, lr=0.1, warmup_epochs=2, schedule="cosine")
    lr = LRSchedule.from_config(config, steps_per_epoch=7)
    values = [lr(s) for s in range(70)]
    assert values == [lr(s) for s in range(70)]
    assert values[14] == pytest.approx(0.1)
    assert values[14 + 28] == pytest.approx(0.05)                   # half way through the cosine
    assert lr(70) == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(values[14:], values[15:]))


@pytest.mark.parametrize("field, value", [("batch_size", 0), ("schedule", "linear"),
                                          ("grad_clip", -1.0), ("device", "tpu"),
                                          ("steps", (15, 10)), ("amp_dtype", "float8")])
def test_train_config_names_the_bad_key(field, value):
    with pytest.raises(InputError, match=f"key '{field}'"):
        TrainConfig(**{field: value})


def resume_state(step: int) -> dict:
    """What the training loop saves (``RESUME_KEYS``), with this process's real RNG states."""
    return {"fingerprint": "f", "model": {"w": torch.ones(2)}, "optimizer": {}, "scaler": {},
            "epoch": 0, "step_in_epoch": step, "global_step": step, "rng": [rng_state()],
            "history": {"steps": [{"step": step, "loss": np.float64(0.5)}], "epochs": []}}


def test_checkpoints_keep_newest_and_skip_unreadable(tmp_path):
    for step in (3, 6, 9):
        save_checkpoint(tmp_path, resume_state(step), step=step, keep=2)
    assert [p.name for p in checkpoint_files(tmp_path)] == ["step_000000006.pt", "step_000000009.pt"]
    assert not list(tmp_path.glob("*.partial"))
    (tmp_path / "step_000000012.pt").write_bytes(b"truncated")
    assert load_latest_checkpoint(tmp_path)["global_step"] == 9
    assert load_latest_checkpoint(tmp_path / "missing") is None


def test_checkpoints_hold_plain_data_only(tmp_path):
    """Saved checkpoints load with weights_only=True, RNG states included (NumPy's too)."""
    np.random.seed(7)
    path = save_checkpoint(tmp_path, resume_state(1), step=1)
    expected = np.random.random(3)
    np.random.seed(0)
    state = torch.load(path, weights_only=True)
    assert type(state["history"]["steps"][0]["loss"]) is float   # numpy scalar made plain
    set_rng_state(state["rng"][0])
    np.testing.assert_array_equal(np.random.random(3), expected)
    with pytest.raises(TypeError, match=r"state\.history\.extra is a pathlib"):
        save_checkpoint(tmp_path, {**resume_state(2), "history": {"extra": Path("x")}}, step=2)


class RunsCode:
    """Pickles as ``os.system(command)``: what a hostile file in checkpoints/ would run."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def unfinished_run(data: TinyData, root: Path, **train) -> dict:
    """Baseline params whose checkpoint folder holds an unfinished run: a finished run with a
    checkpoint every step (2 steps per epoch), its mid-epoch checkpoint put back as if killed
    there."""
    job = baseline_group(epochs=1, val_every=0, checkpoint_every_steps=1, **train)
    run_baseline(data, root, job)
    folder = root / "checkpoints"
    assert checkpoint_files(folder) == []                   # the finished run moved aside...
    kept = checkpoint_files(finished_runs(folder)[-1])      # ...whole
    assert [p.name for p in kept] == ["step_000000001.pt", "step_000000002.pt"]
    shutil.copy2(kept[0], folder / kept[0].name)
    (folder / MANIFEST).write_text(json.dumps({"files": [kept[0].name]}))   # the run's own
    return job


def test_resume_skips_a_checkpoint_that_would_run_code(data, tmp_path, caplog):
    job = unfinished_run(data, tmp_path)
    valid = checkpoint_files(tmp_path / "checkpoints")[-1]
    assert set(torch.load(valid, weights_only=True)) >= set(RESUME_KEYS)
    marker = tmp_path / "marker"
    evil = tmp_path / "checkpoints" / "step_999999999.pt"
    # the valid checkpoint's own content, plus a payload
    torch.save({**torch.load(valid, weights_only=True), "payload": RunsCode(f"touch {marker}")},
               evil)
    # as if the run's own newest file had been replaced: a file it would load
    (tmp_path / "checkpoints" / MANIFEST).write_text(json.dumps({"files": [valid.name, evil.name]}))
    caplog.set_level(logging.INFO)
    run_baseline(data, tmp_path, job)                       # step 1 of 2 done: resume, finish
    assert not marker.exists()
    skipped = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
               and "skipping checkpoint" in r.getMessage()]
    assert len(skipped) == 1 and str(evil) in skipped[0] and "posix.system" in skipped[0]
    assert any("resuming at epoch 0, step 1 of 2" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records)      # a warning, not a traceback
    # the run finished: its files, the hostile one too, moved aside as they were
    assert (finished_runs(tmp_path / "checkpoints")[-1] / evil.name).is_file()


def test_files_the_run_did_not_write_are_never_loaded_pruned_or_moved(data, tmp_path, caplog):
    """a copied model with a low step number, a truncated copy with a high one, a
    resume checkpoint of some other run and a file on a name the run writes, in the folder of
    a run keeping 2 checkpoints of 5 steps: all stay byte-identical, unloaded, uncounted."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save({"state_dict": {"w": torch.ones(1)}}, folder / "step_000000001.pt")
    (folder / "step_000000099.pt").write_bytes(
        (folder / "step_000000001.pt").read_bytes()[:100])
    torch.save(resume_state(2), folder / "step_000000002.pt")
    (folder / "step_000000003.pt").write_bytes(b"not a checkpoint at all")
    (folder / "notes.txt").write_text("mine")
    foreign = {p.name: p.read_bytes() for p in folder.iterdir()}
    caplog.set_level(logging.INFO)
    run_baseline(data, tmp_path, baseline_group(epochs=1, batch_size=2, val_every=0,  # 5 steps
                                                checkpoint_every_steps=1, keep_checkpoints=2))
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(all(name in m for name in foreign) and "not written by this run" in m
               for m in warned), warned
    assert not any("resuming" in r.getMessage() for r in caplog.records)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == foreign
    (finished,) = finished_runs(folder)
    assert finished.name.startswith("step_000000005-")     # named after the run's own newest
    assert sorted(p.name for p in finished.iterdir()) == [
        "run_files.json", "step_000000004.pt", "step_000000005.pt"]
    assert [p.name for p in checkpoint_files(finished)] == ["step_000000004.pt",
                                                            "step_000000005.pt"]
    assert torch.load(finished / "step_000000005.pt", weights_only=True)["global_step"] == 5
    assert (tmp_path / "out" / "model.pt").exists()


def test_a_name_another_file_holds_is_not_overwritten(tmp_path):
    (tmp_path / "step_000000003.pt").write_bytes(b"someone else's")
    for step in (1, 2, 3):
        path = save_checkpoint(tmp_path, resume_state(step), step=step, keep=2)
    assert path.name == "step_000000003.1.pt"
    assert (tmp_path / "step_000000003.pt").read_bytes() == b"someone else's"
    assert [p.name for p in checkpoint_files(tmp_path)] == ["step_000000002.pt", path.name]
    assert load_latest_checkpoint(tmp_path)["global_step"] == 3


def test_curves_are_csv(tmp_path):
    write_curves(tmp_path, [{"step": 1, "epoch": 1, "loss": 0.5, "lr": 0.1, "clips_per_s": 3.0}],
                 [{"epoch": 1, "loss": 0.5, "lr": 0.1, "val_mAP": 0.25}])
    assert (tmp_path / "steps.csv").read_text().splitlines() == [
        "step,epoch,loss,lr,clips_per_s", "1,1,0.5,0.1,3.0"]
    assert pd.read_csv(tmp_path / "epochs.csv")["val_mAP"].tolist() == [0.25]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epochs.csv", "steps.csv"]


def test_tiny_detector_trains_loss_falls_and_outputs_are_written(data, tmp_path):
    # No dropout and no random rescale or flip: the same clips every epoch, so a model that
    # learns at all fits these 11 keyframes' labels and its loss must fall.
    job = baseline_group(epochs=24, lr=0.02, val_every=8, model={"dropout": 0.0},
                         data={"short_side_range": [48, 48], "crop_size": 48, "flip_p": 0.0})
    metrics = run_baseline(data, tmp_path, job)
    out = tmp_path / "out"
    steps = pd.read_csv(out / "steps.csv")
    assert len(steps) == metrics["steps"] == 24 * (11 // 4)        # 11 train keyframes, batch 4
    # The loss covers the label map's classes only, so it falls only by fitting real labels:
    # the last epoch's mean must be well below the first's.
    per_epoch = steps.groupby("epoch")["loss"].mean()
    assert per_epoch.iloc[-3:].mean() < 0.75 * per_epoch.iloc[:3].mean(), per_epoch.tolist()
    epochs = pd.read_csv(out / "epochs.csv")
    assert epochs["epoch"].tolist() == list(range(1, 25))
    assert epochs["val_mAP"].notna().tolist() == [e % 8 == 0 for e in range(1, 25)]
    saved = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= saved["val_mAP"] <= 1.0 and saved["val_mAP"] == metrics["val_mAP"]
    report = json.loads((out / "report.json").read_text())
    assert report["val_clips"] == metrics["val_clips"] == 5          # 6 val keyframes, 1 excluded
    detections = read_results(out / "val_detections.parquet")
    assert list(detections.columns) == RESULT_COLUMNS
    assert set(detections["action_id"]) <= set(data.label_map.ids)
    assert detections[["x1", "y1", "x2", "y2"]].to_numpy().min() >= 0
    config, state, preset = load_stad_checkpoint(out / "model.pt")
    assert preset == "tiny" and config.base_channels == 8
    model = build_detector_from_checkpoint(out / "model.pt")
    assert sum(p.numel() for p in model.parameters()) > 0


def _final_state(out: Path) -> dict[str, torch.Tensor]:
    return load_stad_checkpoint(out / "model.pt")[1]


def test_killed_run_resumes_to_the_same_weights(data, tmp_path):
    """SIGKILL a training process right after its first mid-epoch checkpoint, rerun the same
    job, and compare with a run that was never interrupted (deterministic mode)."""
    train = dict(epochs=2, batch_size=2, checkpoint_every_steps=1, val_every=0)  # 5 steps/epoch
    reference = tmp_path / "reference"
    run_baseline(data, reference, baseline_group(**train))

    resumed = tmp_path / "resumed"
    command, cwd = stage_command(data, resumed, baseline_group(**train))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not checkpoint_files(resumed / "checkpoints") and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    assert not (resumed / "out" / "model.pt").exists()
    checkpoint = load_latest_checkpoint(resumed / "checkpoints")
    assert checkpoint["epoch"] == 0 and 0 < checkpoint["step_in_epoch"] < 5   # mid-epoch

    finished = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "resuming at epoch 0" in finished.stderr
    expected, got = _final_state(reference / "out"), _final_state(resumed / "out")
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    ref_steps = pd.read_csv(reference / "out" / "steps.csv")
    new_steps = pd.read_csv(resumed / "out" / "steps.csv")
    np.testing.assert_array_equal(ref_steps["loss"], new_steps["loss"])


def test_a_finished_run_is_kept_and_a_new_config_starts_fresh(data, tmp_path):
    run_baseline(data, tmp_path, baseline_group(epochs=1, val_every=0))
    (first,) = finished_runs(tmp_path / "checkpoints")
    fresh = tmp_path / "fresh"
    run_baseline(data, fresh, baseline_group(epochs=1, val_every=0, lr=0.01))
    run_baseline(data, tmp_path, baseline_group(epochs=1, val_every=0, lr=0.01))  # same folders
    expected, got = _final_state(fresh / "out"), _final_state(tmp_path / "out")
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert first in finished_runs(tmp_path / "checkpoints") and checkpoint_files(first)
    assert len(finished_runs(tmp_path / "checkpoints")) == 2


def test_an_unfinished_run_of_another_config_is_refused_never_deleted(data, tmp_path):
    unfinished_run(data, tmp_path)
    folder = tmp_path / "checkpoints"
    before = {p: p.read_bytes() for p in folder.rglob("*.pt")}
    changed = baseline_group(epochs=1, val_every=0, checkpoint_every_steps=1, lr=0.01,
                             data={"flip_p": 0.0})
    with pytest.raises(ResumeRefused) as refused:
        run_baseline(data, tmp_path, changed)
    message = str(refused.value)
    assert str(folder) in message and "nothing was deleted" in message
    assert "baseline.train.lr: 0.05 -> 0.01" in message
    assert "baseline.data.flip_p: 0.5 -> 0.0" in message
    assert f"mv {folder} {folder}.old" in message
    assert "baseline.train.epochs" not in message and "input." not in message
    assert {p: p.read_bytes() for p in folder.rglob("*.pt")} == before
    command, cwd = stage_command(data, tmp_path, changed)
    stage = subprocess.run(  # the stage's exit: one message, status 2, no traceback
        command, cwd=cwd, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"})
    assert stage.returncode == 2 and "Traceback" not in stage.stderr, stage.stderr[-2000:]
    assert "baseline.train.lr: 0.05 -> 0.01" in stage.stderr


def test_a_moved_checkout_with_other_runtime_knobs_resumes(data, tmp_path, caplog):
    """Inputs at another absolute path (same contents), other workers, validation and
    checkpoint frequency: still the same run."""
    unfinished_run(data, tmp_path)
    moved = tmp_path / "moved_data"
    shutil.copytree(data.root, moved)
    job = baseline_group(epochs=1, val_every=1, checkpoint_every_steps=None, num_workers=1,
                         keep_checkpoints=3)
    caplog.set_level(logging.INFO)
    run_baseline(replace(data, root=moved), tmp_path, job)
    assert any("resuming at epoch 0, step 1 of 2" in r.getMessage() for r in caplog.records)


def test_resume_on_another_world_size_follows_the_arithmetic(tmp_path):
    """The sampler deals each step's slice of the epoch order out round-robin, so 1 process x
    batch 4 and 2 x 2 run the same steps on the same samples; the check accepts exactly the
    cases where global batch and steps per epoch agree, and says what to set otherwise."""
    def step_samples(n, world, batch):
        samplers = [EpochBatchSampler(n, batch, seed=3, rank=r, world_size=world)
                    for r in range(world)]
        return [sorted(i for batch_ in batches for i, _ in batch_)
                for batches in zip(*samplers)], samplers[0].batches_per_epoch

    assert step_samples(16, 1, 4) == step_samples(16, 2, 2)

    def state(world, batch, n):
        _, steps = step_samples(n, world, batch)
        return {"fingerprint": {"baseline.train.lr": 0.1, "global_batch": world * batch,
                                "steps_per_epoch": steps},
                "epoch": 1, "global_step": steps, "rng": [{}] * world, "world_size": world}

    def check(saved, world, batch, n):
        current = state(world, batch, n)["fingerprint"]
        check_resumable(saved, current, checkpoint_dir=tmp_path, world_size=world,
                        batch_key="baseline.train.batch_size")

    saved = state(1, 4, 16)
    check(saved, 2, 2, 16)                                  # 16 samples: 4 steps of 4 either way
    with pytest.raises(ResumeRefused, match=r"global_batch: 4 -> 8[\s\S]*on 2 processes set "
                                            r"baseline.train.batch_size to 2"):
        check(saved, 2, 4, 16)
    with pytest.raises(ResumeRefused, match=r"steps_per_epoch: 2 -> 3[\s\S]*continue it on 1 "
                                            r"process\b"):
        check(state(1, 4, 11), 2, 2, 11)   # 11 samples pad to 12 over 2 ranks: 3 steps, not 2
    with pytest.raises(ResumeRefused, match="older version"):
        check({**saved, "fingerprint": "0123abcd"}, 1, 4, 16)


def test_model_clip_must_fit_within_the_stores_reach(data):
    from pipeline.data.dataset import check_clip_reach
    from pipeline.frames.store import FrameStore
    from pipeline.models.presets import get_preset

    store = FrameStore(data.frames_dir)                     # reach (32, 24): an 8x8 clip
    tiny = get_preset("tiny")
    assert store.reach == (32, 24) and (tiny.clip_len, tiny.frame_interval) == (8, 8)
    check_clip_reach(store, 8, 8)
    check_clip_reach(store, 8, 4)                           # any sampling within the reach
    with pytest.raises(InputError, match="key 'frames.reach'"):
        check_clip_reach(store, 16, 8)
    with pytest.raises(InputError, match="key 'frames.reach'"):   # jitter reaches (36, 27)
        check_clip_reach(store, 8, 8, temporal_jitter=True)


@pytest.mark.parametrize("form", ["stad", "mmaction2"])
def test_initialise_from_a_project_or_mmaction2_checkpoint(tmp_path, form):
    from pipeline.models.checkpoint import initialise
    from pipeline.models.detector import Detector
    from pipeline.models.presets import get_preset
    from pipeline.models.checkpoint import save_stad_checkpoint

    torch.manual_seed(1)
    source = Detector(get_preset("tiny"))
    path = tmp_path / "init.pt"
    if form == "stad":
        save_stad_checkpoint(path, model=source, preset="tiny")
    else:
        torch.save({"meta": {}, "state_dict": source.state_dict()}, path)
    torch.manual_seed(2)
    target = Detector(get_preset("tiny"))
    initialise(target, path)
    for name, value in source.state_dict().items():
        assert torch.equal(value, target.state_dict()[name]), name
