"""1,000 connections that say nothing, or dribble their headers a byte a second (slowloris),
do not stop a shipped configuration from answering: `serve` as the quick start runs it,
`serve --workers 2`, and the Docker image's CMD with the image's environment. Each is a real
process; while the connections are held, health and a payment request must each be answered
within 1 s (the client's timeout: an answer that does not come in time fails the request)."""
from __future__ import annotations

import resource
import socket
import threading
from pathlib import Path

import pytest
import requests

from .conftest import PAYMENT_KEY, EmulatorProcess
from .test_docker import Container

HELD = 1000
ANSWER_TIMEOUT = 1.0  # seconds: the requirement
REQUEST = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "u", "amount": 1000,
           "product_name": "p", "return_url": "https://m.example/r", "callback_url": "http://127.0.0.1:9/cb"}
HEAD = b"POST /v1.0/payments/request HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module", autouse=True)
def descriptors():
    """This process holds the connections: 1,000 descriptors beside pytest's own."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * HELD if hard == resource.RLIM_INFINITY else min(hard, 4 * HELD)
    assert wanted >= 2 * HELD, f"the hard limit on open files ({hard}) is too low for this test"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Served:
    """A configuration as users run it: its URL, and how to stop it."""

    def __init__(self, kind: str, folder: Path):
        folder.mkdir()
        if kind == "docker":
            self.server = Container(folder)  # the image's CMD, ENV and volume
        else:
            self.server = EmulatorProcess(folder, *(("--workers", "2") if kind == "workers" else ()))
        self.url = self.server.url

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(params=["serve", "workers", "docker"], ids=["serve", "serve --workers 2", "docker cmd"])
def served(request, tmp_path):
    server = Served(request.param, tmp_path / "data")
    yield server
    server.stop()


class Loris:
    """`count` connections to the server: half send nothing, half send a request's first line
    and then one byte of a header every second, never finishing it."""

    def __init__(self, url: str, count: int):
        host, port = url.split("//")[1].split(":")
        self.connections = [socket.create_connection((host, int(port)), timeout=10) for _ in range(count)]
        self.slow = self.connections[::2]
        for connection in self.slow:
            connection.sendall(HEAD)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._dribble, daemon=True)
        self.thread.start()

    def _dribble(self) -> None:
        while not self.stopped.wait(1.0):
            for connection in self.slow:
                try:
                    connection.send(b"X")
                except OSError:  # the server closed it: it is no longer held
                    pass

    def held(self) -> int:
        """Connections the server has not closed (a closed one reads as the end of the stream)."""
        open_ = 0
        for connection in self.connections:
            connection.setblocking(False)
            try:
                open_ += connection.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                open_ += 1
            except OSError:
                pass
            connection.setblocking(True)
        return open_

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        for connection in self.connections:
            connection.close()


def test_held_connections_do_not_stop_answers(served):
    loris = Loris(served.url, HELD)
    try:
        with requests.Session() as client:  # a new connection per call: the server must accept it
            client.headers["Connection"] = "close"
            for _ in range(3):  # over three seconds of dribbling
                health = client.get(served.url + "/_emulator/health", timeout=ANSWER_TIMEOUT)
                assert health.json() == {"status": "ok"}
                payment = client.post(served.url + "/v1.0/payments/request", json=REQUEST, timeout=ANSWER_TIMEOUT,
                                      headers={"Authorization": f"PLKEY {PAYMENT_KEY}"})
                assert payment.status_code == 200 and payment.json()["token"]
                loris.stopped.wait(1.0)
        assert loris.held() == HELD  # the connections were held all along, not shed
    finally:
        loris.close()
