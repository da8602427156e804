"""What a flush and the dispatcher's idle look read costs what is due, not what is pending: each
finds its answer by an index, and the number pending is kept as callbacks change. Counted (SQLite's
virtual-machine steps), not timed: the storage's reads alone, and a whole emulator's dispatcher
(its flush, its rounds with their timed jobs) on the connections it reads through. On PostgreSQL,
the pages its statements read (pg_stat_statements), before and after the table's statistics are
made: a plan made without them must not scan either."""
from __future__ import annotations

import threading
from contextlib import ExitStack, contextmanager

import pytest

from payletter_emulator.config import Settings
from payletter_emulator.instance import build
from payletter_emulator.storage import Storage

from .conftest import until
from .databases import PostgresServer

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
    """What a flush with nothing due reads, and the idle look (polled, or told of every change)."""
    storage.callback_backlog(NOW, WALL)
    storage.claim_due_callbacks(NOW, WALL, LEASE, limit=8)
    storage.jobs_due(NOW)
    storage.next_callback_due(NOW)
    storage.next_work(NOW, WALL)


def vm_steps(storage: Storage, work) -> int:
    with counted(storage) as steps:
        work()
    return steps[0]


@contextmanager
def counted(*storages: Storage):
    """The virtual-machine steps SQLite runs on the storages' connections, from any thread, while
    the block runs: a list whose one item grows."""
    steps, lock = [0], threading.Lock()

    def step() -> int:
        with lock:
            steps[0] += 1
        return 0

    def handle(storage: Storage, handler) -> None:
        # Set between two statements (under the storage's lock): SQLite waits for a statement under
        # way on another thread, whose handler waits for the interpreter this thread holds.
        with storage._lock:
            storage._db.connection.set_progress_handler(handler, 1)  # this project's own SQLite backend

    with ExitStack() as handlers:
        for storage in storages:
            handle(storage, step)
            handlers.callback(handle, storage, None)
        yield steps


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


LATER = 10**13  # emulator milliseconds: long after today's real clock, which a built emulator runs on
ROUNDS = 5  # the dispatcher's idle rounds counted, one every POLL_SECONDS


def test_an_emulators_flush_and_idle_rounds_read_as_much_with_10000_pending_as_with_none(tmp_path):
    """A whole emulator (instance.build, as `serve` makes it): its dispatcher's flush, and its idle
    rounds with the timed jobs each runs first, read through both of its connections (the
    requests' and the senders')."""
    per_flush, per_round = {}, {}
    for pending in (0, 10_000):
        db = str(tmp_path / f"{pending}.db")
        seeded = Storage(db)
        pend(seeded, pending, due=LATER)
        seeded.close()
        emulator = build(Settings(db=db))
        try:
            dispatcher, rounds = emulator.dispatcher, [0]
            jobs = dispatcher.jobs

            def counting_jobs(now: int, jobs=jobs, rounds=rounds) -> int:
                rounds[0] += 1
                return jobs(now)

            dispatcher.jobs = counting_jobs
            until(lambda: rounds[0] >= 1, what="the dispatcher's first round")
            connections = (emulator.storage, dispatcher.storage)
            with counted(*connections) as steps:
                assert dispatcher.flush()["idle"] is True
            per_flush[pending] = steps[0]
            first = rounds[0] + 1
            until(lambda: rounds[0] >= first, what="the start of a round")
            with counted(*connections) as steps:
                until(lambda: rounds[0] >= first + ROUNDS, what=f"{ROUNDS} idle rounds")
            per_round[pending] = steps[0] / ROUNDS
            assert emulator.storage.callback_backlog(0, 0.0)["pending"] == pending
        finally:
            emulator.close()
    assert per_flush[10_000] <= 1.5 * per_flush[0] + 100, per_flush  # an index's depth, not a step per callback
    assert per_round[10_000] <= 1.5 * per_round[0] + 100, per_round


@pytest.fixture(scope="module")
def counting_postgres():
    """A server of this module's own that counts the pages each statement reads."""
    server = PostgresServer("shared_preload_libraries=pg_stat_statements")
    yield server
    server.stop()


@pytest.mark.postgres
def test_on_postgresql_the_looks_read_as_many_pages_with_10000_pending_as_with_none(counting_postgres):
    import psycopg

    pages = {}
    for pending in (0, 10_000):
        url = counting_postgres.new_database()
        storage = Storage(url)
        watcher = psycopg.connect(url, autocommit=True)
        try:
            pend(storage, pending)
            watcher.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

            def read() -> int:  # pages read by this database's statements so far
                return int(watcher.execute(
                    "SELECT coalesce(sum(shared_blks_hit + shared_blks_read), 0) FROM pg_stat_statements "
                    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND query NOT LIKE '%pg_stat_statements%'").fetchone()[0])

            for statistics in ("none yet", "made"):
                if statistics == "made":
                    watcher.execute("ANALYZE callbacks")
                before = read()
                for _ in range(10):  # past psycopg's preparing of statements, and so PostgreSQL's generic plans
                    looks(storage)
                pages[pending, statistics] = (read() - before) / 10
        finally:
            watcher.close()
            storage.close()
    for statistics in ("none yet", "made"):
        few, many = pages[0, statistics], pages[10_000, statistics]
        # Each of a look's index probes reads a page or two more once its index has a level more;
        # one scan of the 10,000 reads the table's 140-odd pages.
        assert many <= 1.5 * few + 40, pages
