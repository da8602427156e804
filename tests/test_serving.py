"""What `serve` does with a request before the app sees it (emulator/serving/bridge.py): a body declared
past the limit is refused without being read, and a request whose client leaves before it is
whole reaches nobody."""
from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests

from .conftest import PAYMENT_KEY, Api, EmulatorProcess, RawMerchant


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


def test_flushes_waiting_for_callbacks_whose_merchant_calls_back_hold_up_nobody(tmp_path):
    """One process, more flushes at once than it runs requests at once, each waiting for a
    callback whose merchant asks the emulator for the payment before it acknowledges (as shops
    do): the merchant's request is served while the flushes wait, so every callback is
    acknowledged at its first attempt and every flush returns idle."""
    process = EmulatorProcess(tmp_path, "--workers", "1", "--callback-timeout", "3")
    asked = []

    class Merchant(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            tid = json.loads(body)["tid"]
            looked = requests.get(f"{process.url}/_emulator/payments/{tid}", timeout=10)
            asked.append(looked.status_code)
            answer = b'{"code": 0, "message": "success"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    merchant = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Merchant)
    threading.Thread(target=merchant.serve_forever, daemon=True).start()
    try:
        api = Api(process.url, f"http://127.0.0.1:{merchant.server_address[1]}/callback")
        api.control("/clock", {"freeze": True})  # no retry falls due while the test runs
        tokens = [api.request_payment(order_no=f"cb-{i}") for i in range(4)]
        flushed = []

        def approve_and_flush(token):
            requests.post(f"{process.url}/_emulator/payments/{token}/approve", json={}, timeout=30).raise_for_status()
            flushed.append(requests.post(f"{process.url}/_emulator/callbacks/flush", json={"max_seconds": 20},
                                         timeout=30).json())

        clients = [threading.Thread(target=approve_and_flush, args=(t,)) for t in tokens]
        for client in clients:
            client.start()
        for client in clients:
            client.join(60)
        assert [f["idle"] for f in flushed] == [True] * 4 and asked == [200] * 4
        callbacks = api.control("/callbacks", method="GET")["callbacks"]
        assert sorted((c["status"], len(c["attempts"])) for c in callbacks) == [("delivered", 1)] * 4
        # Each acknowledged at its first attempt, none cut by the attempt's timeout.
        assert [(a["http_status"], a["error"]) for c in callbacks for a in c["attempts"]] == [(200, "")] * 4
    finally:
        merchant.shutdown()
        process.stop()


def test_a_request_a_scenario_holds_back_holds_up_nobody_and_counts_once(tmp_path):
    """A request a scenario's latency holds back is run once (the rule decided and counted once);
    its answer waits in the event loop, holding no thread, and the process serves others meanwhile."""
    process = EmulatorProcess(tmp_path, "--workers", "1")
    try:
        api = Api(process.url, "http://127.0.0.1:9/callback")
        rule = {"name": "slow", "times": 1, "when": {"endpoint": "payments/request"}, "then": {"latency": {"ms": 1500}}}
        requests.put(process.url + "/_emulator/scenario", json={"version": 1, "rules": [rule]},
                     timeout=10).raise_for_status()
        held = {}

        def slow():
            started = time.monotonic()
            held["token"] = api.request_payment(order_no="held")
            held["seconds"] = time.monotonic() - started

        def applied() -> list[int]:
            return [r["applied"] for r in requests.get(process.url + "/_emulator/scenario", timeout=10).json()["rules"]]

        thread = threading.Thread(target=slow)
        thread.start()
        deadline = time.monotonic() + 30
        while applied() != [1] and time.monotonic() < deadline:  # the rule has decided the held request
            time.sleep(0.02)
        assert requests.get(process.url + "/_emulator/health", timeout=10).status_code == 200
        other = api.request_payment(order_no="other")  # the rule is spent: answered without it
        assert thread.is_alive()  # answered while the held request still waits for its answer
        thread.join(30)
        assert held["seconds"] >= 1.5 and held["token"] != other
        assert applied() == [1]
        journal = api.control("/requests", method="GET")["requests"]
        assert sorted(str(e["rule"]) for e in journal if e["path"].endswith("payments/request")) == ["None", "slow"]
    finally:
        process.stop()


def test_a_flush_waits_for_the_loops_own_attempt_no_longer_than_its_max_seconds(tmp_path):
    """A first attempt is made in the event loop, and a flush waits for it there: a merchant who
    keeps it waiting does not stretch the flush past its max_seconds (the answer says idle:
    false, the attempt still under way), and once the attempt has ended the next flush is idle."""
    release = threading.Event()
    process = EmulatorProcess(tmp_path, "--workers", "1", "--callback-timeout", "30")
    slow = RawMerchant(lambda connection, request: release.wait(30) and connection.sendall(
        b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"code": 0}'))
    try:
        api = Api(process.url, slow.url)
        api.control("/clock", {"freeze": True})
        token = api.request_payment()
        api.control(f"/payments/{token}/approve", {})
        started = time.monotonic()
        first = api.control("/callbacks/flush", {"max_seconds": 0.5})
        # Not idle, after its max_seconds (to the event loop's timer: whole milliseconds).
        assert first["idle"] is False and time.monotonic() - started >= 0.49
        [callback] = api.control("/callbacks", method="GET")["callbacks"]
        assert [a["state"] for a in callback["attempts"]] == ["sending"]  # the flush did not wait it out
        release.set()  # the merchant answers
        assert api.control("/callbacks/flush", {"max_seconds": 30})["idle"] is True
        [callback] = api.control("/callbacks", method="GET")["callbacks"]
        assert callback["status"] == "delivered" and len(slow.requests) == 1
    finally:
        release.set()
        slow.close()
        process.stop()
