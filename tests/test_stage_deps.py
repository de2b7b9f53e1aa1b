"""dvc.yaml declares, for each stage, all the project code the stage runs, and nothing it never
imports.

A stage's code is the static import closure of its module: every ``import``/``from`` statement
(at any depth, function bodies included) of ``stages/<stage>.py``, followed through the modules
inside ``pipeline/`` and ``stages/``; importing ``a.b.c`` runs ``a/__init__.py`` and
``a/b/__init__.py`` too. Were a module of the closure undeclared, editing it would leave the
stage's outputs "up to date" although they came from the old code.

The code deps of dvc.yaml are generated from the same closure:
``python -m pipeline.devtools.stage_deps`` rewrites them (whole folders where the stage imports
every module of the folder), ``--check`` names the stages whose deps are out of date. The same
import graph shows that ``pipeline/`` has no import cycle, between modules or between its
packages (the layers of docs/architecture.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.devtools.stage_deps import (REPO, code_deps, covered, import_closure,
                                          imported_names, main, module_file, stage_module,
                                          stages)


@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_declares_its_import_closure(name):
    stage = stages()[name]
    closure = import_closure(stage_module(stage))
    deps = code_deps(stage)
    missing = sorted(str(p) for p in closure if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {name} runs but does not declare: {', '.join(missing)}"


@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_declares_no_code_it_never_imports(name):
    """A declared file or folder none of the stage's code is in reruns the stage for nothing."""
    stage = stages()[name]
    closure = import_closure(stage_module(stage))
    unused = [str(d) for d in code_deps(stage)
              if not (REPO / d).exists() or not any(covered(p, [d]) for p in closure)]
    assert not unused, f"dvc.yaml stage {name} declares code it never imports: {', '.join(unused)}"


def test_closure_follows_function_level_and_relative_imports():
    """The parser itself: a lazy import inside a function and ``from .x import`` count."""
    closure = import_closure(REPO / "pipeline" / "cli.py")
    assert Path("pipeline/params/all.py") in closure             # imported inside a handler
    assert Path("pipeline/__init__.py") in closure
    models = import_closure(REPO / "pipeline" / "models" / "presets.py")
    assert Path("pipeline/models/config.py") in models          # from .config import
    assert Path("pipeline/errors.py") in models                 # from ..errors import


def test_generated_code_deps_are_the_committed_ones(capsys):
    """``python -m pipeline.devtools.stage_deps --check`` on the checkout: nothing to rewrite."""
    assert main(["--check"]) == 0, capsys.readouterr().err


def test_no_stage_runs_the_devtools():
    """The generator is no stage's code: editing it reruns nothing."""
    for name, stage in stages().items():
        closure = import_closure(stage_module(stage))
        assert not any(covered(p, [Path("pipeline/devtools")]) for p in closure), name


def test_check_names_the_stale_stage_and_the_rewrite_restores_it(tmp_path, capsys):
    original = (REPO / "dvc.yaml").read_text()
    stale = original.replace("      - pipeline/tasks/evaluate.py\n", "", 1)
    assert "pipeline/tasks/evaluate.py" in original and "pipeline/tasks/evaluate.py" not in stale
    path = tmp_path / "dvc.yaml"
    path.write_text(stale)
    assert main(["--check", "--dvc-yaml", str(path)]) == 1
    err = capsys.readouterr().err
    assert "out of date for stages: evaluate;" in err, err
    assert path.read_text() == stale                            # --check changes nothing
    assert main(["--dvc-yaml", str(path)]) == 0
    assert path.read_text() == original
    assert main(["--check", "--dvc-yaml", str(path)]) == 0


def import_graph(level: str) -> dict[str, set[str]]:
    """Who imports whom inside ``pipeline/``: modules (``level="module"``) or top-level
    packages and modules (``"package"``: ``pipeline/engine/maps.py`` counts as ``engine``).
    A module's own parent packages are left out: importing them is how Python loads it."""
    graph: dict[str, set[str]] = {}
    for path in sorted((REPO / "pipeline").rglob("*.py")):
        rel = path.relative_to(REPO)
        name = rel.parts[1].removesuffix(".py") if level == "package" else str(rel)
        for dep in map(module_file, imported_names(path)):
            if dep is None or dep == path or (dep.name == "__init__.py"
                                              and dep.parent in path.parents):
                continue
            target = dep.relative_to(REPO)
            if target.parts[0] != "pipeline" or len(target.parts) < 2:
                continue
            other = target.parts[1].removesuffix(".py") if level == "package" else str(target)
            if other != name:
                graph.setdefault(name, set()).add(other)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of ``graph`` with more than one member."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            part = []
            while True:
                member = stack.pop()
                part.append(member)
                if member == node:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("level", ["module", "package"])
def test_pipeline_has_no_import_cycle(level):
    assert cycles(import_graph(level)) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
