"""A request's head (its line and headers) bounded: past HEAD_LIMIT bytes, 431 with the gateway's
envelope, and the connection closed. uvicorn bounds a head only under its h11 protocol, and there
answers 400 (`h11_max_incomplete_event_size`); its httptools protocol reads headers without a
limit. So each of its protocols is given a subclass that counts the bytes of the head being read,
from a connection's start or the end of the last answer to the blank line that ends it."""
from __future__ import annotations

import json

from ..domain.errors import GatewayError

HEAD_LIMIT = 64 * 1024
_END = b"\r\n\r\n"


def bounded(protocol: type) -> type:
    """`protocol` (uvicorn's HTTP protocol class) with the request's head bounded."""

    class Bounded(protocol):
        def connection_made(self, transport) -> None:
            self.head_transport, self.head_read, self.head_tail = transport, 0, b""
            super().connection_made(transport)

        def data_received(self, data: bytes) -> None:
            if self.head_read is not None:  # None: the head is over; its body or its answer is under way
                seen = self.head_tail + data
                end = seen.find(_END)
                self.head_read += len(data) if end < 0 else end + len(_END) - len(self.head_tail)
                if self.head_read > HEAD_LIMIT:
                    close_with(self.head_transport, GatewayError("head_too_large", limit=HEAD_LIMIT),
                               "Request Header Fields Too Large")
                    return
                self.head_read, self.head_tail = (None, b"") if end >= 0 else (self.head_read, seen[-3:])
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # The next request's head. One pipelined behind this one, sent before this answer ended,
            # went to the parser uncounted (no client of the emulator pipelines).
            self.head_read, self.head_tail = 0, b""

    Bounded.__name__ = Bounded.__qualname__ = f"Bounded{protocol.__name__}"
    return Bounded


def close_with(transport, error: GatewayError, reason: str) -> None:
    """Answer `error` in the gateway's envelope, written by the serving layer itself (no request
    reached the app), and close the connection."""
    if transport.is_closing():
        return
    body = json.dumps(error.body(), ensure_ascii=False, separators=(",", ":")).encode()
    transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                    b"Connection: close\r\n\r\n%s" % (error.status, reason.encode(), len(body), body))
    transport.close()
