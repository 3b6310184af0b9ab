"""The DVC graph tells the truth: every module a stage can import is one of its deps.

Imports are read from the source (AST), inside functions too, so a lazy import that only
runs on some path still counts; the closure follows them from the stage's own module.
"""

import ast
from pathlib import Path

import pytest
import yaml

from tests.support.data import REPO_ROOT

PIPELINES = ("dvc.yaml", "tune/dvc.yaml")  # both run from the root (tune's wdir is ..)
OURS = ("src", "stages")


def module_file(name: str) -> Path | None:
    base = REPO_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in OURS:
            found.add(node.module)
            # `from src.model import losses` imports a module, not a name.
            names = (f"{node.module}.{alias.name}" for alias in node.names)
            found.update(name for name in names if module_file(name))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] in OURS)
    return found


def has_code(path: Path) -> bool:
    """False for a package marker holding at most a docstring."""
    body = ast.parse(path.read_text()).body
    return any(not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)) for s in body)


def import_closure(module: str) -> set[Path]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        parts = name.split(".")
        seen.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))  # parent packages run too
        path = module_file(name)
        if path is not None:
            todo.extend(imported_modules(path))
    files = {module_file(name) for name in seen}
    return {f for f in files if f is not None and has_code(f)}


def stages() -> list:
    out = []
    for pipeline in PIPELINES:
        spec = yaml.safe_load((REPO_ROOT / pipeline).read_text())
        for name, stage in spec["stages"].items():
            module = stage["cmd"].split()[2]  # python -m <module> ...
            out.append(pytest.param(pipeline, name, module, stage.get("deps", []), id=f"{pipeline}:{name}"))
    return out


@pytest.mark.parametrize(("pipeline", "stage", "module", "deps"), stages())
def test_every_module_a_stage_imports_is_one_of_its_deps(pipeline, stage, module, deps):
    declared = [REPO_ROOT / d for d in deps]
    missing = [
        str(f.relative_to(REPO_ROOT))
        for f in sorted(import_closure(module))
        if not any(f == d or d in f.parents for d in declared)
    ]
    assert missing == [], f"{pipeline}: stage {stage} imports code it does not depend on"


def test_the_closure_follows_lazy_imports_and_module_imports():
    closure = {str(f.relative_to(REPO_ROOT)) for f in import_closure("stages.train")}
    assert "src/runtime.py" in closure  # imported inside main(), after the params are checked
    assert "src/tracking/runs.py" in closure  # `from src.tracking import runs as tracking`
    assert "src/model/networks.py" in closure


def test_bytecode_does_not_change_a_stage_hash():
    ignored = (REPO_ROOT / ".dvcignore").read_text().split()
    assert "__pycache__/" in ignored and "*.pyc" in ignored
