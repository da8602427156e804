"""A callback's claim is checked by the statement that writes under it. An attempt finished after
its claim was taken over (its process stood still past the lease, and another took the callback)
records nothing about the callback: the holder that took it over goes on alone, and the ledger
holds each attempt once. On PostgreSQL a read locks nothing, so a claim taken over between a read
and the write after it is what this guards against."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from payletter_emulator.storage import Storage

from .conftest import until

URL = "http://127.0.0.1:9/cb"
CREATED = "2026-11-29T10:00:00+09:00"
NOW, WALL, LEASE = 1_000_000, 2_000_000_000.0, 10.0
RETRY_DUE = NOW + 300_000


def attempt(number: int = 1, http_status: int | None = 500) -> dict:
    return {"number": number, "kind": "first" if number == 1 else "retry", "scheduled_at": None, "at": "a",
            "wall_time": "w", "http_status": http_status, "response_body": "", "error": "", "latency_ms": 1.0}


def ledger(storage: Storage, callback_id: int) -> list[tuple]:
    return [(a["number"], a["kind"], a["state"], a["http_status"]) for a in storage.callback(callback_id)["attempts"]]


@pytest.mark.postgres
@pytest.mark.parametrize("status", ["pending", "failed"])
def test_a_finish_after_its_claim_was_taken_over_records_nothing(postgres_server, status):
    """The old holder read its claim as still its own; another host then took the callback over
    (the row locked by its transaction, still open). The old holder's write waits for that lock,
    finds the claim gone, and records nothing: no state, no attempt, the pending count unchanged."""
    import psycopg

    url = postgres_server.new_database()
    storage = Storage(url)
    watcher = psycopg.connect(url, autocommit=True)
    other_host = psycopg.connect(url)
    try:
        callback_id = storage.enqueue_callback("t1", URL, {}, CREATED, NOW, [])
        [mine] = storage.claim_due_callbacks(NOW, WALL, LEASE, limit=1)
        other_host.execute("UPDATE callbacks SET claimed_by = 'theirs', claim_expires = %s WHERE id = %s",
                           (WALL + 2 * LEASE, callback_id))  # its transaction stays open: the row is locked
        finishing = ThreadPoolExecutor(1).submit(storage.finish_attempt, callback_id, mine["claim"], attempt(),
                                                 status, 1, RETRY_DUE if status == "pending" else None)

        def waiting_for_the_row() -> bool:
            return watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND wait_event_type = 'Lock'").fetchone()[0] == 1

        until(waiting_for_the_row, what="the old holder's write waiting for the other host's lock")
        other_host.commit()
        assert finishing.result(30) is None  # the claim was lost: nothing recorded
        found = storage.callback(callback_id)
        assert (found["status"], found["attempts_made"], found["claimed_by"]) == ("pending", 0, "theirs")
        assert found["attempts"] == []
        assert storage.callback_backlog(NOW, WALL)["pending"] == 1

        # the new holder goes on: its attempt is the one on the ledger
        assert storage.finish_attempt(callback_id, "theirs", attempt(http_status=200), "delivered", 1, None)
        assert ledger(storage, callback_id) == [(1, "first", "done", 200)]
        assert storage.callback(callback_id)["status"] == "delivered"
        assert storage.callback_backlog(NOW, WALL)["pending"] == 0
    finally:
        other_host.close()
        watcher.close()
        storage.close()


def test_an_acknowledgement_read_after_the_claim_lapsed_delivers_once(database):
    """The old holder's attempt left (it is on the ledger, "sending") and the claim lapsed; the new
    holder found it unknown and counted it. The merchant's 200 then read by the old holder
    completes that same attempt and delivers the callback; the new holder's record of the unknown
    attempt keeps it delivered. One attempt on the ledger, the pending count down once."""
    storage = Storage(database)
    try:
        callback_id = storage.enqueue_callback("t1", URL, {}, CREATED, NOW, [])
        [old] = storage.claim_due_callbacks(NOW, WALL, LEASE, limit=1)
        started = storage.start_attempt(callback_id, old["claim"], attempt(http_status=None), WALL, LEASE)
        assert started is not None
        [new] = storage.claim_due_callbacks(NOW, WALL + 2 * LEASE, LEASE, limit=1)  # the lease has lapsed
        assert new["unknown"] == ["first"]
        assert ledger(storage, callback_id) == [(1, "first", "unknown", None)]

        answered = {**started, "http_status": 200, "response_body": '{"code": 0}'}
        assert storage.finish_attempt(callback_id, old["claim"], answered, "delivered", 1, None) is None
        assert ledger(storage, callback_id) == [(1, "first", "done", 200)]
        assert storage.callback(callback_id)["status"] == "delivered"
        assert storage.callback_backlog(NOW, WALL)["pending"] == 0

        assert storage.finish_attempt(callback_id, new["claim"], None, "pending", 1, RETRY_DUE) is None
        found = storage.callback(callback_id)
        assert (found["status"], found["attempts_made"], found["claimed_by"]) == ("delivered", 1, None)
        assert ledger(storage, callback_id) == [(1, "first", "done", 200)]
        assert storage.callback_backlog(NOW, WALL)["pending"] == 0
    finally:
        storage.close()
