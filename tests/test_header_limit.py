"""A request's head (its line and headers) is bounded where others can reach the server (any
--host but loopback, as the Docker image's 0.0.0.0): past 64 KiB it answers 400 and closes the
connection, where it once read 63 MiB of headers from one connection."""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from .conftest import EmulatorProcess

HEAD_LIMIT = 64 * 1024  # the size README.md's serving section documents
PAD = 1000  # bytes of each padding header's value


@pytest.fixture(params=["1", "2"], ids=["one process", "two workers"])
def server(request, tmp_path):
    process = EmulatorProcess(tmp_path, "--workers", request.param, "--host", "0.0.0.0")
    yield urlsplit(process.url.replace("0.0.0.0", "127.0.0.1"))
    process.stop()


def head(size: int) -> bytes:
    """A GET whose head is about `size` bytes, with no blank line yet: the head is not over."""
    lines = [b"GET /_emulator/health HTTP/1.1", b"Host: emulator"]
    while sum(len(line) + 2 for line in lines) < size:
        lines.append(b"X-Pad-%d: %s" % (len(lines), b"p" * PAD))
    return b"\r\n".join(lines) + b"\r\n"


def answer(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def test_a_head_past_the_limit_is_refused_and_its_connection_closed(server):
    with socket.create_connection((server.hostname, server.port), timeout=30) as connection:
        connection.sendall(head(HEAD_LIMIT + 4 * PAD))  # and no more: the server has read all of it
        received = answer(connection)
    assert received.split(b"\r\n", 1)[0] in (b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 431 Request Header Fields Too Large")


def test_a_head_within_the_limit_is_answered(server):
    with socket.create_connection((server.hostname, server.port), timeout=30) as connection:
        connection.sendall(head(HEAD_LIMIT - 4 * PAD) + b"Connection: close\r\n\r\n")
        received = answer(connection)
    assert received.startswith(b"HTTP/1.1 200 OK") and received.endswith(b'{"status":"ok"}\n')
