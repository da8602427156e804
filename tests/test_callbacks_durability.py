"""Nothing due is lost and no attempt is made twice: a server killed with SIGKILL and started on
the same database, a server stopped (SIGTERM) with attempts in flight, a server that stands still
(SIGSTOP) past its claim while another shares its database, two servers sharing one database, and
a Payletter Global notification resumed after a SIGKILL;
on SQLite and on PostgreSQL."""
from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from contextlib import contextmanager

import pytest
import requests

from .conftest import Answer, Api, CallbackReceiver, EmulatorProcess, freeze_at, serve_receiver
from .doc_blocks import doc_block

T0 = "2026-11-29T10:00:00+09:00"


@contextmanager
def serving(tmp_path, name: str, receiver, database: str, *args: str):
    """A server on the test's shared database, and a client for it; stopped at the end."""
    workdir = tmp_path / name
    workdir.mkdir()
    process = EmulatorProcess(workdir, "--callback-timeout", "1", *args, db=database)
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


def test_a_killed_server_resumes_a_global_notifications_schedule_on_restart(tmp_path, database, receiver):
    """Payletter Global's notifications live in the same outbox: one refused before a SIGKILL is
    resent after the restart on Global's schedule (5 minutes), until <RESULT>OK</RESULT>."""
    receiver.as_global_page().answer = b"<RESULT>FAIL</RESULT>"
    with serving(tmp_path, "first", receiver, database) as (first, api):
        freeze_at(api, T0)
        token = requests.post(f"{api.url}/api/payment/request", headers={"Authorization": "GPLKEY global_test"}, json={
            "storeid": "global_test", "currency": "USD", "storeorderno": "G-1", "amount": "10.00", "payerid": "u1",
            "payeremail": "buyer@example.com", "pginfo": "PLCreditCard", "returnurl": "https://shop.example/return",
            "notiurl": receiver.url}, timeout=30).json()["token"]
        paytoken = api.control(f"/global/payments/{token}/approve", {})["paytoken"]
        api.flush()
        assert notification(api, paytoken)["attempts_made"] == 1
        kill(first)

    receiver.answer = b"<RESULT>OK</RESULT>"
    with serving(tmp_path, "second", receiver, database) as (_, api):
        api.advance(seconds=299)
        api.flush()
        assert notification(api, paytoken)["status"] == "pending"
        api.advance(seconds=1)
        api.flush()
        resumed = notification(api, paytoken)
        assert (resumed["status"], resumed["gateway"]) == ("delivered", "global")
        assert [a["number"] for a in resumed["attempts"]] == [1, 2]
        assert [f"paytoken={paytoken}&".encode() in r.body for r in receiver.received] == [True, True]


def ledger(api: Api, tid: str) -> list[tuple]:
    return [(a["number"], a["kind"], a["state"], a["http_status"]) for a in notification(api, tid)["attempts"]]


def test_an_attempt_cut_by_a_crash_is_on_the_ledger_and_never_made_again(tmp_path, database, receiver):
    """The crash leaves the attempt started: whoever claims next records it as unknown (it reached
    the merchant, or not), counts it, and the policy goes on: the retry, when it is due."""
    with serving(tmp_path, "first", receiver, database) as (first, api):
        freeze_at(api, T0)
        receiver.script.append(Answer(delay=3))  # the server dies while the merchant thinks
        token = api.request_payment()
        tid = api.control(f"/payments/{token}/approve")["fields"]["tid"]
        assert len(receiver.wait_for(1)) == 1
        kill(first)

    with serving(tmp_path, "second", receiver, database) as (_, api):
        assert ledger(api, tid) == [(1, "first", "sending", None)]  # recorded before it left
        flushed = api.flush()  # waits for the dead server's claim to lapse
        assert (flushed["pending"], flushed["next_attempt_at"]) == (1, "2026-11-29T10:05:00+09:00")
        found = notification(api, tid)
        assert (found["status"], found["attempts_made"]) == ("pending", 1)
        assert ledger(api, tid) == [(1, "first", "unknown", None)]
        assert found["attempts"][0]["error"].startswith("outcome unknown")
        assert len(receiver.received) == 1  # not sent again
        api.advance(seconds=300)
        api.flush()
        assert ledger(api, tid) == [(1, "first", "unknown", None), (2, "retry", "done", 200)]
        assert notification(api, tid)["status"] == "delivered"
        assert len(receiver.received) == 2  # every POST is on the ledger


def test_the_unknown_attempts_example_runs(tmp_path, receiver, capfd):
    """docs/callbacks.md's example lists the attempt a crash left unknown."""
    with serving(tmp_path, "first", receiver, str(tmp_path / "shared.db")) as (first, api):
        freeze_at(api, T0)
        receiver.script.append(Answer(delay=3))
        token = api.request_payment()
        tid = api.control(f"/payments/{token}/approve")["fields"]["tid"]
        assert len(receiver.wait_for(1)) == 1
        kill(first)
    with serving(tmp_path, "second", receiver, str(tmp_path / "shared.db")) as (_, api):
        api.flush()
        example = doc_block("callbacks-unknown").text.replace("http://127.0.0.1:8080", api.url)
        exec(compile(example, "docs/callbacks.md", "exec"), {})
    assert capfd.readouterr().out.strip() == repr([(tid, 1)])


@pytest.fixture
def own_receiver():
    """A merchant of this test's own (the session's receiver may hold other tests' answers)."""
    receiver = CallbackReceiver()
    server = serve_receiver(receiver)
    yield receiver
    server.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_clean_stop_ends_the_attempts_in_flight_and_a_restart_repeats_none(tmp_path, database, own_receiver,
                                                                            workers):
    """SIGTERM while 8 attempts wait for a merchant that holds each POST a second: the server ends
    them (within the callback timeout), exits 0, and the server started after it sends nothing again."""
    orders = [f"held-{n}" for n in range(8)]
    own_receiver.script.extend(Answer(delay=1) for _ in orders)
    with serving(tmp_path, "first", own_receiver, database, "--callback-timeout", "5", "--workers", workers) as (
            first, api):
        freeze_at(api, T0)
        for order_no in orders:
            token = api.request_payment(order_no=order_no)
            api.control(f"/payments/{token}/approve")
        assert len(own_receiver.wait_for(len(orders))) == len(orders)  # all 8 in flight
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(30) == 0

    with serving(tmp_path, "second", own_receiver, database) as (_, api):
        api.flush()
        callbacks = api.control("/callbacks", method="GET")["callbacks"]
        assert Counter(r.json()["order_no"] for r in own_receiver.received) == Counter(orders)  # each once
        assert {c["status"] for c in callbacks} == {"delivered"}
        assert sorted((c["body"]["order_no"], ledger(api, c["tid"])) for c in callbacks) == [
            (order_no, [(1, "first", "done", 200)]) for order_no in orders]  # the ledger is what the merchant saw


@pytest.mark.slow
def test_a_server_that_stands_still_past_its_claim_never_has_its_attempt_made_twice(tmp_path, database, own_receiver):
    """The server making an attempt is stopped (SIGSTOP) while the merchant answers in 0.3 s, and
    stays stopped past its claim; the other server sharing the database records the attempt as
    unknown and sends nothing. Continued (SIGCONT), the first reads the answer the merchant gave and
    records it: the attempt was acknowledged, the notification is delivered, no retry goes out."""
    own_receiver.script.append(Answer(delay=0.3))
    with serving(tmp_path, "one", own_receiver, database, "--workers", "1") as (one, first), \
            serving(tmp_path, "two", own_receiver, database, "--workers", "1") as (_, second):
        freeze_at(first, T0)
        token = first.request_payment()
        tid = first.control(f"/payments/{token}/approve")["fields"]["tid"]
        assert len(own_receiver.wait_for(1)) == 1  # the attempt has left
        os.kill(one.process.pid, signal.SIGSTOP)
        try:
            flushed = second.flush()  # waits for the claim to lapse
            assert (flushed["pending"], flushed["next_attempt_at"]) == (1, "2026-11-29T10:05:00+09:00")
            assert ledger(second, tid) == [(1, "first", "unknown", None)]
        finally:
            os.kill(one.process.pid, signal.SIGCONT)
        first.flush()  # the first server's own attempt ends: it reads the answer waiting for it
        assert ledger(second, tid) == [(1, "first", "done", 200)]
        assert notification(second, tid)["status"] == "delivered"
        second.advance(seconds=300)
        second.flush()
        first.flush()
        assert len(own_receiver.received) == 1  # one POST, on the ledger once


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
