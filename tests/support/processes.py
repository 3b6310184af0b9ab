"""A command run as a user runs it, watched line by line: for tests that signal it mid-run."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from tests.support.data import REPO_ROOT as REPO


def command_env(**extra: str) -> dict[str, str]:
    """This environment (the test's MLflow store included), with the repo importable."""
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


class Watched:
    """A `python -m …` process in a session of its own (so a test can signal its whole process
    group without hitting pytest), its output collected line by line as it comes."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None):
        self.process = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=cwd,
            env=env or command_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []  # as a terminal shows them (see `_read`)
        self.segments: list[str] = []  # every carriage-return-separated piece of stderr
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                # As a terminal shows it: a progress bar redraws (and at the end clears) its line
                # with carriage returns, and what follows the last one is what stays on screen.
                pieces = line.rstrip("\n").split("\r")
                lines.append(pieces[-1])
                if lines is self.stderr:  # two workers' bars and lines can share a line of the pipe
                    self.segments.extend(pieces)
                self._changed.notify_all()

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 180.0) -> None:
        """Until `pattern` occurs `count` times in stderr's pieces (re.findall: two processes'
        output can share one piece); fails on timeout or exit."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(len(regex.findall(piece)) for piece in self.segments) < count:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"no {count} line(s) matching {pattern!r} (exit {self.process.poll()}):\n"
                        + "\n".join(self.stderr[-40:])
                    )
                self._changed.wait(timeout=0.5)

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def wait(self, timeout: float) -> int:
        """The exit code; the output read to its end."""
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def kill(self, also: Sequence[psutil.Process] = ()) -> None:
        """Leave nothing behind, whatever the test did: the process and all it started, and `also`
        (children seen earlier, which outlive it reparented and so are no longer its descendants)."""
        try:
            others = [*self.descendants(), *also]
        except psutil.NoSuchProcess:
            others = list(also)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        for process in others:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self.process.wait()


def gone(processes: list[psutil.Process], timeout: float) -> bool:
    """Whether all of them have exited within `timeout` (a zombie awaiting its reaper counts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for process in processes:
            try:
                if process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(process)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            return True
        time.sleep(0.2)
    return False
