"""A real `dvc repro` of the DAG on the smoke preset, in a temporary git repository."""

import json
import math
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
import zarr

from helpers.dvc_project import project_copy, ran_stages, repro_from_scratch, sh

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory):
    """A copy of the project's tracked files, smoke preset applied, committed."""
    root = tmp_path_factory.mktemp("repo")
    return root, project_copy(root, "smoke")


def test_dvc_repro_builds_the_whole_dag(smoke_repo):
    root, env = smoke_repo
    repro_from_scratch(root, env)

    manifest = (root / "data/dataset/dataset.json")
    assert manifest.is_file()
    index = pd.read_parquet(root / "data/frames/keyframes.parquet")
    store = zarr.open_group(root / "data/frames/frames.zarr", mode="r")
    assert sorted(store.group_keys()) == sorted(index["video_id"].unique())
    first = store[index["video_id"].iloc[0]]["frames"]
    assert first.dtype == "uint8" and first.shape[1:] == (48, 64, 3)
    # each frame within frames.reach [4, 3] of a keyframe stored once: at most 8 per keyframe
    frames = json.loads((root / "metrics/frames.json").read_text())
    stored = sum(store[video]["timeline"].shape[0] for video in store.group_keys())
    assert frames["keyframes"] == len(index) and frames["videos"] == index["video_id"].nunique()
    assert frames["stored_frames"] == stored <= 8 * len(index)
    proposals = pd.read_parquet(root / "data/proposals/proposals.parquet")
    assert {"video_id", "timestamp", "x1", "y1", "x2", "y2", "score"} <= set(proposals.columns)
    assert (root / "metrics/proposals.json").is_file()
    # What the pipeline guarantees on any machine: trained models that did not diverge (the
    # guard stops a stage otherwise) and defined scores; never one CPU's float values.
    baseline = json.loads((root / "models/baseline/metrics.json").read_text())
    baseline_report = json.loads((root / "models/baseline/report.json").read_text())
    head = json.loads((root / "models/head/metrics.json").read_text())
    head_report = json.loads((root / "models/head/report.json").read_text())
    evaluation = json.loads((root / "metrics/eval.json").read_text())
    eval_report = json.loads((root / "results/eval_report.json").read_text())
    for value in (baseline_report["train_loss"], head["train_loss"], baseline["val_mAP"],
                  head_report["val_mAP"], evaluation["mAP"]):
        assert isinstance(value, float) and math.isfinite(value), (baseline, head, evaluation)
    assert 0.0 <= evaluation["mAP"] <= 1.0 and "mAP" not in eval_report["undefined"]

    # No spurious reruns: a second repro, even with byte code lying in the code deps.
    (root / "pipeline/sources/synthetic/__pycache__").mkdir(exist_ok=True)
    (root / "pipeline/sources/synthetic/__pycache__/x.cpython-311.pyc").write_bytes(b"junk")
    again = sh(["dvc", "repro"], root, env)
    assert ran_stages(again.stdout) == [], again.stdout


def test_changing_proposal_params_reruns_only_proposals(smoke_repo):
    root, env = smoke_repo
    sh(["dvc", "repro"], root, env)
    result = sh(["dvc", "repro", "-s", "proposals", "--dry"], root, env)
    assert ran_stages(result.stdout) == []
    params = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(params.replace("false_positives_per_frame: 0.3",
                                                     "false_positives_per_frame: 0.5"))
    result = sh(["dvc", "repro", "proposals"], root, env)
    assert ran_stages(result.stdout) == ["proposals"], result.stdout


def test_bad_params_fail_the_stage_with_the_key(smoke_repo):
    root, env = smoke_repo
    params = (root / "params.yaml").read_text()
    try:
        assert "  quality: 3  " in params
        (root / "params.yaml").write_text(params.replace("  quality: 3  ", "  quality: high  "))
        result = sh(["dvc", "repro", "extract_frames"], root, env, check=False)
        assert result.returncode != 0
        assert "frames.quality" in result.stdout + result.stderr
    finally:
        (root / "params.yaml").write_text(params)


def _dvc_status(root: Path, env: dict) -> dict:
    return json.loads(sh(["dvc", "status", "--json"], root, env).stdout or "{}")


def test_the_models_sampling_never_marks_the_frame_store_changed(smoke_repo):
    """The store keeps every frame within frames.reach ([4, 3] in the smoke preset) of each
    keyframe, whatever clip the model reads: another clip length, frame interval and temporal
    jitter inside that reach (2x1 with jitter reads [2, 0]) rerun the baseline from the same
    store, never extraction, the dataset or the proposals."""
    root, env = smoke_repo
    sh(["dvc", "repro"], root, env)
    assert _dvc_status(root, env) == {}
    params = (root / "params.yaml").read_text()
    assert "  reach: [4, 3]  " in params
    try:
        raw = yaml.safe_load(params)
        assert (raw["baseline"]["model"]["clip_len"], raw["baseline"]["model"]["frame_interval"],
                raw["baseline"]["data"]["temporal_jitter"]) == (4, 2, False)
        raw["baseline"]["model"].update(clip_len=2, frame_interval=1)
        raw["baseline"]["data"]["temporal_jitter"] = True
        (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        # a valid configuration: the clip is inside the store's reach
        sh([sys.executable, "-m", "pipeline.cli", "params", "check"], root, env)
        status = _dvc_status(root, env)
        assert not set(status) & {"make_dataset", "extract_frames", "proposals"}, status
        assert "pretrain_baseline" in status, status
        reported = json.dumps(status["pretrain_baseline"])
        for key in ("baseline.model", "baseline.data.temporal_jitter"):
            assert key in reported, reported
        dry = sh(["dvc", "repro", "--dry"], root, env)
        ran = ran_stages(dry.stdout)
        assert "pretrain_baseline" in ran and not set(ran) & {
            "make_dataset", "extract_frames", "proposals"}, dry.stdout
    finally:
        (root / "params.yaml").write_text(params)
    assert _dvc_status(root, env) == {}


def test_changing_the_head_reruns_only_head_training_and_evaluation(smoke_repo):
    root, env = smoke_repo
    sh(["dvc", "repro"], root, env)
    bank = json.loads((root / "data/lfb/bank/bank.json").read_text())
    assert bank["storage"]["dtype"] == "float16" and bank["num_rows"] > 0
    head = "lfb_avg" if "head: lfb_max" in (root / "params.yaml").read_text() else "lfb_max"
    result = sh(["dvc", "exp", "run", "-S", f"model.head={head}"], root, env)
    assert ran_stages(result.stdout) == ["train_head", "evaluate"], result.stdout
    report = json.loads((root / "models/head/report.json").read_text())
    assert report["relation"] == head
    evaluation = json.loads((root / "metrics/eval.json").read_text())
    assert set(evaluation) == {"mAP", "group_mAP"}
    assert {"counts", "undefined"} <= set(json.loads(
        (root / "results/eval_report.json").read_text()))
    # what `dvc metrics show` prints: headline numbers, no per-class columns
    shown_metrics = json.loads(sh(["dvc", "metrics", "show", "--json"], root, env).stdout)
    for path in ("metrics/eval.json", "models/baseline/metrics.json", "models/head/metrics.json"):
        assert path in json.dumps(shown_metrics), path
    assert "per_class_AP" not in json.dumps(shown_metrics)
    assert (root / "results/val_results.csv").is_file()
    assert len(list((root / "results/keyframes").glob("*.png"))) == 2
    shown = sh(["dvc", "plots", "show", "--json"], root, env)
    for plot in ("plots/per_class_ap.csv", "plots/pr_curves.csv", "models/head/epochs.csv",
                 "models/baseline/steps.csv", "models/baseline/per_class_ap.csv",
                 "models/head/per_class_ap.csv"):
        assert plot in shown.stdout, plot


def test_queued_experiments_rerun_only_the_head_stages(smoke_repo):
    """`dvc exp run --queue` experiments run in a fresh copy of the repository: nothing
    upstream may look changed there (no resume state among the outputs)."""
    root, env = smoke_repo
    sh(["dvc", "repro"], root, env)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    sh([*git, "add", "-A"], root, env)
    sh([*git, "commit", "-qm", "outputs", "--allow-empty"], root, env)
    heads = ["linear", "mlp"]
    for head in heads:
        sh(["dvc", "exp", "run", "--queue", "--name", f"q-{head}", "-S", f"model.head={head}"],
            root, env)
    try:
        sh(["dvc", "queue", "start", "-j", "1"], root, env)
        deadline = time.monotonic() + 900
        while True:
            status = sh(["dvc", "queue", "status"], root, env).stdout
            if not any(word in status for word in ("Queued", "Running")):
                break
            assert time.monotonic() < deadline, status
            time.sleep(5)
    finally:
        sh(["dvc", "queue", "stop"], root, env, check=False)
    assert status.count("Success") == len(heads), status
    for head in heads:
        log = sh(["dvc", "queue", "logs", f"q-{head}"], root, env).stdout
        assert ran_stages(log) == ["train_head", "evaluate"], log
    shown = json.loads(sh(["dvc", "exp", "show", "--json"], root, env).stdout)
    assert f"q-{heads[0]}" in json.dumps(shown)


def _metric_columns(shown) -> list[tuple[str, str]]:
    """The metric columns of ``dvc exp show --json`` in its table's order: (file, dotted key)
    of every metrics value of the workspace and the experiments, first seen first. Commits'
    own rows are left out: theirs are the files committed, whatever code wrote them."""
    columns: dict[tuple[str, str], None] = {}

    def flatten(path: str, value, prefix: str = "") -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                flatten(path, inner, f"{prefix}{key}.")
        else:
            columns[(path, prefix[:-1])] = None

    def walk(node) -> None:
        if isinstance(node, dict):
            for path, result in (node.get("metrics") or {}).items():
                flatten(path, result.get("data", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for row in shown:
        walk(row if row["rev"] == "workspace" else row.get("experiments"))
    return list(columns)


def test_the_experiments_table_shows_headline_metrics_only(smoke_repo):
    """`dvc exp show` after a head experiment: at most 20 metric columns, the evaluated mAP
    among the first 8, no per-class or input statistics, and each name in one file only (so
    the table's headers need no file prefix). Last in the module: it leaves the workspace at
    the linear head, which the queued experiments above must see as a change."""
    root, env = smoke_repo
    sh(["dvc", "repro"], root, env)
    sh(["dvc", "exp", "run", "-S", "model.head=linear"], root, env)
    columns = _metric_columns(json.loads(sh(["dvc", "exp", "show", "--json"], root,
                                             env).stdout))
    assert len(columns) <= 20, columns
    assert ("metrics/eval.json", "mAP") in columns[:8], columns
    assert {path for path, _ in columns} == {
        "models/baseline/metrics.json", "models/head/metrics.json", "metrics/eval.json"}
    names = [name for _, name in columns]
    assert len(names) == len(set(names)), columns
    for word in ("per_class", "gt_count", "not_in_frame_store", "positives", "counts"):
        assert not any(word in name for name in names), columns
