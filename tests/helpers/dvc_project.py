"""Scratch copies of the project, committed in a temporary git repository, and ``dvc repro``
runs in them (the DAG tests)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def sh(args, cwd, env, check=True):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def project_copy(root: Path, *overlays: str | Path) -> dict:
    """Copy the project's tracked files into ``root``, apply the preset overlays, commit;
    return the environment to run dvc in."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        source = REPO / name
        if not source.is_file() or name.startswith(("data/dataset", "data/frames",
                                                    "data/proposals", "metrics/")):
            continue
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    (root / "dvc.lock").unlink(missing_ok=True)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPATH"] = str(root)
    for overlay in overlays:
        sh([sys.executable, "-m", "pipeline.cli", "params", "apply", str(overlay)], root, env)
    sh(["git", "init", "-q"], root, env)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], root, env)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "smoke"], root, env)
    return env


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


ALL_STAGES = ["make_dataset", "extract_frames", "proposals", "pretrain_baseline", "infer_lfb",
              "train_head", "evaluate"]


def repro_from_scratch(root: Path, env: dict) -> str:
    """``dvc repro`` in a project without outputs: every stage runs, in DAG order; stdout."""
    result = sh(["dvc", "repro"], root, env)
    assert ran_stages(result.stdout) == ALL_STAGES, result.stdout
    return result.stdout
