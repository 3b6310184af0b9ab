"""HTTP download of the dataset zip, with retries and resume across attempts and runs.

Nothing here checks the content: the zip is verified file by file against the
manifest after extraction, so this module only has to get the bytes across.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import requests
from tqdm import tqdm

from src.config import FetchConfig
from src.data.manifest import DATASET_DIR, is_safe_relative
from src.data.progress import say
from src.errors import PipelineError

DEFAULT_ZIP_NAME = f"{DATASET_DIR}.zip"
# Small on purpose: when a connection drops, the chunk being read is lost, and a
# resumed transfer starts after the last chunk written.
DOWNLOAD_CHUNK_BYTES = 64 << 10
MAX_BACKOFF_S = 60.0
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def zip_name(url: str) -> str:
    """Local file name for the download: the URL's last path segment, if it is a safe `.zip` name."""
    name = unquote(PurePosixPath(urlsplit(url).path).name)
    if not name.lower().endswith(".zip") or not is_safe_relative(name) or "/" in name:
        return DEFAULT_ZIP_NAME
    return name


class _RetryableError(Exception):
    """A transfer failure worth another attempt (network trouble, 5xx, short body)."""


def download(cfg: FetchConfig, archive: Path, backoff_s: float) -> None:
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
            say(f"attempt {attempt}/{attempts} failed ({message[:200]}); retrying in {pause:.1f} s")
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
            say("server ignored the Range request; restarting the download from byte 0")
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
