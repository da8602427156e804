"""`payletter-emulator serve --workers N`: worker processes sharing one database, with
the same guarantees as one process (no over-cancel, every callback attempt made once)."""
from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from .conftest import Api, EmulatorProcess, freeze_at, run_cli, serving_processes

T0 = "2026-11-29T10:00:00+09:00"


def started_workers(process: EmulatorProcess, count: int) -> list[int]:
    """The serving processes of `process`, once `count` of them run (they start one after another)."""
    deadline = time.monotonic() + 30
    while len(serving_processes(process.process.pid)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return serving_processes(process.process.pid)


@pytest.fixture
def workers(tmp_path, database, callback_receiver):
    process = EmulatorProcess(tmp_path, "--workers", "3", "--callback-timeout", "1", db=database)
    callback_receiver.clear()
    yield process, Api(process.url, callback_receiver.url)
    process.stop()
    callback_receiver.clear()


def test_three_workers_serve_one_database(workers):
    process, api = workers
    assert len(started_workers(process, 3)) == 3
    tokens = {api.request_payment(order_no=f"w-{i}") for i in range(30)}
    assert len(tokens) == 30
    listed = api.control("/payments", method="GET")["payments"]
    assert {p["token"] for p in listed} == tokens


def test_workers_never_cancel_past_the_amount(workers):
    _, api = workers
    fields = api.pay(amount=1000)
    start = threading.Barrier(16)
    answers = []

    def cancel():
        start.wait()
        answers.append(api.cancel(fields, amount=100, partial=True).status_code)

    threads = [threading.Thread(target=cancel) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(answers) == {200: 9, 406: 7}
    payment = api.control(f"/payments/{fields['tid']}", method="GET")
    assert payment["cancelled_amount"] == 900


def test_workers_make_every_callback_attempt_once(workers, callback_receiver):
    _, api = workers
    freeze_at(api, T0)
    callback_receiver.status = 500
    orders = [api.pay(order_no=f"cb-{i}")["order_no"] for i in range(8)]
    api.advance(seconds=6000)
    flushes = [threading.Thread(target=api.flush) for _ in range(4)]
    for thread in flushes:
        thread.start()
    for thread in flushes:
        thread.join()
    api.flush()
    assert Counter(r.json()["order_no"] for r in callback_receiver.received) == {o: 21 for o in orders}
    for found in api.control("/callbacks", method="GET")["callbacks"]:
        assert [a["number"] for a in found["attempts"]] == list(range(1, 22))


def test_a_clock_move_answered_is_in_force_on_every_worker(workers):
    """Once the control API has answered a clock move, every worker answers with it: a test that
    sets the clock and pays at once pays on that day, whichever worker takes the payment. On
    PostgreSQL the workers also hear it from the database, later; the page of memory one `serve`'s
    processes share says it first (storage/pg_news.py), for the root and for a sandbox alike."""
    process, _ = workers
    made = requests.post(process.url + "/_emulator/sandboxes", json={}, timeout=30)
    assert made.status_code == 201, made.text
    sandbox = made.json()["base_url"]  # a plugin's test has one of its own
    for base in (process.url, sandbox):
        for day in range(1, 21):
            moment = f"2026-12-{day:02d}T10:00:00+09:00"
            assert requests.post(base + "/_emulator/clock", json={"set": moment}, timeout=30).status_code == 200
            # a connection of its own each: the workers take turns accepting them
            seen = {requests.get(base + "/_emulator/clock", timeout=30).json()["now"][:10] for _ in range(6)}
            assert seen == {moment[:10]}, (base, day)


def test_workers_need_a_database_they_can_share():
    result = run_cli("serve", "--port", "0", "--workers", "2", "--db", ":memory:")
    assert result.returncode == 2 and "--workers needs a database the workers can share" in result.stderr


def test_a_broken_scenario_stops_before_the_workers_start(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nrules: [{name: a, then: {}}]\n")
    result = run_cli("serve", "--port", "0", "--workers", "2", "--db", str(tmp_path / "w.db"),
                     "--scenario", str(broken))
    assert result.returncode == 1 and f"{broken}: rules[0].then" in result.stderr


def test_workers_stop_when_their_parent_is_killed(tmp_path):
    process = EmulatorProcess(tmp_path, "--workers", "2")
    workers = started_workers(process, 2)
    assert len(workers) == 2
    process.process.kill()  # SIGKILL: the parent cannot tell its workers anything
    process.process.wait()
    process.stop()

    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 30
    while any(map(alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(alive, workers))


def test_a_worker_that_dies_is_replaced_and_a_sigterm_stops_them_all(tmp_path):
    process = EmulatorProcess(tmp_path, "--workers", "2")
    try:
        first, second = started_workers(process, 2)
        os.kill(first, signal.SIGKILL)  # a worker crashes
        deadline = time.monotonic() + 30
        while (first in serving_processes(process.process.pid)
               or len(serving_processes(process.process.pid)) < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        now = serving_processes(process.process.pid)
        assert len(now) == 2 and first not in now and second in now
        api = Api(process.url, "http://127.0.0.1:9/callback")
        assert len({api.request_payment(order_no=f"r-{i}") for i in range(6)}) == 6  # both answer
        process.process.send_signal(signal.SIGTERM)
        assert process.process.wait(30) == 0
        assert [pid for pid in now if Path(f"/proc/{pid}").exists()] == []  # waited for, before it ended
        assert f"(pid:{first}) was sent SIGKILL" in (tmp_path / "emulator.log").read_text()  # gunicorn's words
    finally:
        process.stop()
