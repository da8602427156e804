"""A PostgreSQL transaction's statements that return no rows go prepared, in libpq's pipeline
(storage/pg_pipeline.py), on a real database: each prepared once per connection after
PREPARE_AFTER uses, shared by the storages of every schema on that connection with each row in its
own schema, prepared again on the new connection made after the last one broke (or when they
were deallocated under it); a statement
PostgreSQL cannot prepare goes as before (one query, with literals); the rows a prepared query or
RETURNING gives are read as psycopg's cursor reads them; and a value means what it meant as a
literal."""
from __future__ import annotations

import psycopg
import pytest

from payletter_emulator.domain.errors import GatewayError
from payletter_emulator.storage import Storage
from payletter_emulator.storage.backends import PREPARE_AFTER
from payletter_emulator.storage.pg_pipeline import BIGINT, BOOLEAN, DOUBLE, NUMERIC, UNTYPED, numbered, values

COVERAGE = ("INSERT INTO coverage (kind, name, shard, count) VALUES ($1, $2, $3, $4) ON CONFLICT (kind, name, shard) "
            "DO UPDATE SET count = coverage.count + excluded.count")


@pytest.fixture
def url(postgres_server) -> str:
    return postgres_server.new_database()


def prepared(storage: Storage) -> list[str]:
    """The statements prepared on the storage's connection (psycopg's own, for reads, aside)."""
    return [row["statement"] for row in storage._all(
        "SELECT statement FROM pg_prepared_statements WHERE name LIKE 'payletter%' ORDER BY name")]


def test_a_write_is_prepared_after_its_first_uses_and_each_schema_keeps_its_rows(url):
    root, sandbox = Storage(url), Storage(url, schema="sb")
    try:
        assert root._db.connection._session is sandbox._db.connection._session  # one connection for both
        for _ in range(PREPARE_AFTER - 1):
            root.count("endpoint", "payments/request")
        assert COVERAGE not in prepared(root)
        root.count("endpoint", "payments/request")
        assert prepared(root).count(COVERAGE) == 1
        for _ in range(3):  # the same prepared statement, run with the sandbox's search_path
            sandbox.count("endpoint", "payments/request")
        root.count("endpoint", "payments/request")
        assert root.coverage()["endpoint"] == {"payments/request": PREPARE_AFTER + 1}
        assert sandbox.coverage()["endpoint"] == {"payments/request": 3}
        assert prepared(root).count(COVERAGE) == 1
    finally:
        root.close()
        sandbox.close()


def test_a_new_connection_prepares_again(url):
    storage = Storage(url)
    try:
        for _ in range(PREPARE_AFTER):
            storage.count("endpoint", "payments/request")
        assert COVERAGE in prepared(storage)
        with psycopg.connect(url, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                                 "current_database() AND pid <> pg_backend_pid() AND application_name <> "
                                 "'payletter-emulator news'").fetchall()
        with pytest.raises(GatewayError) as found:  # the statement that finds it dead: 503
            storage.count("endpoint", "payments/request")
        assert found.value.kind == "database_unreachable"
        # On the new connection: prepared again at once (the storage had it prepared), not run by a
        # name that connection never had.
        storage.count("endpoint", "payments/request")
        assert COVERAGE in prepared(storage)
        assert storage.coverage()["endpoint"] == {"payments/request": PREPARE_AFTER + 1}
    finally:
        storage.close()


def test_statements_deallocated_under_the_storage_are_prepared_again(url):
    storage = Storage(url)
    try:
        for _ in range(PREPARE_AFTER):
            storage.count("endpoint", "payments/request")
        storage._db.connection.execute("DEALLOCATE ALL")  # as another client of the session might
        storage.count("endpoint", "payments/request")  # a whole transaction: sent again as one query
        assert COVERAGE not in prepared(storage)
        storage.count("endpoint", "payments/request")  # the next one prepares it again
        assert COVERAGE in prepared(storage)

        storage._db.connection.execute("DEALLOCATE ALL")
        with pytest.raises(GatewayError) as found:  # its transaction had begun: it failed, nothing kept
            with storage.atomic():
                storage._one_to_change("SELECT count FROM coverage WHERE name = ?", ("payments/request",))
                storage.count("endpoint", "payments/request")
        assert found.value.kind == "database_conflict"  # run again, in a request
        storage.count("endpoint", "payments/request")
        assert storage.coverage()["endpoint"] == {"payments/request": PREPARE_AFTER + 3}
    finally:
        storage.close()


def test_what_postgresql_cannot_prepare_goes_as_one_query(url):
    storage = Storage(url)
    try:
        storage.next_value("serial")
        for _ in range(PREPARE_AFTER + 1):
            # An untyped value where no type can be told from its place: PostgreSQL refuses to
            # prepare it (once); as a literal it is text.
            assert storage._run("UPDATE counters SET value = value + 1 WHERE ? IS NOT NULL AND name = ?",
                                ("x", "serial")).rowcount == 1
        assert not [text for text in prepared(storage) if "IS NOT NULL" in text]
        assert storage._one("SELECT value FROM counters WHERE name = 'serial'")[0] == PREPARE_AFTER + 2
    finally:
        storage.close()


def test_rows_a_prepared_statement_returns_are_read_as_the_cursor_reads_them(url):
    """A query or a RETURNING in a transaction goes prepared too, in the pipeline: its rows come
    back with the types, names and positions psycopg's cursor (the one-query way) gives them."""
    storage = Storage(url)
    query = "SELECT id, tid, next_attempt_at, claim_expires, attempts, status, fault FROM callbacks WHERE tid = ?"
    try:
        claimed = storage.enqueue_claimed_callback("T1", "http://127.0.0.1:9/cb", {}, "c", 2**40, [], {}, 1.5)
        assert claimed["id"] == 1  # read once its transaction has committed
        storage.enqueue_callback("T2", "http://127.0.0.1:9/cb", {}, "c", None, [])  # held: no next_attempt_at
        storage._run("UPDATE callbacks SET tid = 'T1', claim_expires = NULL WHERE tid = 'T2'")
        read = []
        for _ in range(PREPARE_AFTER + 1):  # as one query of literals, then prepared
            with storage.atomic():
                row = storage._one_to_change(query + " ORDER BY id", ("T1",))
                read.append((dict(row), tuple(row[index] for index in range(7)),
                             storage._tuples(query + " ORDER BY id", ("T1",)),
                             storage.next_value("serial")))
        assert prepared(storage).count(numbered(query.replace("?", "%s")) + " ORDER BY id FOR UPDATE") == 1
        assert any("RETURNING value" in text for text in prepared(storage))
        first = read[0]
        rows = [(1, "T1", 2**40, 1.5, 0, "pending", "{}"), (2, "T1", None, None, 0, "pending", "{}")]
        names = ("id", "tid", "next_attempt_at", "claim_expires", "attempts", "status", "fault")
        assert first[0] == dict(zip(names, rows[0])) and first[1] == rows[0] and first[2] == rows
        assert [type(value) for value in first[1]] == [int, str, int, float, int, str, str]
        assert [entry[:3] for entry in read] == [first[:3]] * (PREPARE_AFTER + 1)
        assert [entry[3] for entry in read] == list(range(1, PREPARE_AFTER + 2))
    finally:
        storage.close()


def test_a_value_means_what_it_meant_as_a_literal(url):
    storage = Storage(url)
    try:
        stored = []
        for number in range(PREPARE_AFTER + 1):  # as a literal, then prepared
            name = f"n{number}"
            storage._run("INSERT INTO counters (name, value) VALUES (?, ?)", (name, 2.6))  # rounded as an assignment
            storage._run("INSERT INTO coverage (kind, name, count) VALUES (?, ?, ?)", ("k", name, "7"))  # text read as a number
            stored.append((storage._one("SELECT value FROM counters WHERE name = ?", (name,))[0],
                           storage._one("SELECT count FROM coverage WHERE name = ?", (name,))[0]))
        assert stored == [(3, 7)] * (PREPARE_AFTER + 1)
        assert any("INTO counters (name, value)" in text for text in prepared(storage))
        with pytest.raises(psycopg.DataError):  # NUL: refused before it leaves, as a literal would be
            storage._run("INSERT INTO counters (name, value) VALUES (?, ?)", ("a\x00b", 1))
    finally:
        storage.close()


def test_values_go_with_the_types_their_literals_have():
    assert values(["a", None, 5, True, 1.5, 2**70]) == (
        (UNTYPED, UNTYPED, BIGINT, BOOLEAN, DOUBLE, NUMERIC), [b"a", None, b"5", b"t", b"1.5", str(2**70).encode()])
    assert values(["a\x00b"]) is None  # PostgreSQL's text cannot hold it
    assert values([b"bytes"]) is None and values([object()]) is None


def test_a_statement_for_psycopg_is_numbered_for_libpq():
    assert numbered("INSERT INTO t (a, b) VALUES (%s, '50%%') ON CONFLICT (a) DO UPDATE SET b = %s") == \
        "INSERT INTO t (a, b) VALUES ($1, '50%') ON CONFLICT (a) DO UPDATE SET b = $2"
