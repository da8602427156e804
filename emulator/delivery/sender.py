"""Sends one callback over HTTP, as the gateway would, and says what happened: one POST in the
running event loop, on a connection of its own, spoken through h11 (uvicorn's HTTP/1.1 library:
aiohttp measured slower, docs/decisions.md). One deadline bounds the whole attempt: the name
lookup, the connection, TLS, the request and every byte of the answer, however slowly the merchant
dribbles it; a time the process itself stood still (stopped, suspended) is not held against the
merchant. A connection whose peer is the emulator itself (its own address and port, whatever name
led there) is closed before TLS and before anything is sent on it."""
from __future__ import annotations

import asyncio
import json
import ssl
import time
from urllib.parse import urlencode, urlsplit

from ..domain.callback_policy import DOMESTIC, GATEWAYS, Listening, Outcome, host_allowed

RESPONSE_LIMIT = 4096  # bytes of the merchant's answer kept in the ledger
READ_SIZE = 65536
USER_AGENT = "payletter-emulator callback"
BLOCKED = "blocked: the host of callback_url is not in the callback allow-list"
ITSELF = ("blocked: callback_url reaches the emulator itself ({peer}, where it listens); a callback goes to the "
          "merchant, it must never drive the emulator")
NOWHERE = Listening("", ())  # an emulator that listens on no port (in-process) has no address to avoid
# A deadline whose timer comes STALL seconds late found the process standing still (SIGSTOP, a
# suspended machine, a loop held up): the attempt gets GRACE seconds more, to read what has come.
STALL, GRACE = 0.5, 0.25

_tls: ssl.SSLContext | None = None


class ReachesItself(Exception):
    """The connection opened leads to the emulator itself: nothing is sent on it."""


async def send(url: str, body: dict, *, timeout: float, allowed_hosts: tuple[str, ...] = (),
               listening: Listening = NOWHERE, gateway: str = DOMESTIC) -> Outcome:
    """POST `body` to `url`, as JSON (or a form, for a gateway that sends forms: Payletter
    Global), acknowledged as that gateway's policy says: no redirects followed, no proxy, the whole attempt over within
    `timeout` seconds, at most RESPONSE_LIMIT bytes of the answer read. A host off the allow-list is
    never contacted, and a connection to where the emulator is `listening` is closed unused (the
    outcome is blocked)."""
    if not host_allowed(url, allowed_hosts):
        return Outcome(None, "", BLOCKED, 0.0, acknowledged=False, blocked=True)
    h11 = _h11()
    delivery = GATEWAYS[gateway]
    started = time.monotonic()
    exchange, error = None, ""
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL with a host: {url!r}")
        if delivery.form:
            exchange = _Exchange(h11, parts, urlencode(body).encode(), FORM_TYPE)
        else:
            exchange = _Exchange(h11, parts, json.dumps(body, ensure_ascii=False).encode())
        await _within(timeout, _post(exchange, parts, listening))
    except ReachesItself as exc:
        return Outcome(None, "", str(exc), _since(started), acknowledged=False, blocked=True)
    except TimeoutError:
        error = f"Timeout: no whole answer within the callback timeout ({timeout:g} s)"
    except (OSError, h11.ProtocolError, ValueError) as exc:  # ssl.SSLError is an OSError
        error = f"ConnectionError: {type(exc).__name__}: {exc}"
    status, answer = (exchange.status, bytes(exchange.answer)) if exchange and not error else (None, b"")
    ok = error == "" and delivery.acknowledged(status, answer)
    error = error or ("" if ok else f"not acknowledged: {delivery.expected}")
    return Outcome(status, answer.decode("utf-8", "replace"), error, _since(started), acknowledged=ok)


async def _post(exchange: _Exchange, parts, listening: Listening) -> None:
    """The connection (the name looked up by the loop), the peer checked, TLS, the request, and
    the answer read into `exchange`; the connection is dropped after, with no closing handshake."""
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or _DEFAULT_PORTS[parts.scheme])
    try:
        address, port = writer.get_extra_info("peername")[:2]
        if listening.reached_by(address, port):
            raise ReachesItself(ITSELF.format(peer=f"[{address}]:{port}" if ":" in address else f"{address}:{port}"))
        if parts.scheme == "https":  # TLS once the peer is known not to be the emulator
            await writer.start_tls(_tls_context(), server_hostname=parts.hostname)
        writer.write(exchange.request)
        await writer.drain()
        while not exchange.done:
            exchange.receive(await reader.read(READ_SIZE))
    finally:
        writer.transport.abort()


_DEFAULT_PORTS = {"http": 80, "https": 443}
JSON_TYPE, FORM_TYPE = "application/json", "application/x-www-form-urlencoded; charset=utf-8"


class _Exchange:
    """One POST and its answer, in h11 (no I/O): `request` to send, then `receive` what comes back
    (b"" for the end of the connection) until `done`; `status` and at most RESPONSE_LIMIT bytes of
    the `answer`."""

    def __init__(self, h11, parts, body: bytes, content_type: str = JSON_TYPE):
        self.h11 = h11
        self.connection = h11.Connection(h11.CLIENT)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = [("Host", parts.netloc.rpartition("@")[2]), ("Content-Type", content_type),
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


async def _within(seconds: float, work):
    """`work`'s result, or TimeoutError (`work` cancelled) once `seconds` have passed, but for a
    time the process stood still."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(None) as bound:
        def expire(deadline: float) -> None:
            nonlocal timer
            if loop.time() - deadline > STALL:
                timer = loop.call_later(GRACE, expire, loop.time() + GRACE)
            else:
                bound.reschedule(loop.time())

        timer = loop.call_later(seconds, expire, loop.time() + seconds)
        try:
            return await work
        finally:
            timer.cancel()


def _h11():
    """h11, imported by the first attempt rather than by every start of the emulator."""
    import h11

    return h11


def _since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


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
