"""What a flush and the dispatcher's idle look read costs what is due, not what is pending: each
finds its answer by an index, and the number pending is kept as callbacks change. Counted (SQLite's
virtual-machine steps), not timed."""
from __future__ import annotations

from payletter_emulator.storage import Storage

URL = "http://127.0.0.1:9/cb"
CREATED = "2026-11-29T10:00:00+09:00"
NOW, WALL, LEASE = 1_000, 0.0, 60.0
FAR = 10**12  # due long after NOW


def attempt(number: int = 1) -> dict:
    return {"number": number, "kind": "first", "scheduled_at": None, "at": "a", "wall_time": "w", "http_status": 200,
            "response_body": "", "error": "", "latency_ms": 1.0}


def pend(storage: Storage, count: int, due: int = FAR) -> None:
    with storage.atomic():
        for i in range(count):
            storage.enqueue_callback(f"t{i}", URL, {"i": i}, CREATED, due, [])


def looks(storage: Storage) -> None:
    """What a flush with nothing due reads, and the idle look."""
    storage.callback_backlog(NOW, WALL)
    storage.claim_due_callbacks(NOW, WALL, LEASE, limit=8)
    storage.jobs_due(NOW)
    storage.next_callback_due(NOW)


def vm_steps(storage: Storage, work) -> int:
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    connection = storage._db.connection  # this project's own SQLite backend
    connection.set_progress_handler(step, 1)
    try:
        work()
    finally:
        connection.set_progress_handler(None, 1)
    return steps


def test_a_flush_and_the_idle_look_read_as_much_with_10000_pending_as_with_none(tmp_path):
    empty = Storage(str(tmp_path / "empty.db"))
    full = Storage(str(tmp_path / "full.db"))
    pend(full, 10_000)
    assert full.callback_backlog(NOW, WALL) == {"pending": 10_000, "busy": False, "next_due": FAR}
    few, many = vm_steps(empty, lambda: looks(empty)), vm_steps(full, lambda: looks(full))
    assert many <= 1.5 * few + 100, (few, many)  # an index's depth, never a step per pending callback


def test_the_number_pending_follows_every_change(database):
    storage = Storage(database)
    pend(storage, 5, due=NOW)
    storage.enqueue_callback("held", URL, {}, CREATED, None, [])
    storage.enqueue_callback("dropped", URL, {}, CREATED, NOW, [], status="failed")
    assert storage.callback_backlog(NOW, WALL)["pending"] == 6
    claimed = storage.claim_due_callbacks(NOW, WALL, LEASE, limit=3)
    assert storage.callback_backlog(NOW, WALL)["busy"] is True
    delivered, retried, lost = claimed
    assert storage.finish_attempt(delivered["id"], delivered["claim"], attempt(), "delivered", 1, None)
    assert storage.finish_attempt(retried["id"], retried["claim"], attempt(), "pending", 1, NOW + 300_000)
    assert storage.finish_attempt(lost["id"], "not its claim", attempt(), "failed", 1, None) is None
    assert storage.callback_backlog(NOW, WALL)["pending"] == 5
    resent = storage.claim_callback(delivered["id"], WALL, LEASE)  # a resend of a delivered one that fails
    assert storage.finish_attempt(resent["id"], resent["claim"], attempt(2), "delivered", 2, None)
    assert storage.callback_backlog(NOW, WALL)["pending"] == 5
    assert Storage(database).callback_backlog(NOW, WALL)["pending"] == 5  # counted again at open: the same
    storage.reset()
    assert storage.callback_backlog(NOW, WALL) == {"pending": 0, "busy": False, "next_due": None}


def test_a_callback_being_sent_keeps_a_flush_busy_until_its_attempt_ends(tmp_path):
    storage = Storage(str(tmp_path / "e.db"))
    storage.enqueue_callback("t", URL, {}, CREATED, NOW, [])
    assert storage.callback_backlog(NOW - 1, WALL)["busy"] is False  # not yet due, nobody sending
    [callback] = storage.claim_due_callbacks(NOW, WALL, LEASE, limit=1)
    assert storage.callback_backlog(NOW - 1, WALL)["busy"] is True  # not due, but being sent
    storage.finish_attempt(callback["id"], callback["claim"], attempt(), "pending", 1, FAR)
    assert storage.callback_backlog(NOW, WALL) == {"pending": 1, "busy": False, "next_due": FAR}
