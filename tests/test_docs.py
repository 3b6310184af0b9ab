"""README.md and docs/ stay true to the tree: every relative link and #anchor resolves, every
command in a code block names modules, files and stages that exist, and the tables of numbers
are the ones the committed reports give."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from src import results_tables
from tests.support.data import REPO_ROOT as REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
PYTHON_MODULE = re.compile(r"\bpython3? -m ([\w.]+)")
REPO_PATH = re.compile(r"(?<![\w/.-])((?:src|stages|tests|docs|tune|manifests|\.ci)/[\w./*-]*[\w*/])")
DVC_REPRO = re.compile(r"\bdvc repro(?: -[\w-]+)* ((?!-)[\w/.]+)(?![\w=./])")
# A line is a command when it starts with one of these (after any VAR=value settings).
PROGRAMS = {"python", "python3", "dvc", "bash", "pytest", "mlflow", "pip", "ruff", "git", "curl"}


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*?|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        base, n = slug(heading), 0
        while (name := base if n == 0 else f"{base}-{n}") in found:
            n += 1
        found.add(name)
    return found


def commands(page: Path) -> list[str]:
    """The lines of the page's code blocks that run a program (not output, trees or diagrams)."""
    found = []
    for block in FENCE.findall(page.read_text()):
        for line in block.splitlines():
            words = [w for w in line.split() if not re.fullmatch(r"[A-Z_]+=\S*", w)]
            if words and (words[0] in PROGRAMS or words[0].startswith(("zero-dce-", "optuna-dashboard"))):
                found.append(line)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for match in LINK.finditer(FENCE.sub("", page.read_text())):
        target = match.group(1) or match.group(2)
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no such heading")
    assert not broken, broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_commands_name_modules_files_and_stages_that_exist(page):
    stages = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    stages |= {"tune/dvc.yaml", "dvc.yaml"}
    missing = []
    for line in commands(page):
        for module in PYTHON_MODULE.findall(line):
            if module.split(".")[0] in ("src", "stages"):
                as_path = REPO / module.replace(".", "/")
                if not (as_path.with_suffix(".py").is_file() or (as_path / "__main__.py").is_file()):
                    missing.append(f"python -m {module}")
            elif importlib.util.find_spec(module.split(".")[0]) is None:
                missing.append(f"python -m {module} (not installed)")
        for path in REPO_PATH.findall(line):
            if not list(REPO.glob(path.rstrip("/"))):
                missing.append(path)
        for stage in DVC_REPRO.findall(line):
            if stage not in stages:
                missing.append(f"dvc stage {stage}")
    assert not missing, missing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_source_files_named_in_the_text_exist(page):
    """A `src/...`, `stages/...` or `tests/...` path quoted in the prose names a file of this tree."""
    quoted = re.findall(r"`((?:src|stages|tests)/[\w./-]*\w)[`:]", FENCE.sub("", page.read_text()))
    assert not [path for path in quoted if not (REPO / path).exists()]


def test_the_project_layout_lists_every_module():
    """docs/development.md's tree names every module of src/ (a new one must be placed in it)."""
    layout = FENCE.findall((REPO / "docs" / "development.md").read_text().split("## Project layout")[1])[0]
    listed = set(re.findall(r"([\w]+\.py)", layout))
    modules = {p.name for p in (REPO / "src").rglob("*.py")}
    assert modules - {"__init__.py", "__main__.py"} - listed == set()


def test_the_results_tables_are_the_committed_reports():
    """The tables between `<!-- results:NAME -->` markers are written by `python -m
    src.results_tables` from reports/: rerun it after `dvc repro` and they follow."""
    stale = results_tables.stale_pages(REPO)
    assert not stale, f"{stale}: run `python -m src.results_tables`"
