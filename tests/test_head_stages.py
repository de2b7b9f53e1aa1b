"""The last three stages at library level on a real tiny dataset (mp4 -> Zarr frame store):
infer_lfb (bank contents, kill and resume, float16 vs float32), the cached-map head against the
full detector, train_head and evaluate outputs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from PIL import Image

from pipeline.ava.results import COLUMNS as RESULT_COLUMNS
from pipeline.ava.results import read_results
from pipeline.data.transforms import normalize_clips
from pipeline.engine.config import TrainConfig
from pipeline.tasks.infer_lfb import infer_lfb
from pipeline.data.inputs import LoadedInputs
from pipeline.data.collate import boxes_to_rois
from pipeline.engine.maps import (as_features, compute_maps, pooled_maps,
                                 predict_on_maps, predict_streaming, roi_windows)
from pipeline.tasks.evaluate import evaluate_head
from pipeline.errors import InputError
from pipeline.tasks.train_head import load_baseline_backbone, train_head
from pipeline.lfb.reader import FeatureBank, num_slots
from pipeline.models.detector import Detector
from pipeline.models.presets import get_preset
from pipeline.models.checkpoint import build_detector_from_checkpoint, save_stad_checkpoint
from pipeline.frames.spec import clip_offsets, clip_reach
from helpers.tiny_data import TinyData, build_tiny_data, files_of
from helpers.tiny_training import CPU, DATA, WINDOW, head_config

REPO_ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> TinyData:
    return build_tiny_data(tmp_path_factory.mktemp("head_data"), videos=3, seconds=8,
                           width=64, height=48, reach=clip_reach(8, 8, False))


@pytest.fixture(scope="module")
def baseline(data, tmp_path_factory) -> Path:
    """A tiny baseline checkpoint (random weights: the stages only need a real detector)."""
    torch.manual_seed(0)
    model = Detector(replace(get_preset("tiny"), num_classes=6))
    path = tmp_path_factory.mktemp("baseline") / "model.pt"
    save_stad_checkpoint(path, model=model, preset="tiny")
    return path


@pytest.fixture(scope="module")
def banks(data, baseline, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("banks")
    out = {}
    for dtype in ("float16", "float32"):
        out[dtype] = root / dtype
        infer_lfb(files=files_of(data), baseline_checkpoint=baseline, out_dir=out[dtype],
                  storage_dtype=dtype, chunk_rows=4, shard_rows=16, data_config=DATA,
                  batch_size=4, num_workers=0, ctx=CPU, progress=False)
    return out


def test_bank_holds_gt_boxes_for_train_and_proposals_for_val(data, banks):
    bank = FeatureBank(banks["float32"])
    index = pd.read_parquet(banks["float32"] / "index.parquet")
    assert bank.dim == 256 and bank.num_rows == len(index)
    assert set(index.loc[index["split"] == "train", "source"]) == {"gt"}
    assert set(index.loc[index["split"] == "val", "source"]) == {"proposal"}
    gt_boxes = pd.read_csv(data.annotations["train"], header=None).iloc[:, :6]
    assert (index["split"] == "train").sum() == len(gt_boxes.drop_duplicates())
    # rows sorted by (video, timestamp): a window is one slice
    keys = list(zip(index["video_id"], index["timestamp"]))
    assert keys == sorted(keys)
    array = zarr.open_array(banks["float32"] / "features.zarr", mode="r")
    assert array.dtype == np.float32 and np.isfinite(array[:]).all()
    assert array.shards == (16, 256) and array.chunks == (4, 256)


def test_bank_rows_are_the_detectors_own_roi_features(data, baseline, banks):
    """A bank row equals Detector.features() of the full model on that box."""
    model = build_detector_from_checkpoint(baseline).eval()
    inputs = LoadedInputs(files_of(data))
    index = pd.read_parquet(banks["float32"] / "index.parquet")
    row = index[index["split"] == "val"].iloc[0]
    dataset = inputs.dataset(None, frames_per_clip=8, frame_interval=8, short_side=32,
                             min_proposal_score=0.0, max_proposals=1,
                             keyframes=index.iloc[[row["row"]]])
    sample = dataset[0]
    height, width = sample["clip"].shape[1:3]
    box = torch.tensor([[0.0, row["x1"] * width, row["y1"] * height, row["x2"] * width,
                         row["y2"] * height]])
    clips = normalize_clips(sample["clip"][None])
    with torch.no_grad():
        expected = model.features(clips, box)[0].numpy()
    stored = FeatureBank(banks["float32"]).read_rows(int(row["row"]), int(row["row"]) + 1)[0]
    np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-5)


def test_killed_infer_lfb_resumes_from_written_shards(data, baseline, banks, tmp_path):
    out = tmp_path / "bank"
    script = (
        "import sys, torch\n"
        f"sys.path[:0] = [{str(REPO_ROOT)!r}, {str(REPO_ROOT / 'tests')!r}]\n"
        "from helpers.tiny_data import TinyData, files_of\n"
        "from helpers.tiny_training import CPU, DATA\n"
        "from pipeline.tasks.infer_lfb import infer_lfb\n"
        "from pipeline.ava.label_map import read_label_map\n"
        "from pathlib import Path\n"
        f"root = Path({str(data.root)!r})\n"
        "data = TinyData(root, root / 'frames.zarr', root / 'keyframes.parquet',\n"
        "    root / 'labels.pbtxt', {s: root / f'ava_{s}.csv' for s in ('train', 'val')},\n"
        "    {s: root / f'ava_{s}_excluded.csv' for s in ('train', 'val')},\n"
        "    root / 'proposals.parquet', read_label_map(root / 'labels.pbtxt'))\n"
        "torch.set_num_threads(1)\n"
        f"infer_lfb(files=files_of(data), baseline_checkpoint={str(baseline)!r},\n"
        f"    out_dir={str(out)!r}, storage_dtype='float32', chunk_rows=2, shard_rows=2,\n"
        "    data_config=DATA, batch_size=4, num_workers=0, ctx=CPU, progress=False)\n")
    done = tmp_path / "bank.partial" / "done"
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if done.is_dir() and len(list(done.iterdir())) >= 2:
                break
            time.sleep(0.005)
        process.kill()
    finally:
        process.wait()
    assert not out.exists(), "the killed run finished before it could be interrupted"
    written = len(list(done.iterdir()))
    assert written >= 2

    summary = infer_lfb(files=files_of(data), baseline_checkpoint=baseline, out_dir=out,
                        storage_dtype="float32", chunk_rows=2, shard_rows=2, data_config=DATA,
                        batch_size=4, num_workers=0, ctx=CPU, progress=False)
    assert summary["resumed_shards"] >= written and summary["resumed_shards"] < summary["shards"]
    resumed = zarr.open_array(out / "features.zarr", mode="r")[:]
    fresh = zarr.open_array(banks["float32"] / "features.zarr", mode="r")[:]
    np.testing.assert_allclose(resumed, fresh, rtol=1e-4, atol=1e-5)  # batching differs


def _lfb_head(dim: int, relation: str = "lfb_nl", position: bool = False) -> Detector:
    torch.manual_seed(1)
    config = replace(get_preset("tiny"), num_classes=6, relation=relation,
                     lfb_channels=dim, lfb_num_lt_feat=num_slots(WINDOW.window_seconds,
                                                                 WINDOW.max_per_second),
                     lfb_latent_channels=32, lfb_position=position)
    return Detector(config).eval()


def test_float16_and_float32_banks_give_the_same_head_outputs(data, baseline, banks):
    inputs = LoadedInputs(files_of(data))
    model = _lfb_head(256)
    model.backbone.load_state_dict(build_detector_from_checkpoint(baseline).backbone.state_dict())
    dataset = inputs.dataset("val", frames_per_clip=8, frame_interval=8, short_side=32,
                             min_proposal_score=0.9, max_proposals=100)
    with torch.inference_mode():
        maps = compute_maps(model, dataset, batch_size=4, num_workers=0, ctx=CPU)
    columns = torch.tensor(inputs.label_map.ids)
    scores = {}
    for dtype, path in banks.items():
        bank = FeatureBank(path)
        assert bank.dtype == dtype
        predictions = predict_on_maps(model.roi_head, maps, columns=columns, bank=bank,
                                      window=WINDOW, batch_size=4, device=torch.device("cpu"))
        scores[dtype] = np.concatenate([p["scores"] for p in predictions])
    assert scores["float32"].size > 0
    np.testing.assert_allclose(scores["float16"], scores["float32"], atol=2e-3)
    assert not np.allclose(scores["float32"], scores["float32"].mean())   # not a constant


def test_head_on_cached_maps_equals_the_full_detector(data, baseline, banks):
    """The frozen-backbone shortcut is exact: roi_head on pooled maps == Detector.forward."""
    inputs = LoadedInputs(files_of(data))
    bank = FeatureBank(banks["float32"])
    dataset = inputs.dataset("val", frames_per_clip=8, frame_interval=8, short_side=32,
                             min_proposal_score=0.9, max_proposals=100)
    samples = [dataset[i] for i in range(3)]
    clips = torch.stack([s["clip"] for s in samples])
    rois = boxes_to_rois([s["proposals"] for s in samples])
    lt, mask, geometry = roi_windows(bank, WINDOW, [s["video_id"] for s in samples],
                                     np.array([s["timestamp"] for s in samples]), rois[:, 0],
                                     rng=None)
    for relation, position in (("lfb_nl", False), ("lfb_nl", True), ("lfb_max", False)):
        model = _lfb_head(bank.dim, relation, position)
        with torch.no_grad():
            full = model(normalize_clips(clips), rois, lt, mask, geometry)
            cached = model.roi_head(as_features(pooled_maps(model, clips)), rois, lt, mask,
                                    geometry)
        torch.testing.assert_close(cached, full, rtol=1e-5, atol=1e-5)


def test_streaming_prediction_equals_prediction_on_cached_maps(data, baseline, banks):
    """``predict_streaming`` (evaluate, fine-tuning: memory of one batch) scores exactly what
    the cached-map path scores."""
    inputs = LoadedInputs(files_of(data))
    bank = FeatureBank(banks["float32"])
    model = _lfb_head(bank.dim, "lfb_nl", position=True)
    model.backbone.load_state_dict(build_detector_from_checkpoint(baseline).backbone.state_dict())
    dataset = inputs.dataset("val", frames_per_clip=8, frame_interval=8, short_side=32,
                             min_proposal_score=0.9, max_proposals=100)
    columns = torch.tensor(inputs.label_map.ids)
    with torch.inference_mode():
        maps = compute_maps(model, dataset, batch_size=4, num_workers=0, ctx=CPU)
    cached = predict_on_maps(model.roi_head, maps, columns=columns, bank=bank, window=WINDOW,
                             batch_size=4, device=torch.device("cpu"))
    streamed = predict_streaming(model, dataset, columns=columns, bank=bank, window=WINDOW,
                                 batch_size=3, num_workers=0, ctx=CPU)
    assert [(p["video_id"], p["timestamp"]) for p in streamed] == \
        [(p["video_id"], p["timestamp"]) for p in cached]
    for a, b in zip(streamed, cached):
        np.testing.assert_allclose(a["boxes"], b["boxes"])
        np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("preset, field, value", [("tiny-vit", "vit_size", "vit-base"),
                                                  ("tiny", "depth", 101)])
def test_a_head_on_another_baseline_is_refused_naming_the_field(tmp_path, preset, field, value):
    """The head's detector is the baseline's up to the fields the model params set; any other
    difference (here the ViT size or the ResNet depth) is refused before weights are copied."""
    config = replace(get_preset(preset), num_classes=6)
    torch.manual_seed(0)
    baseline = Detector(config)
    save_stad_checkpoint(tmp_path / "baseline.pt", model=baseline, preset=preset)
    with torch.device("meta"):   # refused before any weight is needed
        other = Detector(replace(config, classifier="mlp", **{field: value}))
    with pytest.raises(InputError, match=rf"{field}={value!r} \(baseline's: ") as info:
        load_baseline_backbone(other, tmp_path / "baseline.pt")
    assert "classifier" not in str(info.value)   # a head field differs freely
    head = Detector(replace(config, classifier="mlp", dropout=0.1))
    load_baseline_backbone(head, tmp_path / "baseline.pt")
    assert all(torch.equal(a, b) for a, b in zip(head.backbone.state_dict().values(),
                                                 baseline.backbone.state_dict().values()))


@pytest.mark.parametrize("head", ["lfb_nl", "acrn"])
def test_train_head_then_evaluate_writes_every_output(data, baseline, banks, tmp_path, head):
    inputs = LoadedInputs(files_of(data))
    config = head_config(baseline, head)
    train = TrainConfig(epochs=2, batch_size=2, lr=0.05, warmup_epochs=0.5, schedule="cosine",
                        num_workers=0, val_every=1)
    metrics = train_head(files=files_of(data), baseline_checkpoint=baseline,
                         bank_dir=banks["float16"], out_dir=tmp_path / "head",
                         checkpoint_dir=tmp_path / "ck", model_config=config, train_config=train,
                         data_config=DATA, window=WINDOW, ctx=CPU)
    assert metrics["epochs"] == 2 and metrics["relation"] == head
    assert metrics["head"] == head      # as params model.head names it, not the classifier
    assert metrics["val_counts"]["classes"] == len(pd.read_csv(tmp_path / "head/per_class_ap.csv"))
    epochs = pd.read_csv(tmp_path / "head/epochs.csv")
    assert list(epochs["epoch"]) == [1, 2] and "val_mAP" in epochs
    trained = build_detector_from_checkpoint(tmp_path / "head/model.pt")
    original = build_detector_from_checkpoint(baseline)
    for key, value in original.backbone.state_dict().items():   # the backbone stayed frozen
        torch.testing.assert_close(trained.backbone.state_dict()[key], value)

    result = evaluate_head(files=files_of(data), checkpoint=tmp_path / "head/model.pt",
                           bank_dir=banks["float16"], results_dir=tmp_path / "results",
                           metrics_path=tmp_path / "metrics/eval.json",
                           plots_dir=tmp_path / "plots", window=WINDOW, data_config=DATA,
                           protocol="activitynet", score_threshold=0.0, render_count=2, batch_size=4, num_workers=0,
                           ctx=CPU)
    csv = read_results(tmp_path / "results/val_results.csv")
    parquet = read_results(tmp_path / "results/val_results.parquet")
    assert list(csv.columns) == RESULT_COLUMNS and len(csv) == len(parquet) > 0
    assert set(csv["action_id"]) <= set(inputs.label_map.ids)
    saved = json.loads((tmp_path / "metrics/eval.json").read_text())
    details = json.loads((tmp_path / "results/eval_report.json").read_text())
    assert {**saved, **details} == result and 0.0 <= saved["mAP"] <= 1.0
    # headline numbers only in the metrics file, the rest in the report; one row per class
    # in the plot
    assert set(saved) == {"mAP", "group_mAP"}
    assert set(details) == {"protocol", "counts", "undefined", "not_in_frame_store"}
    per_class = pd.read_csv(tmp_path / "plots/per_class_ap.csv")
    assert list(per_class.columns) == ["class", "group", "AP", "gt_count", "n_detections",
                                       "undefined"]
    assert set(per_class["class"]) == {f"{i} {inputs.label_map.names[i]}"
                                       for i in inputs.label_map.ids}
    assert details["counts"]["classes"] == len(per_class) == 3
    assert details["counts"]["gt_boxes"] == per_class["gt_count"].sum()
    assert details["counts"]["classes_with_AP"] == per_class["AP"].notna().sum()
    pr = pd.read_csv(tmp_path / "plots/pr_curves.csv")
    assert list(pr.columns) == ["class", "recall", "precision"]
    assert pr["recall"].between(0, 1).all() and pr["precision"].between(0, 1).all()
    pngs = sorted((tmp_path / "results/keyframes").glob("*.png"))
    assert len(pngs) == 2 and Image.open(pngs[0]).size[0] > 64


def test_keyframes_are_drawn_when_ground_truth_has_actions_outside_the_label_map(data, tmp_path):
    """AVA's val CSV holds all 80 actions: a box with only unscored ones is not drawn, a box
    with both is drawn with the scored names."""
    from pipeline.tasks.evaluate import render_keyframes

    inputs = LoadedInputs(files_of(data))
    gt = inputs.gt("val")
    first = gt.iloc[[0]]
    assert 2 not in inputs.label_map.ids
    gt = pd.concat([gt, first.assign(action_id=np.int16(2)),
                    first.assign(action_id=np.int16(2), x1=np.float32(0.0))], ignore_index=True)
    prediction = {"video_id": first["video_id"].iloc[0], "timestamp": int(first["timestamp"].iloc[0]),
                  "boxes": np.array([[0.1, 0.1, 0.6, 0.9]], np.float32),
                  "scores": np.full((1, inputs.label_map.num_classes), 0.5, np.float32)}
    paths = render_keyframes(tmp_path, inputs, [prediction], gt, count=1,
                             offsets=clip_offsets(8, 8))
    assert len(paths) == 1 and Image.open(paths[0]).size[0] > 64


def test_videos_the_store_skipped_are_neither_trained_nor_scored(tmp_path):
    """``frames.skip_bad_videos`` left a train and a val video out of the store: every stage
    runs on the rest, counts what it left out, and val is scored as if the skipped video had no
    annotations (mmaction2 would have no frames of it)."""
    from pipeline.ava.annotations import read_annotations, write_annotations
    from pipeline.tasks.pretrain_baseline import train_baseline
    from pipeline.evaluation.evaluator import evaluate_files

    data = build_tiny_data(tmp_path / "data", videos=4, val_videos=2, seconds=6, width=64,
                           height=48, reach=clip_reach(8, 8, False),
                           unreadable=("vid1", "vid3"))
    files = files_of(data)
    gone = {split: read_annotations(files.annotations(split)).query("video_id in ['vid1', 'vid3']")
            for split in ("train", "val")}
    expected = {split: {"videos": [vid], "keyframes": 4, "rows": len(gone[split]),
                        "boxes": len(gone[split].drop_duplicates(
                            ["video_id", "timestamp", "x1", "y1", "x2", "y2"]))}
                for split, vid in (("train", "vid1"), ("val", "vid3"))}
    train = TrainConfig(epochs=1, batch_size=2, lr=0.05, warmup_epochs=0.0, num_workers=0,
                        device="cpu")
    baseline = train_baseline(
        files=files, out_dir=tmp_path / "baseline", checkpoint_dir=tmp_path / "ck0",
        model_config=replace(get_preset("tiny"), num_classes=6), train_config=train,
        data_config=DATA, preset="tiny", ctx=CPU)
    assert baseline["not_in_frame_store"] == expected
    assert baseline["train_clips"] == baseline["val_clips"] == 4 - 1   # one video, 1 excluded

    infer_lfb(files=files, baseline_checkpoint=tmp_path / "baseline/model.pt",
              out_dir=tmp_path / "bank", storage_dtype="float32", chunk_rows=4, shard_rows=16,
              data_config=DATA, batch_size=4, num_workers=0, ctx=CPU, progress=False)
    assert set(pd.read_parquet(tmp_path / "bank/index.parquet")["video_id"]) == {"vid0", "vid2"}
    head = train_head(files=files, baseline_checkpoint=tmp_path / "baseline/model.pt",
                      bank_dir=tmp_path / "bank", out_dir=tmp_path / "head",
                      checkpoint_dir=tmp_path / "ck1",
                      model_config=head_config(tmp_path / "baseline/model.pt", "lfb_nl"),
                      train_config=train, data_config=DATA, window=WINDOW, ctx=CPU)
    assert head["not_in_frame_store"] == expected
    result = evaluate_head(files=files, checkpoint=tmp_path / "head/model.pt",
                           bank_dir=tmp_path / "bank", results_dir=tmp_path / "results",
                           metrics_path=tmp_path / "eval.json", plots_dir=tmp_path / "plots",
                           window=WINDOW, data_config=DATA, render_count=4, batch_size=4,
                           num_workers=0, ctx=CPU)
    assert result["not_in_frame_store"] == expected["val"]
    # scored exactly as the val annotations without the skipped video
    kept = read_annotations(files.val_annotations).query("video_id != 'vid3'")
    write_annotations(tmp_path / "val_kept.csv", kept)
    alone = evaluate_files(tmp_path / "val_kept.csv", tmp_path / "results/val_results.parquet",
                           files.label_map, exclusions_path=files.val_exclusions)
    per_class = pd.read_csv(tmp_path / "plots/per_class_ap.csv")
    assert dict(zip(per_class["class"], per_class["gt_count"])) == {
        f"{i} {n}": alone.per_class[i].gt_count for i, n in alone.label_map.names.items()}
    assert result["mAP"] == pytest.approx(alone.to_json()["mAP"])


def test_head_lr_is_scaled_down_where_train_features_exceed_lr_feature_norm(
        data, baseline, banks, tmp_path):
    config = head_config(baseline, "linear")
    train = TrainConfig(epochs=1, batch_size=2, lr=0.05, warmup_epochs=0.5, schedule="cosine",
                        num_workers=0, val_every=1)
    runs = {}
    for name in ("high", "low"):
        reference = 1e6 if name == "high" else runs["high"]["train_feature_norm_p99"] / 2
        runs[name] = train_head(files=files_of(data), baseline_checkpoint=baseline,
                                bank_dir=banks["float16"], out_dir=tmp_path / name,
                                checkpoint_dir=tmp_path / f"ck_{name}", model_config=config,
                                train_config=train, data_config=DATA, window=WINDOW,
                                lr_feature_norm=reference, ctx=CPU)
    assert runs["high"]["train_feature_norm_p99"] > 0
    assert runs["high"]["lr"] == 0.05
    assert runs["low"]["lr"] == pytest.approx(0.05 / 4)
    lrs = {name: pd.read_csv(tmp_path / name / "steps.csv")["lr"] for name in runs}
    assert list(lrs["low"]) == pytest.approx(list(lrs["high"] / 4))   # the optimiser ran with it
