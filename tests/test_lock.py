"""The committed dvc.lock was written by a `dvc repro` of the committed dvc.yaml: per stage the
same command, dependencies, params entries and outputs. A change to one without a repro that
rewrites the other fails here, so `dvc status` on a fresh clone reports only what the user
changed and `dvc metrics diff` compares against numbers the current pipeline produced."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _yaml(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())["stages"]


def _paths(entries) -> set[str]:
    """Output or dependency paths of a dvc.yaml list (plain strings or one-key mappings)."""
    return {entry if isinstance(entry, str) else next(iter(entry)) for entry in entries or ()}


def test_lock_has_exactly_the_stages_of_dvc_yaml():
    assert set(_yaml("dvc.lock")) == set(_yaml("dvc.yaml"))


@pytest.mark.parametrize("name", sorted(_yaml("dvc.yaml")))
def test_lock_stage_matches_its_definition(name):
    stage, locked = _yaml("dvc.yaml")[name], _yaml("dvc.lock").get(name)
    assert locked is not None, f"dvc.lock has no stage {name}: run `dvc repro`"
    assert " ".join(locked["cmd"].split()) == " ".join(stage["cmd"].split()), "cmd"
    assert {d["path"] for d in locked.get("deps", ())} == _paths(stage.get("deps")), "deps"
    assert set(locked.get("params", {}).get("params.yaml", {})) == set(stage.get("params", ())), \
        "params"
    declared = (_paths(stage.get("outs")) | _paths(stage.get("metrics"))
                | _paths(stage.get("plots")))
    assert {o["path"] for o in locked.get("outs", ())} == declared, "outs"
