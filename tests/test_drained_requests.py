"""A graceful stop (SIGTERM) drains the requests under way: each is answered, and each keeps its
journal entry, on SQLite (whose journal entries a process may hold back to write together) and
in one process or several; the server exits 0."""
from __future__ import annotations

import signal
import threading
from collections import Counter

import pytest
import requests

from .conftest import PAYMENT_KEY, Api, EmulatorProcess, until

HELD = 4  # requests under way when the stop comes
LATENCY_MS = 1500  # how long the scenario holds each back: the stop comes meanwhile


@pytest.mark.parametrize("workers", ["1", "2"])
def test_requests_drained_by_a_graceful_stop_keep_their_journal_entries(tmp_path, workers):
    first = EmulatorProcess(tmp_path, "--workers", workers)
    api = Api(first.url, "http://127.0.0.1:9/cb")
    rule = {"name": "held", "times": HELD, "when": {"endpoint": "payments/request"},
            "then": {"latency": {"ms": LATENCY_MS}}}
    api.control("/scenario", {"version": 1, "rules": [rule]}, method="PUT")
    for n in range(3):  # answered before: their entries must stay too
        api.request_payment(order_no=f"before-{n}")

    def applied() -> int:
        return requests.get(first.url + "/_emulator/scenario", timeout=30).json()["rules"][0]["applied"]

    answers: dict[str, requests.Response] = {}

    def held(order_no: str) -> None:
        answers[order_no] = requests.post(first.url + "/v1.0/payments/request",
                                          json=api.request_body(order_no=order_no),
                                          headers={"Authorization": f"PLKEY {PAYMENT_KEY}"}, timeout=30)

    threads = [threading.Thread(target=held, args=(f"drained-{n}",)) for n in range(HELD)]
    try:
        for thread in threads:
            thread.start()
        until(lambda: applied() == HELD, what="every held request decided by the rule")  # all under way
        first.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(60)
        assert first.process.wait(60) == 0
    finally:
        first.stop()
    assert sorted(answers) == [f"drained-{n}" for n in range(HELD)]
    assert {order_no: answer.status_code for order_no, answer in answers.items()} == {
        f"drained-{n}": 200 for n in range(HELD)}

    second = EmulatorProcess(tmp_path, "--workers", "1")  # on the same database file
    try:
        journal = Api(second.url, "").control("/requests", method="GET")["requests"]
    finally:
        second.stop()
    requested = Counter(entry["request"]["order_no"] for entry in journal
                        if entry["path"].endswith("payments/request"))
    assert requested == Counter([f"before-{n}" for n in range(3)] + [f"drained-{n}" for n in range(HELD)])
