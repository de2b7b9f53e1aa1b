"""bench/bench_frames.py and bench/bench_loader.py run in their CI size (a 3-s synthetic clip)
and print every row and ratio (no timings are asserted: speed is the benches' business)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODECS = ["zstd:3", "jpeg:90", "h264:18"]
LABELS = ("zstd level 3", "jpeg q90", "h264 CRF 18")
NUMBER = r"(inf|nan|[\d.]+)"


def run_bench(name: str, *args: str) -> list[str]:
    out = subprocess.run([sys.executable, str(REPO / "bench" / name), "--synthetic",
                          "--synthetic-size", "128x96", "--short-side", "64", "--rounds", "1",
                          "--codecs", *CODECS, *args],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.splitlines()


def rows(lines: list[str], label: str) -> list[list[float]]:
    """The numbers of every row starting with ``label``."""
    found = []
    for line in lines:
        if line.startswith(label):
            fields = line[len(label):].replace("|", " ").replace("-", " ").split()
            assert all(re.fullmatch(NUMBER, f) for f in fields), line
            found.append([float(f) for f in fields])
    return found


def test_bench_frames_prints_sizes_ratios_psnr_and_ava_estimate():
    lines = run_bench("bench_frames.py")
    text = "\n".join(lines)
    assert re.search(r"synthetic +128x96 .* -> 86x64, 90 stored frames", text)
    assert re.search(r"AVA estimate: 299 videos x 26,953 stored frames", text)
    for label in LABELS:
        sizes, speed, ava = rows(lines, label)
        kb, _, db, _ = sizes                       # one video: its value, then the mean
        assert kb > 0 and (db == float("inf")) == label.startswith("zstd")
        extract_fps, plain_fps, ratio, per_video = speed
        assert extract_fps > 0 and plain_fps > 0 and ratio > 0 and per_video == ratio
        kb_ava, gb, low, high, vs_jpeg, vs_video = ava
        assert kb_ava == kb and low <= gb <= high and 0 <= vs_jpeg <= vs_video
    jpeg_db, h264_db = rows(lines, "jpeg q90")[0][2], rows(lines, "h264 CRF 18")[0][2]
    assert 25 < jpeg_db < 80 and 25 < h264_db < 80


def test_bench_loader_prints_clip_rates_ratios_and_workers():
    lines = run_bench("bench_loader.py", "--clips-per-arm", "4")
    text = "\n".join(lines)
    assert "4x16 (reach (40, 23)), target 341 clips/s" in text
    assert "32x2 (reach (33, 30)), target 78 clips/s" in text
    for label in LABELS:
        for rate, ratio, workers, ms in rows(lines, label):   # 4x16, then 32x2
            assert rate > 0 and ratio > 0 and workers > 0 and ms > 0
    assert [r[1] for r in rows(lines, "zstd level 3")] == [1.0, 1.0]
