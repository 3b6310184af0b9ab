"""What a timing was measured on: figures mean nothing without the machine beside them."""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name, e.g. 'AMD EPYC 9R14' (Linux's /proc/cpuinfo), else whatever the
    platform module knows (often just the architecture)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"
