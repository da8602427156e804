"""What a process on PostgreSQL shares and hears, in one process on a real database: the storages
of many schemas (sandboxes) share a pool of connections, each in its own schema, and a
transaction of one holds off the others' statements; news of a change leave when its transaction
commits, never when it rolls back; and a lost listening connection listens again, with nothing
missed."""
from __future__ import annotations

import threading

import psycopg
import pytest

from payletter_emulator.domain.clock import ClockState
from payletter_emulator.domain.errors import GatewayError
from payletter_emulator.storage import Storage
from payletter_emulator.storage.pg_sessions import POOL_SIZE, open_connections

from .conftest import until


@pytest.fixture
def url(postgres_server) -> str:
    return postgres_server.new_database()


def test_storages_of_many_schemas_share_the_pool_each_in_its_own_schema(url):
    root = Storage(url)
    sandboxes = [Storage(url, schema=f"sb{index:02d}") for index in range(20)]
    # and a second storage for each, as an emulator has for its callback senders (instance.py)
    senders = [Storage(url, schema=schema) for schema in (None, *(f"sb{index:02d}" for index in range(20)))]
    try:
        assert open_connections(url) == POOL_SIZE
        for index, storage in enumerate(sandboxes):
            for _ in range(index + 1):
                storage.next_value("serial")
        root.next_value("serial")
        assert [storage.next_value("serial") for storage in sandboxes] == list(range(2, 22))
        assert root.next_value("serial") == 2
    finally:
        for storage in (root, *sandboxes, *senders):
            storage.close()
    assert open_connections(url) == 0  # the last storage closed the pool


def test_a_transaction_of_one_schema_holds_off_another_schemas_statements(url):
    one, other = Storage(url, schema="one"), Storage(url, schema="other")
    try:
        assert one._db.connection._session is other._db.connection._session  # the same connection
        read = []
        with one.atomic():
            one.next_value("serial")
            reader = threading.Thread(target=lambda: read.append(other.next_value("serial")))
            reader.start()
            reader.join(0.3)
            assert reader.is_alive() and read == []  # it waits for the transaction, not joins it
            with pytest.raises(RuntimeError, match="inside a transaction"):  # this thread would join it
                other.next_value("serial")
        reader.join(10)
        assert read == [1] and one.next_value("serial") == 2
    finally:
        one.close()
        other.close()


def test_news_leave_when_the_change_commits_and_never_when_it_rolls_back(url):
    storage, writer = Storage(url), Storage(url)
    told = []
    storage.on_news(told.append)
    try:
        until(storage.hears_every_change, what="listening")
        before = storage.shared_generation()
        with pytest.raises(ZeroDivisionError):
            with writer.atomic():
                writer.save_clock_state(ClockState(offset=60.0))
                1 / 0
        writer.add_job(0, "expire", {"tid": "t"}, origin="test")  # a committed change
        until(lambda: "jobs" in told, what="the news of the job")
        assert "clock" not in told  # the rolled-back one was never told
        assert storage.shared_generation() != before
    finally:
        storage.close()
        writer.close()


def test_a_lost_listening_connection_listens_again_and_nothing_is_missed(url):
    storage = Storage(url)
    try:
        until(storage.hears_every_change, what="listening")
        heard = storage.shared_generation()
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = 'payletter-emulator news' AND datname = current_database()")
            # Meanwhile another host moves the clock: the news may never reach this process.
            admin.execute("""UPDATE clock SET "offset" = 3600""")
        until(lambda: not storage.hears_every_change() or storage.shared_generation() != heard,
              what="the lost connection noticed")
        until(storage.hears_every_change, what="listening again")
        assert storage.shared_generation() != heard  # what changed while deaf is read again
    finally:
        storage.close()


def test_a_shared_connection_killed_under_its_storages_is_made_again_at_the_next_statement(url):
    root, sandbox = Storage(url), Storage(url, schema="sb")
    try:
        root.next_value("serial")
        sandbox.next_value("serial")
        with psycopg.connect(url, autocommit=True) as admin:
            killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                                   "current_database() AND pid <> pg_backend_pid() AND application_name <> "
                                   "'payletter-emulator news'").fetchall()
        assert killed
        with pytest.raises(GatewayError) as found:  # the statement that finds it dead: 503, not a 500
            root.next_value("serial")
        assert found.value.kind == "database_unreachable"
        assert (root.next_value("serial"), sandbox.next_value("serial")) == (2, 2)  # each in its schema again
    finally:
        root.close()
        sandbox.close()
