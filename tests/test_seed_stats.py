"""bench/seed_stats.py's size sweep bookkeeping: diverged runs counted per head and size."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[1] / "bench" / "seed_stats.py"
spec = importlib.util.spec_from_file_location("seed_stats", PATH)
seed_stats = importlib.util.module_from_spec(spec)
spec.loader.exec_module(seed_stats)


def run(size, seed, head, m):
    result = None if m is None else {"mAP": m, "group_mAP": {"movement": m}}
    return {"size": size, "seed": seed, "head": head, "diverged": None if m else "error: "
            "training diverged at epoch 1, step 9", "baseline": {"mAP": 0.2, "group_mAP": {}},
            "head_eval": result}


def test_diverged_runs_are_counted_per_head_and_size_and_left_out_of_the_means():
    runs = [run("4x16", 0, "linear", 0.3), run("4x16", 1, "linear", None),
            run("4x16", 0, "lfb_nl", 0.5), run("8x16", 0, "linear", 0.4)]
    table = seed_stats.diverged_table(runs, ["linear", "lfb_nl"]).splitlines()
    assert table[2] == "| 4x16 | 1/2 | 0/1 |"
    assert table[3] == "| 8x16 | 0/1 | - |"
    summary = seed_stats.summaries(runs)
    assert summary["4x16"]["linear"]["n"] == 1 and summary["4x16"]["linear"]["diverged"] == 1
    assert summary["4x16"]["linear"]["mAP"]["mean"] == pytest.approx(0.3)
    assert summary["8x16"]["linear"]["mAP"]["mean"] == pytest.approx(0.4)
    text = seed_stats.report(runs, ["linear", "lfb_nl"])
    assert "- 4x16 seed 1 linear: error: training diverged" in text
    assert "(0 of 2 with a class group" in text


def test_a_group_with_ground_truth_but_no_detections_is_reported():
    silent = run("4x16", 0, "linear", 0.3)
    silent["baseline"]["group_mAP"] = {"movement": 0.2, "object": 0.1, "long_term": None}
    silent["head_eval"]["group_mAP"] = {"movement": 0.3, "object": None, "long_term": None}
    assert seed_stats.silent_groups(silent) == ["object"]
    assert "(1 of 1 with a class group" in seed_stats.report([silent], ["linear"])


def test_a_diverged_stage_is_told_apart_from_other_failures(tmp_path):
    env = dict(os.environ)
    with pytest.raises(seed_stats.Diverged, match="training diverged at epoch 2"):
        seed_stats.sh([sys.executable, "-c", "import sys; sys.exit("
                       "'error: training diverged at epoch 2, step 5')"], tmp_path, env)
    with pytest.raises(SystemExit, match="failed"):
        seed_stats.sh([sys.executable, "-c", "import sys; sys.exit('error: no such file')"],
                      tmp_path, env)
