"""The machine a benchmark run was measured on: CPU, cores, GPUs and library versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import time
from typing import Any

from src.machine import cpu_model


def machine() -> dict[str, Any]:
    """What the figures were measured on; they mean nothing without it."""
    gpus = _gpu_names()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpu": ", ".join(gpus) if gpus else "none",
        "python": platform.python_version(),
        "tensorflow": importlib.metadata.version("tensorflow"),
        "keras": importlib.metadata.version("keras"),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _gpu_names() -> list[str]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return [line.strip() for line in out.stdout.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError):
        return []
