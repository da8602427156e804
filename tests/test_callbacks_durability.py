"""Nothing due is lost and nothing acknowledged is sent again: a server killed with SIGKILL
and started on the same database, and two servers sharing one database; on SQLite and on
PostgreSQL."""
from __future__ import annotations

import threading
from collections import Counter
from contextlib import contextmanager

import pytest

from .conftest import Answer, Api, EmulatorProcess, freeze_at

T0 = "2026-11-29T10:00:00+09:00"


@pytest.fixture
def receiver(callback_receiver):
    callback_receiver.clear()
    yield callback_receiver
    callback_receiver.clear()


@contextmanager
def serving(tmp_path, name: str, receiver, database: str):
    """A server on the test's shared database, and a client for it; stopped at the end."""
    workdir = tmp_path / name
    workdir.mkdir()
    process = EmulatorProcess(workdir, "--callback-timeout", "1", db=database)
    try:
        yield process, Api(process.url, receiver.url)
    finally:
        process.stop()


def kill(process: EmulatorProcess) -> None:
    process.kill()  # SIGKILL to every process: no shutdown, no cleanup


def notification(api: Api, tid: str) -> dict:
    [found] = api.control(f"/callbacks?tid={tid}", method="GET")["callbacks"]
    return found


def test_a_killed_server_resumes_the_schedule_on_restart(tmp_path, database, receiver):
    with serving(tmp_path, "first", receiver, database) as (first, api):
        freeze_at(api, T0)
        acknowledged = api.pay(order_no="acknowledged")["tid"]
        receiver.status = 500
        retried = api.pay(order_no="retried")["tid"]
        kill(first)

    receiver.status = 200
    with serving(tmp_path, "second", receiver, database) as (_, api):
        assert api.control("/clock", method="GET") == {"now": T0, "frozen": True}
        api.advance(seconds=300)
        api.flush()
        assert notification(api, retried)["status"] == "delivered"
        assert [a["number"] for a in notification(api, retried)["attempts"]] == [1, 2]
        assert len(notification(api, acknowledged)["attempts"]) == 1
        api.advance(seconds=6000)
        api.flush()
        sent = Counter(r.json()["order_no"] for r in receiver.received)
        assert sent == {"acknowledged": 1, "retried": 2}


def test_an_attempt_cut_by_a_crash_is_on_the_ledger_and_made_again(tmp_path, database, receiver):
    with serving(tmp_path, "first", receiver, database) as (first, api):
        freeze_at(api, T0)
        receiver.script.append(Answer(delay=3))  # the server dies while the merchant thinks
        token = api.request_payment()
        tid = api.control(f"/payments/{token}/approve")["fields"]["tid"]
        assert len(receiver.wait_for(1)) == 1
        kill(first)

    with serving(tmp_path, "second", receiver, database) as (_, api):
        cut = notification(api, tid)["attempts"]
        assert [(a["number"], a["state"]) for a in cut] == [(1, "sending")]  # recorded before it left
        api.flush()  # waits for the dead server's claim to lapse, then makes the attempt again
        found = notification(api, tid)
        assert found["status"] == "delivered" and found["attempts_made"] == 1
        assert [(a["number"], a["kind"], a["state"]) for a in found["attempts"]] == [
            (1, "first", "interrupted"), (2, "first", "done")]
        assert found["attempts"][0]["error"].startswith("interrupted")
        assert len(receiver.received) == len(found["attempts"]) == 2  # every POST is on the ledger


def test_two_servers_on_one_database_never_send_an_attempt_twice(tmp_path, database, receiver):
    with serving(tmp_path, "one", receiver, database) as (_, one), serving(tmp_path, "two", receiver, database) as (_, two):
        freeze_at(one, T0)
        receiver.status = 500
        tids = [one.pay(order_no=f"order-{i}")["tid"] for i in range(6)]
        tids += [two.pay(order_no=f"order-{i + 6}")["tid"] for i in range(6)]
        two.advance(seconds=6000)
        flushes = [threading.Thread(target=api.flush) for api in (one, two, one, two)]
        for thread in flushes:
            thread.start()
        for thread in flushes:
            thread.join()
        one.flush()
        two.flush()

        per_order = Counter(r.json()["order_no"] for r in receiver.received)
        assert per_order == {f"order-{i}": 21 for i in range(12)}
        for tid in tids:
            found = notification(one, tid)
            assert found["status"] == "failed"
            assert [a["number"] for a in found["attempts"]] == list(range(1, 22))
            assert {a["http_status"] for a in found["attempts"]} == {500}
