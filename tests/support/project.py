"""A throwaway git repository holding the pipeline, its params pointed at the committed fixture:
what the end-to-end and DVC-workflow tests run `dvc` in."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import yaml

from tests.support.data import REPO_ROOT as REPO
from tests.support.fetch import fixture_files, write_manifest

FIXTURE_MANIFEST = "manifests/fixture.sha256"
IDENTITY = ("-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main")


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """git with a throwaway identity (CI machines have none); returns stdout."""
    command = ["git", *IDENTITY, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


def write_fixture_project(root: Path, names: Iterable[str], params: dict) -> Path:
    """Copy `names` (files or folders, relative to the repo) into `root`, add the fixture's
    manifest and write `params` (with fetch pointed at that manifest) as params.yaml."""
    for name in names:
        source, target = REPO / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.is_file():
            shutil.copy2(source, target)
    write_manifest(root / FIXTURE_MANIFEST, fixture_files())
    params["fetch"]["manifest"] = FIXTURE_MANIFEST
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root
