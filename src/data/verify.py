"""Check a staged dataset tree file by file against the manifest's sha256 digests."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from tqdm import tqdm

from src.errors import PipelineError

CHUNK_BYTES = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(staging: Path, manifest: dict[str, str], *, where: str) -> None:
    """Check the staged copy (not the source) so that what gets installed is what was checked."""
    differ: list[str] = []
    missing: list[str] = []
    for name in tqdm(sorted(manifest), desc="verify", unit="file", file=sys.stderr):
        path = staging / name
        if not path.is_file():
            missing.append(name)
        elif sha256_file(path) != manifest[name]:
            differ.append(name)
    if differ or missing:
        first = min(differ + missing)
        problem = "sha256 mismatch" if first in differ else "missing"
        raise PipelineError(
            f"{first}: {problem} ({len(differ)} files differ, {len(missing)} missing) in {where}"
        )
