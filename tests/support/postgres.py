"""A real PostgreSQL server for tests: the one the `pgserver` package ships, on 127.0.0.1.

Only pgserver's binaries are used (`pgserver/pginstall/bin`: initdb, postgres), not its
`get_server()`, for two reasons found in its source (0.1.4, `postgres_server.py`):

- on Linux it starts the server with `-h ""`, a unix socket only, while the URLs users type
  are TCP ones, `postgresql+psycopg2://postgres@127.0.0.1:PORT/DB`;
- run as root (PostgreSQL refuses to: "root" execution of the PostgreSQL server is not
  permitted) it runs `useradd pgserver` and adds read and execute permission for everyone to
  every folder above the data folder, `/` included, and to its own installation.

Here, as root, the server runs as the existing unprivileged account `nobody` instead, in a
temporary folder of its own (pytest's tmp folders are private, mode 0700, so `nobody` could not
enter them); nothing else is changed. As any other user it simply runs as that user. Either way
it trusts every local connection (a throwaway server bound to 127.0.0.1) and skips fsync (the
data is gone when the tests end).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import free_port

HOST = "127.0.0.1"
USER = "postgres"  # the database superuser initdb creates (-U); not a system account
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


class PostgresUnavailable(Exception):
    """Why no server could start here: the one line a skipped test shows."""


class Postgres:
    """A running server: fresh databases on demand, queries for the tests' checks, and a stop."""

    def __init__(self, port: int, folder: Path, process: subprocess.Popen, log: Path):
        self.port, self.folder, self.process, self.log = port, folder, process, log
        self._numbers = itertools.count(1)

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of a database, as Optuna's and MLflow's storages take it."""
        return f"postgresql+psycopg2://{USER}@{HOST}:{self.port}/{database}"

    def create_database(self, prefix: str) -> str:
        """A new, empty database named `<prefix>_<n>`; returns its URL."""
        name = f"{prefix}_{next(self._numbers)}"
        connection = self._connect("postgres")
        try:
            connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)

    def query(self, url: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple]:
        """The rows of one SELECT in the database `url` names."""
        connection = self._connect(url.rsplit("/", 1)[-1])
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, args)
                return cursor.fetchall()
        finally:
            connection.close()

    @property
    def error(self) -> type[Exception]:
        """psycopg2's base exception: what `query` raises for a table not there (yet), say."""
        import psycopg2

        return psycopg2.Error

    def _connect(self, database: str):
        import psycopg2

        return psycopg2.connect(host=HOST, port=self.port, user=USER, dbname=database, connect_timeout=5)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: clients disconnected, no waiting for them), then the folder goes."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _binaries() -> Path:
    """pgserver's PostgreSQL binaries, found without importing pgserver: its import creates a lock
    file under the user's runtime folder."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresUnavailable("pgserver is not installed (pip install -r requirements-dev.txt)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (folder / "postgres").is_file():
        raise PostgresUnavailable(f"pgserver ships no PostgreSQL for this platform ({folder} has none)")
    if importlib.util.find_spec("psycopg2") is None:
        raise PostgresUnavailable("psycopg2 is not installed (pip install -r requirements-dev.txt)")
    return folder


def _account() -> dict[str, Any]:
    """subprocess arguments that run the server as a user PostgreSQL accepts: `nobody` for root."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        raise PostgresUnavailable("running as root, with no `nobody` account to run PostgreSQL as") from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _last_lines(text: str, count: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-count:])


def start_postgres(attempts: int = 3) -> Postgres:
    """A fresh server on a free port of 127.0.0.1, ready for connections; PostgresUnavailable with
    the reason when it cannot start. A port taken between choosing it and binding it is retried."""
    binaries, account = _binaries(), _account()
    folder = Path(tempfile.mkdtemp(prefix="pytest-postgres-"))
    try:
        if account:
            os.chown(folder, account["user"], account["group"])
        data = folder / "data"
        initdb = [str(binaries / "initdb"), "-D", str(data), "-U", USER, "--auth=trust"]
        initdb += ["--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"]
        done = subprocess.run(initdb, capture_output=True, text=True, timeout=120, check=False, **account)
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed ({done.returncode}): {_last_lines(done.stderr)}")
        for _ in range(attempts):
            server = _start(binaries, folder, data, account)
            if server is not None:
                return server
        raise PostgresUnavailable(f"no free port taken after {attempts} attempts")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _start(binaries: Path, folder: Path, data: Path, account: dict[str, Any]) -> Postgres | None:
    """The server on a free port, or None if another process took the port first."""
    port, log = free_port(), folder / "postgres.log"
    command = [str(binaries / "postgres"), "-D", str(data), "-h", HOST, "-p", str(port), "-k", str(data)]
    for setting in ("fsync=off", "synchronous_commit=off", "full_page_writes=off"):
        command += ["-c", setting]
    with open(log, "ab") as out:
        # Not in a session of its own: a Ctrl-C of the test run reaches the server too (its fast shutdown).
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, **account)
    server = Postgres(port, folder, process, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    import psycopg2

    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = log.read_text(errors="replace")
            if "Address already in use" in text:
                log.write_text("")
                return None
            raise PostgresUnavailable(f"postgres exited with {process.returncode}: {_last_lines(text)}")
        try:
            server._connect("postgres").close()
            return server
        except psycopg2.OperationalError:
            time.sleep(0.2)
    process.kill()
    process.wait()
    raise PostgresUnavailable(
        f"postgres not ready after {START_TIMEOUT_S:g} s: {_last_lines(log.read_text(errors='replace'))}"
    )


@contextlib.contextmanager
def postgres_or_skip() -> Iterator[Postgres]:
    """A server for the tests inside, always stopped after them; or the tests skipped, with one line
    saying why (pgserver or psycopg2 not installed, or PostgreSQL unable to start here)."""
    try:
        server = start_postgres()
    except PostgresUnavailable as why:
        pytest.skip(f"no PostgreSQL for this test: {why}")
    try:
        yield server
    finally:
        server.stop()
