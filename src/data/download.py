"""HTTP download of the dataset zip, with retries and resume across attempts and runs.

Nothing here checks the content: the zip is verified file by file against the
manifest after extraction, so this module only has to get the bytes across.

When to give up (defaults `fetch.retries: 5`, `fetch.timeout_s: 60` in brackets):
- a failure that waiting cannot fix (no such host name, HTTP 404, a bad URL, a rejected TLS
  certificate) is not retried;
- the pauses between attempts are short (0.5 s doubling to at most 4 s: 11.5 s for five
  retries): whoever runs the stage is waiting, an outage longer than that will not end
  within the run, and a rerun resumes the `.part` anyway;
- connecting gets at most 10 s (a reachable host answers in milliseconds), while a transfer
  may go `fetch.timeout_s` without a byte, the user's allowance for a slow link;
- once `2 × fetch.timeout_s` (120 s) pass without a new byte, retrying stops whatever the
  count left: a stalled server gets a second chance (a dead connection is worth one
  reconnect), not six of 60 s each.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import requests
from tqdm import tqdm

from src.config import FetchConfig
from src.data.http_errors import Failure, describe
from src.data.manifest import DATASET_DIR, is_safe_relative
from src.data.partial import Origin, Partial
from src.data.progress import say
from src.errors import PipelineError

DEFAULT_ZIP_NAME = f"{DATASET_DIR}.zip"
# Small on purpose: when a connection drops, the chunk being read is lost, and a
# resumed transfer starts after the last chunk written.
DOWNLOAD_CHUNK_BYTES = 64 << 10
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 4.0
CONNECT_TIMEOUT_S = 10.0
STALL_TIMEOUTS = 2  # retrying stops after this many `fetch.timeout_s` without a new byte
SOURCE_HINT = "set fetch.source to a local lol_dataset folder or zip"
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def zip_name(url: str) -> str:
    """Local file name for the download: the URL's last path segment, if it is a safe `.zip` name."""
    name = unquote(PurePosixPath(urlsplit(url).path).name)
    if not name.lower().endswith(".zip") or not is_safe_relative(name) or "/" in name:
        return DEFAULT_ZIP_NAME
    return name


class _AttemptFailed(Exception):
    """One attempt failed; `failure` says how and whether another attempt may do better."""

    def __init__(self, text: str, *, retry: bool = True) -> None:
        super().__init__(text)
        self.failure = Failure(text, retry)


def download(cfg: FetchConfig, archive: Path, backoff_s: float = FIRST_BACKOFF_S) -> None:
    """Download to `<archive>.part`, resuming across attempts (and runs), then rename to `archive`.

    `backoff_s` is the first pause between attempts; it doubles up to MAX_BACKOFF_S.
    """
    if not cfg.url:
        raise PipelineError("fetch.url is empty and fetch.source is not set: nothing to fetch from")
    partial = Partial(archive)
    attempts = cfg.retries + 1
    started = last_progress = time.monotonic()
    received = 0
    with requests.Session() as session:
        for attempt in range(1, attempts + 1):
            failure = _attempt(session, cfg, partial)
            if failure is None:
                break
            now = time.monotonic()
            if partial.received > received:  # this attempt brought bytes: the server is not stalled
                received, last_progress = partial.received, now
            pause = min(backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
            stalled = now + pause - last_progress >= STALL_TIMEOUTS * cfg.timeout_s
            if not failure.retry or attempt == attempts or stalled:
                raise PipelineError(_give_up_line(cfg, failure, partial, attempt, now - started))
            say(f"attempt {attempt}/{attempts} failed: {failure.text}; retrying in {pause:.1f} s")
            time.sleep(pause)
    partial.finish(archive)


def _give_up_line(cfg: FetchConfig, failure: Failure, partial: Partial, attempt: int, took_s: float) -> str:
    """The one line that ends a failed download: URL, why it stopped, the cause, what is kept, what to do."""
    attempts = cfg.retries + 1
    if not failure.retry:
        return f"{cfg.url}: {failure.text}{partial.kept()}; not retrying: check fetch.url, or {SOURCE_HINT}"
    if attempt < attempts:  # stopped early: no new data for too long
        stall_s = STALL_TIMEOUTS * cfg.timeout_s
        how = (
            f"gave up after {attempt} of {attempts} attempts ({took_s:.1f} s, no new data for {stall_s:g} s)"
        )
    else:
        how = f"failed after {attempts} attempt{'s' if attempts > 1 else ''} in {took_s:.1f} s"
    return f"{cfg.url}: download {how}: {failure.text}{partial.kept()}; rerun later, or {SOURCE_HINT}"


def _timeouts(cfg: FetchConfig) -> tuple[float, float]:
    """(connect, read) for requests: a short connect, the user's `timeout_s` between bytes."""
    return min(CONNECT_TIMEOUT_S, cfg.timeout_s), cfg.timeout_s


def _attempt(session: requests.Session, cfg: FetchConfig, partial: Partial) -> Failure | None:
    """One attempt; None when `partial` now holds the whole file."""
    connect_s, read_s = _timeouts(cfg)
    try:
        _download_attempt(session, cfg, partial)
    except _AttemptFailed as err:
        return err.failure
    except requests.RequestException as err:
        return describe(err, cfg.url, connect_s, read_s)
    return None


def _download_attempt(session: requests.Session, cfg: FetchConfig, partial: Partial) -> None:
    """One GET, resuming from the bytes already in `partial` when they belong to this file."""
    origin = partial.resumable(cfg.url)
    offset = partial.size() if origin else 0
    # identity: byte offsets in Range must count the stored bytes, not a gzip stream's.
    headers = {"Accept-Encoding": "identity"}
    if origin and offset:
        headers["Range"] = f"bytes={offset}-"
        validator = origin.if_range()
        if validator:  # the server sends the whole file, not the rest, if it changed since
            headers["If-Range"] = validator
    with session.get(cfg.url, headers=headers, stream=True, timeout=_timeouts(cfg)) as resp:
        total = _plan_transfer(resp, origin, offset, partial, cfg.url)
        if total is None and resp.status_code == 416:
            return
        offset = partial.size()
        with (
            partial.path.open("ab" if offset else "wb") as out,
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
                partial.received += len(chunk)
                bar.update(len(chunk))
    size = partial.size()
    if total is not None and size != total:
        raise _AttemptFailed(f"transfer ended at {size:,} of {total:,} bytes")


def _plan_transfer(
    resp: requests.Response, origin: Origin | None, offset: int, partial: Partial, url: str
) -> int | None:
    """Decide from the status how to use `partial`; return the full file size when the server says it.

    Returns None with status 416 when `partial` already holds the whole file.
    Restarts `partial` (with a new record) whenever the response starts from byte 0.
    """
    status = resp.status_code
    if status == 206 and origin is not None:
        start, total = _parse_content_range(resp.headers.get("Content-Range", ""))
        if start != offset:
            raise _resume_failed(partial, f"server resumed at byte {start}, not {offset}")
        changed = origin.mismatch(Origin.of(url, resp, total))
        if changed:  # a server that ignored If-Range but honoured Range
            raise _resume_failed(partial, f"file changed since {partial.path.name} was started ({changed})")
        return total
    if status == 200:
        if offset:
            say(
                f"the server sent the whole file, not the rest (it changed since {partial.path.name} "
                "was started, or it ignores Range); restarting from byte 0"
            )
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        partial.start(Origin.of(url, resp, total))
        return total
    if status == 416 and offset:
        _, total = _parse_content_range(resp.headers.get("Content-Range", ""))
        if total == offset:
            return None
        raise _resume_failed(partial, f"server refused to resume at byte {offset}")
    if status in (408, 429) or status >= 500:
        raise _AttemptFailed(f"HTTP {status} {resp.reason}")
    raise _AttemptFailed(f"HTTP {status} {resp.reason}", retry=False)


def _parse_content_range(value: str) -> tuple[int | None, int | None]:
    """`bytes 10-99/100` → (10, 100); `bytes */100` → (None, 100); anything else → (None, None)."""
    match = _CONTENT_RANGE.match(value.strip())
    if match:
        total = match.group(3)
        return int(match.group(1)), (int(total) if total != "*" else None)
    unsatisfied = re.match(r"^bytes \*/(\d+)$", value.strip())
    return None, (int(unsatisfied.group(1)) if unsatisfied else None)


def _resume_failed(partial: Partial, reason: str) -> _AttemptFailed:
    """Drop the partial file so the next attempt starts clean instead of failing the same way."""
    partial.discard()
    return _AttemptFailed(f"{reason}; starting over")
