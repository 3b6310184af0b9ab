"""Helpers for tests/data/test_fetch.py: fixture zips, manifests, loopback servers (an HTTP one with
Range and If-Range support, a closed port, one that accepts connections and never answers).

Kept out of conftest.py so that the fetch tests do not collide with other suites' fixtures.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import socket
import stat
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FIXTURE_ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "lol_tiny"
ZIP_PATH = "/lol_dataset.zip"


def fixture_files() -> dict[str, bytes]:
    """Every file of the tiny fixture, keyed by manifest path (`lol_dataset/...`)."""
    root = FIXTURE_ROOT / "lol_dataset"
    return {
        f"lol_dataset/{path.relative_to(root).as_posix()}": path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def write_manifest(path: Path, files: dict[str, bytes]) -> Path:
    """A sha256sum-format manifest for `files`."""
    lines = [f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())]
    path.write_text("".join(lines))
    return path


def write_zip(
    path: Path,
    files: dict[str, bytes],
    *,
    prefix: str = "",
    symlinks: dict[str, str] | None = None,
) -> Path:
    """Zip `files` under `prefix`; `symlinks` maps entry names to link targets (stored as symlink entries)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(prefix + name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def altered(files: dict[str, bytes], name: str) -> dict[str, bytes]:
    """A copy of `files` with one byte appended to `name`."""
    return {**files, name: files[name] + b"\0"}


@dataclasses.dataclass
class ServerState:
    """What the server sends, and what it saw; tests flip the fields between runs."""

    payload: bytes = b""
    fail_status: int = 0
    fail_from: int = 1  # the first request (counting from 1) that gets `fail_status`
    truncate_next: int = 0
    stall_next: int = 0  # like truncate_next, but then go silent instead of hanging up
    ignore_range: bool = False
    etag: str | None = None  # sent as ETag, and compared with If-Range
    ignore_if_range: bool = False  # honour Range even when If-Range names an older file
    requests: list[dict[str, str | None]] = dataclasses.field(default_factory=list)
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)


def _handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            headers = self.headers
            state.requests.append(
                {"path": self.path, "range": headers.get("Range"), "if_range": headers.get("If-Range")}
            )
            if state.fail_status and len(state.requests) >= state.fail_from:
                self.send_error(state.fail_status)
                return
            if self.path != ZIP_PATH:
                self.send_error(404)
                return
            body, start = state.payload, 0
            wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if_range = self.headers.get("If-Range")
            if if_range is not None and if_range != state.etag and not state.ignore_if_range:
                wanted = None  # RFC 9110: the file changed, so send it whole
            if wanted and not state.ignore_range:
                start = int(wanted.group(1))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            chunk = body[start:]
            if state.etag:
                self.send_header("ETag", state.etag)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            if state.truncate_next:
                # Promise the whole body, send a part, hang up: a dropped connection.
                state.truncate_next -= 1
                self.wfile.write(chunk[: len(chunk) // 3])
                self.wfile.flush()
                self.close_connection = True
                return
            if state.stall_next:
                # Send a part, then nothing: a connection gone dead without a reset.
                state.stall_next -= 1
                self.wfile.write(chunk[: len(chunk) // 3])
                self.wfile.flush()
                state.stop.wait(10)
                self.close_connection = True
                return
            self.wfile.write(chunk)

    return Handler


@contextmanager
def serve(state: ServerState) -> Iterator[str]:
    """Run a loopback HTTP server for `state` in a thread; yield the zip's URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}{ZIP_PATH}"
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url() -> str:
    """A loopback URL whose port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{ZIP_PATH}"


@dataclasses.dataclass
class Silent:
    """A server that accepts connections and never answers; `url` and the connections it took."""

    url: str
    accepted: int = 0


@contextmanager
def silent_server() -> Iterator[Silent]:
    """Accept every connection and say nothing, as a hung server behind a working network does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    host, port = listener.getsockname()
    silent, held, stop = Silent(f"http://{host}:{port}{ZIP_PATH}"), [], threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)
            silent.accepted += 1

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield silent
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()
