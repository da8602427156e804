"""A PostgreSQL transaction's plain INSERTs are sent as prepared statements (storage/backends.py),
on a real database: prepared once per connection after PREPARE_AFTER uses, shared by the
storages of every schema on that connection with each row in its own schema, prepared again on
the new connection made after the last one broke; and only INSERTs whose parameters are all values of
their rows are prepared, so that a value means what it meant as a literal."""
from __future__ import annotations

import psycopg
import pytest

from payletter_emulator.domain.errors import GatewayError
from payletter_emulator.storage import Storage
from payletter_emulator.storage.backends import PREPARE_AFTER, _preparable

COVERAGE = "INSERT INTO coverage (kind, name, count) VALUES (%s, %s, %s) ON CONFLICT (kind, name) DO UPDATE"


@pytest.fixture
def url(postgres_server) -> str:
    return postgres_server.new_database()


def prepared(storage: Storage) -> list[str]:
    """The statements the storage prepared on its connection, as PostgreSQL lists them (what
    follows `PREPARE <name> AS`; psycopg's own, for reads, aside)."""
    return [row["statement"].split(" AS ", 1)[1] for row in storage._all(
        "SELECT statement FROM pg_prepared_statements WHERE name LIKE 'payletter%'")]


def test_an_insert_is_prepared_after_its_first_uses_and_each_schema_keeps_its_rows(url):
    root, sandbox = Storage(url), Storage(url, schema="sb")
    try:
        assert root._db.connection._session is sandbox._db.connection._session  # one connection for both
        for _ in range(PREPARE_AFTER - 1):
            root.count("endpoint", "payments/request")
        assert not [text for text in prepared(root) if "INTO coverage" in text]
        root.count("endpoint", "payments/request")
        assert [text for text in prepared(root) if "INTO coverage" in text] == [
            "INSERT INTO coverage (kind, name, count) VALUES ($1, $2, $3) ON CONFLICT "
            "(kind, name) DO UPDATE SET count = coverage.count + excluded.count"]
        for _ in range(3):  # the same prepared statement, run with the sandbox's search_path
            sandbox.count("endpoint", "payments/request")
        root.count("endpoint", "payments/request")
        assert root.coverage()["endpoint"] == {"payments/request": PREPARE_AFTER + 1}
        assert sandbox.coverage()["endpoint"] == {"payments/request": 3}
        assert len([text for text in prepared(root) if "INTO coverage" in text]) == 1
    finally:
        root.close()
        sandbox.close()


def test_a_new_connection_prepares_again(url):
    storage = Storage(url)
    try:
        for _ in range(PREPARE_AFTER):
            storage.count("endpoint", "payments/request")
        assert any("INTO coverage" in text for text in prepared(storage))
        with psycopg.connect(url, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                                 "current_database() AND pid <> pg_backend_pid() AND application_name <> "
                                 "'payletter-emulator news'").fetchall()
        with pytest.raises(GatewayError) as found:  # the statement that finds it dead: 503
            storage.count("endpoint", "payments/request")
        assert found.value.kind == "database_unreachable"
        # On the new connection: prepared again at once (the storage has seen it often enough),
        # not an EXECUTE of a name that connection never had.
        storage.count("endpoint", "payments/request")
        assert any("INTO coverage" in text for text in prepared(storage))
        assert storage.coverage()["endpoint"] == {"payments/request": PREPARE_AFTER + 1}
    finally:
        storage.close()


@pytest.mark.parametrize("sql, expected", [
    ("INSERT INTO journal (at, request) VALUES (%s, %s)", ("INSERT INTO journal (at, request) VALUES ($1, $2)", 2)),
    ("INSERT INTO t (a, b) VALUES (%s, '50%%') RETURNING id", ("INSERT INTO t (a, b) VALUES ($1, '50%') RETURNING id", 1)),
    (COVERAGE + " SET count = coverage.count + excluded.count",
     (COVERAGE.replace("%s, %s, %s", "$1, $2, $3") + " SET count = coverage.count + excluded.count", 3)),
    # A parameter outside the rows' values: its type would be guessed from where it stands.
    (COVERAGE + " SET count = coverage.count + %s", None),
    ("INSERT INTO counters (name, value) VALUES ('token', %s) ON CONFLICT (name) DO UPDATE "
     "SET value = counters.value + %s RETURNING value", None),
    ("INSERT INTO t (a) VALUES (CAST(%s AS INTEGER))", None),  # a value within a call, a cast
    ("INSERT INTO t (a) VALUES ((SELECT max(a) FROM t WHERE b = %s))", None),
    ("INSERT INTO t (a) VALUES (1)", None),  # nothing to bind: nothing gained
    ("UPDATE t SET a = %s WHERE b = %s", None),
])
def test_only_inserts_whose_parameters_are_row_values_are_prepared(sql, expected):
    assert _preparable(sql) == expected
