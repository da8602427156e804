"""Sends one callback over HTTP, as the gateway would, and says what happened. One deadline
bounds the whole attempt: the name lookup, the connection, TLS, the request and every byte of
the answer, however slowly the merchant dribbles it."""
from __future__ import annotations

import http.client
import io
import ipaddress
import json
import os
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable
from urllib.parse import urlsplit

from .domain.delivery import Outcome, acknowledged, host_allowed

RESPONSE_LIMIT = 4096  # bytes of the merchant's answer kept in the ledger
USER_AGENT = "payletter-emulator callback"
NOT_SENT = "not sent: the notification was taken back (a reset) before the request left"

_lookups: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool): a forked worker makes its own
_tls: ssl.SSLContext | None = None


class NotSent(Exception):
    """`on_connected` said no: the request never left."""


def send(url: str, body: dict, *, timeout: float, allowed_hosts: tuple[str, ...] = (),
         on_connected: Callable[[], bool] = lambda: True) -> Outcome:
    """POST `body` as JSON to `url`: no redirects followed, the whole attempt over within
    `timeout` seconds, at most RESPONSE_LIMIT bytes of the answer read. `on_connected` runs once
    the connection is open, just before the request leaves (the ledger records the attempt
    there); if it returns False nothing is sent."""
    started = time.monotonic()
    if not host_allowed(url, allowed_hosts):
        return Outcome(None, "", "blocked: the host of callback_url is not in the callback allow-list",
                       0.0, acknowledged=False, blocked=True)
    deadline = started + timeout
    status, answer, error, sent = None, b"", "", True
    connection = None
    try:
        parts = urlsplit(url)
        connection = _Connection(parts, deadline)
        connection.connect()
        if not on_connected():
            raise NotSent()
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", target, body=json.dumps(body, ensure_ascii=False).encode(), headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"})
        response = connection.getresponse()
        status = response.status
        answer = response.read(RESPONSE_LIMIT)
        response.close()
    except NotSent:
        error, sent = NOT_SENT, False
    except TimeoutError:
        error = f"Timeout: no whole answer within the callback timeout ({timeout:g} s)"
    except (OSError, http.client.HTTPException, ValueError) as exc:  # ssl.SSLError is an OSError
        error = f"ConnectionError: {type(exc).__name__}: {exc}"
    finally:
        if connection is not None:
            connection.close()
    latency = round((time.monotonic() - started) * 1000, 1)
    ok = error == "" and acknowledged(status, answer)
    if not error and not ok:
        error = 'not acknowledged: HTTP 200 with {"code": 0} expected'
    return Outcome(status, answer.decode("utf-8", "replace"), error, latency, acknowledged=ok, sent=sent)


class _Connection(http.client.HTTPConnection):
    """http.client's connection, opened and used within the attempt's deadline."""

    def __init__(self, parts, deadline: float):
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL with a host: {parts.geturl()!r}")
        self._tls = parts.scheme == "https"
        self._deadline = deadline
        super().__init__(parts.hostname, parts.port or (443 if self._tls else 80))

    def connect(self) -> None:
        addresses = _resolve(self.host, self.port, self._deadline)
        for index, (family, kind, proto, _, address) in enumerate(addresses):
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(_left(self._deadline))
                sock.connect(address)
                break
            except OSError:
                sock.close()
                if index == len(addresses) - 1 or time.monotonic() >= self._deadline:
                    raise
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls:
            sock.settimeout(_left(self._deadline))  # the handshake as a whole, in one call
            sock = _tls_context().wrap_socket(sock, server_hostname=self.host)
        self.sock = _DeadlineSocket(sock, self._deadline)


def _resolve(host: str, port: int, deadline: float) -> list:
    """The addresses to try; an IP address needs no lookup."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        found = [(family, socket.SOCK_STREAM, 0, "", (host, port))]
    except ValueError:
        lookup = _lookup_pool().submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
        found = lookup.result(timeout=_left(deadline))  # TimeoutError at the deadline
        if not found:
            raise OSError(f"no address for {host}")
    return found


def _lookup_pool() -> ThreadPoolExecutor:
    """getaddrinfo cannot be given a timeout: it runs in these threads, and the attempt stops
    waiting for it at its deadline."""
    global _lookups
    if _lookups is None or _lookups[0] != os.getpid():
        _lookups = (os.getpid(), ThreadPoolExecutor(4, thread_name_prefix="callback-lookup"))
    return _lookups[1]


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the callback timeout passed")
    return left


def _tls_context() -> ssl.SSLContext:
    """Certificates checked against the same CA bundle as Python's requests (certifi)."""
    global _tls
    if _tls is None:
        try:
            import certifi

            _tls = ssl.create_default_context(cafile=certifi.where())
        except ImportError:
            _tls = ssl.create_default_context()
    return _tls


class _DeadlineSocket:
    """A connected socket whose every send and receive waits at most until the deadline, so a
    merchant answering one byte at a time cannot stretch the attempt."""

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock = sock
        self._deadline = deadline
        self._readers = 0  # as a socket: closed once its reader is closed too
        self._closing = False

    def sendall(self, data) -> None:
        self._sock.settimeout(_left(self._deadline))
        self._sock.sendall(data)  # one timeout for the whole of it

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:
        self._sock.settimeout(_left(self._deadline))
        return self._sock.recv_into(buffer, nbytes, flags)

    def makefile(self, mode: str = "rb", *args, **kwargs):
        self._readers += 1
        return io.BufferedReader(socket.SocketIO(self, "rb"))

    def _decref_socketios(self) -> None:
        self._readers -= 1
        if self._closing and self._readers <= 0:
            self._sock.close()

    def settimeout(self, value) -> None:
        pass  # the deadline decides

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._closing = True
        if self._readers <= 0:
            self._sock.close()
