"""A request's head (its line and headers) is bounded, on every --host (loopback, as `serve`'s
default, and 0.0.0.0, as the Docker image's): past 64 KiB it answers 431 with the gateway's
envelope and closes the connection, where it once read 63 MiB of headers from one connection. A
keep-alive connection's next head is counted anew."""
from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest

from .conftest import EmulatorProcess

HEAD_LIMIT = 64 * 1024  # the size README.md's serving section documents
PAD = 1000  # bytes of each padding header's value


@pytest.fixture(params=[("1", "0.0.0.0"), ("2", "0.0.0.0"), ("1", "127.0.0.1")],
                ids=["one process, every address", "two workers, every address", "one process, loopback"])
def server(request, tmp_path):
    workers, host = request.param
    process = EmulatorProcess(tmp_path, "--workers", workers, "--host", host)
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
    lines, _, body = received.partition(b"\r\n\r\n")
    assert lines.split(b"\r\n", 1)[0] == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert json.loads(body) == {"code": 2015, "message": f"The request's head (its line and headers) is larger "
                                                         f"than {HEAD_LIMIT} bytes"}


def test_a_head_in_one_piece_past_the_limit_is_refused(server):
    """All of it, blank line included, in one send: counted up to its end, not let through."""
    with socket.create_connection((server.hostname, server.port), timeout=30) as connection:
        connection.sendall(head(HEAD_LIMIT + 4 * PAD) + b"\r\n")
        received = answer(connection)
    assert received.startswith(b"HTTP/1.1 431 ")


def test_a_head_within_the_limit_is_answered(server):
    with socket.create_connection((server.hostname, server.port), timeout=30) as connection:
        connection.sendall(head(HEAD_LIMIT - 4 * PAD) + b"Connection: close\r\n\r\n")
        received = answer(connection)
    assert received.startswith(b"HTTP/1.1 200 OK") and received.endswith(b'{"status":"ok"}\n')


def test_each_head_of_a_keep_alive_connection_is_counted_anew(server):
    """Heads of most of the limit each, one after another on one connection, are each answered;
    one past the limit after them is refused."""
    with socket.create_connection((server.hostname, server.port), timeout=30) as connection:
        for _ in range(2):
            connection.sendall(head(HEAD_LIMIT - 4 * PAD) + b"\r\n")
            received = b""
            while not received.endswith(b'{"status":"ok"}\n'):
                chunk = connection.recv(65536)
                assert chunk, received
                received += chunk
        connection.sendall(head(HEAD_LIMIT + 4 * PAD))  # and one past the limit: refused
        assert answer(connection).startswith(b"HTTP/1.1 431 ")
