"""Start-up cost of the quick commands, against ``import torch`` measured in the same run.

Each command runs in a fresh interpreter, ``--repeats`` times; the bench prints the median wall
time, the peak RSS of the process and the ratio of the time to the reference (a fresh
interpreter that only imports torch), so the numbers mean the same on a slower machine:

    .venv/bin/python bench/bench_startup.py --repeats 5

The commands are what a user types: ``stad --help``, ``stad params check``, ``stad eval`` on the
small AVA sample of ``tests/fixtures/ava`` (start-up dominates), and the ``make_dataset``
stage's imports with every params group loaded and validated. ``tests/test_startup.py``
checks that none of them loads torch; this script says what that buys.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "ava"

def commands() -> dict[str, list[str]]:
    stad = [sys.executable, "-m", "pipeline.cli"]
    return {
        "python (nothing imported)": [sys.executable, "-c", "pass"],
        "import torch (reference)": [sys.executable, "-c", "import torch"],
        "stad --help": [*stad, "--help"],
        "stad params check": [*stad, "params", "check"],
        "stad eval (AVA sample)": [
            *stad, "eval", str(FIXTURES / "ava_val_sample.csv"),
            str(FIXTURES / "results_mmaction2_sample.csv"),
            "--label-map", str(FIXTURES / "action_list_label.pbtxt"),
            "--exclusions", str(FIXTURES / "ava_val_excluded_sample.csv")],
        "make_dataset imports + all params groups": [
            sys.executable, "-c", "import stages.make_dataset; from pipeline.params.all import "
                                  "load_all; load_all()"],
    }


def run_once(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one fresh process running ``argv``."""
    wrapped = [sys.executable, "-c",
               "import resource, subprocess, sys; "
               "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024); "
               "sys.exit(code)", *argv]
    tick = time.perf_counter()
    proc = subprocess.run(wrapped, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - tick
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds, float(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = {}
    for name, argv in commands().items():
        runs = [run_once(argv) for _ in range(args.repeats)]
        results[name] = (statistics.median(s for s, _ in runs), max(m for _, m in runs))
    reference = results["import torch (reference)"][0]
    print(f"median of {args.repeats} fresh processes each; ratio = time / 'import torch'\n")
    print("| command | time | peak RSS | ratio to import torch |\n| --- | --- | --- | --- |")
    for name, (seconds, peak) in results.items():
        print(f"| {name} | {seconds:.2f} s | {peak:.0f} MB | {seconds / reference:.2f} |")


if __name__ == "__main__":
    main()
