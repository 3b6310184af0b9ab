"""Start a real server as a subprocess for a test, wait until it answers, and always stop it."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

VENV_BIN = str(Path(sys.executable).parent)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(**extra: str) -> dict[str, str]:
    """The test's environment with the venv first on PATH: `mlflow models serve` execs `uvicorn`."""
    env = dict(os.environ)
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


@contextlib.contextmanager
def running(
    command: list[str],
    health_url: str,
    env: dict[str, str],
    log: Path,
    timeout_s: float = 90,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen]:
    """Run `command` in its own process group until `health_url` answers 200; kill the group after.

    The group matters: `mlflow models serve` starts uvicorn as a child, which would
    outlive a kill of the parent alone and keep the port.
    """
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_until_up(proc, health_url, log, timeout_s)
        yield proc
    finally:
        _stop(proc)


@dataclasses.dataclass(frozen=True)
class TrackingServer:
    """A running `mlflow server`: what clients set MLFLOW_TRACKING_URI to, and what is behind it."""

    url: str  # http://127.0.0.1:PORT
    backend_store_uri: str  # where runs, models and aliases are kept
    artifacts: Path  # --artifacts-destination: the server writes every artifact here (proxied)


@contextlib.contextmanager
def tracking_server(backend_store_uri: str, folder: Path) -> Iterator[TrackingServer]:
    """`mlflow server` on `backend_store_uri` with proxied artifacts (`--serve-artifacts`, MLflow's
    default) in `folder`/artifacts, as a team runs it; always stopped afterwards. Clients upload
    and download artifacts through the server, so they need no access to that folder."""
    port, artifacts = free_port(), folder / "artifacts"
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_store_uri]
    command += ["--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1"]
    env = {k: v for k, v in server_env().items() if not k.startswith("MLFLOW_")}  # not a test's own store
    url = f"http://127.0.0.1:{port}"
    # Up in ~20 s on 2 busy cores, most of it MLflow creating its tables in a fresh database.
    with running(command, f"{url}/health", env, folder / "server.log", timeout_s=180, cwd=folder):
        yield TrackingServer(url, backend_store_uri, artifacts)


def _wait_until_up(proc: subprocess.Popen, url: str, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise TimeoutError(f"{url} not up after {timeout_s} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the group, give it a moment, then SIGKILL whatever of the group is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)
