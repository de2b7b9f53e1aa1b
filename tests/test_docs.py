"""The documentation: README.md and the mkdocs site under docs/.

The site is built with ``mkdocs build --strict`` (mkdocs.yml turns missing pages, missing
anchors and pages left out of the nav into warnings, so any of them fails the build). The
README is checked here for what mkdocs does not see: its length, its links into docs/. Every
page is held to what it names: params keys in backticks exist in params.yaml or a preset, the
flags of ``stad`` and ``bench/`` commands exist, and no page narrates the project's own history
(issue numbers, rounds of work, sessions, commits).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
ALL_TEXTS = [README, *PAGES]
# Files the pages name that a command they show writes, not the repository.
WRITTEN_BY_COMMANDS = {"bench/results/gpu_check.txt"}   # bench/gpu_check.sh on a GPU
PARAMS_GROUPS = ("data", "frames", "proposals", "baseline", "lfb", "model", "eval")

# Words that narrate how the project was made rather than what it does. Precise enough to
# leave "rounded", "round(t * fps)", "--rounds 3" and "issue" as a verb of no page alone.
HISTORY = [
    (re.compile(r"\bissues?\b", re.I), "an issue"),
    (re.compile(r"\bsessions?\b", re.I), "a session"),
    (re.compile(r"\b(this|last|previous|earlier|next|later) rounds?\b|(?<![-\w])rounds? (of work|\d+)\b",
                re.I), "a round of work"),
    (re.compile(r"\bcommit [0-9a-f]{7,40}\b", re.I), "a commit"),
    (re.compile(r"(?<![\w/&])#\d+\b"), "an issue or pull-request number"),
    (re.compile(r"\b(previous|old) defaults?\b|\bthe machine that committed\b", re.I),
     "an earlier state of the project"),
]


def _prose(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.M | re.S)


def _inline_code(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", _prose(text))


def _slug(heading: str) -> str:
    from markdown.extensions.toc import slugify
    return slugify(re.sub(r"[`*]", "", heading), "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", _prose(page.read_text()), flags=re.M)}


def test_mkdocs_builds_strict(tmp_path):
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
                          str(ROOT / "mkdocs.yml"), "-d", str(site)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    for page in PAGES:
        html = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert html.is_file(), f"{page.name} was not rendered"


def test_readme_fits_300_lines():
    lines = README.read_text().count("\n")
    assert lines <= 300, f"README.md has {lines} lines; move detail into docs/"


def test_readme_links_resolve():
    """mkdocs checks the pages' links; the README's into docs/ are checked here."""
    links = re.findall(r"\]\(([^)\s]+)\)", _prose(README.read_text()))
    assert links
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.exists(), f"README.md links to {link}: no such file"
        if anchor:
            assert anchor in _anchors(target), f"README.md links to {link}: no such heading"


@pytest.mark.parametrize("doc", ALL_TEXTS, ids=lambda p: p.name)
def test_no_page_narrates_the_project_history(doc):
    found = [f"{what}: {m.group(0)!r}"
             for line in doc.read_text().splitlines()
             for pattern, what in HISTORY
             for m in [pattern.search(line)] if m]
    assert not found, f"{doc.name} speaks of how the project was made: {found}"


def _params_keys() -> set[str]:
    keys: set[str] = set()

    def walk(node, prefix):
        keys.add(prefix)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))

    for file in [ROOT / "params.yaml", *(ROOT / "presets").glob("*.yaml")]:
        walk(yaml.safe_load(file.read_text()) or {}, "")
    return keys


def test_params_keys_named_in_docs_exist():
    keys = _params_keys()
    file_suffixes = {"zarr", "pt", "json", "csv", "parquet", "py", "yaml", "pkl", "partial",
                     "png", "mp4", "pbtxt", "txt"}
    missing = []
    for doc in ALL_TEXTS:
        for code in _inline_code(doc.read_text()):
            token = re.split(r"[:=\s]", code.strip(), maxsplit=1)[0]
            parts = token.split(".")
            if (parts[0] in PARAMS_GROUPS and len(parts) > 1 and "/" not in token
                    and not file_suffixes & set(parts[1:])
                    and re.fullmatch(r"[a-z0-9_.]+", token) and token not in keys):
                missing.append(f"{doc.name}: {token}")
    assert not missing, f"params keys named in the docs but in no params file: {missing}"


def _commands(doc: Path) -> list[str]:
    """Shell commands of the fenced blocks (continuation lines joined) and inline code."""
    text = doc.read_text()
    commands = []
    for block in _code_blocks(text):
        commands += block.replace("\\\n", " ").splitlines()
    return commands + _inline_code(text)


def _words_after(command: str, start: str) -> list[str] | None:
    head, found, tail = command.partition(start)
    if not found or (head and not head.endswith((" ", "$", "(", "&"))):
        return None
    tail = re.split(r"[;|&#]|\s\.\.\.", tail)[0]
    try:
        return shlex.split(tail)
    except ValueError:
        return tail.split()


def test_stad_flags_in_docs_exist():
    from pipeline.cli import build_parser

    def options(parser) -> dict[str, argparse.ArgumentParser]:
        return {name: child for action in parser._actions
                if isinstance(action, argparse._SubParsersAction)
                for name, child in action.choices.items()}

    root = options(build_parser())
    unknown = []
    for doc in ALL_TEXTS:
        for command in _commands(doc):
            words = _words_after(command, "stad ")
            if not words or words[0] not in root:
                continue
            parser, rest = root[words[0]], words[1:]
            if rest and rest[0] in options(parser):
                parser, rest = options(parser)[rest[0]], rest[1:]
            known = {s for a in parser._actions for s in a.option_strings}
            unknown += [f"{doc.name}: stad {words[0]} {w}" for w in rest
                        if w.startswith("--") and w.split("=")[0] not in known]
    assert not unknown, f"flags the stad parser does not have: {unknown}"


def _bench_source(script: str) -> str:
    """The script's source and that of the bench/ modules it imports (shared arguments)."""
    source = (ROOT / script).read_text()
    local = re.findall(r"^(?:from|import) (\w+)", source, flags=re.M)
    return source + "".join((ROOT / "bench" / f"{m}.py").read_text() for m in set(local)
                            if (ROOT / "bench" / f"{m}.py").is_file())


def test_bench_flags_in_docs_exist():
    unknown = []
    for doc in ALL_TEXTS:
        for command in _commands(doc):
            for script in set(re.findall(r"bench/\w+\.py", command)):
                words = _words_after(command, script) or []
                source = _bench_source(script)
                unknown += [f"{doc.name}: {script} {w}" for w in words
                            if w.startswith("--") and f'"{w.split("=")[0]}"' not in source]
    assert not unknown, f"flags the bench scripts do not have: {unknown}"


def test_stage_commands_in_docs_use_the_dag_flags():
    """A torchrun line of the docs passes a stage the flags its dvc.yaml command passes."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    wrong = []
    for doc in ALL_TEXTS:
        for command in _commands(doc):
            for name in re.findall(r"-m stages\.(\w+)", command):
                assert name in stages, f"{doc.name}: no stage {name}"
                dag_flags = set(re.findall(r"--[\w-]+", stages[name]["cmd"]))
                words = _words_after(command, f"-m stages.{name}") or []
                wrong += [f"{doc.name}: {name} {w}" for w in words
                          if w.startswith("--") and w not in dag_flags]
    assert not wrong, f"stage flags that dvc.yaml's commands do not pass: {wrong}"


def test_repository_paths_named_in_docs_exist():
    """A page that names a module, test, bench script or preset names one that is there."""
    missing = []
    for doc in ALL_TEXTS:
        for code in _inline_code(doc.read_text()):
            for token in code.split():
                path = token.split("::")[0].rstrip(".,;:)")
                if (re.fullmatch(r"(pipeline|tests|bench|stages|presets)/[\w./-]+", path)
                        and not re.search(r"[A-Z]{3,}", path)     # a placeholder: presets/NAME.yaml
                        and path not in WRITTEN_BY_COMMANDS and not (ROOT / path).exists()):
                    missing.append(f"{doc.name}: {path}")
    assert not missing, f"paths named in the docs that the repository does not have: {missing}"
