"""Sends one callback over HTTP, as the gateway would, and says what happened: one POST with aiohttp
in the running event loop, on a connection of its own. One deadline bounds the whole attempt: the
name lookup, the connection, TLS, the request and every byte of the answer, however slowly the
merchant dribbles it; a time the process itself stood still (stopped, suspended) is not held against
the merchant. No connection is opened to where the emulator itself listens, whatever name led there."""
from __future__ import annotations

import asyncio
import functools
import json
import socket
import ssl
import time
from urllib.parse import urlsplit

from ..domain.callback_policy import Listening, Outcome, acknowledged, host_allowed

RESPONSE_LIMIT = 4096  # bytes of the merchant's answer kept in the ledger
HEADERS = {"Content-Type": "application/json", "User-Agent": "payletter-emulator callback", "Accept": "*/*",
           "Connection": "close"}
BLOCKED = "blocked: the host of callback_url is not in the callback allow-list"
ITSELF = ("blocked: callback_url reaches the emulator itself ({peer}, where it listens); a callback goes to the "
          "merchant, it must never drive the emulator")
NOWHERE = Listening("", ())  # an emulator that listens on no port (in-process) has no address to avoid
# A deadline whose timer comes STALL seconds late found the process standing still (SIGSTOP, a
# suspended machine, a loop held up): the attempt gets GRACE seconds more, to read what has come.
STALL, GRACE = 0.5, 0.25

_aiohttp = None  # imported by the first attempt (a tenth of a second), off the event loop
_tls: ssl.SSLContext | None = None


class ReachesItself(Exception):
    """The address about to be connected to is the emulator itself: no connection is opened."""


async def send(url: str, body: dict, *, timeout: float, allowed_hosts: tuple[str, ...] = (),
               listening: Listening = NOWHERE) -> Outcome:
    """POST `body` as JSON to `url`: no redirects followed, no proxy, the whole attempt over within
    `timeout` seconds, at most RESPONSE_LIMIT bytes of the answer read. A host off the allow-list,
    or an address where the emulator is `listening`, is never connected to (the outcome is blocked)."""
    if not host_allowed(url, allowed_hosts):
        return Outcome(None, "", BLOCKED, 0.0, acknowledged=False, blocked=True)
    aiohttp = await _client_library()
    started = time.monotonic()
    status, answer, error = None, b"", ""
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL with a host: {url!r}")
        content = json.dumps(body, ensure_ascii=False).encode()
        status, answer = await _within(timeout, _post(aiohttp, url, content, listening))
    except ReachesItself as exc:
        return Outcome(None, "", str(exc), _since(started), acknowledged=False, blocked=True)
    except TimeoutError:
        error = f"Timeout: no whole answer within the callback timeout ({timeout:g} s)"
    except (aiohttp.ClientError, OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        cause = getattr(exc, "os_error", exc)  # a refused connection says so by its type
        error = f"ConnectionError: {type(cause).__name__}: {cause}"
    ok = error == "" and acknowledged(status, answer)
    error = error or ("" if ok else 'not acknowledged: HTTP 200 with {"code": 0} expected')
    return Outcome(status, answer.decode("utf-8", "replace"), error, _since(started), acknowledged=ok)


async def _post(aiohttp, url: str, content: bytes, listening: Listening) -> tuple[int, bytes]:
    """The POST and its answer's status and first RESPONSE_LIMIT bytes; the connection is closed after."""
    connector = aiohttp.TCPConnector(ssl=_tls_context(), force_close=True, happy_eyeballs_delay=None,
                                     socket_factory=functools.partial(_socket, listening))
    async with aiohttp.ClientSession(connector=connector, headers=HEADERS, skip_auto_headers=("Accept-Encoding",),
                                     auto_decompress=False, trust_env=False,
                                     timeout=aiohttp.ClientTimeout(total=None)) as session:
        async with session.post(url, data=content, allow_redirects=False) as response:
            answer = bytearray()
            while len(answer) < RESPONSE_LIMIT:
                chunk = await response.content.read(RESPONSE_LIMIT - len(answer))
                if not chunk:
                    break
                answer += chunk
            return response.status, bytes(answer)


def _socket(listening: Listening, address_info: tuple) -> socket.socket:
    """The socket for one address the name led to (aiohttp's socket_factory), unless that address
    is the emulator's own: the address connected to is the connection's peer."""
    family, kind, proto, _, address = address_info
    if listening.reached_by(address[0], address[1]):
        shown = f"[{address[0]}]:{address[1]}" if family == socket.AF_INET6 else f"{address[0]}:{address[1]}"
        raise ReachesItself(ITSELF.format(peer=shown))
    return socket.socket(family, kind, proto)


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


async def _client_library():
    """aiohttp, imported on a thread the first time: the loop serves on meanwhile."""
    global _aiohttp
    if _aiohttp is None:
        import importlib

        _aiohttp = await asyncio.get_running_loop().run_in_executor(None, importlib.import_module, "aiohttp")
    return _aiohttp


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
