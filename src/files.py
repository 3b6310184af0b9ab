"""Files that appear whole or not at all: a killed stage never leaves half an output behind
that DVC or the next stage would take for a result."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write text (UTF-8, newlines as given) so the file is replaced whole or not at all."""
    with atomic_path(path) as tmp, open(tmp, "x", encoding="utf-8", newline="") as handle:
        handle.write(text)
        sync(handle)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; on success it replaces `path`, on error it is removed.

    The temp file sits in the same folder (so `os.replace` is a rename on one file
    system) and keeps the suffix, for writers such as Keras that insist on one.
    The parent folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def sync(handle: IO[Any]) -> None:
    """Flush to disk before the rename, so a crash cannot leave an empty file under the final name."""
    handle.flush()
    os.fsync(handle.fileno())
