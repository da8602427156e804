"""A merchant's callback endpoint that costs next to nothing: answers every POST with one fixed
status (200 with {"code": 0}, or 500), counts them, and tells the count on GET /count.

    python benchmarks/receiver.py [--status 200|500]   # prints "listening on <port>"
"""
from __future__ import annotations

import argparse
import asyncio
import json

BODIES = {200: b'{"code": 0, "message": "success"}', 500: b'{"code": 500, "message": "merchant down"}'}
REASONS = {200: "OK", 500: "Internal Server Error"}


class Receiver(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: enough of it for the emulator's sender (requests)."""

    count = 0

    def __init__(self, status: int):
        self.status = status
        self.buffer = b""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < head_end + 4 + length:
                return
            self.buffer = self.buffer[head_end + 4 + length:]
            self.answer(head.split(" ", 1)[0])

    def answer(self, method: str) -> None:
        if method == "POST":
            Receiver.count += 1
            status, body = self.status, BODIES[self.status]
        else:
            status, body = 200, json.dumps({"count": Receiver.count}).encode()
        self.transport.write(
            f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


async def main(status: int, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Receiver(status), "127.0.0.1", port, backlog=1024)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--status", type=int, choices=sorted(BODIES), default=200)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(main(args.status, args.port))
