"""Head comparison over seeds: mean and standard deviation of val AP per head and class group.

One run per (seed, head): the baseline's seed (``baseline.train.seed``) and the head's seed
(``model.train.seed``) are both set to the seed, so each seed trains its own baseline and bank
and every head on top of them. The data stages (dataset, frames, proposals) are the same for
all seeds. Everything runs with ``dvc repro`` in a scratch copy of this project (tracked files,
params as they are, plus the overlays given), so DVC reruns only what each change feeds:
a new seed reruns the baseline, bank, head and evaluation; a new head only the last two.

A ``--workdir`` that already holds a project (an earlier, interrupted sweep) is used as it is,
code and all, so one results file never mixes code versions.

``--cache`` shares a DVC cache (e.g. this checkout's ``.dvc/cache``): with it, a later
``dvc repro`` in the checkout finds the seed-0 default run in DVC's run cache and restores its
outputs instead of training again. Results go to ``--out`` (JSON) after every run, and a rerun
with the same ``--out`` skips the runs already recorded there (resume).

    .venv/bin/python bench/seed_stats.py --preset smoke --seeds 0 1 2 --out /tmp/smoke_seeds.json
    .venv/bin/python bench/seed_stats.py --seeds 0 1 2 --cache .dvc/cache --out bench/results/seed_stats.json

Seeds are independent: on a machine with cores to spare, run one process per seed, each with its
own ``--workdir`` and ``--out``, then merge them with ``--combine``:

    for s in 0 1 2; do .venv/bin/python bench/seed_stats.py --seeds $s --cache .dvc/cache \
        --workdir /tmp/seeds$s --out /tmp/seeds$s.json & done; wait
    .venv/bin/python bench/seed_stats.py --combine /tmp/seeds?.json --out bench/results/seed_stats.json

It prints a Markdown table: mean ± sample standard deviation (n - 1) over the seeds, and
which stages each run reran.

``--sizes`` sweeps the synthetic data's size (``NxD``: ``n_train_videos`` x ``duration_s``;
``--val-videos`` sets ``n_val_videos``), each size with every seed and head, and ``--set``
overrides any key (e.g. ``baseline.train.epochs=3``). A run that stops with "training
diverged" is recorded as diverged, not an error; the output adds a table of diverged runs per
head and size, and one mAP table per size:

    .venv/bin/python bench/seed_stats.py --preset smoke --sizes 4x16 8x16 24x16 4x48 8x48 24x48 \
        --val-videos 3 --set baseline.train.epochs=3 --seeds 0 1 2 --out /tmp/sweep.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
HEADS = ("lfb_nl", "linear", "mlp", "lfb_max", "lfb_avg", "acrn")   # acrn takes 6x the others
GROUPS = ("movement", "object", "interaction", "long_term")


DIVERGED = "training diverged"


class Diverged(Exception):
    """A stage stopped with the training guard's message (the message is the argument)."""


def sh(args: list[str], cwd: Path, env: dict) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0 and DIVERGED in result.stderr + result.stdout:
        line = next(l for l in (result.stderr + result.stdout).splitlines() if DIVERGED in l)
        raise Diverged(line.strip())
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({result.returncode}) in {cwd}:\n"
                         f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def scratch_project(root: Path, presets: list[str], cache: Path | None) -> dict:
    """Copy the tracked files into ``root`` (no lock: everything is computed there), apply the
    presets, make it a git repo; return the environment to run dvc in."""
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    for name in listed:
        if (REPO / name).is_file() and name != "dvc.lock":
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    env = project_env(root)
    for preset in presets:
        sh([sys.executable, "-m", "pipeline.cli", "params", "apply", preset], root, env)
    sh(["git", "init", "-q"], root, env)
    sh(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "add", "-A"], root, env)
    sh(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm",
        "seed stats", "--allow-empty"], root, env)
    if cache is not None:
        sh(["dvc", "cache", "dir", "--local", str(cache.resolve())], root, env)
    return env


def source_commit() -> str:
    """This checkout's commit, with ``+dirty`` when tracked files differ from it."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=REPO).returncode != 0
    return head + ("+dirty" if dirty else "")


def project_env(root: Path) -> dict:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(root))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def set_params(root: Path, env: dict, values: dict[str, object]) -> None:
    """Write ``values`` (dotted keys) into the scratch project's params.yaml."""
    overlay: dict = {}
    for key, value in values.items():
        node = overlay
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path = root / "overlay.json"   # JSON is YAML: the overlay reader takes it
    path.write_text(json.dumps(overlay))
    sh([sys.executable, "-m", "pipeline.cli", "params", "apply", str(path)], root, env)
    path.unlink()


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def mean_std(values: list[float | None]) -> tuple[float | None, float | None, int]:
    """Mean and sample std over the finite values, and how many runs had none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    missing = len(values) - len(finite)
    if not finite:
        return None, None, missing
    mean = sum(finite) / len(finite)
    if len(finite) < 2:
        return mean, None, missing
    var = sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)
    return mean, math.sqrt(var), missing


def summarise(runs: list[dict]) -> dict:
    """Per model (baseline, then each head): mean, std and n of mAP and each group's mean,
    over the runs that finished (n counts them; diverged runs are counted apart)."""
    models: dict[str, list[dict]] = {}
    baselines = {r["seed"]: r["baseline"] for r in runs if r["baseline"] is not None}
    models["baseline"] = list(baselines.values())
    for r in runs:
        models.setdefault(r["head"], [])
        if r["head_eval"] is not None:
            models[r["head"]].append(r["head_eval"])
    summary = {}
    for name, results in models.items():
        row = {"n": len(results),
               "diverged": sum(1 for r in runs if r.get("diverged") and
                               (r["head"] == name or (name == "baseline" and
                                                      r["baseline"] is None)))}
        for metric in ("mAP", *GROUPS):
            values = [res["mAP"] if metric == "mAP" else res["group_mAP"].get(metric)
                      for res in results]
            mean, std, missing = mean_std(values)
            row[metric] = {"mean": mean, "std": std, "undefined_runs": missing}
        summary[name] = row
    return summary


def size_label(run: dict) -> str:
    return run.get("size") or "preset"


def by_size(runs: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(size_label(run), []).append(run)
    return groups


def summaries(runs: list[dict]) -> dict:
    """``summarise`` of all runs, or with sizes, of each size's runs (keyed by size)."""
    if not any("size" in r for r in runs):
        return summarise(runs)
    return {size: summarise(group) for size, group in by_size(runs).items()}


def silent_groups(run: dict) -> list[str]:
    """Class groups the baseline has an AP for (so val has their ground truth) but the head's
    evaluation has none: no detection of any of their classes above ``eval.score_threshold``,
    every logit driven far below zero, the mark of a run that overshot without tripping the
    guard. Such classes drop out of the head's mAP instead of counting as 0."""
    if run["head_eval"] is None or run["baseline"] is None:
        return []
    return [g for g, v in run["head_eval"]["group_mAP"].items()
            if v is None and run["baseline"]["group_mAP"].get(g) is not None]


def diverged_table(runs: list[dict], heads: list[str]) -> str:
    """Diverged runs / runs, per head (columns) and data size (rows)."""
    lines = ["| train videos x seconds | " + " | ".join(f"`{h}`" for h in heads) + " |",
             "| --- | " + " | ".join("---" for _ in heads) + " |"]
    for size, group in by_size(runs).items():
        cells = []
        for head in heads:
            mine = [r for r in group if r["head"] == head]
            cells.append(f"{sum(bool(r.get('diverged')) for r in mine)}/{len(mine)}"
                         if mine else "-")
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(runs: list[dict], heads: list[str]) -> str:
    """The mAP table, and with sizes, the diverged-runs table and one mAP table per size."""
    if not any("size" in r for r in runs):
        return markdown(summarise(runs))
    parts = ["Diverged runs / runs:", "", diverged_table(runs, heads)]
    for size, group in by_size(runs).items():
        finished = [r for r in group if r["head_eval"] is not None]
        silent = sum(bool(silent_groups(r)) for r in finished)
        parts += ["", f"Val AP, {size} (train videos x seconds), over the runs that finished "
                  f"({silent} of {len(finished)} with a class group that the baseline scores "
                  "but the head gives no detection):", "", markdown(summarise(group))]
    for r in runs:
        if r.get("diverged"):
            parts.append(f"- {size_label(r)} seed {r['seed']} {r['head']}: {r['diverged']}")
    return "\n".join(parts)


def markdown(summary: dict) -> str:
    def cell(stat: dict) -> str:
        if stat["mean"] is None:
            return "undefined"
        text = f"{stat['mean']:.3f}" + ("" if stat["std"] is None else f" ± {stat['std']:.3f}")
        return text + (f" ({stat['undefined_runs']} undefined)" if stat["undefined_runs"] else "")

    lines = ["| model | seeds | mAP | " + " | ".join(GROUPS) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in GROUPS) + " |"]
    for name, row in summary.items():
        label = "baseline detector" if name == "baseline" else f"`{name}` head"
        lines.append(f"| {label} | {row['n']} | {cell(row['mAP'])} | "
                     + " | ".join(cell(row[g]) for g in GROUPS) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS)
    parser.add_argument("--preset", action="append", default=[],
                        help="preset overlays applied first (e.g. smoke); repeatable")
    parser.add_argument("--cache", type=Path, help="DVC cache to share (see above)")
    parser.add_argument("--workdir", type=Path, help="scratch project (default: a temp dir, "
                        "removed at the end)")
    parser.add_argument("--sizes", nargs="+", metavar="NxD",
                        help="synthetic data sizes: n_train_videos x duration_s, e.g. 4x16 8x48")
    parser.add_argument("--val-videos", type=int,
                        help="data.synthetic.n_val_videos for every size (default: as params)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a dotted params key and a YAML value, for every run; repeatable")
    parser.add_argument("--out", type=Path, required=True, help="results JSON (resumed)")
    parser.add_argument("--combine", type=Path, nargs="+", metavar="JSON",
                        help="no runs: merge the runs of these results files (e.g. one process "
                             "per seed, each with its own --workdir) into --out and print")
    args = parser.parse_args()
    if args.combine:
        runs = [r for path in args.combine for r in json.loads(path.read_text())["runs"]]
        commits = sorted({json.loads(p.read_text()).get("commit") or "unknown"
                          for p in args.combine})
        result = {"presets": args.preset, "combined": [str(p) for p in args.combine],
                  "commit": commits[0] if len(commits) == 1 else commits,
                  "runs": runs, "summary": summaries(runs)}
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(report(runs, list(dict.fromkeys(r["head"] for r in runs))))
        return
    fixed = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set wants KEY=VALUE, got {item!r}")
        fixed[key] = yaml.safe_load(value)
    sizes: list[tuple[str | None, dict]] = [(None, {})]
    if args.sizes:
        sizes = []
        for size in args.sizes:
            videos, sep, seconds = size.partition("x")
            if not (sep and videos.isdigit() and seconds.isdigit()):
                parser.error(f"--sizes wants NxD (train videos x seconds), got {size!r}")
            sizes.append((size, {"data.synthetic.n_train_videos": int(videos),
                                 "data.synthetic.duration_s": int(seconds)}))
    if args.val_videos is not None:
        fixed["data.synthetic.n_val_videos"] = args.val_videos

    done = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
    runs: list[dict] = done["runs"]
    recorded = {(r.get("size"), r["seed"], r["head"]) for r in runs}
    root = args.workdir or Path(tempfile.mkdtemp(prefix="seed_stats_"))
    if (root / ".git").is_dir():
        # Resuming: keep the code and params the earlier runs used, so the runs of one results
        # file never mix code versions (copying this checkout again could bring newer code).
        print(f"reusing the project in {root} as it is", flush=True)
        env = project_env(root)
    else:
        root.mkdir(parents=True, exist_ok=True)
        env = scratch_project(root, args.preset, args.cache)
        (root / "SOURCE_COMMIT").write_text(source_commit())
    heads = args.heads   # in the order given: the costly ones last, if time may run out
    try:
        for size, size_params in sizes:
          for seed in args.seeds:
            for head in heads:
                if (size, seed, head) in recorded:
                    continue
                set_params(root, env, {**fixed, **size_params, "baseline.train.seed": seed,
                                       "model.train.seed": seed, "model.head": head})
                tick = time.perf_counter()
                diverged, output = None, ""
                try:
                    output = sh(["dvc", "repro"], root, env)
                except Diverged as exc:
                    diverged = str(exc)
                seconds = time.perf_counter() - tick
                baseline = head_eval = None
                # a diverged head leaves the baseline's metrics of this seed and size in place;
                # a diverged baseline leaves none that belong to this run
                if not (diverged and "baseline" in diverged_stage(root, env)):
                    metrics = json.loads((root / "models/baseline/metrics.json").read_text())
                    baseline = {"mAP": metrics["val_mAP"],
                                "group_mAP": metrics["val_group_mAP"]}
                if not diverged:
                    metrics = json.loads((root / "metrics/eval.json").read_text())
                    head_eval = {"mAP": metrics["mAP"], "group_mAP": metrics["group_mAP"]}
                runs.append({
                    **({"size": size} if size else {}),
                    "seed": seed, "head": head, "ran": ran_stages(output),
                    "seconds": round(seconds, 1), "diverged": diverged,
                    "baseline": baseline, "head_eval": head_eval,
                })
                print(f"{size or ''} seed {seed} {head}: "
                      + (f"DIVERGED {diverged}" if diverged else
                         f"mAP {head_eval['mAP']} (baseline {baseline['mAP']}), "
                         f"ran {runs[-1]['ran']}")
                      + f", {seconds:.0f} s", flush=True)
                result = {"presets": args.preset, "seeds": args.seeds, "heads": args.heads,
                          "sizes": args.sizes, "val_videos": args.val_videos, "set": fixed,
                          "commit": (root / "SOURCE_COMMIT").read_text() if
                          (root / "SOURCE_COMMIT").is_file() else None,
                          "runs": runs, "summary": summaries(runs)}
                args.out.parent.mkdir(parents=True, exist_ok=True)
                tmp = args.out.with_suffix(".partial")
                tmp.write_text(json.dumps(result, indent=1) + "\n")
                tmp.replace(args.out)
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    print(report(runs, heads))


def diverged_stage(root: Path, env: dict) -> str:
    """The stages ``dvc status`` reports as changed (the diverged stage is among them)."""
    out = subprocess.run(["dvc", "status"], cwd=root, env=env, capture_output=True,
                         text=True).stdout
    return " ".join(line.rstrip(":") for line in out.splitlines()
                    if line and not line.startswith((" ", "\t")))


if __name__ == "__main__":
    main()
