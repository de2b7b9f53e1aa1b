"""`stad detect` on a val video with the DAG's proposals gives evaluate's rows and scores, for the
baseline and for every head (the feature-bank heads from their checkpoint alone: detect builds
the video's own bank), and runs converted zoo checkpoints, a feature-bank head included.

One session fixture runs the DAG's library calls on a real tiny dataset (mp4 -> Zarr store,
resized while decoding): baseline, bank, each head, evaluate.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.ava.annotations import read_annotations
from pipeline.ava.exclusions import read_exclusions
from pipeline.ava.results import read_results
from pipeline.cli import main
from pipeline.data.config import DataConfig
from pipeline.tasks.pretrain_baseline import train_baseline
from pipeline.engine.config import TrainConfig
from pipeline.engine.distributed import DistContext
from pipeline.tasks.infer_lfb import infer_lfb
from pipeline.tasks.evaluate import evaluate_head
from pipeline.frames.spec import clip_reach
from pipeline.tasks.train_head import train_head
from pipeline.lfb.reader import FeatureBank
from pipeline.lfb.window import BankWindow
from pipeline.models.checkpoint import convert, read_stad_checkpoint
from pipeline.models.presets import get_preset
from helpers.tiny_data import TinyData, build_tiny_data, files_of
from helpers.tiny_training import head_config
from helpers.video import write_video
from helpers.zoo_layout import expected_layout, random_state

CPU = DistContext(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
SECONDS = 8                    # keyframes 1..6 stored; the val video is vid2
STORE_SHORT_SIDE = 48          # the store resizes 96x72 videos while decoding ...
DATA = DataConfig(short_side_range=(40, 48), crop_size=40, test_short_side=40,
                  test_batch_size=4)   # ... and the test transform again, 48 -> 40
WINDOW = BankWindow(window_seconds=2, max_per_second=3)
HEADS = ["linear", "mlp", "acrn", "lfb_nl", "lfb_max", "lfb_avg", "lfb_max_finetuned"]
KEYS = ["video_id", "timestamp", "action_id"]
BOXES = ["x1", "y1", "x2", "y2"]
TRAIN = TrainConfig(epochs=1, batch_size=4, lr=0.01, grad_clip=5.0, warmup_epochs=0.0, num_workers=0,
                    device="cpu", val_every=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dag(tmp_path_factory) -> tuple[TinyData, dict[str, tuple[Path, Path]]]:
    """The DAG's outputs: {name: (checkpoint, val detections)} for the baseline (its own val
    detections, as pretrain_baseline writes them) and for each head (evaluate's results)."""
    root = tmp_path_factory.mktemp("dag")
    data = build_tiny_data(root / "data", videos=3, seconds=SECONDS, width=96, height=72,
                           reach=clip_reach(4, 2, False), short_side=STORE_SHORT_SIDE)
    files = files_of(data)
    model = replace(get_preset("tiny"), num_classes=6, clip_len=4, frame_interval=2)
    train_baseline(files=files, out_dir=root / "baseline",
                   checkpoint_dir=root / "ck", model_config=model, train_config=TRAIN,
                   data_config=DATA, preset="tiny", ctx=CPU)
    baseline = root / "baseline" / "model.pt"
    infer_lfb(files=files, baseline_checkpoint=baseline, out_dir=root / "bank",
              storage_dtype="float16", chunk_rows=4, shard_rows=16, data_config=DATA,
              batch_size=4, num_workers=0, ctx=CPU, progress=False)
    outputs = {"baseline": (baseline, root / "baseline" / "val_detections.parquet")}
    bank_dim = FeatureBank(root / "bank").dim
    for name in HEADS:
        head = name.removesuffix("_finetuned")
        config = head_config(baseline, head)
        assert config.lfb_channels == bank_dim
        out = root / name
        train_head(files=files, baseline_checkpoint=baseline, bank_dir=root / "bank",
                   out_dir=out, checkpoint_dir=root / f"ck_{name}", model_config=config,
                   train_config=TRAIN, data_config=DATA, window=WINDOW,
                   finetune_backbone=name.endswith("_finetuned"), ctx=CPU)
        evaluate_head(files=files, checkpoint=out / "model.pt", bank_dir=root / "bank",
                      results_dir=out / "results", metrics_path=out / "eval.json",
                      plots_dir=out / "plots", window=WINDOW, data_config=DATA,
                      score_threshold=0.002, render_count=0, batch_size=4, num_workers=0,
                      ctx=CPU)
        outputs[name] = (out / "model.pt", out / "results" / "val_results.parquet")
    return data, outputs


def _scored_keyframes(data: TinyData, video_id: str) -> set[int]:
    """The val keyframes evaluation scores: annotated, not excluded."""
    gt = read_annotations(data.annotations["val"])
    excluded = read_exclusions(data.exclusions["val"])
    keys = set(gt.loc[gt["video_id"] == video_id, "timestamp"].astype(int))
    return keys - set(excluded.loc[excluded["video_id"] == video_id, "timestamp"].astype(int))


@pytest.mark.parametrize("name", ["baseline", *HEADS])
def test_detect_on_a_val_video_gives_evaluates_rows_and_scores(dag, name, tmp_path):
    data, outputs = dag
    checkpoint, expected_path = outputs[name]
    stad = read_stad_checkpoint(checkpoint)
    assert stad.frame_short_side == STORE_SHORT_SIDE
    # a frozen backbone is the head's own: not stored twice; a fine-tuned one is the baseline's
    if stad.config.uses_bank:
        assert (stad.bank.baseline_backbone is None) == (name != "lfb_max_finetuned")
        assert (stad.bank.window_seconds, stad.bank.max_per_second) == (2, 3)
    out = tmp_path / "out"
    assert main(["detect", str(data.root / "vid2.mp4"), "--checkpoint", str(checkpoint),
                 "--proposals", str(data.proposals_path), "--person-threshold", "0.9",
                 "--start", "1", "--end", str(SECONDS - 2), "--batch-size", "3",
                 "--no-video", "--device", "cpu", "--out", str(out)]) == 0
    assert not (out / "annotated.mp4").exists()
    assert (out / "bank").is_dir() == stad.config.uses_bank

    found = read_results(out / "detections.parquet")
    expected = read_results(expected_path)
    expected = expected[expected["video_id"].astype(str) == "vid2"]
    scored = _scored_keyframes(data, "vid2")
    assert set(expected["timestamp"]) <= scored and len(expected) > 0
    assert set(found["timestamp"]) == set(range(1, SECONDS - 1))   # every keyframe asked for
    found = found[found["timestamp"].isin(scored)]

    def keyed(table: pd.DataFrame) -> pd.DataFrame:
        table = table.assign(video_id=table["video_id"].astype(str),
                             **{c: table[c].round(4) for c in BOXES})
        return table.set_index([*KEYS, *BOXES])["score"]

    both = pd.concat({"found": keyed(found), "expected": keyed(expected)}, axis=1)
    assert both.index.is_unique
    matched = both.dropna()
    assert len(matched) > 0.9 * len(both)
    np.testing.assert_allclose(matched["found"], matched["expected"], rtol=0, atol=1e-4)
    # a row only one side has is one at the 0.002 cut, within the tolerance
    alone = both[both.isna().any(axis=1)].max(axis=1)
    assert (alone <= 0.002 + 1e-4).all(), alone


def test_detect_feature_bank_holds_the_dags_val_rows(dag, tmp_path):
    """The video's own bank has the rows the DAG's bank holds for that val video."""
    data, outputs = dag
    out = tmp_path / "out"
    assert main(["detect", str(data.root / "vid2.mp4"), "--checkpoint",
                 str(outputs["lfb_nl"][0]), "--proposals", str(data.proposals_path),
                 "--no-video", "--device", "cpu", "--out", str(out)]) == 0
    own = pd.read_parquet(out / "bank" / "index.parquet")
    dag_bank = pd.read_parquet(outputs["baseline"][0].parents[1] / "bank" / "index.parquet")
    dag_rows = dag_bank[dag_bank["video_id"] == "vid2"].reset_index(drop=True)
    columns = ["timestamp", "box_index", *BOXES, "score", "split", "source"]
    pd.testing.assert_frame_equal(own[columns], dag_rows[columns])
    dag_features = FeatureBank(outputs["baseline"][0].parents[1] / "bank")
    features = FeatureBank(out / "bank")
    assert features.dtype == "float16"
    rows = dag_rows["row"].to_numpy()
    np.testing.assert_allclose(features.read_rows(0, len(own)).astype(np.float32),
                               dag_features.read_rows(rows[0], rows[-1] + 1).astype(np.float32),
                               rtol=2e-3, atol=1e-3)


ZOO_LFB = "slowonly-lfb-nl_kinetics400-pretrained-r50_8xb12-4x16x1-20e_ava21-rgb"
ZOO_BANK = "slowonly-lfb_ava-pretrained-r50_infer-4x16x1_ava21-rgb"


def test_detect_runs_converted_zoo_checkpoints(tmp_path, capsys):
    """mmaction2 checkpoints converted with `stad checkpoint convert`: a detector as it is, an
    LFB head with its bank-inference model as --bank-baseline (mmaction2's 60 s x 5 window)."""
    film = write_video(tmp_path / "film.mp4", num_frames=75, fps=25, width=64, height=48)
    rows = [("film", t, 0.1, 0.2, 0.6, 0.9, 0.95) for t in range(3)]
    proposals = tmp_path / "proposals.parquet"
    pd.DataFrame(rows, columns=["video_id", "timestamp", *BOXES, "score"]).to_parquet(proposals)
    converted = {}
    for name in (ZOO_LFB, ZOO_BANK):
        source = tmp_path / f"{name}.pth"
        torch.save({"state_dict": random_state(expected_layout(name)), "meta": {}}, source)
        converted[name] = tmp_path / f"{name}.stad.pt"
        convert(source, preset=name, out=converted[name])
        source.unlink()
    args = ["detect", str(film), "--proposals", str(proposals), "--short-side", "32",
            "--device", "cpu", "--no-video", "--score-threshold", "0"]
    assert main([*args, "--checkpoint", str(converted[ZOO_BANK]),
                 "--out", str(tmp_path / "plain")]) == 0
    # the LFB head records no baseline: it says what to give, then runs with it
    capsys.readouterr()
    assert main([*args, "--checkpoint", str(converted[ZOO_LFB]),
                 "--out", str(tmp_path / "refused")]) == 2
    assert "--bank-baseline" in capsys.readouterr().err
    assert main([*args, "--checkpoint", str(converted[ZOO_LFB]), "--bank-baseline",
                 str(converted[ZOO_BANK]), "--out", str(tmp_path / "lfb")]) == 0
    for out in ("plain", "lfb"):
        table = read_results(tmp_path / out / "detections.parquet")
        assert sorted(set(table["timestamp"])) == [0, 1, 2]
        assert np.isfinite(table["score"]).all()
    bank = FeatureBank(tmp_path / "lfb" / "bank")
    assert bank.num_rows == 3 and bank.dim == 2048
