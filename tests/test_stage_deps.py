"""dvc.yaml declares, for each stage, all the project code the stage runs, and nothing it never
imports.

A stage's code is the static import closure of its module: every ``import``/``from`` statement
(at any depth, function bodies included) of ``stages/<stage>.py``, followed through the modules
inside ``pipeline/`` and ``stages/``; importing ``a.b.c`` runs ``a/__init__.py`` and
``a/b/__init__.py`` too. Were a module of the closure undeclared, editing it would leave the
stage's outputs "up to date" although they came from the old code.

The code deps of dvc.yaml are generated from the same closure:
``python tests/test_stage_deps.py`` rewrites them (whole folders where the stage imports every
module of the folder). The same import graph shows that ``pipeline/`` has no import cycle,
between modules or between its packages (the layers of README "Development").
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "stages")


def module_file(name: str) -> Path | None:
    """The file that defines module ``name`` inside the project (None for outside modules and
    for names that are attributes, not modules)."""
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    base = REPO.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def imported_names(path: Path) -> set[str]:
    """Every module name an import statement of ``path`` may load, with its parent packages.

    ``from a import b`` adds ``a`` and ``a.b`` (``b`` may be a submodule); ``module_file``
    drops the names that are attributes."""
    tree = ast.parse(path.read_text(), filename=str(path))
    rel = path.relative_to(REPO).with_suffix("")
    package = rel.parts[:-1]  # a module's package; an __init__'s own package
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package[:len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    with_parents = set()
    for name in names:
        parts = name.split(".")
        with_parents.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return with_parents


def import_closure(entry: Path) -> set[Path]:
    """Project files loaded by running ``entry``, as paths relative to the repository."""
    seen: set[Path] = set()
    todo = [entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += [f for f in map(module_file, imported_names(path)) if f is not None]
    return {p.relative_to(REPO) for p in seen}


def _stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _stage_module(stage: dict) -> Path:
    match = re.search(r"python -m (stages\.\w+)", stage["cmd"])
    assert match, f"cmd does not run a stages module: {stage['cmd']!r}"
    return module_file(match.group(1))


def _code_deps(stage: dict) -> list[Path]:
    return [Path(d) for d in stage.get("deps", []) if Path(d).parts[0] in PACKAGES]


def _covered(path: Path, deps: list[Path]) -> bool:
    return any(path == d or d in path.parents for d in deps)


@pytest.mark.parametrize("name", sorted(_stages()))
def test_stage_declares_its_import_closure(name):
    stage = _stages()[name]
    closure = import_closure(_stage_module(stage))
    deps = _code_deps(stage)
    missing = sorted(str(p) for p in closure if not _covered(p, deps))
    assert not missing, f"dvc.yaml stage {name} runs but does not declare: {', '.join(missing)}"


@pytest.mark.parametrize("name", sorted(_stages()))
def test_stage_declares_no_code_it_never_imports(name):
    """A declared file or folder none of the stage's code is in reruns the stage for nothing."""
    stage = _stages()[name]
    closure = import_closure(_stage_module(stage))
    unused = [str(d) for d in _code_deps(stage)
              if not (REPO / d).exists() or not any(_covered(p, [d]) for p in closure)]
    assert not unused, f"dvc.yaml stage {name} declares code it never imports: {', '.join(unused)}"


def test_closure_follows_function_level_and_relative_imports():
    """The parser itself: a lazy import inside a function and ``from .x import`` count."""
    closure = import_closure(REPO / "pipeline" / "cli.py")
    assert Path("pipeline/params/all.py") in closure             # imported inside a handler
    assert Path("pipeline/__init__.py") in closure
    models = import_closure(REPO / "pipeline" / "models" / "presets.py")
    assert Path("pipeline/models/config.py") in models          # from .config import
    assert Path("pipeline/errors.py") in models                 # from ..errors import


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


def declared_code_deps(stage: dict) -> list[str]:
    """The code deps dvc.yaml should list for ``stage``: its module, then the closure, folders
    whole where the stage imports all their modules."""
    closure = import_closure(_stage_module(stage))

    def modules_in(folder: Path) -> set[Path]:
        return {p.relative_to(REPO) for p in (REPO / folder).rglob("*.py")
                if "__pycache__" not in p.parts}

    folders: list[Path] = []
    for folder in sorted({p.parent for p in closure if len(p.parts) > 2},
                         key=lambda d: (len(d.parts), str(d))):
        if not any(f == folder or f in folder.parents for f in folders) \
                and modules_in(folder) <= closure:
            folders.append(folder)
    files = sorted(p for p in closure if not any(f in p.parents for f in folders))
    module = _stage_module(stage).relative_to(REPO)
    return [str(module), *(str(p) for p in files if p != module), *map(str, folders)]


def write_code_deps(path: Path = REPO / "dvc.yaml") -> None:
    """Rewrite the code entries of every stage's ``deps:`` list in place (data deps stay)."""
    stages = _stages()
    lines, out, current, i = path.read_text().split("\n"), [], None, 0
    while i < len(lines):
        line = lines[i]
        match = re.match(r"^  (\w+):$", line)
        if match and match.group(1) in stages:
            current = match.group(1)
        if current and line == "    deps:":
            out.append(line)
            i += 1
            data = []
            while i < len(lines) and lines[i].startswith(("      - ", "      #")):
                entry = lines[i][len("      - "):]
                if lines[i].startswith("      - ") and Path(entry).parts[0] not in PACKAGES:
                    data.append(lines[i])
                i += 1
            out += [f"      - {dep}" for dep in declared_code_deps(stages[current])] + data
            continue
        out.append(line)
        i += 1
    path.write_text("\n".join(out))


if __name__ == "__main__":
    write_code_deps()
