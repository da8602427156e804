"""The connection every table family of the storage speaks through: one per process, with every
transaction boundary (atomic, after_commit, what a rollback undoes; each thread's transaction its
own), the rows a transaction reads to change (locked until it ends), and the block of token
serials this process hands out. SQLite's is used under a lock held for a statement or a whole
transaction; PostgreSQL's backend takes its connection for each round trip (backends.py)."""
from __future__ import annotations

import json
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable

from .. import waits
from ..waits import LOCK_WAIT, RERUN
from .backends import BUSY_WAIT, connect, locked
from .schema import ADDED_COLUMNS, ADDED_INDEXES, COVERAGE_REMADE, PENDING_CALLBACKS, SCHEMA

TOKEN_BLOCK = 100
# A process asks for its next block while this many tokens of its block are left, in the write
# transaction under way (PostgreSQL's: in its round trip, read once it has committed), so that no
# request waits for a block of its own (as one in TOKEN_BLOCK did: the p99 of payments/request).
TOKEN_REFILL = TOKEN_BLOCK // 2
_TAKE_BLOCK = ("INSERT INTO counters (name, value) VALUES ('token', ?) "  # the next block: its last serial
               "ON CONFLICT (name) DO UPDATE SET value = counters.value + ? RETURNING value")
# A SQLite writer finding another process writing tries again after these pauses (doubling): for
# BUSY_WAIT seconds in a run of a request that may give up (waits.attempt: another emulator
# process's writes are that short), LOCK_WAIT seconds otherwise.
WRITER_PAUSE_FIRST, WRITER_PAUSE_MOST = 0.00005, 0.001
_STORAGES: weakref.WeakSet[Connection] = weakref.WeakSet()  # every storage of this process
_json = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps, without making an encoder per call


def _forget_tokens_in_child() -> None:
    """A forked process must not hand out its parent's block of tokens a second time."""
    for storage in _STORAGES:
        storage._tokens.clear()
        storage._refilling = False
        storage._tokens_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows, where nothing forks
    os.register_at_fork(after_in_child=_forget_tokens_in_child)


class _Work(threading.local):
    """A thread's transaction: how deep its atomic blocks are (0: none), what waits for its commit,
    what its rollback undoes, and the counters' rows it has read and locked ahead (foresee_value)."""

    def __init__(self):
        self.depth = 0
        self.after_commit: list[Callable[[], None]] = []
        self.on_rollback: list[Callable[[], None]] = []
        self.foreseen: dict[str, Callable[[], tuple | None]] = {}


class _Transaction:
    """Storage.atomic's context: the outermost use begins and ends the thread's transaction, inner
    uses join it; hooks wait for the commit (a plain class: it runs several times per request)."""

    __slots__ = ("storage", "exclusive", "at_once")

    def __init__(self, storage: Connection, exclusive: bool, at_once: bool = False):
        self.storage = storage
        self.exclusive = exclusive
        self.at_once = at_once

    def __enter__(self) -> None:
        storage = self.storage
        work = storage._work
        storage._lock.acquire()
        if work.depth:
            work.depth += 1
            return
        mode = RERUN if self.at_once else waits.on_lock()
        pause, deadline = WRITER_PAUSE_FIRST, None
        while True:
            try:
                if storage._db.begin(self.exclusive, mode):
                    break
            except BaseException:
                storage._lock.release()
                raise
            # Another process writes: wait without holding this process's connection, so that
            # its other threads can read meanwhile; a short pause first, as writes are short.
            storage._lock.release()
            now = time.monotonic()
            if deadline is None:
                deadline = now + (0.0 if self.at_once else BUSY_WAIT if mode is not None else LOCK_WAIT)
            if now >= deadline:
                raise locked(mode)
            time.sleep(pause)
            pause = min(pause * 2, WRITER_PAUSE_MOST)
            storage._lock.acquire()
        work.depth = 1

    def __exit__(self, kind, error, trace) -> bool:
        storage = self.storage
        work = storage._work
        if work.depth > 1:
            work.depth -= 1
            storage._lock.release()
            return False
        committed = False
        try:
            if kind is None:
                storage._db.commit()  # on failure: rolled back, and what the failure means raised
                committed = True
                waits.committed()
            else:
                storage._db.rollback()
        finally:
            work.depth = 0
            work.foreseen.clear()  # their rows' locks end with the transaction
            hooks, work.after_commit = work.after_commit, []
            undo, work.on_rollback = work.on_rollback, []
            if not committed:
                for hook in undo:
                    hook()
            storage._lock.release()
        if committed:
            for hook in hooks:
                hook()
        return False


class Connection:
    """What every table family speaks through (`self._db` under `self._lock`): the only place a
    transaction begins or ends."""

    def _open(self, path: str, schema: str | None) -> None:
        self.path = path
        self._db = connect(path, schema)
        # The backend's lock: SQLite's, held for a statement or a whole transaction; on PostgreSQL
        # nothing, as its backend takes the connection for each round trip (backends.py).
        self._lock = self._db.lock
        self._work = _Work()  # each thread's transaction
        self._tokens: deque[int] = deque()  # this process's block of token serials
        self._refilling = False  # a transaction under way asks for the next block
        self._tokens_lock = threading.Lock()  # over the two above, never held for a round trip
        _STORAGES.add(self)
        self._board = self._db.board
        self.backend = self._db.name
        self._db.create(SCHEMA)
        self._add_missing_columns()
        self._count_pending_callbacks()

    def _count_pending_callbacks(self) -> None:
        """PENDING_CALLBACKS counted once at open, then kept as callbacks change (callback_tables.py).
        Its row is locked before the count, so a callback another host queues meanwhile is either
        counted here or added after."""
        with self.atomic():
            self._db.execute("INSERT INTO counters (name, value) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
                             (PENDING_CALLBACKS,))
            self._db.execute("SELECT value FROM counters WHERE name = ?" + self._db.for_update,
                             (PENDING_CALLBACKS,)).fetchone()
            self._db.execute("UPDATE counters SET value = (SELECT count(*) FROM callbacks WHERE status = 'pending') "
                             "WHERE name = ?", (PENDING_CALLBACKS,))

    def _add_missing_columns(self) -> None:
        """A database made by an earlier version gains the columns added since."""
        with self.atomic():
            if "shard" not in self._db.columns("coverage"):
                for statement in COVERAGE_REMADE:
                    self._db.execute(self._db.ddl(statement))
            for table, columns in ADDED_COLUMNS.items():
                present = self._db.columns(table)
                for name, declaration in columns.items():
                    if name not in present:
                        self._db.execute(self._db.ddl(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}"))
            for index in ADDED_INDEXES:
                self._db.execute(self._db.ddl(index))

    def drop_schema(self, schema: str) -> None:
        """PostgreSQL: a sandbox's tables go."""
        with self._lock:
            self._db.drop_schema(schema)

    def atomic(self, exclusive: bool = True, at_once: bool = False) -> _Transaction:
        """A write transaction; nested uses join the outer one. SQLite has one writer at a time;
        on PostgreSQL a transaction locks only the rows it changes, and those it reads to change
        (`_one_to_change`), so `exclusive=False` (the claims' way of saying so) changes nothing
        any more. A lock another process holds is waited for (waits.attempt says how long, and
        what then); `at_once`: not at all, waits.Busy is raised."""
        return _Transaction(self, exclusive, at_once)

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Call `hook` once what is being written is visible to every process: at the end of
        the transaction under way, or now when there is none (a rolled-back one drops it)."""
        work = self._work
        if work.depth:
            work.after_commit.append(hook)
            return
        hook()

    def _all(self, sql: str, args=()) -> list:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _tuples(self, sql: str, args=()) -> list[tuple]:
        with self._lock:
            return self._db.tuples(sql, args)

    def _one(self, sql: str, args=()):
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def _one_to_change(self, sql: str, args=()):
        """`_one`, for a row a rule reads and then changes: within a write transaction it stays
        locked until the transaction ends (PostgreSQL's FOR UPDATE; SQLite has one writer), so no
        other host changes it in between (a payment is never cancelled past its amount)."""
        with self._lock:
            if self._work.depth:
                sql += self._db.for_update
            return self._db.execute(sql, args).fetchone()

    def unreachable(self) -> str | None:
        """Why the database cannot be used now (PostgreSQL down, the network cut), or None."""
        with self._lock:
            return self._db.problem()

    def _run(self, sql: str, args=()):
        with self.atomic():
            return self._db.execute(sql, args)

    def foresee_value(self, name: str) -> None:
        """Within a write transaction: the counter's row read, and locked until the transaction
        ends, along with the next statement whose result is read (on PostgreSQL, in its round
        trip), so that `next_value(name)` later in the transaction reads nothing more: its new
        value is written with the COMMIT. For a rule that reads a row it may then number (an
        approval's tid); a counter that has no row yet is made by `next_value` as before."""
        with self._lock:
            work = self._work
            if work.depth:
                work.foreseen[name] = self._db.row_when_read(self._db.execute(
                    "SELECT value FROM counters WHERE name = ?" + self._db.for_update, (name,)))

    def next_value(self, name: str) -> int:
        with self.atomic():
            foreseen = self._work.foreseen.pop(name, None)
            row = foreseen() if foreseen is not None else None
            if row is not None:
                self._db.execute("UPDATE counters SET value = ? WHERE name = ?", (row[0] + 1, name))
                return row[0] + 1
            row = self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, 1) "
                "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value", (name,)).fetchone()
            return row[0]

    def next_token(self) -> int:
        """The next serial for a token (payment or cash receipt). Taken from the shared counter
        in blocks of TOKEN_BLOCK, so most payment requests write no counter: each process hands
        out its own block, so tokens stay unique, and ascend within a process. Within a write
        transaction the next block is asked for while TOKEN_REFILL are left (`_refill_tokens`)."""
        with self._lock, self._tokens_lock:  # (held statements only: no round trip under it)
            if self._tokens:
                if len(self._tokens) <= TOKEN_REFILL and self._work.depth and not self._refilling:
                    self._refill_tokens()
                return self._tokens.popleft()
        with self.atomic():  # not within the lock above: a writer waiting for another holds nothing
            with self._tokens_lock:
                if self._tokens:  # another thread's block came meanwhile
                    return self._tokens.popleft()
            last = self._db.execute(_TAKE_BLOCK, (TOKEN_BLOCK, TOKEN_BLOCK)).fetchone()[0]
            with self._tokens_lock:
                block = self._add_block(last)
                self._work.on_rollback.append(lambda: self._give_back_tokens(block))
                return self._tokens.popleft()

    def _add_block(self, last: int) -> range:
        """The block of serials ending at `last` (the counter's value once taken) joins those left,
        in order (the caller holds the tokens' lock)."""
        block = range(last - TOKEN_BLOCK + 1, last + 1)
        self._tokens = deque(sorted([*self._tokens, *block]))
        return block

    def _give_back_tokens(self, block: range) -> None:
        """A rolled-back block is no longer reserved: its serials not yet handed out are dropped."""
        with self._tokens_lock:
            self._tokens = deque(serial for serial in self._tokens if serial not in block)

    def _refill_tokens(self) -> None:
        """The next block, asked for in the transaction under way (the caller holds the tokens'
        lock; on SQLite, the connection's too) and nothing read back before it commits; then its
        serials join what is left, in order. A rollback gives it back (the counter's change with it)."""
        self._refilling = True
        read = self._db.row_when_read(self._db.execute(_TAKE_BLOCK, (TOKEN_BLOCK, TOKEN_BLOCK)))

        def refilled() -> None:
            last = read()[0]
            with self._tokens_lock:
                self._add_block(last)
                self._refilling = False

        def given_back() -> None:
            self._refilling = False

        work = self._work
        work.after_commit.append(refilled)
        work.on_rollback.append(given_back)


_COMPARISONS = {"after": ">", "before": "<"}


def _where(**equal) -> tuple[str, tuple]:
    """A WHERE clause of `column = ?` for each filter that is set (`column__after=v`: column > v,
    `column__before=v`: column < v)."""
    used = {column: value for column, value in equal.items() if value is not None and value != ""}
    if not used:
        return "", ()
    terms = []
    for key in used:
        column, _, comparison = key.partition("__")
        terms.append(f"{column} {_COMPARISONS.get(comparison, '=')} ?")
    return "WHERE " + " AND ".join(terms), tuple(used.values())
