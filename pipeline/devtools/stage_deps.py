"""The code deps of ``dvc.yaml``, generated from each stage's import closure.

A stage's code is the static import closure of its module: every ``import``/``from`` statement
(at any depth, function bodies included) of ``stages/<stage>.py``, followed through the modules
inside ``pipeline/`` and ``stages/``; importing ``a.b.c`` runs ``a/__init__.py`` and
``a/b/__init__.py`` too. Each stage's ``deps:`` list starts with its code: its module, then the
closure, whole folders where the stage imports every module of the folder; data deps follow.

    python -m pipeline.devtools.stage_deps            # rewrite dvc.yaml's code deps
    python -m pipeline.devtools.stage_deps --check    # exit 1 naming the out-of-date stages

No stage imports this module, so it is in no stage's closure (tests/test_stage_deps.py checks
dvc.yaml against the same closures).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DVC_YAML = REPO / "dvc.yaml"
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


def stages(path: Path = DVC_YAML) -> dict[str, dict]:
    """The stages of ``dvc.yaml``, by name."""
    return yaml.safe_load(path.read_text())["stages"]


def stage_module(stage: dict) -> Path:
    """The ``stages/<stage>.py`` file a stage's ``cmd`` runs."""
    match = re.search(r"python -m (stages\.\w+)", stage["cmd"])
    if not match:
        raise ValueError(f"cmd does not run a stages module: {stage['cmd']!r}")
    return module_file(match.group(1))


def code_deps(stage: dict) -> list[Path]:
    """The deps of a stage that are project code (inside ``pipeline/`` or ``stages/``)."""
    return [Path(d) for d in stage.get("deps", []) if Path(d).parts[0] in PACKAGES]


def covered(path: Path, deps: list[Path]) -> bool:
    """Whether ``path`` is one of ``deps`` or inside a folder of them."""
    return any(path == d or d in path.parents for d in deps)


def declared_code_deps(stage: dict) -> list[str]:
    """The code deps dvc.yaml should list for ``stage``: its module, then the closure, folders
    whole where the stage imports all their modules."""
    closure = import_closure(stage_module(stage))

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
    module = stage_module(stage).relative_to(REPO)
    return [str(module), *(str(p) for p in files if p != module), *map(str, folders)]


def with_code_deps(text: str, stages_by_name: dict[str, dict]) -> str:
    """``text`` (a dvc.yaml) with the code entries of every stage's ``deps:`` list generated
    (data deps stay, after them)."""
    lines, out, current, i = text.split("\n"), [], None, 0
    while i < len(lines):
        line = lines[i]
        match = re.match(r"^  (\w+):$", line)
        if match and match.group(1) in stages_by_name:
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
            out += [f"      - {dep}" for dep in declared_code_deps(stages_by_name[current])] + data
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def write_code_deps(path: Path = DVC_YAML) -> None:
    """Rewrite the code entries of every stage's ``deps:`` list in place (data deps stay)."""
    path.write_text(with_code_deps(path.read_text(), stages(path)))


def stale_stages(path: Path = DVC_YAML) -> list[str] | None:
    """The stages whose deps the generator would change, in dvc.yaml's order; None when it
    would leave the file as it is."""
    text = path.read_text()
    current = yaml.safe_load(text)["stages"]
    generated_text = with_code_deps(text, current)
    if generated_text == text:
        return None
    generated = yaml.safe_load(generated_text)["stages"]
    return [name for name in current
            if current[name].get("deps") != generated[name].get("deps")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.devtools.stage_deps",
        description="Generate the code deps of each dvc.yaml stage from its import closure.")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 naming the stages whose deps are out of date")
    parser.add_argument("--dvc-yaml", type=Path, default=DVC_YAML, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    stale = stale_stages(args.dvc_yaml)
    if stale is None:
        print(f"{args.dvc_yaml}: code deps up to date")
        return 0
    names = ", ".join(stale) if stale else "none (layout only)"
    if args.check:
        print(f"{args.dvc_yaml}: code deps out of date for stages: {names}; "
              f"run python -m pipeline.devtools.stage_deps", file=sys.stderr)
        return 1
    write_code_deps(args.dvc_yaml)
    print(f"{args.dvc_yaml}: rewrote the code deps of stages: {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
