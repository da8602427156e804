"""One process's connections to a PostgreSQL database, shared by every storage that speaks to it
(the root's and each sandbox's, a schema each): a pool of POOL_SIZE real connections, each
storage a view of one of them with session settings of its own (its `search_path`, its
`lock_timeout`), put back in place whenever it takes the connection. A hundred sandboxes cost no
connection more than none. A connection also keeps the statements prepared on it
(storage/pg_pipeline.py), which a new connection has to have prepared again."""
from __future__ import annotations

import itertools
import os
import random
import re
import threading
from collections import Counter
from contextlib import contextmanager

# A storage and its callback senders' storage (instance.py) are views of one schema opened one
# after the other: they go to different connections, so a request never waits behind a sender.
POOL_SIZE = 2
# The coverage rows a connection's transactions add to are its own (storage/schema.py), one of this
# many: a process's connections take the ones after a number it draws, so two connections of one
# process never share one, and two of different processes or hosts only by chance (then they wait for
# each other's COMMIT, as every request once waited for one row); the rows stay bounded.
COVERAGE_SHARDS = 256
# A statement that changes a setting for the rest of the session (not SET LOCAL, SET TRANSACTION...):
# it is the view's own, and is said again whenever the view takes the connection back.
_SESSION_SETTING = re.compile(r"\s*SET\s+(?:SESSION\s+)?(?!LOCAL\b|TRANSACTION\b|CONSTRAINTS\b|SESSION\b)([\w.]+)",
                              re.IGNORECASE)
# (process, database URL): a forked process opens its own. A pool is kept once made, with the lock of
# each of its connections: a storage's backend takes its connection's lock for a statement, or from a
# transaction's first round trip to its end (backends.py).
_POOLS: dict[tuple[int, str], _Pool] = {}
_POOLS_LOCK = threading.Lock()


class _Session:
    """A real connection, and the lock a view holds over it for a statement or a transaction."""

    def __init__(self, url: str, shard: int, row_factory, options: dict):
        self.url, self.row_factory, self.options = url, row_factory, options
        self.lock = threading.RLock()
        self.shard = shard
        self.current: View | None = None  # whose settings are in place
        self.schemas: Counter = Counter()  # the schemas of the views open on it
        self.connection = self._connect()
        self.client = None  # a ClientCursor of `connection`, made at its first use (View.client_cursor)
        # (statement, its values' types): the name it is prepared under on `connection`, for every
        # view of it (PostgreSQL parses it again for a view whose search_path differs).
        self.prepared: dict[tuple[str, tuple[int, ...]], bytes] = {}
        self._names = itertools.count(1)

    def _connect(self):
        import psycopg

        # psycopg prepares nothing itself: it would DEALLOCATE ALL when it sees a ROLLBACK or a DROP
        # go by, and with its statements the storages' own (`prepared`).
        return psycopg.connect(self.url, autocommit=True, row_factory=self.row_factory, prepare_threshold=None,
                               **self.options)

    def live(self):
        """The connection; a new one (the caller holds the lock) if it broke or was closed: the
        server restarted, or a view closed it on an error that said so. Its views' settings are
        said again on it."""
        if self.connection.closed:
            self.connection = self._connect()
            self.current = None
            self.prepared = {}  # what the last connection had prepared went with it
        return self.connection

    def next_name(self) -> bytes:
        return f"payletter_{next(self._names)}".encode()


class _Pool:
    def __init__(self, url: str):
        self.url = url
        self.sessions: list[_Session] = []
        self.first_shard = random.randrange(COVERAGE_SHARDS)

    def session_for(self, schema: str | None, row_factory, options: dict) -> _Session:
        """The first connection with no view of `schema` yet (a new one while the pool has room),
        else the one with the fewest."""
        free = next((session for session in self.sessions if not session.schemas[schema]), None)
        if free is None and len(self.sessions) < POOL_SIZE:
            shard = (self.first_shard + len(self.sessions)) % COVERAGE_SHARDS
            free = _Session(self.url, shard, row_factory, options)
            self.sessions.append(free)
        return free or min(self.sessions, key=lambda session: session.schemas[schema])

    def in_use(self) -> bool:
        return any(+session.schemas for session in self.sessions)


def connect(url: str, schema: str | None = None, row_factory=None, **options) -> View:
    """A view, for a storage in `schema` (None: the database's own search path), of one of this
    process's connections to `url` (`options`: psycopg.connect's, for a connection made now or later)."""
    with _POOLS_LOCK:
        key = (os.getpid(), url)
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = _Pool(url)
        session = pool.session_for(schema, row_factory, options)
        session.schemas[schema] += 1
        return View(key, session, schema)


def open_connections(url: str) -> int:
    """How many connections to `url` this process holds for its storages (its listener aside)."""
    pool = _POOLS.get((os.getpid(), url))
    return 0 if pool is None else sum(not session.connection.closed for session in pool.sessions)


class View:
    """What the PostgreSQL backend (backends.py) uses as its connection: `execute`, `cursor`,
    `client_cursor`, `taken`, `prepared`, `new_name`, `info`, `closed`, `reopen`, `drop`, `close`.
    Each statement runs under the connection's lock (`lock`, which the backend holds from a
    transaction's first round trip to its end) with this view's settings in place."""

    def __init__(self, key: tuple[int, str], session: _Session, schema: str | None):
        self._key, self._session, self._schema = key, session, schema
        self.lock = session.lock
        self._settings: dict[str, str] = {}  # a setting's name: the SET statement that gave its value
        self._closed = False

    def _taken(self):
        """The real connection with this view's settings in place (the caller holds the lock). A
        view never takes it from another in the middle of that one's transaction: the lock is
        held from its first round trip to its end, by the same thread that would then need it here."""
        session = self._session
        connection = session.live()
        if session.current is not self:
            if connection.info.transaction_status != _idle():
                raise RuntimeError("a storage of another schema used the connection inside a transaction of "
                                   "this one: its statements would join that transaction")
            connection.execute("; ".join(("RESET ALL", *self._settings.values())))
            session.current = self
        return connection

    def execute(self, query, params=None, **options):
        with self.lock:
            cursor = self._taken().execute(query, params, **options)
            self._remember(query)
            return cursor

    def cursor(self, **options) -> _Cursor:
        return _Cursor(self, options)

    @contextmanager
    def taken(self):
        """The real connection with this view's settings in place, under the lock: for what the
        backend says to libpq itself (its `pgconn`, storage/pg_pipeline.py)."""
        with self.lock:
            yield self._taken()

    def prepared(self) -> dict[tuple[str, tuple[int, ...]], bytes]:
        """The statements prepared on the real connection (the caller holds the lock), each under
        its name; what is added is kept for as long as that connection lasts."""
        return self._session.prepared

    def new_name(self) -> bytes:
        """A name no statement has on this connection yet."""
        return self._session.next_name()

    def _remember(self, query) -> None:
        setting = _SESSION_SETTING.match(query) if isinstance(query, str) else None
        if setting is not None:
            self._settings[setting.group(1).lower()] = query

    def reopen(self) -> None:
        """The real connection made again now if it broke (what the next statement would do
        first), with this view's settings in place: psycopg's error if it cannot be."""
        with self.lock:
            self._taken()

    def drop(self) -> None:
        """The real connection closed, for every view of it (it broke, or is in no state to be
        used again): a new one is made at the next statement."""
        with self.lock:
            self._session.connection.close()

    @contextmanager
    def client_cursor(self, row_factory=None):
        """psycopg's ClientCursor of the real connection (values bound on the client, so that
        several statements travel as one query), with this view's settings in place, under the
        lock; `row_factory`: the connection's unless given."""
        from psycopg import ClientCursor

        with self.lock:
            connection = self._taken()
            session = self._session
            cursor = session.client
            if cursor is None or cursor.connection is not connection:
                cursor = session.client = ClientCursor(connection)
            cursor.row_factory = row_factory or session.row_factory
            yield cursor

    @property
    def shard(self) -> int:
        """The coverage rows of this connection's transactions (COVERAGE_SHARDS)."""
        return self._session.shard

    @property
    def info(self):
        return self._session.connection.info

    @property
    def closed(self) -> bool:
        """This view closed, or its connection (a new one is made at the next statement)."""
        return self._closed or self._session.connection.closed

    def close(self) -> None:
        """This view is done; the pool's connections close with its last view."""
        if self._closed:
            return
        self._closed = True
        with _POOLS_LOCK:  # not the connection's lock too: a storage closing holds that one already
            session = self._session
            session.schemas[self._schema] -= 1
            if session.current is self:
                session.current = None
            pool = _POOLS[self._key]
            if pool.in_use():
                return
            sessions = list(pool.sessions)
        # The last view of the pool closed: its connections too, each under its own lock (always taken
        # before the pools' lock), unless a view was opened meanwhile. The pool and its locks stay: a
        # storage that opens later takes the same lock, on a new connection.
        for other in sessions:
            with other.lock, _POOLS_LOCK:
                if pool.in_use():
                    return
                other.connection.close()
                other.current = None


class _Cursor:
    """A cursor whose statement runs as the view's: a cursor of the real connection, made once the
    view has taken it (a new connection, if the last one broke), and returned by `execute`."""

    def __init__(self, view: View, options: dict):
        self._view, self._options = view, options

    def execute(self, query, params=None, **options):
        with self._view.lock:
            cursor = self._view._taken().cursor(**self._options)
            cursor.execute(query, params, **options)
            self._view._remember(query)
            return cursor


def _idle():
    from psycopg.pq import TransactionStatus

    return TransactionStatus.IDLE
