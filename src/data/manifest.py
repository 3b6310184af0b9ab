"""The committed manifest: which files make up the dataset, and the sha256 each must have.

The manifest pins every file, so its own digest names the data version: a training
run logs `manifest_digest` as its data provenance.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from src.errors import PipelineError

DATASET_DIR = "lol_dataset"
_MANIFEST_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def read_manifest(path: Path | str) -> dict[str, str]:
    """Parse a `sha256sum` file into {relative path: lowercase hex digest}.

    Paths are checked here, once, so that everything downstream may join them
    onto a directory without re-checking for `..` or absolute paths.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(f"{path}: manifest not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PipelineError(f"{path}: cannot read manifest ({err})") from None
    entries: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _MANIFEST_LINE.match(line)
        if match is None:
            raise PipelineError(
                f"{path}:{lineno}: not a sha256sum line ('<64 hex digits>  <path>'): {line!r}"
            )
        digest, name = match.group(1).lower(), match.group(2).removeprefix("./")
        if not is_safe_relative(name):
            raise PipelineError(f"{path}:{lineno}: path must be relative without '..': {name!r}")
        if name in entries:
            raise PipelineError(f"{path}:{lineno}: {name} is listed twice")
        entries[name] = digest
    if not entries:
        raise PipelineError(f"{path}: manifest lists no files")
    return entries


def manifest_digest(manifest_path: Path | str) -> str:
    """sha256 of the manifest's bytes: names the data version, since the manifest pins every file."""
    path = Path(manifest_path)
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise PipelineError(f"{path}: manifest not found") from None


def is_safe_relative(name: str) -> bool:
    """True for a plain relative path: the only kind we ever join onto a directory."""
    if not name or "\\" in name or "\0" in name:
        return False
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        return False
    return ".." not in posix.parts


def dataset_manifest(path: Path | str) -> dict[str, str]:
    """The manifest, checked to describe one `lol_dataset/` tree (the folder we install)."""
    manifest = read_manifest(path)
    outside = [
        name for name in manifest if PurePosixPath(name).parts[:1] != (DATASET_DIR,) or "/" not in name
    ]
    if outside:
        raise PipelineError(f"{path}: {outside[0]}: every path must start with {DATASET_DIR}/")
    return manifest
