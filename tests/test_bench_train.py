"""bench/bench_train.py runs in its CI size on the CPU and prints every field (no timings are
asserted: speed is the bench's business, not the tests')."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIELDS = ("train clips/s", "infer clips/s", "GPU GiB", "train TFLOP/s", "% peak",
          "infer TFLOP/s", "% peak", "GFLOP/clip", "loader clips/s", "loader share")


def test_bench_train_tiny_prints_every_field():
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_train.py"), "--tiny", "--device", "cpu",
         "--loader", "--models", "slowonly_r50_4x16", "slowfast_r50_8x8"],
        capture_output=True, text=True, timeout=900, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert re.search(r"matmul peak .*: [\d.e+-]+ TFLOP/s", out.stdout)
    header = next(line for line in lines if line.startswith("model"))
    assert all(field in header for field in FIELDS) and header.count("% peak") == 2
    for model in ("slowonly_r50_4x16", "slowfast_r50_8x8"):
        row = next(line for line in lines if line.startswith(model)).split()
        numbers = [float(x.rstrip("%")) for x in row[1:] if x != "-"]
        assert len(numbers) == len(FIELDS) - 1   # GPU memory is '-' on the CPU
        assert all(n >= 0 for n in numbers) and float(row[1]) > 0 and float(row[2]) > 0
