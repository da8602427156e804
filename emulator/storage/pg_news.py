"""How a process on PostgreSQL hears what others changed, with nothing to poll: a trigger on the
tables other processes' copies depend on (the clock, the scenario, the timed jobs, the callbacks)
sends `pg_notify` in the transaction that changes them, so the news leaves when it commits, and
only then; each process keeps ONE connection that LISTENs, on a thread of its own, and tells
every storage of the schema named: the state it reads back changed (a new generation), and
whoever waits for work should look again (its handlers).

The news take a few milliseconds to come back, too late for the processes of one `serve --workers
N`: a test that moves the clock and pays at once may pay on another worker. They share a page of
memory (made before the workers are forked, `share_with_forks`), where a process that changed a
schema's state says so as it commits; the others read it before each request, as on SQLite
(storage/board.py). Other hosts hear it from PostgreSQL alone, within BATCH_SECONDS and the
network's delay."""
from __future__ import annotations

import itertools
import logging
import mmap
import os
import threading
import time
from collections.abc import Callable

from .board import SIZE, Board

log = logging.getLogger("payletter_emulator.storage.pg_news")
CHANNEL = "payletter_emulator"
STATE_TABLES = ("clock", "scenario", "jobs")  # what ClockJobs reads back (shared_state)
TOLD_TABLES = (*STATE_TABLES, "callbacks")
# A burst of news (callbacks queued under load) is told at most every BATCH_SECONDS, each
# (schema, table) once: a waiting dispatcher looks once per batch, not once per payment.
BATCH_SECONDS = 0.01
STOP_CHECK = 1.0  # seconds the listening thread waits for news before it checks whether it should stop
RECONNECT_FIRST, RECONNECT_MOST = 0.1, 2.0  # pauses between attempts to listen again after a lost connection
# libpq's TCP keepalives: a connection the network lost without a word is known dead within about
# a minute, and listened again, without sending a statement.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}

# `EXECUTE PROCEDURE` (not FUNCTION): PostgreSQL 10 knows only that spelling.
_FUNCTION = (f"CREATE OR REPLACE FUNCTION payletter_news() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             f"PERFORM pg_notify('{CHANNEL}', TG_TABLE_SCHEMA || ' ' || TG_TABLE_NAME); RETURN NULL; END $$")
_TRIGGER = ("CREATE TRIGGER payletter_news_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} "
            "FOR EACH STATEMENT EXECUTE PROCEDURE payletter_news()")


def install(connection) -> str:
    """The triggers that tell the news, in the connection's current schema (whose tables exist;
    the caller holds the lock under which tables are made); that schema's name."""
    schema = connection.execute("SELECT current_schema()").fetchone()[0]
    connection.execute(_FUNCTION)
    present = {row[0] for row in connection.execute(
        "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE c.relnamespace = current_schema()::regnamespace AND t.tgname LIKE 'payletter_news_%'")}
    for table in TOLD_TABLES:
        if f"payletter_news_{table}" not in present:
            connection.execute(_TRIGGER.format(table=table))
    return schema


_host = Board(bytearray(SIZE))  # the page of this process alone, until share_with_forks()


def share_with_forks() -> None:
    """From now on, the processes this one forks share its page: called by `serve` before its
    workers are forked (emulator/serving/workers.py). Only its shared generation is used: any
    schema's change makes every storage of the host read its state again, once."""
    global _host
    _host = Board(mmap.mmap(-1, SIZE))  # anonymous and MAP_SHARED: a fork shares it, never copies it


class Hearing:
    """What one storage hears of its schema: `generation()` changes whenever the state it reads
    back may have changed; `handlers` are called with the table changed (None: anything may have),
    on the listening thread, so they only wake someone."""

    def __init__(self, listener: _Listener, schema: str):
        self._listener, self.schema = listener, schema
        self._generation = 0
        self.handlers: list[Callable[[str | None], None]] = []

    def generation(self) -> tuple[int, int] | None:
        """What PostgreSQL told this process, and what this host's processes said on the page;
        None while nothing is heard (not yet listening, or the connection lost): read it all."""
        return (self._generation, _host.generation()) if self.hearing() else None

    def hearing(self) -> bool:
        """Whether every change is heard now: the process listens."""
        return self._listener.listening()

    def on_news(self, handler: Callable[[str | None], None]) -> None:
        self.handlers.append(handler)

    def changed_here(self) -> None:
        """This process changed the state of its schema (committed): its storages, and the other
        processes of this host, read it again now, before the news comes back from PostgreSQL."""
        _host.bump_generation()
        self._listener.changed(self.schema)

    def close(self) -> None:
        self._listener.forget(self)

    def _told(self, table: str | None) -> None:
        if table is None or table in STATE_TABLES:
            self._generation = next(_generations)
        for handler in self.handlers:
            try:
                handler(table)
            except Exception:  # one broken handler must not keep the news from the others
                log.exception("a handler of the news failed")


def hear(url: str, schema: str) -> Hearing:
    """What a storage in `schema` of the database at `url` hears: this process's listener (started
    on first need) tells it."""
    key = (os.getpid(), url)
    with _LISTENERS_LOCK:
        listener = _LISTENERS.get(key)
        if listener is None or listener.stopped:
            listener = _LISTENERS[key] = _Listener(url)
        return listener.add(schema)


_LISTENERS: dict[tuple[int, str], _Listener] = {}  # (process, URL): a forked process listens for itself
_LISTENERS_LOCK = threading.Lock()
_names = itertools.count(1)
# A new value for each change, never one seen before (not an increment: two threads telling changes at
# once would lose one): a reader that read the state before the change finds a value it has not seen.
_generations = itertools.count(1)


class _Listener:
    """One connection that LISTENs, on a thread started when a storage first asks what it hears,
    ended when the last storage has closed."""

    def __init__(self, url: str):
        self.url = url
        self._pid = os.getpid()
        self.stopped = False
        self._hearings: dict[str, list[Hearing]] = {}
        self._lock = threading.Lock()
        self._listening = False
        self._thread: threading.Thread | None = None
        self._connection = None

    def add(self, schema: str) -> Hearing:
        hearing = Hearing(self, schema)
        with self._lock:
            self._hearings.setdefault(schema, []).append(hearing)
        return hearing

    def forget(self, hearing: Hearing) -> None:
        with _LISTENERS_LOCK, self._lock:
            kept = [other for other in self._hearings.get(hearing.schema, []) if other is not hearing]
            if kept:
                self._hearings[hearing.schema] = kept
            else:
                self._hearings.pop(hearing.schema, None)
            if self._hearings:
                return
            self.stopped = True
            if _LISTENERS.get((os.getpid(), self.url)) is self:
                del _LISTENERS[(os.getpid(), self.url)]

    def changed(self, schema: str) -> None:
        with self._lock:
            hearings = list(self._hearings.get(schema, ()))
        for hearing in hearings:
            hearing._generation = next(_generations)

    def listening(self) -> bool:
        if self._pid != os.getpid():  # a copy in a forked process, whose thread did not come along
            return False
        if self._thread is None and not self.stopped:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=f"pg-news-{next(_names)}", daemon=True)
                    self._thread.start()
        return self._listening

    # --- the listening thread ---
    def _run(self) -> None:
        import psycopg

        pause = RECONNECT_FIRST
        while not self.stopped:
            try:
                with psycopg.connect(self.url, autocommit=True, application_name="payletter-emulator news",
                                     **KEEPALIVES) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self._tell_all(listening=True)  # what changed before this LISTEN is read again
                    pause = RECONNECT_FIRST
                    self._listen(connection)
            except psycopg.Error as error:
                if self._listening:
                    log.warning("lost the connection that hears other hosts' changes (%s); listening again", error)
            finally:
                if self._listening:
                    self._tell_all(listening=False)  # until listening again, every request reads it all
            if not self.stopped:
                time.sleep(pause)
                pause = min(2 * pause, RECONNECT_MOST)

    def _listen(self, connection) -> None:
        while not self.stopped:
            batch: set[str] = set()
            for notify in connection.notifies(timeout=STOP_CHECK, stop_after=1):
                batch.add(notify.payload)
            if not batch:
                continue
            for notify in connection.notifies(timeout=BATCH_SECONDS):
                batch.add(notify.payload)
            for payload in batch:
                schema, _, table = payload.partition(" ")
                with self._lock:
                    hearings = list(self._hearings.get(schema, ()))
                for hearing in hearings:
                    hearing._told(table)

    def _tell_all(self, listening: bool) -> None:
        self._listening = listening
        with self._lock:
            hearings = [hearing for group in self._hearings.values() for hearing in group]
        for hearing in hearings:
            hearing._told(None)
