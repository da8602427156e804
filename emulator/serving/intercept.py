"""`serve --intercept PORT`: an HTTPS proxy (HTTP CONNECT) that answers the gateway's hosts itself.

The intercept port is one more socket of the same uvicorn server (and of each of `--workers`'
processes), whose protocol (`Front`) tells its connections by the port they came to. A CONNECT to
testpgapi.payletter.com:443 or pgapi.payletter.com:443 is answered 200, TLS is started on the
tunnel with a certificate for those hosts signed by the emulator's CA, and uvicorn's HTTP protocol
reads the requests inside: the same app, in the same process and loop, answers them. Anything else
(another host or port, a plain-HTTP proxy request) is refused with the gateway's envelope; nothing
is forwarded, nothing touches the network. The choice: docs/decisions.md ("Interception")."""
from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Callable

from ..domain.endpoints import GATEWAY_HOSTS, GATEWAY_PORT
from ..domain.errors import GatewayError
from .heads import close_with
from .tls import TLS_SHUTDOWN

ALLOWED = tuple(f"{host}:{GATEWAY_PORT}" for host in GATEWAY_HOSTS)  # what a CONNECT may name
HEAD_LIMIT = 8 * 1024  # a CONNECT is one line and a few headers
HEAD_TIMEOUT = 60.0  # seconds a connection may take to send its CONNECT, as the TLS handshake after it
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
log = logging.getLogger("uvicorn.error")


class Front(asyncio.Protocol):
    """uvicorn's protocol where `--intercept` is on: a connection to the intercept port (told by the
    port it came to) is an `Intercept`, whose tunnel gets TLS with `gateway` (an SSLContext); any
    other is the main port's: HTTP, or with `main` (`--tls`) HTTPS, TLS started as it arrives (on
    asyncio's loop: uvloop hands a new connection's first bytes to its protocol before TLS could
    start). Made by uvicorn with its HTTP protocol's arguments, which `http` (that protocol) gets."""

    def __init__(self, http, port: int, gateway: ssl.SSLContext, main: ssl.SSLContext | None, *args, **kwargs):
        self.make = lambda: http(*args, **kwargs)
        self.port, self.gateway, self.main = port, gateway, main
        self.handshake = None

    def connection_made(self, transport) -> None:
        if transport.get_extra_info("sockname")[1] == self.port:
            protocol = Intercept(lambda: start_tls(transport, self.make(), self.gateway))
        elif self.main is not None:
            self.handshake = start_tls(transport, self.make(), self.main)
            return
        else:
            protocol = self.make()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)

    def connection_lost(self, exc) -> None:
        if self.handshake is not None:
            self.handshake.cancel()


class Intercept(asyncio.Protocol):
    """One proxy client's connection, until its CONNECT is read: granted (200, then `tunnel()`
    starts TLS on it) or refused (403, closed)."""

    def __init__(self, tunnel: Callable[[], asyncio.Task]):
        self.tunnel = tunnel
        self.transport = None
        self.head = b""
        self.deadline = None
        self.handshake = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.deadline = asyncio.get_running_loop().call_later(HEAD_TIMEOUT, transport.close)

    def connection_lost(self, exc) -> None:
        self.deadline.cancel()
        if self.handshake is not None:
            self.handshake.cancel()

    def data_received(self, data: bytes) -> None:
        if not self.head and data[:1] == b"\x16":  # TLS to the proxy itself: HTTPS_PROXY=https://...
            log.warning("intercept: a TLS hello on the proxy's port: give the proxy as http://, not https://")
            self.transport.close()
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > HEAD_LIMIT:
                self.transport.close()
            return
        self.deadline.cancel()
        self.transport.pause_reading()  # the tunnel's first bytes stay in the socket for TLS
        line = self.head.partition(b"\r\n")[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "CONNECT" or parts[1].lower() not in ALLOWED:
            self.refuse(" ".join(parts[:2])[:200] if len(parts) == 3 else repr(line[:100]))
            return
        if self.head[end + 4:]:  # sent before the 200: no client does; TLS would never see it
            self.transport.close()
            return
        self.transport.write(ESTABLISHED)
        self.handshake = self.tunnel()

    def refuse(self, request: str) -> None:
        error = GatewayError("intercept_refused", request=request, allowed=", ".join(ALLOWED))
        log.warning("intercept: %s", error.message)
        close_with(self.transport, error, "Forbidden")


def start_tls(transport, protocol, context: ssl.SSLContext) -> asyncio.Task:
    """TLS on `transport` (its reading paused, or not yet begun: its bytes wait in the socket), then
    `protocol` (uvicorn's HTTP protocol) on the secure transport. A closing connection waits
    TLS_SHUTDOWN for the client's close_notify."""

    async def handshake() -> None:
        early = _Early()  # what arrives between the handshake and the line after the await
        try:
            secure = await asyncio.get_running_loop().start_tls(
                transport, early, context, server_side=True, ssl_handshake_timeout=HEAD_TIMEOUT,
                ssl_shutdown_timeout=TLS_SHUTDOWN)
        except OSError:  # an old TLS version or a broken hello (ssl.SSLError), a client gone, a timeout
            transport.close()
            return
        secure.set_protocol(protocol)
        protocol.connection_made(secure)
        for name, *args in early.events:
            getattr(protocol, name)(*args)

    return asyncio.ensure_future(handshake())


class _Early(asyncio.Protocol):
    """Holds what the TLS connection delivers before the HTTP protocol has it."""

    def __init__(self):
        self.events = []

    def data_received(self, data: bytes) -> None:
        self.events.append(("data_received", data))

    def eof_received(self):
        self.events.append(("eof_received",))

    def connection_lost(self, exc) -> None:
        self.events.append(("connection_lost", exc))
