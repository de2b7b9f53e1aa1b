"""Time the AVA evaluator against mmaction2's ``ava_eval`` and a plain-loop reference.

Input (``--scale 1.0``, seeded): an AVA-val-like set of 64 videos x 781 keyframes = 49,984
keyframes, 1-8 people per keyframe (~225k boxes), each with 1-3 of 80 actions (~450k ground-truth
rows); detections = every ground-truth box jittered plus ~1 extra box per keyframe, with a
score for each of the 80 classes written when > 0.002 at 4 decimals as mmaction2 does (~8M
rows at scale 1), 2% of keyframes excluded, the 60-class ActivityNet-style label map.
``--scale`` multiplies the number of videos.

Each evaluator runs in its own subprocess (same files, same machine) and reports wall time
and peak memory: the peak RSS of its main process (``resource.getrusage``), and the peak of the
RSS summed over its whole process tree, sampled every 20 ms from ``/proc`` (this counts
mmaction2's 32-process pool; pages shared after fork count once per process). mmaction2's evaluator is taken from the ``mmaction2`` wheel downloaded with
``pip download --no-deps`` into a temporary directory (never installed): only
``mmaction/evaluation/functional/ava_utils.py`` and ``ava_evaluation/`` are loaded, by file
path; they need only numpy. If that fails, the bench says so and compares with the plain
reference only (which is slow: use a small ``--scale`` for it, e.g. 0.05).

    .venv/bin/python bench/bench_eval.py --scale 1.0
    .venv/bin/python bench/bench_eval.py --scale 0.05 --plain
    .venv/bin/python bench/bench_eval.py --scale 0.05 --plain --protocol activitynet2020

``--protocol`` picks the protocol of ours and of the plain reference (mmaction2's evaluator
runs for ``mmaction2`` only; ``activitynet2020`` takes no exclusions file).

    .venv/bin/python bench/bench_eval.py --scale 0.4 --commands   # ~20k keyframes

``--commands`` also times the whole ``stad eval`` command (interpreter start, imports, reading,
scoring, printing) and prints its ratio to mmaction2's ``ava_eval`` run as a whole script: the
comparison a user sees at the shell.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.ava.annotations import write_annotations  # noqa: E402
from pipeline.ava.exclusions import write_exclusions  # noqa: E402
from pipeline.ava.label_map import LabelMap, write_label_map  # noqa: E402
from pipeline.ava.results import write_results_csv  # noqa: E402

EVALUATED_IDS = (1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 20, 22, 24, 26, 27, 28, 29,
                 30, 34, 36, 37, 38, 41, 43, 45, 46, 47, 48, 49, 51, 52, 54, 56, 57, 58, 59, 60,
                 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 72, 73, 74, 76, 77, 78, 79, 80)


def make_inputs(directory: Path, *, scale: float, seed: int = 0) -> dict[str, Path]:
    """Write gt.csv, det.csv, excl.csv and labels.pbtxt; return their paths."""
    rng = np.random.default_rng(seed)
    n_videos = max(1, round(64 * scale))
    n_frames_per_video = 781 if scale >= 0.05 else 60
    videos = np.array([f"v{v:010d}" for v in range(n_videos)], dtype=object)
    frame_video = np.repeat(np.arange(n_videos), n_frames_per_video)
    frame_ts = np.tile(902 + np.arange(n_frames_per_video), n_videos)
    people = rng.integers(1, 9, size=len(frame_video))
    box_frame = np.repeat(np.arange(len(frame_video)), people)
    n_boxes = len(box_frame)
    xy = rng.uniform(0, 0.6, size=(n_boxes, 2))
    wh = rng.uniform(0.1, 0.4, size=(n_boxes, 2))
    boxes = np.round(np.concatenate([xy, np.minimum(xy + wh, 1.0)], axis=1), 3)
    person_id = np.arange(n_boxes) - np.searchsorted(box_frame, box_frame)
    n_actions = rng.integers(1, 4, size=n_boxes)
    gt_box = np.repeat(np.arange(n_boxes), n_actions)
    action = np.where(np.arange(len(gt_box)) == np.searchsorted(gt_box, gt_box),
                      rng.integers(1, 15, size=len(gt_box)), rng.integers(15, 81, size=len(gt_box)))
    gt = pd.DataFrame({"video_id": videos[frame_video[box_frame[gt_box]]],
                       "timestamp": frame_ts[box_frame[gt_box]],
                       **{c: boxes[gt_box, k] for k, c in enumerate(["x1", "y1", "x2", "y2"])},
                       "action_id": action, "person_id": person_id[gt_box]})
    # Detections: jittered ground-truth boxes plus about one false box per keyframe.
    extra_frame = rng.integers(0, len(frame_video), size=len(frame_video))
    det_frame = np.concatenate([box_frame, extra_frame])
    det_boxes = np.concatenate([boxes + rng.normal(0, 0.03, size=boxes.shape),
                                rng.uniform(0, 1, size=(len(extra_frame), 4))])
    det_boxes = np.clip(det_boxes, 0, 1)
    det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], det_boxes[:, :2] + 0.01)
    det_boxes = np.clip(det_boxes, 0, 1)
    order = np.argsort(det_frame, kind="stable")
    det_frame, det_boxes = det_frame[order], det_boxes[order]
    truth = np.zeros((n_boxes + len(extra_frame), 81), dtype=bool)
    truth[gt_box, action] = True
    truth = truth[order]
    scores = np.where(truth[:, 1:], rng.beta(2, 2, size=(len(det_frame), 80)),
                      rng.beta(0.12, 6, size=(len(det_frame), 80)))
    scores = np.round(scores, 4)
    box_index, class_index = np.nonzero(scores > 0.002)
    det = pd.DataFrame({"video_id": videos[frame_video[det_frame[box_index]]],
                        "timestamp": frame_ts[det_frame[box_index]],
                        **{c: det_boxes[box_index, k] for k, c in
                           enumerate(["x1", "y1", "x2", "y2"])},
                        "action_id": (class_index + 1).astype(np.int16),
                        "score": scores[box_index, class_index]})
    excluded = rng.random(len(frame_video)) < 0.02
    excl = pd.DataFrame({"video_id": videos[frame_video[excluded]],
                         "timestamp": frame_ts[excluded]})
    paths = {name: directory / name for name in ("gt.csv", "det.csv", "excl.csv",
                                                 "labels.pbtxt")}
    write_annotations(paths["gt.csv"], gt)
    write_results_csv(paths["det.csv"], det)
    write_exclusions(paths["excl.csv"], excl)
    write_label_map(paths["labels.pbtxt"], LabelMap(
        ids=EVALUATED_IDS, names={i: f"action {i}" for i in EVALUATED_IDS}))
    return paths


def load_mmaction2_ava_utils(directory: Path) -> types.ModuleType:
    """Download the mmaction2 wheel (no deps) and load its AVA evaluator by file path."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                    "mmaction2", "-d", str(directory)], check=True)
    wheel = next(directory.glob("mmaction2-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith("mmaction/evaluation/functional/ava"):
                archive.extract(name, directory)
    functional = directory / "mmaction/evaluation/functional"
    package = types.ModuleType("mma_functional")
    package.__path__ = [str(functional)]
    sys.modules["mma_functional"] = package
    spec = importlib.util.spec_from_file_location("mma_functional.ava_utils",
                                                  functional / "ava_utils.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tree_rss_mb(pid: int) -> float:
    """RSS summed over a process and its descendants, from /proc (0 if it has exited)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total / 1024


def command_for(evaluator: str, directory: Path, protocol: str) -> list[str]:
    """The whole command a user would run for ``evaluator`` (``stad eval`` for ours)."""
    if evaluator == "ours-command":
        stad = Path(sys.executable).parent / "stad"
        exclusions = ([] if protocol == "activitynet2020"
                      else ["--exclusions", str(directory / "excl.csv")])
        return [str(stad), "eval", str(directory / "gt.csv"), str(directory / "det.csv"),
                "--label-map", str(directory / "labels.pbtxt"), "--protocol", protocol,
                *exclusions, "--json", str(directory / "ours-command.json")]
    return [sys.executable, __file__, "--run-one", evaluator, "--dir", str(directory),
            "--protocol", protocol]


def run_in_subprocess(evaluator: str, directory: Path, protocol: str) -> dict | None:
    """Run one evaluator as a subprocess; ``wall_s`` is the whole command's time as seen from
    here (interpreter start, imports, reading, scoring, printing)."""
    start = time.perf_counter()
    process = subprocess.Popen(command_for(evaluator, directory, protocol),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_tree = 0.0
    while process.poll() is None:
        peak_tree = max(peak_tree, tree_rss_mb(process.pid))
        time.sleep(0.02)
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        print(f"{evaluator}: FAILED ({stderr.strip().splitlines()[-1:]})")
        return None
    if evaluator == "ours-command":
        metrics = json.loads((directory / "ours-command.json").read_text())
        result = {"evaluator": evaluator, "seconds": wall, "peak_rss_mb": float("nan"),
                  "mAP": metrics["mAP"]}
    else:
        result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_tree_rss_mb"] = peak_tree
    result["wall_s"] = wall
    return result


def run_one(evaluator: str, directory: Path, protocol: str) -> dict:
    """Run one evaluator in this process; return time, peak memory, mAP."""
    paths = {name: directory / name for name in ("gt.csv", "det.csv", "excl.csv",
                                                 "labels.pbtxt")}
    exclusions = None if protocol == "activitynet2020" else paths["excl.csv"]
    start = time.perf_counter()
    if evaluator == "ours":
        from pipeline.evaluation.evaluator import evaluate_files
        result = evaluate_files(paths["gt.csv"], paths["det.csv"], paths["labels.pbtxt"],
                                exclusions_path=exclusions, protocol=protocol)
        value = result.map
    elif evaluator == "mmaction2":
        ava_utils = load_mmaction2_ava_utils(directory / "mmaction2")
        start = time.perf_counter()  # download and import are not evaluation time
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()):
            value = float(ava_utils.ava_eval(str(paths["det.csv"]), "mAP",
                                             str(paths["labels.pbtxt"]), str(paths["gt.csv"]),
                                             str(paths["excl.csv"]))["overall"])
    else:
        sys.path.insert(0, str(REPO / "tests"))
        from helpers.plain_reference import plain_evaluate_2020_files, plain_evaluate_files
        if protocol == "activitynet2020":
            value = plain_evaluate_2020_files(paths["gt.csv"], paths["det.csv"],
                                              paths["labels.pbtxt"])["mAP"]
        else:
            value = plain_evaluate_files(paths["gt.csv"], paths["det.csv"],
                                         paths["labels.pbtxt"], exclusions,
                                         protocol=protocol)["mAP"]
    return {"evaluator": evaluator, "seconds": time.perf_counter() - start,
            "peak_rss_mb": peak_rss_mb(), "mAP": value}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plain", action="store_true", help="also time the plain reference")
    parser.add_argument("--no-mmaction2", action="store_true")
    parser.add_argument("--commands", action="store_true",
                        help="also time whole commands: `stad eval` against mmaction2's "
                             "ava_eval run as a script (interpreter start and imports included)")
    parser.add_argument("--protocol", default="mmaction2",
                        choices=("mmaction2", "activitynet", "pyslowfast", "activitynet2020"))
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        print(json.dumps(run_one(args.run_one, Path(args.dir), args.protocol)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        start = time.perf_counter()
        make_inputs(directory, scale=args.scale, seed=args.seed)
        n_gt = sum(1 for _ in open(directory / "gt.csv"))
        n_det = sum(1 for _ in open(directory / "det.csv"))
        print(f"inputs: {n_gt:,} ground-truth rows, {n_det:,} detection rows "
              f"(built in {time.perf_counter() - start:.1f} s)")
        with_mmaction2 = args.protocol == "mmaction2" and not args.no_mmaction2
        evaluators = ["ours"] + (["mmaction2"] if with_mmaction2 else []) + (
            ["plain"] if args.plain else []) + (["ours-command"] if args.commands else [])
        results = {}
        for evaluator in evaluators:
            r = run_in_subprocess(evaluator, directory, args.protocol)
            if r is None:
                continue
            results[evaluator] = r
            print(f"{evaluator:>12}: {r['seconds']:8.2f} s (whole command {r['wall_s']:6.2f} s)"
                  f"  peak RSS {r['peak_rss_mb']:7.0f} MB (process tree {r['peak_tree_rss_mb']:7.0f} MB)  mAP {r['mAP']:.15f}")
        ours = results.get("ours")
        for other in ("mmaction2", "plain"):
            if ours and other in results:
                r = results[other]
                print(f"{other} / ours: time x{r['seconds'] / ours['seconds']:.1f}, "
                      f"peak RSS x{r['peak_rss_mb'] / ours['peak_rss_mb']:.2f} "
                      f"(tree x{r['peak_tree_rss_mb'] / ours['peak_tree_rss_mb']:.2f}), "
                      f"|mAP difference| {abs(r['mAP'] - ours['mAP']):.3g}")
        command = results.get("ours-command")
        if command and "mmaction2" in results:
            print(f"whole commands, mmaction2 ava_eval script / stad eval: time "
                  f"x{results['mmaction2']['wall_s'] / command['wall_s']:.1f} "
                  f"({results['mmaction2']['wall_s']:.2f} s / {command['wall_s']:.2f} s)")


if __name__ == "__main__":
    main()
