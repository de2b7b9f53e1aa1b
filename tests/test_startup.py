"""The quick commands never load torch: ``stad --help``, ``stad eval``, ``stad params`` and the
``make_dataset`` stage (importing torch costs seconds and ~1 GB before any work starts).

Each runs for real in a fresh interpreter, which then reports whether ``torch`` was imported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "ava"

# Runs ``main(argv)`` of a module, then prints whether torch is loaded; the exit status is main's.
RUNNER = """
import importlib, sys
module, argv = sys.argv[1], sys.argv[2:]
try:
    code = importlib.import_module(module).main(argv)
except SystemExit as exit:
    code = exit.code
print("torch loaded:", "torch" in sys.modules)
sys.exit(code or 0)
"""


def run_fresh(module: str, *argv: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-c", RUNNER, module, *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["params", "check"],
    ["eval", str(FIXTURES / "ava_val_sample.csv"), str(FIXTURES / "results_mmaction2_sample.csv"),
     "--label-map", str(FIXTURES / "action_list_label.pbtxt"),
     "--exclusions", str(FIXTURES / "ava_val_excluded_sample.csv")],
    ["eval", str(FIXTURES / "ava_val_sample.csv"), str(FIXTURES / "results_mmaction2_sample.csv"),
     "--label-map", str(FIXTURES / "action_list_label.pbtxt"), "--protocol", "activitynet2020"],
], ids=["help", "params-check", "eval", "eval-activitynet2020"])
def test_stad_command_does_not_import_torch(argv):
    assert run_fresh("pipeline.cli", *argv, cwd=REPO) == "torch loaded: False"


def test_params_apply_does_not_import_torch(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    preset = str(REPO / "presets" / "smoke.yaml")
    assert run_fresh("pipeline.cli", "params", "apply", preset, cwd=tmp_path) \
        == "torch loaded: False"


def test_make_dataset_stage_does_not_import_torch(tmp_path):
    """The stage's module and every params group loaded and validated (the model presets
    included); generating the dataset itself is tested elsewhere."""
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, stages.make_dataset; from pipeline.params.all import "
                               "load_all; load_all(); print('torch' in sys.modules)"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
