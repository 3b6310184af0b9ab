"""The partial download `<zip>.part` and the record beside it, `<zip>.part.json`, of what it is part of.

A `.part` is worth resuming only if its bytes are the start of the very file the server sends
now. Bytes of another URL or of an older upload, spliced onto the new one, make a corrupt zip
that only extraction notices, a whole download later. So the record holds the URL and whatever
the server said to identify the file (ETag, Last-Modified, size): a `.part` whose record names
another URL, or that has no record, is discarded before asking; a changed file is caught by
If-Range (the server then sends it whole) or by comparing the 206 response with the record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path

import requests

from src.data.progress import say
from src.files import atomic_write_text


@dataclasses.dataclass(frozen=True)
class Origin:
    """Which file a `.part` is the start of: the URL asked for, and the server's validators."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    size: int | None = None

    @classmethod
    def of(cls, url: str, resp: requests.Response, size: int | None) -> Origin:
        return cls(url, resp.headers.get("ETag"), resp.headers.get("Last-Modified"), size)

    def if_range(self) -> str | None:
        """The validator to send in If-Range: a strong ETag, else the date (RFC 9110 forbids weak ETags)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified

    def mismatch(self, now: Origin) -> str | None:
        """How the file answering a resume differs from the one the `.part` began, or None."""
        for field in ("etag", "last_modified", "size"):
            before, after = getattr(self, field), getattr(now, field)
            if before is not None and after is not None and before != after:
                return f"{field.replace('_', '-')} was {before}, now {after}"
        return None


class Partial:
    """`<archive>.part` and its record. The record is written before the first byte, so a `.part`
    with bytes in it always has one; without a record, its bytes are of unknown origin."""

    def __init__(self, archive: Path) -> None:
        self.path = archive.with_name(archive.name + ".part")
        self.record = archive.with_name(archive.name + ".part.json")
        self.received = 0  # bytes written in this process, to tell a stalled server from a slow one

    def size(self) -> int:
        return self.path.stat().st_size if self.path.is_file() else 0

    def resumable(self, url: str) -> Origin | None:
        """The record of a `.part` that may be resumed for `url`; a `.part` that may not is discarded."""
        if not self.size():
            return None
        origin = self._read_record()
        if origin is None:
            reason = f"no readable {self.record.name} says which URL it came from"
        elif origin.url != url:
            reason = f"it is part of {origin.url}, not {url}"
        elif origin.size is not None and self.size() > origin.size:
            reason = f"it holds {self.size():,} bytes of a {origin.size:,}-byte file"
        else:
            return origin
        say(f"discarding {self.path} ({self.size():,} bytes): {reason}")
        self.discard()
        return None

    def start(self, origin: Origin) -> None:
        """Empty the `.part` and record what its bytes will be: a transfer from byte 0 begins."""
        self.path.unlink(missing_ok=True)
        atomic_write_text(self.record, json.dumps(dataclasses.asdict(origin), indent=2) + "\n")

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            self.record.unlink()

    def finish(self, archive: Path) -> None:
        """The `.part` is whole: it becomes `archive`, and its record has nothing left to describe."""
        os.replace(self.path, archive)
        self.record.unlink(missing_ok=True)

    def kept(self) -> str:
        """For a failure message: what is kept for the next run, if anything."""
        size = self.size()
        return f" ({size:,} bytes kept in {self.path}; the next run resumes there)" if size else ""

    def _read_record(self) -> Origin | None:
        try:
            raw = json.loads(self.record.read_text(encoding="utf-8"))
            return Origin(**{field.name: raw.get(field.name) for field in dataclasses.fields(Origin)})
        except (OSError, ValueError, TypeError, AttributeError):
            return None
