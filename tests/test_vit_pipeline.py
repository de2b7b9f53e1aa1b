"""The tiny-vit preset runs the whole DAG with a ViT baseline (``dvc repro`` in a scratch git
repository), and every head trains on its feature maps and 64-wide bank features."""

from __future__ import annotations

import json
import math

import pytest

from helpers.dvc_project import project_copy, ran_stages, repro_from_scratch, sh

pytestmark = pytest.mark.slow

OTHER_HEADS = ("linear", "mlp", "acrn", "lfb_max", "lfb_avg")  # the preset's own: lfb_nl


def test_tiny_vit_preset_runs_the_dag_and_every_head(tmp_path):
    root = tmp_path / "repo"
    env = project_copy(root, "tiny-vit")
    assert "backbone: vit" in (root / "params.yaml").read_text()
    repro_from_scratch(root, env)

    baseline = json.loads((root / "models/baseline/report.json").read_text())
    assert math.isfinite(baseline["train_loss"])
    bank = json.loads((root / "data/lfb/bank/bank.json").read_text())
    assert bank["num_rows"] > 0 and bank["storage"]["dim"] == 64    # the tiny ViT's width, not 2048
    heads = {}
    for head in OTHER_HEADS:
        result = sh(["dvc", "exp", "run", "-S", f"model.head={head}"], root, env)
        assert ran_stages(result.stdout) == ["train_head", "evaluate"], result.stdout
        report = json.loads((root / "models/head/report.json").read_text())
        assert report["relation"] == (head if head.startswith(("acrn", "lfb")) else "none")
        heads[head] = json.loads((root / "models/head/metrics.json").read_text())["train_loss"]
        assert math.isfinite(json.loads((root / "metrics/eval.json").read_text())["mAP"])
    assert all(math.isfinite(loss) for loss in heads.values()), heads
