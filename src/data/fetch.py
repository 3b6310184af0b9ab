"""Get the LOL dataset onto disk, verified file by file against a committed manifest.

The dataset comes from a public mirror we do not control, so nothing reaches the
pipeline unless every file matches the manifest's sha256: a changed upstream, a
broken transfer or a hostile archive fails the fetch stage instead of silently
changing what the model is trained and scored on. The verified tree replaces the
previous one in a single rename, so `out_dir` always holds either the old good
data or the new good data, never a mixture.

This module is the orchestration: a local source (`local_source.py`) or the cached
or downloaded zip (`download.py`), safe extraction (`archive.py`), verification
against the manifest (`manifest.py`, `verify.py`), then the atomic install.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from src.config import FetchConfig
from src.data.archive import extract_zip
from src.data.download import FIRST_BACKOFF_S, download, zip_name
from src.data.local_source import copy_listed_files, find_dataset_folder
from src.data.manifest import DATASET_DIR, dataset_manifest
from src.data.progress import say
from src.data.verify import verify
from src.errors import PipelineError

STAGING_PREFIX = ".fetch-"


def fetch_dataset(
    cfg: FetchConfig, out_dir: Path, downloads_dir: Path, *, backoff_s: float = FIRST_BACKOFF_S
) -> Path:
    """Produce a verified `out_dir/lol_dataset/` from `cfg.source` or `cfg.url`; return its path.

    `backoff_s` is the first pause between download attempts (it doubles, up to a
    cap; see `download.py` for when it gives up); tests shrink it, users have no reason to.
    """
    manifest = dataset_manifest(cfg.manifest)
    out_dir = Path(out_dir)
    target = out_dir / DATASET_DIR
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(out_dir)
        staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=STAGING_PREFIX))
        try:
            if cfg.source:
                _stage_local_source(Path(cfg.source).expanduser(), manifest, staging)
            else:
                _stage_download(cfg, manifest, Path(downloads_dir), staging, backoff_s)
            _install(staging / DATASET_DIR, target, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as err:
        # A full disk or a permission problem is the user's to fix: say so in one line.
        raise PipelineError(f"{out_dir}: {' '.join(str(err).split())}") from None
    return target


def _remove_stale_staging(out_dir: Path) -> None:
    """Delete staging dirs a killed run left behind: DVC would otherwise hash them as part of the output."""
    for stale in out_dir.glob(f"{STAGING_PREFIX}*"):
        if stale.is_dir() and not stale.is_symlink():
            say(f"removing {stale}, left by an interrupted run")
            shutil.rmtree(stale, ignore_errors=True)


def _stage_local_source(source: Path, manifest: dict[str, str], staging: Path) -> None:
    """Stage a local folder or zip; it is verified like a download, since local copies rot too."""
    if source.is_dir():
        root = find_dataset_folder(source, manifest)
        say(f"using local folder {root}")
        copy_listed_files(root, manifest, staging)
        verify(staging, manifest, where=str(root))
    elif source.is_file() and zipfile.is_zipfile(source):
        say(f"using local zip {source}")
        _stage_zip(source, manifest, staging)
    elif source.exists():
        raise PipelineError(f"{source}: fetch.source is neither a folder nor a readable zip file")
    else:
        raise PipelineError(f"{source}: fetch.source does not exist")


def _stage_download(
    cfg: FetchConfig, manifest: dict[str, str], downloads_dir: Path, staging: Path, backoff_s: float
) -> None:
    """Stage from the cached zip (downloading it first if needed); drop a cached zip that fails."""
    downloads_dir.mkdir(parents=True, exist_ok=True)
    archive = downloads_dir / zip_name(cfg.url)
    if archive.is_file():
        say(f"using cached download {archive} (from {cfg.url})")
    else:
        say(f"downloading {cfg.url}")
        download(cfg, archive, backoff_s)
    try:
        _stage_zip(archive, manifest, staging, where=f"{archive} (from {cfg.url})")
    except PipelineError as err:
        archive.unlink(missing_ok=True)
        raise PipelineError(f"{err}; deleted {archive} so the next run downloads it afresh") from None


def _stage_zip(archive: Path, manifest: dict[str, str], staging: Path, *, where: str | None = None) -> None:
    """Safely extract the listed files of `archive` into `staging`, then verify them."""
    where = where or str(archive)
    extract_zip(archive, manifest, staging, where=where)
    verify(staging, manifest, where=where)


def _install(new: Path, target: Path, scratch: Path) -> None:
    """Swap `new` in for `target` by renames only, restoring the old tree if the swap fails.

    A directory cannot be renamed over a non-empty one, so the old tree is first
    renamed into `scratch` (deleted by the caller); the window without any
    `target` is two renames wide.
    """
    old = scratch / f"old-{DATASET_DIR}"
    had_old = target.exists() or target.is_symlink()
    if had_old:
        os.replace(target, old)
    try:
        os.replace(new, target)
    except OSError as err:
        if had_old:
            os.replace(old, target)
        raise PipelineError(f"{target}: cannot move the verified data into place ({err})") from None
