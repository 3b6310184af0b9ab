"""Safe zip extraction: only the manifest's files come out, and no entry may write outside the folder.

Archives come from a mirror we do not control, so the whole archive is refused on
any entry that could escape (zip-slip, symbolic links) before anything is written.
"""

from __future__ import annotations

import shutil
import stat
import sys
import zipfile
import zlib
from pathlib import Path

from tqdm import tqdm

from src.data.manifest import DATASET_DIR, is_safe_relative
from src.errors import PipelineError

CHUNK_BYTES = 1 << 20


def extract_zip(archive: Path, manifest: dict[str, str], staging: Path, *, where: str) -> None:
    """Safely extract the listed files of `archive` into `staging` (verifying them is the caller's job)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                _check_member(info, where)
            strip = _find_zip_root(members, manifest, where)
            _extract_listed(zf, members, strip, manifest, staging)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise PipelineError(f"{where}: corrupt zip archive ({err})") from None


def _check_member(info: zipfile.ZipInfo, where: str) -> None:
    """Refuse the whole archive on any entry that could write outside its folder (zip-slip)."""
    if not is_safe_relative(info.filename.rstrip("/")):
        raise PipelineError(f"{where}: unsafe entry {info.filename!r} (absolute path or '..'); refusing it")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise PipelineError(f"{where}: entry {info.filename!r} is a symbolic link; refusing it")


def _zip_rel(name: str, strip: str) -> str:
    """Manifest path of a zip entry, given the entry prefix that stands for the dataset folder."""
    return f"{DATASET_DIR}/{name[len(strip) :]}"


def _find_zip_root(members: list[zipfile.ZipInfo], manifest: dict[str, str], where: str) -> str:
    """The entry prefix that plays `lol_dataset/`: the one under which most manifest files lie.

    Mirrors repack the dataset differently (top level, inside a wrapper folder,
    without the folder), and `__MACOSX/` copies must never win.
    """
    files = [info.filename for info in members if not info.is_dir()]
    candidates = {""}
    for name in files:
        parts = name.split("/")
        for i, part in enumerate(parts[:-1]):
            if part == DATASET_DIR:
                candidates.add("/".join(parts[: i + 1]) + "/")
    hits = {
        strip: sum(name.startswith(strip) and _zip_rel(name, strip) in manifest for name in files)
        for strip in candidates
    }
    best = max(sorted(hits, key=len), key=lambda strip: hits[strip])
    if hits[best] == 0:
        top = sorted({name.split("/")[0] for name in files})[:5]
        raise PipelineError(
            f"{where}: no {DATASET_DIR}/ folder with the manifest's files in the archive "
            f"(top-level entries: {', '.join(top) or 'none'})"
        )
    return best


def _extract_listed(
    zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], strip: str, manifest: dict[str, str], staging: Path
) -> None:
    """Write only manifest files; the destination comes from the (already checked) manifest path."""
    listed = [
        info
        for info in members
        if not info.is_dir()
        and info.filename.startswith(strip)
        and _zip_rel(info.filename, strip) in manifest
    ]
    for info in tqdm(listed, desc="extract", unit="file", file=sys.stderr):
        dest = staging / _zip_rel(info.filename, strip)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, CHUNK_BYTES)
