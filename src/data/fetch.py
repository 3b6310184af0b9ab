"""Get the LOL dataset onto disk, verified file by file against a committed manifest.

The dataset comes from a public mirror we do not control, so nothing reaches the
pipeline unless every file matches the manifest's sha256: a changed upstream, a
broken transfer or a hostile archive fails the fetch stage instead of silently
changing what the model is trained and scored on. The verified tree replaces the
previous one in a single rename, so `out_dir` always holds either the old good
data or the new good data, never a mixture.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import unquote, urlsplit

import requests
from tqdm import tqdm

from src.config import FetchConfig
from src.errors import PipelineError

DATASET_DIR = "lol_dataset"
STAGING_PREFIX = ".fetch-"
DEFAULT_ZIP_NAME = f"{DATASET_DIR}.zip"
CHUNK_BYTES = 1 << 20
# Small on purpose: when a connection drops, the chunk being read is lost, and a
# resumed transfer starts after the last chunk written.
DOWNLOAD_CHUNK_BYTES = 64 << 10
MAX_BACKOFF_S = 60.0
_MANIFEST_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


# --------------------------------------------------------------------------- manifest


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
        if not _is_safe_relative(name):
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


def _is_safe_relative(name: str) -> bool:
    """True for a plain relative path: the only kind we ever join onto a directory."""
    if not name or "\\" in name or "\0" in name:
        return False
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        return False
    return ".." not in posix.parts


def _dataset_manifest(path: Path | str) -> dict[str, str]:
    """The manifest, checked to describe one `lol_dataset/` tree (the folder we install)."""
    manifest = read_manifest(path)
    outside = [
        name for name in manifest if PurePosixPath(name).parts[:1] != (DATASET_DIR,) or "/" not in name
    ]
    if outside:
        raise PipelineError(f"{path}: {outside[0]}: every path must start with {DATASET_DIR}/")
    return manifest


# --------------------------------------------------------------------------- public entry


def fetch_dataset(cfg: FetchConfig, out_dir: Path, downloads_dir: Path, *, backoff_s: float = 2.0) -> Path:
    """Produce a verified `out_dir/lol_dataset/` from `cfg.source` or `cfg.url`; return its path.

    `backoff_s` is the first pause between download attempts (it doubles each
    time); tests shrink it, users have no reason to.
    """
    manifest = _dataset_manifest(cfg.manifest)
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


def _say(message: str) -> None:
    print(f"fetch: {message}", file=sys.stderr, flush=True)


def _remove_stale_staging(out_dir: Path) -> None:
    """Delete staging dirs a killed run left behind: DVC would otherwise hash them as part of the output."""
    for stale in out_dir.glob(f"{STAGING_PREFIX}*"):
        if stale.is_dir() and not stale.is_symlink():
            _say(f"removing {stale}, left by an interrupted run")
            shutil.rmtree(stale, ignore_errors=True)


# --------------------------------------------------------------------------- local sources


def _stage_local_source(source: Path, manifest: dict[str, str], staging: Path) -> None:
    """Stage a local folder or zip; it is verified like a download, since local copies rot too."""
    if source.is_dir():
        root = _find_dataset_folder(source, manifest)
        _say(f"using local folder {root}")
        _copy_listed_files(root, manifest, staging)
        _verify(staging, manifest, where=str(root))
    elif source.is_file() and zipfile.is_zipfile(source):
        _say(f"using local zip {source}")
        _stage_zip(source, manifest, staging)
    elif source.exists():
        raise PipelineError(f"{source}: fetch.source is neither a folder nor a readable zip file")
    else:
        raise PipelineError(f"{source}: fetch.source does not exist")


def _find_dataset_folder(source: Path, manifest: dict[str, str]) -> Path:
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


def _copy_listed_files(root: Path, manifest: dict[str, str], staging: Path) -> None:
    """Copy only the listed files, so stray files in the source never reach the output."""
    for name in tqdm(manifest, desc="copy", unit="file", file=sys.stderr):
        src = _under(root, name)
        if src.is_file():
            dest = staging / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)


# --------------------------------------------------------------------------- zip archives


def _stage_zip(archive: Path, manifest: dict[str, str], staging: Path, *, where: str | None = None) -> None:
    """Safely extract the listed files of `archive` into `staging`, then verify them."""
    where = where or str(archive)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                _check_member(info, where)
            strip = _find_zip_root(members, manifest, where)
            _extract_listed(zf, members, strip, manifest, staging)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise PipelineError(f"{where}: corrupt zip archive ({err})") from None
    _verify(staging, manifest, where=where)


def _check_member(info: zipfile.ZipInfo, where: str) -> None:
    """Refuse the whole archive on any entry that could write outside its folder (zip-slip)."""
    if not _is_safe_relative(info.filename.rstrip("/")):
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


# --------------------------------------------------------------------------- verification


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(staging: Path, manifest: dict[str, str], *, where: str) -> None:
    """Check the staged copy (not the source) so that what gets installed is what was checked."""
    differ: list[str] = []
    missing: list[str] = []
    for name in tqdm(sorted(manifest), desc="verify", unit="file", file=sys.stderr):
        path = staging / name
        if not path.is_file():
            missing.append(name)
        elif _sha256_file(path) != manifest[name]:
            differ.append(name)
    if differ or missing:
        first = min(differ + missing)
        problem = "sha256 mismatch" if first in differ else "missing"
        raise PipelineError(
            f"{first}: {problem} ({len(differ)} files differ, {len(missing)} missing) in {where}"
        )


# --------------------------------------------------------------------------- install


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


# --------------------------------------------------------------------------- download


def _stage_download(
    cfg: FetchConfig, manifest: dict[str, str], downloads_dir: Path, staging: Path, backoff_s: float
) -> None:
    """Stage from the cached zip (downloading it first if needed); drop a cached zip that fails."""
    downloads_dir.mkdir(parents=True, exist_ok=True)
    archive = downloads_dir / _zip_name(cfg.url)
    if archive.is_file():
        _say(f"using cached download {archive} (from {cfg.url})")
    else:
        _say(f"downloading {cfg.url}")
        _download(cfg, archive, backoff_s)
    try:
        _stage_zip(archive, manifest, staging, where=f"{archive} (from {cfg.url})")
    except PipelineError as err:
        archive.unlink(missing_ok=True)
        raise PipelineError(f"{err}; deleted {archive} so the next run downloads it afresh") from None


def _zip_name(url: str) -> str:
    """Local file name for the download: the URL's last path segment, if it is a safe `.zip` name."""
    name = unquote(PurePosixPath(urlsplit(url).path).name)
    if not name.lower().endswith(".zip") or not _is_safe_relative(name) or "/" in name:
        return DEFAULT_ZIP_NAME
    return name


class _RetryableError(Exception):
    """A transfer failure worth another attempt (network trouble, 5xx, short body)."""


def _download(cfg: FetchConfig, archive: Path, backoff_s: float) -> None:
    """Download to `<archive>.part`, resuming across attempts (and runs), then rename to `archive`."""
    if not cfg.url:
        raise PipelineError("fetch.url is empty and fetch.source is not set: nothing to fetch from")
    part = archive.with_name(archive.name + ".part")
    attempts = cfg.retries + 1
    with requests.Session() as session:
        for attempt in range(1, attempts + 1):
            try:
                _download_attempt(session, cfg, part)
                break
            except _RetryableError as err:
                message = " ".join(str(err).split())
            except requests.RequestException as err:
                message = " ".join(f"{type(err).__name__}: {err}".split())
            if attempt == attempts:
                raise PipelineError(
                    f"{cfg.url}: download failed after {attempts} attempt(s): {message[:300]} "
                    f"(partial data kept in {part}; the next run resumes it; offline? set fetch.source "
                    "to a local lol_dataset folder or zip)"
                )
            pause = min(backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
            _say(f"attempt {attempt}/{attempts} failed ({message[:200]}); retrying in {pause:.1f} s")
            time.sleep(pause)
    os.replace(part, archive)


def _download_attempt(session: requests.Session, cfg: FetchConfig, part: Path) -> None:
    """One GET, resuming from the bytes already in `part` when the server honours Range."""
    offset = part.stat().st_size if part.is_file() else 0
    # identity: byte offsets in Range must count the stored bytes, not a gzip stream's.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with session.get(cfg.url, headers=headers, stream=True, timeout=cfg.timeout_s) as resp:
        total = _plan_transfer(resp, offset, part, cfg.url)
        if total is None and resp.status_code == 416:
            return
        offset = part.stat().st_size if part.is_file() else 0
        mode = "ab" if offset else "wb"
        with (
            part.open(mode) as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc="download",
                file=sys.stderr,
            ) as bar,
        ):
            for chunk in resp.iter_content(DOWNLOAD_CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise _RetryableError(f"transfer ended at {size} of {total} bytes")


def _plan_transfer(resp: requests.Response, offset: int, part: Path, url: str) -> int | None:
    """Decide from the status how to use `part`; return the full file size when the server says it.

    Returns None with status 416 when `part` already holds the whole file.
    Truncates `part` whenever the response starts from byte 0.
    """
    status = resp.status_code
    if status == 206:
        start, total = _parse_content_range(resp.headers.get("Content-Range", ""))
        if start != offset:
            raise _resume_failed(part, f"server resumed at byte {start}, not {offset}")
        return total
    if status == 200:
        if offset:
            _say("server ignored the Range request; restarting the download from byte 0")
            part.unlink(missing_ok=True)
        length = resp.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else None
    if status == 416 and offset:
        _, total = _parse_content_range(resp.headers.get("Content-Range", ""))
        if total == offset:
            return None
        raise _resume_failed(part, f"server refused to resume at byte {offset}")
    if status in (408, 429) or status >= 500:
        raise _RetryableError(f"HTTP {status} {resp.reason}")
    raise PipelineError(f"{url}: HTTP {status} {resp.reason} (not retrying; check fetch.url)")


def _parse_content_range(value: str) -> tuple[int | None, int | None]:
    """`bytes 10-99/100` → (10, 100); `bytes */100` → (None, 100); anything else → (None, None)."""
    match = _CONTENT_RANGE.match(value.strip())
    if match:
        total = match.group(3)
        return int(match.group(1)), (int(total) if total != "*" else None)
    unsatisfied = re.match(r"^bytes \*/(\d+)$", value.strip())
    return None, (int(unsatisfied.group(1)) if unsatisfied else None)


def _resume_failed(part: Path, reason: str) -> _RetryableError:
    """Drop the partial file so the next attempt starts clean instead of failing the same way."""
    with contextlib.suppress(OSError):
        part.unlink()
    return _RetryableError(f"{reason}; starting over")
