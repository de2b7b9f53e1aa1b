#!/usr/bin/env bash
# The GPU measurement in one go (about 8 to 10 minutes on one H200, estimated, never run; run from the repo root
# with the project's venv): throughput of the three R50 detectors in float32, float16 and
# bfloat16 autocast, the opt-in memory format and compiler, the loader at AVA's clip size,
# and the bfloat16 tolerance test. Output: bench/results/gpu_check.txt (its numbers go into docs/benchmarks.md).
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT_FILE:-bench/results/gpu_check.txt}
mkdir -p "$(dirname "$OUT")"
run() { echo "\$ $*" | tee -a "$OUT"; timeout "${LIMIT:-150}" "$@" 2>&1 | tee -a "$OUT"; echo | tee -a "$OUT"; }
: > "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT"
# 1. step efficiency: float32 vs float16 vs bfloat16 (batch 16 as the 341 clips/s of docs/ava.md)
run $PY bench/bench_train.py --device cuda --steps 10 --batch 16 --cudnn-benchmark off --models slowonly_r50_4x16
run $PY bench/bench_train.py --device cuda --steps 20 --batch 16 --amp --dtype float16 --cudnn-benchmark off --models slowonly_r50_4x16
LIMIT=270 run $PY bench/bench_train.py --device cuda --steps 20 --batch 16 --amp --dtype float16 --loader --workers 12 --loader-videos 2 --loader-seconds 30
run $PY bench/bench_train.py --device cuda --steps 20 --batch 16 --amp --dtype bfloat16
# 2. opt-in candidates, measured before they become params
run $PY bench/bench_train.py --device cuda --steps 20 --batch 16 --amp --dtype bfloat16 --channels-last
LIMIT=240 run $PY bench/bench_train.py --device cuda --steps 20 --batch 16 --amp --dtype bfloat16 --compile --models slowonly_r50_4x16
# 3. the loader at AVA's clip size, interleaved with in-memory batches on the GPU
run $PY bench/bench_loader.py --share --device cuda --preset slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb --clip 4x16 --short-side 320 --crop 256 --width 568 --height 320 --share-videos 3 --seconds 36 --batch-size 8 --workers 12 --steps 10 --warmup 2 --block 5 --codecs lz4:5
# 4. bfloat16/float16 within tolerance of float32 (CPU test, fast)
run $PY -m pytest -q -s tests/test_precision.py
echo "written: $OUT"
