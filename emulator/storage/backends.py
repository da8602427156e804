"""The two databases the storage module speaks to: SQLite (a file, or memory) and PostgreSQL
(`postgresql://...`, for deployments shared by several hosts). Each gives the storage module
the same small surface: execute with `?` placeholders, rows readable by name and by index,
write transactions (begin, commit, rollback), and what a failure of the database means to a
request. SQLite's writers take turns (BEGIN IMMEDIATE); PostgreSQL's lock only the rows they
change, a transaction's statements travel together (held, per thread, until a result is read or
it commits, then sent at once: prepared, in libpq's pipeline, or as one query; the connection is
taken from that first round trip to the transaction's end), and a connection that broke is made
again at its next use."""
from __future__ import annotations

import mmap
import os
import re
import sqlite3
import threading
import time

from ..domain.errors import GatewayError
from ..waits import LOCK_WAIT, RERUN, Busy, on_lock
from . import pg_news, pg_sessions
from .board import SIZE, Board
from .capabilities import why_unfit

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# A SQLite database is these files: the database, SQLite's write-ahead log, its shared memory, its
# rollback journal, and the emulator's page of memory (`<db>-lock`, storage/board.py).
SQLITE_FILES = ("", "-wal", "-shm", "-journal", "-lock")
_SCHEMA_LOCK = 7_420_611_002  # held while one process makes the tables (7_420_611_001 was the writers' lock)
WRITER_GRACE = 5.0  # seconds a checkpoint at the stop waits for a writer still at work
# Seconds a write in a run of a request that may give up (waits.attempt) waits for a lock first:
# another emulator process's writes are that short; a lock held longer is another program's.
BUSY_WAIT = 0.01
# A PostgreSQL connection that could not be made is not tried again for this long: requests
# meanwhile are refused at once (503), and a server back is found within it.
RECONNECT_PAUSE = 0.5
CONNECT_TIMEOUT = 3  # seconds a new PostgreSQL connection may take, unless the URL says (connect_timeout)
# SQLSTATEs: the connection is gone (class 08) or the server is stopping or starting (57P01-57P03);
# a transaction ended by a conflict with another (serialization failure, deadlock); a lock not had.
_UNREACHABLE = ("08", "57P01", "57P02", "57P03")
# A write statement (with the types of its values) held this often by one storage is prepared on its
# connection (storage/pg_pipeline.py), before a transaction's first statement leaves; one seen once
# is not. Prepared, a transaction's statements go in one pipeline.
PREPARE_AFTER = 2
_COMMANDS = {"BEGIN": b"BEGIN", "COMMIT": b"COMMIT"}
_CONFLICTS = ("40001", "40P01")
# A statement prepared on the connection was not there (someone said DEALLOCATE ALL): the transaction
# has failed, nothing of it kept, and it is run again as after a conflict (the statements prepared anew).
_STATEMENT_GONE = "26000"
_LOCK_NOT_AVAILABLE = "55P03"


def locked(mode: str | None) -> BaseException:
    """What a write that found the database locked by another process raises, having changed
    nothing: waits.Busy for a request run again later (RERUN), else the gateway's 503."""
    if mode == RERUN:
        return Busy()
    return GatewayError("database_locked", seconds=LOCK_WAIT)


def conflict(mode: str | None, reason: str) -> BaseException:
    """What a transaction PostgreSQL ended in a conflict with another (a deadlock, a serialization
    failure) raises, having changed nothing: waits.Busy, so that the request (and so the whole
    transaction) is run again after a pause, or the gateway's 503 where it cannot be."""
    if mode == RERUN:
        return Busy()
    return GatewayError("database_conflict", reason=reason)


def _first_line(error: BaseException) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


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
    for_update = ""  # one writer at a time: what a transaction has read stays as it read it
    news = None  # processes on one file tell each other through its page of memory (`board`)
    shard = 0  # one writer at a time: a count's row is never waited for by another process's

    def __init__(self, path: str):
        self.lock = threading.RLock()  # the storage's, held for a statement or a whole transaction
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

    @staticmethod
    def row_when_read(cursor):
        """A function that gives the statement's (first) row: read now, as SQLite has no round
        trip to save and a statement left unread would hold up the COMMIT."""
        row = cursor.fetchone()
        return lambda: row

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

    def commit(self) -> None:
        self.connection.execute("COMMIT")

    def rollback(self) -> None:
        self.connection.execute("ROLLBACK")

    @staticmethod
    def problem() -> str | None:
        """A file is always there to be read (what else goes wrong with it is an error of its own)."""
        return None

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
    return _named([column.name for column in cursor.description or ()])


def _named(names: list[str]):
    return lambda values: Row(zip(names, values))


def _refuse_if_unfit(connection, close) -> None:
    """Before any table is made: CockroachDB, YugabyteDB or a PostgreSQL too old is refused
    (`close()` called first)."""
    reason = why_unfit(connection.execute("SELECT version()").fetchone()[0])
    if reason is not None:
        where = f"{connection.info.host}:{connection.info.port}/{connection.info.dbname}"
        close()
        raise UnfitDatabase(f"cannot use the database at {where}: {reason}")


class _Unlocked:
    """The storage's lock on PostgreSQL: nothing to hold. The backend takes its connection itself,
    for a statement, or from a transaction's first round trip to its end (Postgres._send), so a
    request thread builds its statements and its answer while another thread's go to the server."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass

    def __enter__(self) -> bool:
        return True

    def __exit__(self, *exc) -> None:
        pass


class _Work(threading.local):
    """A thread's transaction on a Postgres storage: its statements held (None: no transaction), its
    waits.on_lock() mode, and whether it holds the connection (from its first round trip)."""

    held: list[_Held] | None = None
    mode: str | None = None
    sent = False


class Postgres:
    """A view of one of the process's connections (storage/pg_sessions.py), in autocommit: a read
    outside a transaction is one statement. A write transaction's statements are held, per thread,
    and sent together when a result is read or at COMMIT, so it waits for the server once per
    result it reads, and once more to commit: in libpq's pipeline, each statement prepared on the
    connection, where each is prepared (storage/pg_pipeline.py; their rows read by psycopg's
    loaders); else as one query (client-side binding: psycopg's ClientCursor). The connection is
    taken at the transaction's first round trip and given back at its end: a transaction sent
    whole with its COMMIT holds it for that round trip alone. No lock is taken on the server but
    the rows a transaction changes or reads to change (`for_update`). A connection that broke (the
    server restarted, the network cut) is made again at the next use."""

    name = "postgresql"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    for_update = " FOR UPDATE"
    board = None  # processes on other hosts share nothing but the database

    def __init__(self, url: str, schema: str | None = None):
        try:
            import psycopg
            from psycopg.conninfo import conninfo_to_dict
            from psycopg.rows import tuple_row
        except ImportError:
            raise DriverMissing("a postgresql:// database needs psycopg, which is not installed: "
                                "pip install 'payletter-emulator[postgres]'") from None
        self._psycopg, self._tuple_row = psycopg, tuple_row
        self._idle = psycopg.pq.TransactionStatus.IDLE
        self._url, self._schema = url, schema
        self._options = {} if "connect_timeout" in conninfo_to_dict(url) else {"connect_timeout": CONNECT_TIMEOUT}
        self.news: pg_news.Hearing | None = None  # once the tables are made
        self._sql: dict[str, str] = {}
        self._pipeline = None  # storage/pg_pipeline.py, where libpq has a pipeline mode (14 and later)
        if psycopg.Pipeline.is_supported():
            from . import pg_pipeline

            self._pipeline = pg_pipeline
        self._loaders: dict = {}  # a column type's psycopg loader, for the rows a pipeline gives
        # (statement, its values' types): how often a transaction held it (once prepared, a new
        # connection prepares it at its first use); those to prepare before the next transaction;
        # those PostgreSQL refused to prepare.
        self._seen: dict[tuple[str, tuple[int, ...]], int] = {}
        self._due: set[tuple[str, tuple[int, ...]]] = set()
        self._refused: set[tuple[str, tuple[int, ...]]] = set()
        self._work = _Work()  # each thread's transaction
        self._retry_at = 0.0  # no new connection is tried before this (time.monotonic())
        self._why = ""  # why the last connection could not be made, or broke
        self._lock_timeout = 0.0  # PostgreSQL's default: a statement waits for a lock as long as it is held
        self.connection = self._connect()  # at start, psycopg's own error: `serve` says it in one line
        self.lock = _Unlocked()

    @property
    def shard(self) -> int:
        """The coverage row a count of this connection's transactions adds to (storage/schema.py):
        no two connections' transactions wait for one row."""
        return self.connection.shard

    def _connect(self):
        """A view of one of the process's few connections, shared with every other storage
        (storage/pg_sessions.py): a hundred sandboxes add no connection."""
        connection = pg_sessions.connect(self._url, self._schema, row_factory=_rows, **self._options)
        try:
            _refuse_if_unfit(connection, connection.close)
            if self._schema is not None:
                connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
                connection.execute(f'SET search_path TO "{self._schema}"')  # said again on a new connection
        except BaseException:
            connection.close()
            raise
        return connection

    def _live(self):
        """The connection; a new one if it broke (the view makes it, with this storage's settings),
        tried at once and then at most every RECONNECT_PAUSE seconds while the server cannot be
        reached (503 meanwhile)."""
        connection = self.connection
        if not connection.closed:
            return connection
        now = time.monotonic()
        if now < self._retry_at:
            raise GatewayError("database_unreachable", reason=self._why)
        try:
            connection.reopen()
            # every time: a name may lead to another server after a failover
            _refuse_if_unfit(connection, connection.drop)
        except self._psycopg.OperationalError as error:
            self._retry_at, self._why = now + RECONNECT_PAUSE, _first_line(error)
            connection.drop()
            raise GatewayError("database_unreachable", reason=self._why) from None
        return connection

    def _failure(self, error: Exception, mode: str | None) -> Exception:
        """What an error of the driver means to a request: the database unreachable (the
        connection is dropped, to be made again), a lock not had, a conflict; else itself."""
        state = getattr(error, "sqlstate", None) or ""
        if self.connection.closed or state.startswith(_UNREACHABLE):
            self._why = _first_line(error)
            self.connection.drop()
            return GatewayError("database_unreachable", reason=self._why)
        if state == _LOCK_NOT_AVAILABLE:  # a row another transaction holds (lock_timeout, `begin`)
            return locked(mode)
        if state in _CONFLICTS or state == _STATEMENT_GONE:
            return conflict(mode, _first_line(error))
        return error

    def _outside(self, run):
        """`run(connection)` outside a transaction, where the storage only reads (and makes its
        tables): once more on a new connection if the one it had broke under it."""
        psycopg = self._psycopg
        try:
            return run(self._live())
        except psycopg.Error as error:
            if not self.connection.closed:
                raise self._failure(error, on_lock()) from None
        try:
            return run(self._live())
        except psycopg.Error as error:
            raise self._failure(error, on_lock()) from None

    def drop_schema(self, schema: str) -> None:
        self._outside(lambda connection: connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))

    def _translated(self, sql: str) -> str:
        translated = self._sql.get(sql)
        if translated is None:
            translated = self._sql[sql] = sql.replace("%", "%%").replace("?", "%s")
        return translated

    def execute(self, sql: str, args=()):
        sql = self._translated(sql)
        work = self._work
        if work.held is None:
            return self._outside(lambda connection: connection.execute(sql, tuple(args)))
        held = _Held(self, sql, args)
        work.held.append(held)
        return held

    def tuples(self, sql: str, args=()) -> list[tuple]:
        if self._work.held is not None:
            held = self.execute(sql, args)
            held.factory = self._tuple_row
            return held.fetchall()
        sql, args = self._translated(sql), tuple(args)
        return self._outside(lambda connection: connection.cursor(row_factory=self._tuple_row).execute(
            sql, args).fetchall())

    def executemany(self, sql: str, rows: list) -> None:
        for row in rows:
            self.execute(sql, row)

    @staticmethod
    def row_when_read(held):
        """A function that gives the statement's (first) row, read when it is called: until then
        (or until a later result is read, or COMMIT) the statement stays held, and travels with
        the rest of the transaction."""
        return held.fetchone

    @staticmethod
    def ddl(text: str) -> str:
        """SQLite's declarations in PostgreSQL's types (tokens and epoch milliseconds need 64 bits)."""
        text = re.sub(r"\bid INTEGER PRIMARY KEY", "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", text)
        text = re.sub(r"\bINTEGER\b", "BIGINT", text)
        return re.sub(r"\bREAL\b", "DOUBLE PRECISION", text)

    def create(self, schema: str) -> None:
        """The same tables as SQLite's, and the triggers that tell other processes what changed
        (storage/pg_news.py); one process at a time creates them."""
        connection = self._live()
        connection.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
        try:
            for statement in filter(str.strip, self.ddl(schema).split(";")):
                connection.execute(statement)
            told = pg_news.install(connection)
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
        if self.news is None:
            self.news = pg_news.hear(self._url, told)

    def columns(self, table: str) -> set[str]:
        rows = self._outside(lambda connection: connection.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s", (table,)).fetchall())
        return {row["column_name"] for row in rows}

    def begin(self, exclusive: bool, mode: str | None = None) -> bool:
        """BEGIN, held (for this thread): it leaves with the transaction's first statement sent.
        No lock is taken here (`exclusive` means nothing to PostgreSQL): each statement locks the
        rows it changes."""
        self._live()  # a connection that broke is made again before the transaction, not within it
        work = self._work
        work.held, work.mode, work.sent = [_Held(self, "BEGIN", ())], mode, False
        return True

    def _take(self, work: _Work) -> None:
        """The connection taken for the rest of the transaction (its first round trip is due),
        with the transaction's `lock_timeout`: a lock another transaction holds is waited for
        BUSY_WAIT at most in a run of a request that may give up (`mode`, waits.attempt),
        LOCK_WAIT otherwise, since the wait holds the connection this process's storages share;
        then `locked` is raised."""
        self.connection.lock.acquire()
        work.sent = True
        wait = BUSY_WAIT if work.mode is not None else LOCK_WAIT
        if wait != self._lock_timeout:  # set outside the transaction, so that a rollback keeps it
            self.connection.execute(f"SET lock_timeout = {round(wait * 1000)}")
            self._lock_timeout = wait

    def _give_back(self, work: _Work) -> None:
        work.held = None
        if work.sent:
            work.sent = False
            self.connection.lock.release()

    def _send(self) -> None:
        """Every statement held, sent at once (one round trip), each given its result; the first
        to fail fails them all, and what that means is raised. In a pipeline of prepared
        statements if each is prepared (or is now), else as one query."""
        work = self._work
        held = work.held
        if not held:  # nothing held, or no transaction (a result read after it ended: it has one)
            return
        work.held = []
        try:
            if not work.sent:
                self._take(work)
            with self.connection.taken() as connection:
                pipeline = self._pipeline and self._pipelined(held, connection)
                if pipeline and self._ran(held, pipeline, connection):
                    return
            with self.connection.client_cursor() as sender:
                sender.execute("; ".join(statement.sql for statement in held),
                               [value for statement in held for value in statement.args])
                for statement in held:  # one result each, in order
                    statement.count = sender.rowcount
                    if sender.description is not None:
                        sender.row_factory = statement.factory
                        statement.rows = sender.fetchall()
                    sender.nextset()
        except self._psycopg.Error as error:
            raise self._failure(error, work.mode) from None

    def _ran(self, held: list[_Held], pipeline: list, connection) -> bool:
        """The statements held, run in one pipeline, each given its result; False if they are to
        go as one query instead, as they can: a statement prepared on the connection was gone (the
        connection's prepared statements are forgotten), and nothing of the transaction had been
        run before. Then nothing of it was kept (it is rolled back)."""
        try:
            results = self._pipeline.run(connection.pgconn, pipeline, connection.info.encoding)
        except self._psycopg.errors.InvalidSqlStatementName:
            self.connection.prepared().clear()
            if held[0].sql != "BEGIN":
                raise
            connection.execute("ROLLBACK")
            return False
        pipeline = self._pipeline
        for statement, result in zip(held, results):
            count = result.command_tuples
            statement.count = -1 if count is None else count
            if result.nfields:  # a query, a RETURNING: its rows as the cursor would read them
                make_row = tuple if statement.factory is self._tuple_row else _named(pipeline.names(result))
                statement.rows = pipeline.rows(result, connection, self._loaders, make_row)
        return True

    def _pipelined(self, held: list[_Held], connection) -> list | None:
        """What storage/pg_pipeline.py's `run` takes for the statements held, or None if one
        has a value it does not send, or is not prepared on the connection. Before a
        transaction's first statement leaves, those held often enough are prepared first (and
        those seen often enough in an earlier transaction's later statements)."""
        if connection.info.encoding != "utf-8":  # the values are sent as UTF-8
            return None
        outside = held[0].sql == "BEGIN"  # nothing of the transaction sent yet: the connection is outside one
        if outside and self._due:
            due, self._due = self._due, set()
            for key in due:
                self._prepared_as(key, connection)
        pipeline, complete = [], True
        for statement in held:
            sql = statement.sql
            command = _COMMANDS.get(sql)
            if command is not None:
                pipeline.append((None, command))
                continue
            converted = self._pipeline.values(statement.args)
            if converted is None:
                return None
            types, texts = converted
            key = (sql, types)
            name = self.connection.prepared().get(key)
            if name is None and key not in self._refused:
                seen = self._seen[key] = self._seen.get(key, 0) + 1
                if seen >= PREPARE_AFTER:
                    if outside:
                        name = self._prepared_as(key, connection)
                    else:
                        self._due.add(key)
            complete = complete and name is not None
            pipeline.append((name, texts))
        return pipeline if complete else None

    def _prepared_as(self, key: tuple[str, tuple[int, ...]], connection) -> bytes | None:
        """The statement of `key` prepared on the connection (outside a transaction); its name, or
        None if it was not: PostgreSQL's no (a value's type it cannot tell) is never asked again."""
        prepared = self.connection.prepared()
        name = prepared.get(key)
        if name is not None:
            return name
        name = self.connection.new_name()
        sql, types = key
        try:
            self._pipeline.prepare(connection.pgconn, name, self._pipeline.numbered(sql), types,
                                   connection.info.encoding)
        except self._psycopg.Error as error:
            state = getattr(error, "sqlstate", None) or ""
            if connection.closed or state.startswith(_UNREACHABLE):
                raise
            if state.startswith("42"):  # a syntax error or access rule violation: it never will be
                self._refused.add(key)
            return None
        prepared[key] = name
        return name

    def commit(self) -> None:
        """COMMIT, sent with whatever is held. If it fails (a lock not had, the connection lost)
        the transaction is rolled back and what the failure means is raised: a connection lost
        at COMMIT may have committed, so that request is not run again."""
        work = self._work
        work.held.append(_Held(self, "COMMIT", ()))
        try:
            self._send()
        except BaseException:
            self.rollback()
            raise
        self._give_back(work)

    def rollback(self) -> None:
        """ROLLBACK, if any of the transaction reached the server (else the held statements are
        dropped: nothing to undo); never raises: on a broken connection the transaction is gone
        with it. The connection is given back."""
        work = self._work
        if not work.sent:
            work.held = None
            return
        connection = self.connection
        try:
            if not connection.closed and connection.info.transaction_status != self._idle:
                connection.execute("ROLLBACK")
        except self._psycopg.Error:
            connection.drop()  # in no state to be used again: made anew at the next use
        finally:
            self._give_back(work)

    def problem(self) -> str | None:
        """Why the database cannot be used now, or None: one round trip (on a new connection if
        the last one broke)."""
        try:
            self._outside(lambda connection: connection.execute("SELECT 1"))
        except GatewayError as error:
            if error.kind != "database_unreachable":
                raise
            return self._why
        return None

    def close(self) -> None:
        if self.news is not None:
            self.news.close()
        self.connection.close()


class _Held:
    """A statement of a transaction, held until a result of it (or of one after it) is read, or
    the transaction commits: then it is sent with every other statement held (Postgres._send)."""

    __slots__ = ("backend", "sql", "args", "factory", "rows", "count")

    def __init__(self, backend: Postgres, sql: str, args):
        self.backend = backend
        self.sql = sql
        self.args = tuple(args)
        self.factory = _rows
        self.rows: list | None = None
        self.count: int | None = None

    def _answered(self) -> None:
        if self.count is None:
            self.backend._send()

    def fetchone(self):
        self._answered()
        return self.rows.pop(0) if self.rows else None

    def fetchall(self) -> list:
        self._answered()
        rows, self.rows = self.rows or [], []
        return rows

    def __iter__(self):
        return iter(self.fetchall())

    @property
    def rowcount(self) -> int:
        self._answered()
        return self.count
