"""Turn a failed HTTP request into a short, whole phrase, and say whether another attempt can help.

requests wraps the cause three or four levels deep ("HTTPConnectionPool(host=...): Max retries
exceeded ... (Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at
0x...>: Failed to establish a new connection: [Errno 111] Connection refused'))"): far too long
for a progress line, and cut anywhere it loses the one word that matters. So the chain is
walked for the cause, and the phrase is built from it.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

# getaddrinfo's answers that a retry a few seconds later will not change: the name does not
# exist (NXDOMAIN) or has no address. EAI_AGAIN ("temporary failure": offline, resolver down)
# and the rest may heal, so they are retried.
_PERMANENT_DNS = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
# Raised before any connection: the URL itself is unusable.
_BAD_URL = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
)


@dataclass(frozen=True)
class Failure:
    """What went wrong, in a few words, and whether retrying is worth the wait."""

    text: str
    retry: bool


def describe(err: BaseException, url: str, connect_s: float, read_s: float) -> Failure:
    """The cause of a requests exception as one phrase (never truncated), and whether to retry.

    The checks run in order of how telling the cause is, each over the whole chain: the same
    failure reaches here wrapped differently depending on where in the transfer it happened.
    """
    chain = _chain(err)
    where = _where(chain, url)

    def first(kind: type | tuple[type, ...]) -> Any:
        return next((cause for cause in chain if isinstance(cause, kind)), None)

    if dns := first(socket.gaierror):
        host = where.rsplit(":", 1)[0]
        return Failure(f"cannot resolve host {host} ({dns.strerror or dns})", dns.errno not in _PERMANENT_DNS)
    if cert := first(ssl.SSLCertVerificationError):
        return Failure(f"TLS certificate of {where} rejected ({cert.verify_message})", retry=False)
    if bad := first(_BAD_URL):
        return Failure(f"not a usable URL ({_flat(bad)})", retry=False)
    if first((urllib3.exceptions.ReadTimeoutError, requests.exceptions.ReadTimeout)):
        return Failure(f"no data from {where} for {read_s:g} s (fetch.timeout_s)", retry=True)
    if first(ConnectionRefusedError):
        return Failure(f"connection refused by {where}", retry=True)
    if socket_error := next((cause for cause in chain if _is_os_error(cause)), None):
        return Failure(f"{socket_error.strerror} ({where})", retry=True)
    if first(http.client.IncompleteRead):  # its byte counts include a chunk never written to the .part
        return Failure(f"{where} closed the connection mid-transfer", retry=True)
    # NewConnectionError subclasses ConnectTimeoutError; it carries an errno, so it was handled above.
    if first((urllib3.exceptions.ConnectTimeoutError, requests.exceptions.ConnectTimeout)):
        return Failure(f"no connection to {where} within {connect_s:g} s", retry=True)
    if broken := first(urllib3.exceptions.ProtocolError):
        detail = broken.args[0] if broken.args and isinstance(broken.args[0], str) else _flat(broken)
        return Failure(f"connection to {where} broken mid-transfer ({detail})", retry=True)
    return Failure(f"{type(err).__name__}: {_flat(err)}", retry=True)


def _chain(err: BaseException) -> list[BaseException]:
    """`err` and every exception behind it (causes, contexts, urllib3's `reason`, exception args)."""
    seen: list[BaseException] = []
    todo: list[object] = [err]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is known for known in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return seen


def _where(chain: list[BaseException], url: str) -> str:
    """`host:port` that failed: urllib3's pool knows it after a redirect; else the URL's own."""
    for cause in chain:
        pool = getattr(cause, "pool", None) if isinstance(cause, urllib3.exceptions.RequestError) else None
        if pool is not None and getattr(pool, "host", None):
            return f"{pool.host}:{pool.port}"
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return f"{parts.hostname}:{port}"


def _is_os_error(cause: BaseException) -> bool:
    """A plain socket error with an errno (reset, unreachable...), not one of requests' wrappers,
    which subclass OSError without an errno."""
    return (
        isinstance(cause, OSError)
        and not isinstance(cause, requests.RequestException | urllib3.exceptions.HTTPError)
        and cause.errno is not None
        and bool(cause.strerror)
    )


def _flat(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
