"""What `serve` does with a request before the app sees it (emulator/serving.py): a body declared
past the limit is refused without being read, and a request whose client leaves before it is
whole reaches nobody."""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from .conftest import PAYMENT_KEY, Api, EmulatorProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = EmulatorProcess(tmp_path_factory.mktemp("serving"))
    yield process
    process.stop()


def connect(url: str) -> socket.socket:
    where = urlsplit(url)
    return socket.create_connection((where.hostname, where.port), timeout=10)


def test_a_body_declared_past_the_limit_is_refused_unread_and_the_connection_closed(server):
    with connect(server.url) as connection:
        connection.sendall(b"POST /v1.0/payments/request HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Authorization: PLKEY " + PAYMENT_KEY.encode() + b"\r\n"
                           b"Content-Length: 104857600\r\n\r\n{")  # 100 MiB announced, one byte sent
        answer = b""
        while chunk := connection.recv(65536):  # the server closes: the loop ends
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ") and b"connection: close" in head.lower()
    assert b'"code":2010' in body.replace(b" ", b"")


def test_a_request_left_before_its_body_arrived_reaches_nobody(server):
    api = Api(server.url, "http://127.0.0.1:9/callback")
    api.control("/reset")
    with connect(server.url) as connection:
        connection.sendall(b"POST /v1.0/payments/request HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Authorization: PLKEY " + PAYMENT_KEY.encode() + b"\r\nContent-Length: 400\r\n\r\n{\"pgcode\"")
    api.request_payment(order_no="after")  # a whole request, after the one that was left
    journal = api.control("/requests", method="GET")["requests"]
    assert [entry["request"]["order_no"] for entry in journal if entry["path"] == "/v1.0/payments/request"] == ["after"]
