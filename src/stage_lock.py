"""One command at a time per stage and project: a second `train`, `evaluate` or tune of the same
study stops at once with one line, whether either was started by `dvc repro` or by hand.

DVC's own lock covers `dvc repro` only; two trainings that share a checkpoint folder would wipe
each other's epochs. The lock is an OS file lock (flock, through filelock), so the kernel drops it
when its process dies however it died: a lock left by a `kill -9` is simply taken over. Who holds
it (pid, since when) is written beside it for the refusal to name.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from collections.abc import Iterator
from pathlib import Path

import filelock

from src.errors import PipelineError
from src.files import atomic_write_text

LOCK_DIR = Path(".locks")  # in the project (the working directory), git-ignored


def _holder(info: Path) -> str:
    """'pid N, since …' from the holder's note, or what is known when it has not written it yet."""
    try:
        note = json.loads(info.read_text())
        return f"pid {note['pid']}, since {note['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown: it is starting"


@contextlib.contextmanager
def held(name: str, what: str, folder: Path = LOCK_DIR) -> Iterator[None]:
    """Hold lock `name` (e.g. "train") for the block, or stop with
    `another <what> is running (pid N, since …); wait for it or stop it`."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(folder / f"{name}.lock", timeout=0)
    info = folder / f"{name}.json"
    try:
        lock.acquire()
    except filelock.Timeout:
        raise PipelineError(f"another {what} is running ({_holder(info)}); wait for it or stop it") from None
    try:
        since = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        atomic_write_text(info, json.dumps({"pid": os.getpid(), "since": since}) + "\n")
        yield
    finally:
        info.unlink(missing_ok=True)
        lock.release()
