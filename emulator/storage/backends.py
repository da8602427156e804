"""The two databases the storage module speaks to: SQLite (a file, or memory) and PostgreSQL
(`postgresql://...`, for deployments shared by several hosts). Each gives the storage module
the same small surface: execute with `?` placeholders, rows readable by name and by index,
and write transactions that exclude each other as SQLite's do."""
from __future__ import annotations

import mmap
import os
import re
import sqlite3
import threading

from ..domain.errors import GatewayError
from ..waits import LOCK_WAIT, RERUN, Busy, on_lock
from . import pg_news, pg_sessions
from .board import SIZE, Board
from .capabilities import why_unfit

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# A SQLite database is these files: the database, SQLite's write-ahead log, its shared memory, its
# rollback journal, and the emulator's page of memory (`<db>-lock`, storage/board.py).
SQLITE_FILES = ("", "-wal", "-shm", "-journal", "-lock")
# Every write transaction takes this lock, so writers take turns as in SQLite; claims of
# callbacks do not: they lock only the rows they take (FOR UPDATE SKIP LOCKED).
_WRITER_LOCK = 7_420_611_001
_SCHEMA_LOCK = 7_420_611_002
WRITER_GRACE = 5.0  # seconds a checkpoint at the stop waits for a writer still at work
# Seconds a write in a run of a request that may give up (waits.attempt) waits for a lock first:
# another emulator process's writes are that short; a lock held longer is another program's.
BUSY_WAIT = 0.01


def locked(mode: str | None) -> BaseException:
    """What a write that found the database locked by another process raises, having changed
    nothing: waits.Busy for a request run again later (RERUN), else the gateway's 503."""
    if mode == RERUN:
        return Busy()
    return GatewayError("database_locked", seconds=LOCK_WAIT)


class DriverMissing(RuntimeError):
    """The database's driver is not installed; the message says what to install."""


class UnfitDatabase(DriverMissing):
    """A server that speaks PostgreSQL's protocol but is not one the emulator runs on
    (storage/capabilities.py): refused in one line like a missing driver, saying what to use."""


def connect(target: str, schema: str | None = None):
    """`schema` (PostgreSQL only) keeps a sandbox's tables apart in the same database."""
    return Postgres(target, schema) if target.startswith(POSTGRES_SCHEMES) else SQLite(target)


class SQLite:
    name = "sqlite"
    skip_locked = ""
    news = None  # processes on one file tell each other through its page of memory (`board`)

    def __init__(self, path: str):
        self.lock = threading.RLock()  # the storage's, held for a statement or a transaction
        self.connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self.connection.row_factory = sqlite3.Row
        self.connection.execute("PRAGMA busy_timeout = 30000")
        self._page = None
        self.board = Board(bytearray(SIZE))  # one process's own database (memory): a page of its own
        if path != ":memory:":
            # Set once, by `serve` before any worker starts (emulator/startup.py): switching a
            # fresh file to WAL takes a lock that a second process switching at once may be refused.
            if self.connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self.connection.execute("PRAGMA journal_mode = WAL")
            # No fsync: what the emulator promises survives a killed process (the data is with
            # the OS); only a machine crash could lose the last commits.
            self.connection.execute("PRAGMA synchronous = OFF")
            # The first page of `<db>-lock`, mapped by every process (emulator/storage/board.py). Writers
            # take turns with SQLite's own lock (BEGIN IMMEDIATE); a flock queue in front of it
            # was measured and dropped (benchmarks/RESULTS.md, issue 14).
            self._page = os.open(f"{path}-lock", os.O_RDWR | os.O_CREAT, 0o644)
            if os.fstat(self._page).st_size < SIZE:
                os.ftruncate(self._page, SIZE)
            self.board = Board(mmap.mmap(self._page, SIZE))

    def execute(self, sql: str, args=()):
        return self.connection.execute(sql, args)

    def tuples(self, sql: str, args=()) -> list[tuple]:
        """Every row as a plain tuple: a long list is read faster than as sqlite3.Row."""
        cursor = self.connection.cursor()
        cursor.row_factory = None
        return cursor.execute(sql, args).fetchall()

    def executemany(self, sql: str, rows: list) -> None:
        self.connection.executemany(sql, rows)

    def create(self, schema: str) -> None:
        self.connection.executescript(schema)

    def columns(self, table: str) -> set[str]:
        return {row["name"] for row in self.connection.execute(f"PRAGMA table_info({table})")}

    @staticmethod
    def ddl(text: str) -> str:
        return text

    def begin(self, exclusive: bool, mode: str | None = None) -> bool:
        """BEGIN IMMEDIATE (either way: SQLite has one writer at a time, and a claim is a write);
        False at once, with no transaction, while another connection writes. The caller waits
        and tries again (storage/connection.py): SQLite's busy handler would sleep a
        millisecond or more at its first retry, holding up every thread of the process that
        waits for this connection meanwhile."""
        connection = self.connection
        if self._page is None:  # :memory:, this connection's alone
            connection.execute("BEGIN IMMEDIATE")
            return True
        connection.execute("PRAGMA busy_timeout = 0")
        try:
            connection.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            return False
        finally:
            connection.execute("PRAGMA busy_timeout = 30000")

    def end(self) -> None:
        """After COMMIT or ROLLBACK: nothing to release (SQLite's lock ends with the transaction)."""

    def close(self) -> None:
        self.connection.close()
        if isinstance(self.board.memory, mmap.mmap):
            self.board.memory.close()
        if self._page is not None:
            os.close(self._page)
            self._page = None


def checkpoint(path: str) -> None:
    """A SQLite file made whole: every page of its write-ahead log (`-wal`) written into the file,
    and the log emptied, so that the file alone holds every commit (a copy of it, a CI artifact).
    Waits for a writer still at work, at most WRITER_GRACE seconds."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=WRITER_GRACE)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        connection.close()


class Row(dict):
    """A PostgreSQL row as sqlite3.Row reads: by column name, or by position."""

    def __getitem__(self, key):
        if isinstance(key, int):
            return list(self.values())[key]
        return super().__getitem__(key)


def _rows(cursor):
    names = [column.name for column in cursor.description or ()]
    return lambda values: Row(zip(names, values))


def _refuse_if_unfit(connection) -> None:
    """Before any table is made: CockroachDB, YugabyteDB or a PostgreSQL too old is refused."""
    reason = why_unfit(connection.execute("SELECT version()").fetchone()[0])
    if reason is not None:
        where = f"{connection.info.host}:{connection.info.port}/{connection.info.dbname}"
        connection.close()
        raise UnfitDatabase(f"cannot use the database at {where}: {reason}")


class Postgres:
    name = "postgresql"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    board = None  # processes on other hosts share nothing but the database

    def __init__(self, url: str, schema: str | None = None):
        try:
            import psycopg
        except ImportError:
            raise DriverMissing("a postgresql:// database needs psycopg, which is not installed: "
                                "pip install 'payletter-emulator[postgres]'") from None
        # One of the process's few connections, shared with every other storage (storage/pg_sessions.py)
        self.connection = pg_sessions.connect(url, schema, row_factory=_rows)
        self.lock = self.connection.lock
        self.url = url
        self.news: pg_news.Hearing | None = None  # once the tables are made
        _refuse_if_unfit(self.connection)
        self._lock_not_available = psycopg.errors.LockNotAvailable
        self._lock_timeout = 0.0  # PostgreSQL's default: a statement waits for a lock as long as it is held
        if schema is not None:
            self.connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            self.connection.execute(f'SET search_path TO "{schema}"')
        self._sql: dict[str, str] = {}

    def drop_schema(self, schema: str) -> None:
        self.connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def _translated(self, sql: str) -> str:
        translated = self._sql.get(sql)
        if translated is None:
            translated = self._sql[sql] = sql.replace("%", "%%").replace("?", "%s")
        return translated

    def execute(self, sql: str, args=()):
        try:
            return self.connection.execute(self._translated(sql), tuple(args))
        except self._lock_not_available:  # a row another program has locked (lock_timeout, `begin`)
            raise locked(on_lock()) from None

    def tuples(self, sql: str, args=()) -> list[tuple]:
        from psycopg.rows import tuple_row

        cursor = self.connection.cursor(row_factory=tuple_row)
        return cursor.execute(self._translated(sql), tuple(args)).fetchall()

    def executemany(self, sql: str, rows: list) -> None:
        for row in rows:
            self.execute(sql, row)

    @staticmethod
    def ddl(text: str) -> str:
        """SQLite's declarations in PostgreSQL's types (tokens and epoch milliseconds need 64 bits)."""
        text = re.sub(r"\bid INTEGER PRIMARY KEY", "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", text)
        text = re.sub(r"\bINTEGER\b", "BIGINT", text)
        return re.sub(r"\bREAL\b", "DOUBLE PRECISION", text)

    def create(self, schema: str) -> None:
        """The same tables as SQLite's, and the triggers that tell other processes what changed
        (storage/pg_news.py); one process at a time creates them."""
        self.connection.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
        try:
            for statement in filter(str.strip, self.ddl(schema).split(";")):
                self.connection.execute(statement)
            told = pg_news.install(self.connection)
        finally:
            self.connection.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
        if self.news is None:
            self.news = pg_news.hear(self.url, told)

    def columns(self, table: str) -> set[str]:
        rows = self.connection.execute("SELECT column_name FROM information_schema.columns "
                                       "WHERE table_schema = current_schema() AND table_name = %s", (table,))
        return {row["column_name"] for row in rows}

    def begin(self, exclusive: bool, mode: str | None = None) -> bool:
        """BEGIN, and the writers' lock for an exclusive transaction. Every lock the transaction
        waits for (that one, a row another program has locked) is waited for BUSY_WAIT at most in
        a run of a request that may give up (`mode`, waits.attempt), LOCK_WAIT otherwise, since
        the wait holds this process's one connection; then `locked` is raised."""
        wait = BUSY_WAIT if mode is not None else LOCK_WAIT
        if wait != self._lock_timeout:  # set outside the transaction, so that a rollback keeps it
            self.connection.execute(f"SET lock_timeout = {round(wait * 1000)}")
            self._lock_timeout = wait
        self.connection.execute("BEGIN")
        if exclusive:
            try:
                self.connection.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITER_LOCK,))
            except self._lock_not_available:
                self.connection.execute("ROLLBACK")
                raise locked(mode) from None
        return True

    def end(self) -> None:
        """The advisory lock ends with the transaction."""

    def close(self) -> None:
        if self.news is not None:
            self.news.close()
        self.connection.close()
