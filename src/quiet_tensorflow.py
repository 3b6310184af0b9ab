"""Keep TensorFlow's start-up chatter out of the terminal, and nothing else.

Importing TensorFlow 2.21 prints, before its logging is initialised (so
`TF_CPP_MIN_LOG_LEVEL` cannot silence them), two "All log messages before
absl::InitializeLog()" warnings and two "Could not find cuda drivers" lines; the first
device query then prints an error-level "failed call to cuInit" on a machine without an
NVIDIA driver. Every command paid ~5 lines of noise before its own first line, and the
error-level one made users think something was broken.

`install()` (called from `src/__init__.py`, so every command and stage gets it) hooks the
first `import tensorflow`: the import and the first device query run with file
descriptor 2 captured, and afterwards every captured line is written back except those
known banners. Anything else (a real import error, a Python warning, a genuine CUDA
failure on a machine that has a driver) still reaches stderr, in order.

`-v` / `--verbose` on a `python -m src.…` command (`add_verbose_flag`), or
`TF_CPP_MIN_LOG_LEVEL=0` (TensorFlow's own switch for "show me everything") on any, turns the
filter off.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType

# Lines TensorFlow prints on every start, whatever the machine: they carry no information.
_BANNERS = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(r"^I\d{4} .*cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine"),
    re.compile(r"^I\d{4} .*port\.cc:\d+\] oneDNN custom operations are on"),
    re.compile(r"^I\d{4} .*cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized"),
    re.compile(r"^To enable the following instructions: .* rebuild TensorFlow"),
)
# The CUDA probe: an error only where a driver exists; on a CPU-only machine it is expected.
_CUDA_PROBE = re.compile(r"^E\d{4} .*cuda_(platform|executor|diagnostics)\.cc:\d+\] .*cuInit")
_NVIDIA_DRIVER = "/proc/driver/nvidia"  # present whenever the NVIDIA kernel driver is loaded


def is_banner(line: str, has_driver: bool) -> bool:
    """Whether a captured stderr line is start-up noise to drop."""
    if any(pattern.match(line) for pattern in _BANNERS):
        return True
    return not has_driver and bool(_CUDA_PROBE.match(line))


@contextlib.contextmanager
def filtered_stderr(has_driver: bool) -> Iterator[None]:
    """Capture file descriptor 2 (C++ writes there directly, past `sys.stderr`), then replay
    all but the banners; the replay happens even if the body raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not is_banner(line, has_driver)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's own loader, plus the first device query, inside `filtered_stderr`."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with filtered_stderr(os.path.exists(_NVIDIA_DRIVER)):
            self._loader.exec_module(module)
            module.config.list_physical_devices()  # the cuInit probe happens here, once per process


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` the normal way, once, and swaps in the quiet loader."""

    def find_spec(
        self, name: str, path: object, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one shot: the real finders do the search
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


VERBOSE_FLAGS = ("-v", "--verbose")  # accepted by every command (`add_verbose_flag`)


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    """`-v`: the command-line face of the switch `install()` reads from `sys.argv`."""
    parser.add_argument(*VERBOSE_FLAGS, action="store_true", help="show TensorFlow's start-up log lines")


def install() -> None:
    """Hook the first `import tensorflow` unless the user asked for everything or TF is loaded.

    Read from `sys.argv` because the hook must be in place before a command's own imports,
    long before its argparse runs."""
    if any(arg in VERBOSE_FLAGS for arg in sys.argv[1:]):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # INFO lines after start-up (XLA notices)
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0" or "tensorflow" in sys.modules:
        return
    if not any(isinstance(finder, _QuietFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
