"""The storage under several request threads and connections (issue 25's p99 with keep-alive
clients): each thread's transaction is its own; on PostgreSQL a transaction takes its connection
only from its first round trip to its end, and the coverage a request adds goes to its
connection's own row, summed when read. On a real SQLite file and a real PostgreSQL database."""
from __future__ import annotations

import sqlite3
import threading

from payletter_emulator.storage import Storage
from payletter_emulator.waits import RERUN, attempt

OLD_COVERAGE = ("CREATE TABLE coverage (kind TEXT NOT NULL, name TEXT NOT NULL, count INTEGER NOT NULL, "
                "PRIMARY KEY (kind, name))")


def test_counts_of_two_connections_are_summed_when_read(database):
    first, second = Storage(database), Storage(database)
    try:
        first.count("endpoint", "payments/request")
        second.count("endpoint", "payments/request", 2)
        first.count("pgcode", "creditcard")
        assert first.coverage() == second.coverage() == {"endpoint": {"payments/request": 3},
                                                         "pgcode": {"creditcard": 1}}
        second.clear_coverage()
        assert first.coverage() == {}
    finally:
        first.close()
        second.close()


def test_a_count_waits_for_no_other_connections_transaction(postgres_server):
    """Two connections of one process (the pool's two) count one endpoint while the other's
    transaction holds its row: each adds to its own, so neither waits (in a request's run, a wait
    past 10 ms would be waits.Busy)."""
    url = postgres_server.new_database()
    first, second = Storage(url), Storage(url)
    try:
        assert first._db.connection.shard != second._db.connection.shard
        with first.atomic():
            first.count("endpoint", "payments/request")
            first._one("SELECT 1")  # sent: its coverage row is locked until the COMMIT
            with attempt(RERUN):
                second.count("endpoint", "payments/request")
        assert second.coverage() == {"endpoint": {"payments/request": 2}}
    finally:
        first.close()
        second.close()


def test_a_thread_between_round_trips_does_not_hold_the_connection(postgres_server):
    """A transaction whose statements are held (a request making its answer) leaves the process's
    connection to another thread's whole transaction; each commits only its own statements."""
    url = postgres_server.new_database()
    storage = Storage(url)
    held, other_done, go_on = threading.Event(), threading.Event(), threading.Event()
    failures = []

    def slow_request() -> None:
        try:
            with storage.atomic():
                storage.count("endpoint", "payments/cancel")
                held.set()
                if not go_on.wait(30):
                    raise AssertionError("the other thread never ended")
        except BaseException as error:  # said in the main thread
            failures.append(error)

    slow = threading.Thread(target=slow_request)
    slow.start()
    try:
        assert held.wait(30)

        def other_request() -> None:
            storage.count("endpoint", "payments/request")
            other_done.set()

        threading.Thread(target=other_request, daemon=True).start()
        assert other_done.wait(30), "a thread's held statements kept the connection from another's transaction"
        assert storage.coverage() == {"endpoint": {"payments/request": 1}}  # the slow one not committed yet
    finally:
        go_on.set()
        slow.join(30)
    assert not failures
    assert storage.coverage() == {"endpoint": {"payments/cancel": 1, "payments/request": 1}}
    storage.close()


def test_a_coverage_table_of_an_earlier_version_keeps_its_counts(database):
    if database.startswith("postgresql"):
        import psycopg

        with psycopg.connect(database, autocommit=True) as connection:
            connection.execute(OLD_COVERAGE)
            connection.execute("INSERT INTO coverage VALUES ('endpoint', 'payments/request', 5)")
    else:
        with sqlite3.connect(database) as connection:
            connection.execute(OLD_COVERAGE)
            connection.execute("INSERT INTO coverage VALUES ('endpoint', 'payments/request', 5)")
        connection.close()
    storage = Storage(database)
    try:
        storage.count("endpoint", "payments/request")
        assert storage.coverage() == {"endpoint": {"payments/request": 6}}
        assert "shard" in storage._db.columns("coverage")
    finally:
        storage.close()
    again = Storage(database)  # remade once: a second start finds it as made
    try:
        assert again.coverage() == {"endpoint": {"payments/request": 6}}
    finally:
        again.close()

