"""`serve --intercept PORT`: an HTTPS proxy (HTTP CONNECT) that answers the gateway's hosts itself.

The intercept port is one more socket of the same uvicorn server (and of each of `--workers`'
processes), whose protocol (`Front`) tells its connections by the port they came to. A CONNECT to
testpgapi.payletter.com:443 or pgapi.payletter.com:443 is answered 200, and the tunnel is handed,
as it stands, to the TLS front (serving/bridge.py's TLSFront) with a certificate for those hosts
signed by the emulator's CA: uvicorn's HTTP protocol reads the requests inside, and the same app,
in the same process and loop, answers them. Anything else (another host
or port, a plain-HTTP proxy request) is refused with the gateway's envelope; nothing is forwarded,
nothing touches the network. The choice: docs/decisions.md ("Interception")."""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Callable

from ..domain.endpoints import GATEWAY_HOSTS, GATEWAY_PORT
from ..domain.errors import GatewayError

ALLOWED = tuple(f"{host}:{GATEWAY_PORT}" for host in GATEWAY_HOSTS)  # what a CONNECT may name
HEAD_LIMIT = 8 * 1024  # a CONNECT is one line and a few headers
HEAD_TIMEOUT = 60.0  # seconds a connection may take to send its CONNECT, as the TLS handshake after it
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
log = logging.getLogger("uvicorn.error")


class Front(asyncio.Protocol):
    """uvicorn's HTTP protocol where `--intercept` is on: a connection to the intercept port (told
    by the port it came to) is an `Intercept`, any other is the main port's (`main`, plain HTTP or
    TLSFront). Made by uvicorn with its protocol's arguments, which the chosen protocol gets."""

    def __init__(self, main, tunnel, port: int, *args, **kwargs):
        self.make = lambda protocol: protocol(*args, **kwargs)
        self.main, self.tunnel, self.port = main, tunnel, port

    def connection_made(self, transport) -> None:
        if transport.get_extra_info("sockname")[1] == self.port:
            protocol = Intercept(lambda: self.make(self.tunnel))
        else:
            protocol = self.make(self.main)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)


class Intercept(asyncio.Protocol):
    """One proxy client's connection, until its CONNECT is read: granted (200, then the connection
    belongs to the protocol `tunnel` makes) or refused (403, closed)."""

    def __init__(self, tunnel: Callable[[], asyncio.Protocol]):
        self.tunnel = tunnel
        self.transport = None
        self.head = b""
        self.deadline = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.deadline = asyncio.get_running_loop().call_later(HEAD_TIMEOUT, transport.close)

    def connection_lost(self, exc) -> None:
        self.deadline.cancel()

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
        self.transport.pause_reading()  # the tunnel's first bytes stay in the socket for the TLS front
        line = self.head.partition(b"\r\n")[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "CONNECT" or parts[1].lower() not in ALLOWED:
            self.refuse(" ".join(parts[:2])[:200] if len(parts) == 3 else repr(line[:100]))
            return
        if self.head[end + 4:]:  # sent before the 200: no client does; the TLS front would never see it
            self.transport.close()
            return
        self.transport.write(ESTABLISHED)
        front = self.tunnel()
        self.transport.set_protocol(front)
        front.connection_made(self.transport)

    def refuse(self, request: str) -> None:
        error = GatewayError("intercept_refused", request=request, allowed=", ".join(ALLOWED))
        log.warning("intercept: %s", error.message)
        body = json.dumps(error.body(), ensure_ascii=False, separators=(",", ":")).encode()
        self.transport.write(b"HTTP/1.1 %d Forbidden\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (error.status, len(body), body))
        self.transport.close()
