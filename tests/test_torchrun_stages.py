"""The DVC stages under torchrun, from their own entry modules, against one process.

On the tiny dataset (real mp4 -> Zarr store) in the DAG's layout, each stage runs as
``python -m stages.X`` (one process) and as ``torchrun --nproc_per_node=2 -m stages.X`` (two
gloo ranks on the CPU), and ``pretrain_baseline`` also as two ``torchrun`` agents of one rank
each (``--nnodes 2``, a c10d rendezvous on localhost), as on two machines. What "equal" means:

- ``pretrain_baseline``, two nodes vs one node (both 2 ranks): the same arithmetic in the same
  order, so bit-identical weights, detections, metrics and curves (less the clips/s timings).
- ``infer_lfb`` and ``evaluate``: inference shards whole batches over the ranks
  (``engine.inference``, bank shards), so every row is computed exactly as in one process:
  bit-identical bank arrays and index, byte-identical result, metric and plot files.
- ``train_head``: 2 ranks of half the batch vs one process of the whole batch. DDP averages the
  two ranks' gradients, each the mean over that rank's RoIs; that is the one-process mean only
  when both halves hold equally many RoIs and nothing random differs between the two runs
  (dropout, RoI subsampling draw on each rank's own RNG stream). The fixture makes it so (every
  train keyframe holds two people whose proposals are their boxes, dropout 0), and the weights
  then agree up to float32 reassociation of the gradient sums: at most 2.1e-7 apart after 6
  steps here; asserted within rtol 1e-4 / atol 1e-6. With dropout or uneven RoI
  counts a W-rank run is a different (equally valid) sample of the same training, as in
  mmaction2, and only its replicas agree bit for bit (checked too).

A rank that fails (a corrupt clip) stops the other rank with a one-line error, also across
nodes, where the failing node's torchrun agent does not stop the other node's workers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
import zarr

from pipeline.ava.annotations import read_annotations, write_annotations
from pipeline.sources.manifest import DatasetManifest, SplitFiles, write_manifest
from pipeline.engine.checkpoint import FINISHED, checkpoint_files
from pipeline.io import write_parquet
from pipeline.frames.spec import clip_reach
from helpers.tiny_data import TinyData, build_tiny_data

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 900   # per launch: generous, the shared CI machine can be very busy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1"}


def _check(done: tuple[int, str], what: str) -> None:
    code, out = done
    assert code == 0, f"{what} failed ({code}):\n{out[-4000:]}"


def _wait_all(agents: list[subprocess.Popen], timeout: float) -> list[int]:
    """Exit statuses; past ``timeout`` each agent still running gets SIGTERM, on which torchrun
    stops its ranks (they run in sessions of their own), so no orphaned rank is left behind."""
    try:
        return [agent.wait(timeout=timeout) for agent in agents]
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
                try:
                    agent.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    agent.kill()
                    agent.wait()


def run_stage(stage: str, args: list[str], cwd: Path, *, ranks: int = 1) -> tuple[int, str]:
    """One process (``ranks=1``) or ``torchrun --standalone --nproc_per_node=ranks``;
    returns (exit status, output)."""
    launcher = [sys.executable] if ranks == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={ranks}"]
    log = cwd / f"{stage}.log"
    with log.open("w") as out:
        agent = subprocess.Popen([*launcher, "-m", f"stages.{stage}", *args], cwd=cwd,
                                 env=_env(), stdout=out, stderr=subprocess.STDOUT)
    code, = _wait_all([agent], TIMEOUT)
    return code, log.read_text()


def run_two_nodes(stage: str, args: list[str], cwd: Path, *, timeout: float = TIMEOUT
                  ) -> list[tuple[int, str]]:
    """Two torchrun agents of one rank each meeting at a c10d rendezvous on localhost, as two
    machines would (``--nnodes 2``); returns each agent's (exit status, output)."""
    port = free_port()
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2",
               "--nproc_per_node=1", "--rdzv_backend=c10d",
               f"--rdzv_endpoint=localhost:{port}", f"--rdzv_id=stad-{port}",
               "-m", f"stages.{stage}", *args]
    logs = [cwd / f"agent{i}.log" for i in range(2)]
    agents = []
    for log in logs:
        with log.open("w") as out:
            agents.append(subprocess.Popen(command, cwd=cwd, env=_env(), stdout=out,
                                           stderr=subprocess.STDOUT))
    codes = _wait_all(agents, timeout)
    return [(code, log.read_text()) for code, log in zip(codes, logs)]


def even_train_split(data: TinyData) -> None:
    """Every train keyframe: exactly two people, whose proposals are their own boxes, and no
    excluded train keyframe (12 of them: whole batches of 4 and of 2 x 2). Then every train
    keyframe has equally many RoIs and DDP's mean of per-rank means is the full-batch mean."""
    train = read_annotations(data.annotations["train"])
    train = train[train["person_id"] < 2]
    write_annotations(data.annotations["train"], train)
    data.exclusions["train"].write_text("")
    boxes = train.drop_duplicates(["video_id", "timestamp", "person_id"])
    proposals = pd.read_parquet(data.proposals_path)
    proposals = pd.concat([
        proposals[~proposals["video_id"].isin(set(train["video_id"]))],
        boxes[["video_id", "timestamp", "x1", "y1", "x2", "y2"]].assign(score=0.95)],
        ignore_index=True).astype({"timestamp": "int64"})
    write_parquet(data.proposals_path, proposals)


def write_dag_layout(data: TinyData) -> None:
    """``make_dataset``'s manifest over the tiny dataset: its folder is then both the dataset
    and ``extract_frames``' output folder (frames.zarr, keyframes.parquet)."""
    videos = sorted(pd.read_parquet(data.keyframes_path)["video_id"].astype(str).unique())
    splits = {split: SplitFiles(annotations=data.annotations[split].name,
                                exclusions=data.exclusions[split].name)
              for split in ("train", "val")}
    video_splits = {vid: split for split in ("train", "val")
                    for vid in read_annotations(data.annotations[split])["video_id"].unique()}
    write_manifest(data.root, DatasetManifest(
        source="synthetic", timestamp_start=0, label_map=data.label_map_path.name,
        splits=splits, videos={vid: f"{vid}.mp4" for vid in videos},
        video_splits=video_splits))


def write_params(run_dir: Path, *, head_batch: int) -> Path:
    """The project's params.yaml, sized for the tiny store; ``head_batch`` clips per process."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    baseline = params["baseline"]
    baseline["preset"] = "tiny"
    baseline["model"] = {}                                     # tiny: SlowOnly 8x8 layout
    baseline["train"].update(epochs=1, batch_size=2, lr=0.05, warmup_epochs=0.5,
                             num_workers=0, device="cpu", val_every=1, precise_bn_batches=2)
    baseline["data"].update(short_side_range=[32, 48], crop_size=32, test_short_side=32,
                            test_batch_size=4)
    params["lfb"].update(window_seconds=2, max_per_second=3, chunk_rows=4, shard_rows=16,
                         batch_size=4, num_workers=0, device="cpu")
    model = params["model"]
    model["dropout"] = 0.0
    model["lfb"].update(latent_channels=16, st_dropout=0.0, lt_dropout=0.0, nl_dropout=0.0)
    model["train"].update(epochs=2, batch_size=head_batch, lr=0.05, warmup_epochs=0.5,
                          num_workers=0, device="cpu", val_every=1, checkpoint_every_steps=1)
    params["eval"].update(render_keyframes=2, batch_size=4, num_workers=0, device="cpu")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return run_dir


@pytest.fixture(scope="module")
def dag(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("torchrun")
    data = build_tiny_data(root / "data", videos=3, seconds=8, width=64, height=48,
                           reach=clip_reach(8, 8, False))
    even_train_split(data)
    write_dag_layout(data)
    write_params(root / "one", head_batch=4)
    write_params(root / "two", head_batch=2)
    return root


def inputs(root: Path) -> list[str]:
    data = root / "data"
    return ["--dataset", str(data), "--frames", str(data), "--proposals",
            str(data / "proposals.parquet")]


@pytest.fixture(scope="module")
def baselines(dag) -> dict[str, Path]:
    """pretrain_baseline on one node (2 ranks) and on two nodes (1 rank each)."""
    out = {}
    for name in ("one_node", "two_nodes"):
        args = [*inputs(dag), "--out", str(dag / name / "baseline"),
                "--checkpoints", str(dag / name / "checkpoints")]
        if name == "one_node":
            _check(run_stage("pretrain_baseline", args, dag / "two", ranks=2), name)
        else:
            for i, done in enumerate(run_two_nodes("pretrain_baseline", args, dag / "two")):
                _check(done, f"two-node agent {i}")
        out[name] = dag / name / "baseline"
    return out


@pytest.fixture(scope="module")
def banks(dag, baselines) -> dict[int, Path]:
    out = {}
    for ranks, run_dir in ((1, "one"), (2, "two")):
        out[ranks] = dag / run_dir / "bank"
        args = [*inputs(dag), "--baseline", str(baselines["one_node"] / "model.pt"),
                "--out", str(out[ranks])]
        _check(run_stage("infer_lfb", args, dag / run_dir, ranks=ranks), f"infer_lfb x{ranks}")
    return out


@pytest.fixture(scope="module")
def heads(dag, baselines, banks) -> dict[int, Path]:
    out = {}
    for ranks, run_dir in ((1, "one"), (2, "two")):
        out[ranks] = dag / run_dir / "head"
        args = [*inputs(dag), "--baseline", str(baselines["one_node"] / "model.pt"),
                "--bank", str(banks[1]), "--out", str(out[ranks]),
                "--checkpoints", str(dag / run_dir / "head_checkpoints")]
        _check(run_stage("train_head", args, dag / run_dir, ranks=ranks), f"train_head x{ranks}")
    return out


@pytest.fixture(scope="module")
def evaluations(dag, banks, heads) -> dict[int, Path]:
    out = {}
    for ranks, run_dir in ((1, "one"), (2, "two")):
        out[ranks] = dag / run_dir / "eval"
        args = [*inputs(dag), "--model", str(heads[1] / "model.pt"), "--bank", str(banks[1]),
                "--results", str(out[ranks] / "results"),
                "--metrics", str(out[ranks] / "eval.json"), "--plots", str(out[ranks] / "plots")]
        _check(run_stage("evaluate", args, dag / run_dir, ranks=ranks), f"evaluate x{ranks}")
    return out


def finished_checkpoints(folder: Path) -> list[Path]:
    """The checkpoints of the one finished run in ``folder`` (moved to ``finished/<run>/``)."""
    runs = sorted((folder / FINISHED).iterdir())
    assert len(runs) == 1, runs
    return checkpoint_files(runs[0])


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_two_nodes_train_the_baseline_bit_for_bit_as_one_node(baselines):
    one, two = baselines["one_node"], baselines["two_nodes"]
    a, b = _weights(one / "model.pt"), _weights(two / "model.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    initial = torch.load(finished_checkpoints(one.parent / "checkpoints")[-1], weights_only=False)
    assert len(set(initial["replica_digests"])) == 1 and len(initial["rng"]) == 2
    pd.testing.assert_frame_equal(pd.read_parquet(one / "val_detections.parquet"),
                                  pd.read_parquet(two / "val_detections.parquet"))
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (one, two)]
    reports = [json.loads((d / "report.json").read_text()) for d in (one, two)]
    assert metrics[0] == metrics[1] and reports[0] == reports[1]
    assert reports[0]["steps"] == 3                                 # 12 keyframes / (2 x 2)
    steps = [pd.read_csv(d / "steps.csv").drop(columns="clips_per_s") for d in (one, two)]
    pd.testing.assert_frame_equal(*steps)
    pd.testing.assert_frame_equal(pd.read_csv(one / "epochs.csv"), pd.read_csv(two / "epochs.csv"))


def test_infer_lfb_on_two_ranks_writes_the_one_process_bank(banks):
    one, two = banks[1], banks[2]
    a = zarr.open_array(one / "features.zarr", mode="r")
    b = zarr.open_array(two / "features.zarr", mode="r")
    assert a.shape == b.shape and a.dtype == b.dtype
    assert np.array_equal(a[:], b[:]) and np.isfinite(a[:]).all()
    meta = json.loads((one / "bank.json").read_text())
    assert meta["num_shards"] >= 2                     # both ranks wrote shards
    assert meta == json.loads((two / "bank.json").read_text())
    pd.testing.assert_frame_equal(pd.read_parquet(one / "index.parquet"),
                                  pd.read_parquet(two / "index.parquet"))
    assert not list(two.parent.glob("*.partial"))      # moved into place once, by rank 0


def test_train_head_on_two_ranks_of_half_batch_equals_one_process(heads):
    one, two = heads[1], heads[2]
    a, b = _weights(one / "model.pt"), _weights(two / "model.pt")
    assert a.keys() == b.keys()
    head_keys = [k for k in a if k.startswith("roi_head.")]
    assert any(not torch.equal(a[k], b[k]) for k in head_keys)    # two runs, not one copied
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6, msg=key)
    checkpoints = finished_checkpoints(two.parent / "head_checkpoints")
    state = torch.load(checkpoints[-1], weights_only=False)
    assert len(state["replica_digests"]) == 2 and len(set(state["replica_digests"])) == 1
    reports = [json.loads((d / "report.json").read_text()) for d in (one, two)]
    assert reports[0]["steps"] == reports[1]["steps"] == 6          # 2 epochs of 12 / 4
    assert reports[1]["val_mAP"] == pytest.approx(reports[0]["val_mAP"], abs=1e-6)
    lrs = [pd.read_csv(d / "steps.csv")["lr"] for d in (one, two)]
    pd.testing.assert_series_equal(*lrs)


def test_evaluate_on_two_ranks_writes_the_one_process_files(evaluations):
    one, two = evaluations[1], evaluations[2]
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert Path("results/val_results.csv") in files and Path("eval.json") in files
    assert len([f for f in files if f.suffix == ".png"]) == 2
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    for name in files:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def corrupt_frame(store: Path, video_id: str, frame: int) -> None:
    """Overwrite one stored frame's compressed bytes inside its Zarr shard (as a bad disk block
    would): that frame fails its checksum, every other frame of the shard still reads."""
    import zarr

    timeline = zarr.open_group(store / video_id, mode="r")["timeline"][:]
    position = int(np.searchsorted(timeline, frame))
    assert timeline[position] == frame
    frames = store / video_id / "frames"
    meta = json.loads((frames / "zarr.json").read_text())
    per_shard = (meta["chunk_grid"]["configuration"]["chunk_shape"][0]
                 // meta["codecs"][0]["configuration"]["chunk_shape"][0])
    rest = "/".join("0" * (len(meta["shape"]) - 1))
    shard = frames / "c" / str(position // per_shard) / rest
    raw = bytearray(shard.read_bytes())
    index = np.frombuffer(bytes(raw[-(per_shard * 16 + 4):-4]), dtype="<u8").reshape(-1, 2)
    offset, size = (int(v) for v in index[position % per_shard])
    raw[offset:offset + size] = b"\xff" * size
    shard.write_bytes(bytes(raw))


def test_a_rank_that_fails_stops_the_other_rank(dag, banks, heads, tmp_path):
    """On two nodes, rank 1 reads a corrupt clip while scoring val: it exits with its error and
    rank 0, which read its own batch fine, stops with 'failed on another rank' instead of
    waiting in the gather for a rank that is gone; nothing is written."""
    shutil.copytree(dag / "data", tmp_path / "data")
    keyframes = pd.read_parquet(tmp_path / "data" / "keyframes.parquet")
    val = keyframes[(keyframes["split"] == "val")].sort_values("timestamp")
    # val's 5 scored keyframes (the last is excluded), batches of 4: rank 1 runs the 5th alone
    fifth = val.iloc[4]
    # its keyframe's own frame: no other val clip (8 frames 8 apart, keyframes 10 apart) reads it
    corrupt_frame(tmp_path / "data" / "frames.zarr", fifth["video_id"], int(fifth["frame"]))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(dag / "two" / "params.yaml", run_dir / "params.yaml")
    out = tmp_path / "eval"
    args = [*inputs(tmp_path), "--model", str(heads[1] / "model.pt"), "--bank", str(banks[1]),
            "--results", str(out / "results"), "--metrics", str(out / "eval.json"),
            "--plots", str(out / "plots")]
    agents = run_two_nodes("evaluate", args, run_dir)
    assert all(code != 0 for code, _ in agents), agents
    logs = "\n".join(log for _, log in agents)
    assert "cannot read frames" in logs and "checksum do not match" in logs
    assert "the store is damaged" in logs
    assert "error: val failed on another rank (rank 0 of 2" in logs
    assert not out.exists()
