"""A local `fetch.source` folder: find the dataset folder in it and copy out the listed files."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from src.data.manifest import DATASET_DIR
from src.errors import PipelineError


def find_dataset_folder(source: Path, manifest: dict[str, str]) -> Path:
    """Accept both `source/lol_dataset/` and `source` being that folder itself (under any name)."""
    for candidate in (source / DATASET_DIR, source):
        if candidate.is_dir() and any(_under(candidate, name).is_file() for name in manifest):
            return candidate
    raise PipelineError(
        f"{source}: no {DATASET_DIR} folder here: neither it nor {source / DATASET_DIR} "
        f"holds any file listed in the manifest (expected e.g. {next(iter(manifest))})"
    )


def _under(root: Path, name: str) -> Path:
    """Where manifest path `lol_dataset/x/y` lives when `root` is the dataset folder."""
    return root.joinpath(*PurePosixPath(name).parts[1:])


def copy_listed_files(root: Path, manifest: dict[str, str], staging: Path) -> None:
    """Copy only the listed files, so stray files in the source never reach the output."""
    for name in tqdm(manifest, desc="copy", unit="file", file=sys.stderr):
        src = _under(root, name)
        if src.is_file():
            dest = staging / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
