"""Progress messages of the fetch stage, on stderr: stdout carries only the stage's summary line."""

from __future__ import annotations

import sys


def say(message: str) -> None:
    print(f"fetch: {message}", file=sys.stderr, flush=True)
