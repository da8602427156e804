"""Sends one callback over HTTP, as the gateway would, and says what happened: `send` from a
thread (the dispatcher's senders), `send_async` as a task of a serving process's event loop (a
callback's first attempt, made once the answer that queued it has left). One deadline bounds the
whole attempt: the name lookup, the connection, TLS, the request and every byte of the answer,
however slowly the merchant dribbles it. Both speak HTTP through one h11 exchange (`_Exchange`);
only the waiting differs. A connection whose peer is the emulator itself (its own address and
port, whatever name led there) is closed before anything is sent on it."""
from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlsplit

from ..domain.callback_policy import Listening, Outcome, acknowledged, host_allowed

RESPONSE_LIMIT = 4096  # bytes of the merchant's answer kept in the ledger
READ_SIZE = 65536
USER_AGENT = "payletter-emulator callback"
NOT_SENT = "not sent: the notification was taken back (a reset) before the request left"
BLOCKED = "blocked: the host of callback_url is not in the callback allow-list"
ITSELF = ("blocked: callback_url reaches the emulator itself ({peer}, where it listens); a callback goes to the "
          "merchant, it must never drive the emulator")
NOWHERE = Listening("", ())  # an emulator that listens on no port (in-process) has no address to avoid

_lookups: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool): a forked worker makes its own
_tls: ssl.SSLContext | None = None


class NotSent(Exception):
    """`on_connected` said no: the request never left."""


class ReachesItself(Exception):
    """The connection opened leads to the emulator itself: nothing is sent on it."""


def send(url: str, body: dict, *, timeout: float, allowed_hosts: tuple[str, ...] = (),
         listening: Listening = NOWHERE, on_connected: Callable[[], bool] = lambda: True) -> Outcome:
    """POST `body` as JSON to `url`: no redirects followed, the whole attempt over within
    `timeout` seconds, at most RESPONSE_LIMIT bytes of the answer read. A connection to where the
    emulator is `listening` is closed unused (the outcome is blocked). `on_connected` runs once
    the connection is open, just before the request leaves (the ledger records the attempt
    there); if it returns False nothing is sent."""
    attempt = _Attempt(url, body, timeout, allowed_hosts)
    if attempt.over:
        return attempt.outcome()
    sock = None
    try:
        with attempt.recording():
            sock = _connect(attempt.parts, attempt.deadline, listening)
            if not on_connected():
                raise NotSent()
            sock.settimeout(_left(attempt.deadline))
            sock.sendall(attempt.exchange.request)  # one timeout for the whole of it
            while not attempt.exchange.done:
                sock.settimeout(_left(attempt.deadline))
                attempt.exchange.receive(sock.recv(READ_SIZE))
    finally:
        if sock is not None:
            sock.close()
    return attempt.outcome()


async def send_async(url: str, body: dict, *, timeout: float, allowed_hosts: tuple[str, ...] = (),
                     listening: Listening = NOWHERE, on_connected: Callable[[], bool] = lambda: True) -> Outcome:
    """`send`, in the running event loop: the name lookup in the loop's executor, the rest in
    the loop itself."""
    attempt = _Attempt(url, body, timeout, allowed_hosts)
    if attempt.over:
        return attempt.outcome()
    writer = None
    try:
        with attempt.recording():
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(attempt.parts.hostname, _port(attempt.parts))
                _refuse_itself(writer.get_extra_info("peername"), listening)
                if attempt.parts.scheme == "https":  # TLS once the peer is known not to be the emulator
                    await writer.start_tls(_tls_context(), server_hostname=attempt.parts.hostname)
                if not on_connected():
                    raise NotSent()
                writer.write(attempt.exchange.request)
                await writer.drain()
                while not attempt.exchange.done:
                    attempt.exchange.receive(await reader.read(READ_SIZE))
    finally:
        if writer is not None:
            writer.transport.abort()  # nothing more to say or hear: no closing handshake to wait for
    return attempt.outcome()


class _Attempt:
    """What both senders share: the request, the clock, and what the attempt saw. Made with
    the request ready, unless the host is not allowed or the URL cannot be sent to (`over`)."""

    def __init__(self, url: str, body: dict, timeout: float, allowed_hosts: tuple[str, ...]):
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.timeout = timeout
        self.error = ""
        self.sent = True
        self.parts = None
        self.exchange = None
        self.blocked = not host_allowed(url, allowed_hosts)  # so is a connection to the emulator itself
        if self.blocked:
            self.error = BLOCKED
        if not self.blocked:
            with self.recording():
                self.parts = urlsplit(url)
                if self.parts.scheme not in ("http", "https") or not self.parts.hostname:
                    raise ValueError(f"not an http(s) URL with a host: {url!r}")
                self.exchange = _Exchange(self.parts, json.dumps(body, ensure_ascii=False).encode())

    @property
    def over(self) -> bool:
        """The outcome is known before any I/O: the host is not allowed, or there is no request."""
        return self.blocked or self.exchange is None

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Around the attempt: what goes wrong is what the attempt saw."""
        try:
            yield
        except NotSent:
            self.error, self.sent = NOT_SENT, False
        except ReachesItself as exc:
            self.error, self.blocked = str(exc), True
        except TimeoutError:
            self.error = f"Timeout: no whole answer within the callback timeout ({self.timeout:g} s)"
        except (OSError, _h11().ProtocolError, ValueError) as exc:  # ssl.SSLError is an OSError
            self.error = f"ConnectionError: {type(exc).__name__}: {exc}"

    def outcome(self) -> Outcome:
        latency = round((time.monotonic() - self.started) * 1000, 1)
        if self.blocked:
            return Outcome(None, "", self.error, latency, acknowledged=False, blocked=True)
        status = self.exchange.status if self.exchange and not self.error else None
        answer = bytes(self.exchange.answer) if self.exchange and not self.error else b""
        ok = self.error == "" and acknowledged(status, answer)
        error = self.error or ("" if ok else 'not acknowledged: HTTP 200 with {"code": 0} expected')
        return Outcome(status, answer.decode("utf-8", "replace"), error, latency, acknowledged=ok, sent=self.sent)


class _Exchange:
    """One POST and its answer, in h11 (no I/O): `request` to send, then `receive` what comes
    back (b"" for the end of the connection) until `done`; `status` and at most
    RESPONSE_LIMIT bytes of the `answer`."""

    def __init__(self, parts, body: bytes):
        self.h11 = h11 = _h11()
        self.connection = h11.Connection(h11.CLIENT)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = [("Host", parts.netloc.rpartition("@")[2]), ("Content-Type", "application/json"),
                   ("User-Agent", USER_AGENT), ("Accept", "*/*"), ("Connection", "close"),
                   ("Content-Length", str(len(body)))]
        self.request = b"".join((
            self.connection.send(h11.Request(method="POST", target=target.encode("utf-8"), headers=headers)),
            self.connection.send(h11.Data(data=body)), self.connection.send(h11.EndOfMessage())))
        self.status: int | None = None
        self.answer = bytearray()
        self.done = False

    def receive(self, data: bytes) -> None:
        h11 = self.h11
        self.connection.receive_data(data)
        while not self.done:
            event = self.connection.next_event()  # h11.RemoteProtocolError if the merchant left early
            if event is h11.NEED_DATA:
                return
            if isinstance(event, h11.Response):
                self.status = event.status_code
            elif isinstance(event, h11.Data):
                self.answer += event.data[:RESPONSE_LIMIT - len(self.answer)]
                self.done = len(self.answer) >= RESPONSE_LIMIT
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                self.done = True


def _h11():
    """h11, imported by the first attempt rather than by every start of the emulator."""
    import h11

    return h11


def _port(parts) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def _connect(parts, deadline: float, listening: Listening) -> socket.socket:
    """A socket connected (and TLS-wrapped, for https) to the URL's host, within the deadline;
    ReachesItself, and the socket closed, if its peer is the emulator."""
    host, port = parts.hostname, _port(parts)
    addresses = _resolve(host, port, deadline)
    for index, (family, kind, proto, _, address) in enumerate(addresses):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_left(deadline))
            sock.connect(address)
            break
        except OSError:
            sock.close()
            if index == len(addresses) - 1 or time.monotonic() >= deadline:
                raise
    try:
        _refuse_itself(sock.getpeername(), listening)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if parts.scheme == "https":
            sock.settimeout(_left(deadline))  # the handshake as a whole, in one call
            sock = _tls_context().wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise
    return sock


def _refuse_itself(peer: tuple, listening: Listening) -> None:
    """ReachesItself if the connection's peer (the address it reached, whatever the name) is
    where the emulator listens."""
    address, port = peer[0], peer[1]
    if listening.reached_by(address, port):
        shown = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        raise ReachesItself(ITSELF.format(peer=shown))


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
