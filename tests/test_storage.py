"""The storage module on a real SQLite file and a real PostgreSQL database: transactions, bounds,
and two processes on one database."""
from __future__ import annotations

import os
import sqlite3
import threading

import pytest
import requests

from payletter_emulator.domain.errors import GatewayError
from payletter_emulator.domain.clock import ClockState
from payletter_emulator.storage import Storage

from .conftest import PAYMENT_KEY, EmulatorProcess


def entry(i: int) -> dict:
    return {"at": "2026-11-29T12:00:00+09:00", "method": "POST", "path": "/v1.0/payments/request",
            "query": "", "client_id": "pay_test", "request": f'{{"i": {i}}}', "status": 200, "response": "{}",
            "warnings": []}


def test_journal_is_bounded(database):
    storage = Storage(database, journal_limit=100)
    for i in range(1, 451):
        storage.journal_append(entry(i))
    kept = storage.journal(limit=10_000)
    assert 100 <= len(kept) < 200
    assert kept[-1]["request"] == {"i": 450}


def test_a_refused_change_leaves_nothing_behind(database):
    storage = Storage(database)
    with pytest.raises(GatewayError):
        with storage.atomic():
            storage.next_value("token")
            raise GatewayError("already_cancelled", tid="t")
    assert storage.next_value("token") == 1


def test_after_commit_hooks_wait_for_the_outermost_commit_and_a_rollback_drops_them(database):
    storage, other = Storage(database), Storage(database)
    seen = []

    def hook():  # what the dispatcher does when woken: read on a connection of its own
        seen.append(other.coverage())

    with storage.atomic():
        storage.count("endpoint", "payments/request")
        with storage.atomic():
            storage.after_commit(hook)
        assert seen == []
    assert seen == [{"endpoint": {"payments/request": 1}}]
    with pytest.raises(GatewayError):
        with storage.atomic():
            storage.after_commit(hook)
            raise GatewayError("already_cancelled", tid="t")
    assert len(seen) == 1
    storage.after_commit(hook)  # no transaction: at once
    assert len(seen) == 2


def test_every_connection_sees_the_shared_generation_change_once_a_change_is_committed(tmp_path):
    path = str(tmp_path / "shared.db")
    writer, reader = Storage(path), Storage(path)
    seen = reader.shared_generation()
    with writer.atomic():
        writer.save_clock_state(ClockState(offset=3600.0))
        assert reader.shared_generation() == seen  # not before the commit
    assert reader.shared_generation() != seen
    seen = reader.shared_generation()
    with pytest.raises(GatewayError):
        with writer.atomic():
            writer.add_job(1, "deposit", {}, origin="test")
            raise GatewayError("already_cancelled", tid="t")
    assert reader.shared_generation() == seen  # a rolled-back change is no news
    for change in (lambda: writer.add_job(1, "deposit", {}, origin="test"), lambda: writer.take_due_job(2),
                   writer.drop_pending_jobs, lambda: writer.save_scenario(None), writer.reset):
        change()
        assert reader.shared_generation() != seen
        seen = reader.shared_generation()


def test_a_database_shared_by_other_hosts_has_no_generation_to_read(database):
    storage = Storage(database)
    if storage.backend == "postgresql":
        assert storage.shared_generation() is None
    else:
        assert isinstance(storage.shared_generation(), int)


def test_token_serials_are_unique_across_connections_and_ascend_within_each(database):
    first, second = Storage(database), Storage(database)
    a = [first.next_token() for _ in range(150)]
    b = [second.next_token() for _ in range(150)]
    a += [first.next_token() for _ in range(60)]
    assert len(set(a) | set(b)) == 360
    assert a == sorted(a) and b == sorted(b)
    assert max(a + b) == 410  # blocks of 100: first 1-200, second 201-400, first again from 401


def test_a_block_taken_in_a_rolled_back_transaction_is_not_handed_out(database):
    first, second = Storage(database), Storage(database)
    with pytest.raises(GatewayError):
        with first.atomic():
            taken = first.next_token()
            raise GatewayError("already_cancelled", tid="t")
    after = [second.next_token() for _ in range(3)]  # the counter was rolled back: the same block
    assert taken in after
    assert first.next_token() not in after


def test_a_token_from_the_block_in_hand_waits_for_no_writer(tmp_path):
    path = str(tmp_path / "tokens.db")
    storage = Storage(path)
    first = storage.next_token()  # the block is taken now
    storage._db.connection.execute("PRAGMA busy_timeout = 200")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing, for longer than this one would wait
    try:
        assert [storage.next_token() for _ in range(5)] == list(range(first + 1, first + 6))
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_forked_process_takes_a_block_of_its_own(tmp_path):
    storage = Storage(str(tmp_path / "fork.db"))
    parent = [storage.next_token()]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a connection of its own, as a gunicorn worker opens one
        child = Storage(str(tmp_path / "fork.db"))
        os.write(write, f"{child.next_token()},{len(storage._tokens)}".encode())
        os._exit(0)
    os.waitpid(pid, 0)
    token, inherited = os.read(read, 100).decode().split(",")
    parent.append(storage.next_token())
    assert int(token) not in parent
    assert inherited == "0"  # the parent's block was forgotten in the child


def test_counters_are_shared_by_connections_to_one_database(database):
    first, second = Storage(database), Storage(database)
    values = [first.next_value("tid"), second.next_value("tid"), first.next_value("tid")]
    assert values == [1, 2, 3]


def test_two_processes_on_one_database_never_cancel_past_the_amount(tmp_path, database, callback_receiver):
    a = EmulatorProcess(tmp_path, db=database)
    b_dir = tmp_path / "b"
    b_dir.mkdir()
    b = EmulatorProcess(b_dir, db=database)
    try:
        headers = {"Authorization": f"PLKEY {PAYMENT_KEY}"}
        token = requests.post(a.url + "/v1.0/payments/request", headers=headers, json={
            "pgcode": "creditcard", "client_id": "pay_test", "user_id": "u", "amount": 1000, "product_name": "p",
            "return_url": "https://m.example/r", "callback_url": callback_receiver.url}).json()["token"]
        tid = requests.post(f"{b.url}/_emulator/payments/{token}/approve", json={}).json()["fields"]["tid"]
        results = []
        start = threading.Barrier(20)

        def cancel(url):
            start.wait()
            response = requests.post(url + "/v1.0/payments/cancel/partial", headers=headers, json={
                "pgcode": "creditcard", "client_id": "pay_test", "user_id": "u", "tid": tid,
                "amount": 100, "ip_addr": "127.0.0.1"})
            results.append((response.status_code, response.json()))

        threads = [threading.Thread(target=cancel, args=((a, b)[i % 2].url,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        accepted = [body for status, body in results if status == 200]
        refused = [body["code"] for status, body in results if status != 200]
        assert len(accepted) == 9 and refused == [4009] * 11
        payment = requests.get(f"{a.url}/_emulator/payments/{tid}").json()
        assert payment["cancelled_amount"] == 900 == sum(c["amount"] for c in payment["cancellations"])
        assert payment["remaining"] == 100
    finally:
        a.stop()
        b.stop()


def test_claims_split_due_callbacks_between_connections(database):
    """Two connections claiming at once never take the same callback (SKIP LOCKED on PostgreSQL,
    one writer at a time on SQLite)."""
    first, second = Storage(database), Storage(database)
    ids = [first.enqueue_callback(f"t{i}", "http://127.0.0.1:9/cb", {"i": i}, "2026-11-29T10:00:00+09:00",
                                  1_000, []) for i in range(40)]
    taken: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def claim(storage, into):
        start.wait()
        while batch := storage.claim_due_callbacks(2_000, 0.0, 60.0, limit=3):
            into.extend(c["id"] for c in batch)

    threads = [threading.Thread(target=claim, args=(s, t)) for s, t in zip((first, second), taken)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken[0] + taken[1]) == ids
    assert set(taken[0]).isdisjoint(taken[1])


def test_finished_notifications_are_bounded_but_pending_ones_stay(database):
    storage = Storage(database, callback_limit=100)
    pending = storage.enqueue_callback("t-pending", "http://127.0.0.1:9/cb", {}, "2026-11-29T10:00:00+09:00", 1, [])
    for i in range(450):
        storage.enqueue_callback(f"t{i}", "http://127.0.0.1:9/cb", {}, "2026-11-29T10:00:00+09:00", 1, [])
        [claimed] = [c for c in storage.claim_due_callbacks(10, 0.0, 60.0, limit=500) if c["tid"] == f"t{i}"]
        assert storage.finish_attempt(claimed["id"], claimed["claim"], {
            "number": 1, "kind": "first", "scheduled_at": None, "at": "a", "wall_time": "w", "http_status": 200,
            "response_body": "", "error": "", "latency_ms": 1.0}, "delivered", 1, None)
    kept = storage.callbacks()
    assert 100 <= len(kept) < 200
    assert kept[0]["id"] == pending and kept[-1]["tid"] == "t449"
    stored_attempts = storage._one("SELECT count(*) FROM callback_attempts")[0]
    assert stored_attempts == len(kept) - 1  # the pruned notifications took their attempts with them


def test_a_days_payments_are_listed_in_one_query_with_their_last_cancellation(database):
    """transaction/list's rows come from one query, in (transaction_date, token) order, each with
    its last cancellation's date: no query per cancelled payment, alike on both databases."""
    from payletter_emulator.domain.payment import Cancellation, ListedPayment, Payment

    storage = Storage(database)
    paid = [("T3", 3, "2026-11-29 10:00:00"), ("T1", 1, "2026-11-29 09:00:00"), ("T2", 2, "2026-11-29 10:00:00"),
            ("T4", 4, "2026-11-30 08:00:00")]
    for tid, token, at in paid:
        storage.insert_payment(Payment(token=token, client_id="pay_test", pgcode="creditcard", user_id="u",
                                       amount=1000, product_name="p", request={"a": 1}, created_at=at,
                                       status="approved", tid=tid, paid_pgcode="creditcard", transaction_date=at,
                                       details={"card": "x"}))
    for amount, day in ((300, "2026-11-29 11:00:00"), (700, "2026-11-29 12:00:00")):
        storage.record_cancellation(Cancellation(tid="T2", amount=amount, taxfree_amount=0, tax_amount=0,
                                                 partial=True, cancel_date=day))
    listed = storage.payments_made_on("pay_test", "2026-11-29", ("approved",))
    assert [p.tid for p in listed] == ["T1", "T2", "T3"]
    assert all(isinstance(p, ListedPayment) for p in listed)
    assert [(p.cancelled_amount, p.last_cancel_date, p.list_status) for p in listed] == [
        (0, "", 0), (1000, "2026-11-29 12:00:00", 1), (0, "", 0)]
