"""All state, in SQLite or PostgreSQL: every SQL statement and every transaction boundary of the emulator."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
import weakref
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import fields

from .backends import connect
from .clock import ClockState
from .domain.text import is_text
from .domain.payment import Cancellation, Payment

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    token INTEGER PRIMARY KEY,
    client_id TEXT NOT NULL,
    pgcode TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    order_no TEXT NOT NULL,
    service_name TEXT NOT NULL,
    product_name TEXT NOT NULL,
    custom_parameter TEXT NOT NULL,
    amount INTEGER NOT NULL,
    taxfree_amount INTEGER NOT NULL,
    tax_amount INTEGER NOT NULL,
    disposable_cup_deposit INTEGER NOT NULL,
    request TEXT NOT NULL,
    created_at TEXT NOT NULL,
    tid TEXT,
    cid TEXT NOT NULL,
    paid_pgcode TEXT NOT NULL,
    transaction_date TEXT NOT NULL,
    billkey TEXT NOT NULL,
    details TEXT NOT NULL,
    cancelled_amount INTEGER NOT NULL,
    cancelled_taxfree_amount INTEGER NOT NULL,
    cancelled_tax_amount INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS payments_by_tid ON payments (tid) WHERE tid IS NOT NULL;
CREATE INDEX IF NOT EXISTS payments_by_day ON payments (client_id, substr(transaction_date, 1, 10)) WHERE tid IS NOT NULL;
CREATE INDEX IF NOT EXISTS payments_by_order ON payments (client_id, order_no);
CREATE INDEX IF NOT EXISTS payments_by_billkey ON payments (billkey) WHERE tid IS NOT NULL;
CREATE TABLE IF NOT EXISTS cancellations (
    id INTEGER PRIMARY KEY,
    tid TEXT NOT NULL,
    amount INTEGER NOT NULL,
    taxfree_amount INTEGER NOT NULL,
    tax_amount INTEGER NOT NULL,
    partial INTEGER NOT NULL,
    cancel_date TEXT NOT NULL,
    ip_addr TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cancellations_by_tid ON cancellations (tid);
CREATE INDEX IF NOT EXISTS cancellations_by_day ON cancellations (substr(cancel_date, 1, 10));
CREATE TABLE IF NOT EXISTS billkeys (
    billkey TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    pgcode TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    amount INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cash_receipts (
    token INTEGER PRIMARY KEY,
    tid TEXT NOT NULL,
    client_id TEXT NOT NULL,
    type TEXT NOT NULL,
    tax_flag TEXT NOT NULL,
    return_url TEXT NOT NULL,
    status TEXT NOT NULL,
    details TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS callbacks (
    id INTEGER PRIMARY KEY,
    tid TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER,
    created_at TEXT NOT NULL,
    warnings TEXT NOT NULL DEFAULT '[]',
    claimed_by TEXT,
    claim_expires REAL,
    fault TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS callbacks_due ON callbacks (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS callbacks_by_tid ON callbacks (tid);
CREATE TABLE IF NOT EXISTS callback_attempts (
    id INTEGER PRIMARY KEY,
    callback_id INTEGER NOT NULL,
    number INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT 'first',
    scheduled_at TEXT,
    at TEXT NOT NULL,
    wall_time TEXT NOT NULL,
    http_status INTEGER,
    response_body TEXT NOT NULL,
    error TEXT NOT NULL,
    latency_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_callback ON callback_attempts (callback_id);
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT NOT NULL,
    client_id TEXT NOT NULL,
    request TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    warnings TEXT NOT NULL,
    error TEXT NOT NULL,
    rule TEXT
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS coverage (kind TEXT NOT NULL, name TEXT NOT NULL, count INTEGER NOT NULL,
                                     PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS sandboxes (
    id TEXT PRIMARY KEY,
    payment_key TEXT NOT NULL UNIQUE,
    search_key TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    last_used REAL NOT NULL,
    idle_seconds REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS scenario (id INTEGER PRIMARY KEY CHECK (id = 1), document TEXT, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rule_hits (rule TEXT PRIMARY KEY, hits INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    due_at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    origin TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    result TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (done, due_at);
CREATE TABLE IF NOT EXISTS clock (id INTEGER PRIMARY KEY CHECK (id = 1), "offset" REAL NOT NULL, frozen_at REAL,
                                  version INTEGER NOT NULL DEFAULT 0);
"""

# Columns added after the first release, with their declarations as in SCHEMA.
_ADDED_COLUMNS = {
    "callbacks": {"warnings": "TEXT NOT NULL DEFAULT '[]'", "claimed_by": "TEXT", "claim_expires": "REAL",
                  "fault": "TEXT NOT NULL DEFAULT '{}'"},
    "journal": {"rule": "TEXT"},
    "clock": {"version": "INTEGER NOT NULL DEFAULT 0"},
    "callback_attempts": {"number": "INTEGER NOT NULL DEFAULT 0", "kind": "TEXT NOT NULL DEFAULT 'first'",
                          "scheduled_at": "TEXT"},
}
_PAYMENT_JSON = ("request", "details")
_PAYMENT_COLUMNS = [f.name for f in fields(Payment)]
_LISTED_COLUMNS = ", ".join(name for name in _PAYMENT_COLUMNS if name not in _PAYMENT_JSON)
_INSERT_PAYMENT = f"INSERT INTO payments ({', '.join(_PAYMENT_COLUMNS)}) VALUES ({', '.join('?' for _ in _PAYMENT_COLUMNS)})"
# Counters are not state: they keep counting across resets, so a merchant's database never
# sees the same tid or token twice from one emulator. Coverage and sandboxes outlive resets too.
_STATE_TABLES = ("payments", "cancellations", "billkeys", "cash_receipts", "callbacks",
                 "callback_attempts", "journal", "clock", "rule_hits", "jobs")


TOKEN_BLOCK = 100
JOURNAL_BATCH = 32  # journal entries held back at most, per process
JOURNAL_HOLD = 0.05  # seconds an entry is held back at most (what a reader may wait for another process)
JOURNAL_WAIT = 2.0  # seconds a reader of the journal waits at most for the other processes
JOURNAL_PRUNE_EVERY = 50  # entries written between two trims of the journal to its limit
_STORAGES: weakref.WeakSet[Storage] = weakref.WeakSet()
_json = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps, without making an encoder per call
log = logging.getLogger("payletter_emulator")


def _forget_parent_in_child() -> None:
    """A forked process must not hand out its parent's block of tokens a second time, nor
    write its parent's journal entries, nor speak in its parent's slot."""
    for storage in _STORAGES:
        storage._tokens.clear()
        storage._held.clear()
        storage._slot = None
        storage._taken = storage._written = 0


os.register_at_fork(after_in_child=_forget_parent_in_child)


class _JournalWriter:
    """One thread per process: writes each storage's held-back journal entries once the oldest
    is JOURNAL_HOLD old. It sleeps until then, not in short naps: under load a request writes
    the batch first, and a thread that woke often would take the interpreter from requests."""

    def __init__(self):
        self._wake = threading.Event()
        self._pid: int | None = None

    def nudge(self) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="journal-writer", daemon=True).start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while True:
                holding = [storage for storage in list(_STORAGES) if storage._held]
                if not holding:
                    break
                wait = min(storage._held_since for storage in holding) + JOURNAL_HOLD - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                    continue
                for storage in holding:
                    try:
                        storage.write_held(only_if_due=True)
                    except Exception:  # a closed or broken database: its entries stay held
                        log.exception("could not write held journal entries")


_JOURNAL_WRITER = _JournalWriter()


class _Transaction:
    """Storage.atomic's context: the outermost use begins and ends the transaction, inner uses
    join it; hooks wait for the commit (a plain class: it runs several times per request)."""

    __slots__ = ("storage", "exclusive")

    def __init__(self, storage: Storage, exclusive: bool):
        self.storage = storage
        self.exclusive = exclusive

    def __enter__(self) -> None:
        storage = self.storage
        storage._lock.acquire()
        if storage._depth:
            storage._depth += 1
            return
        try:
            storage._db.begin(self.exclusive)
        except BaseException:
            storage._lock.release()
            raise
        storage._depth = 1

    def __exit__(self, kind, error, trace) -> bool:
        storage = self.storage
        if storage._depth > 1:
            storage._depth -= 1
            storage._lock.release()
            return False
        committed = False
        try:
            if kind is None:
                storage._db.execute("COMMIT")
                committed = True
            else:
                storage._db.execute("ROLLBACK")
        finally:
            storage._depth = 0
            storage._db.end()
            hooks, storage._after_commit = storage._after_commit, []
            undo, storage._on_rollback = storage._on_rollback, []
            if not committed:
                for hook in undo:
                    hook()
            storage._lock.release()
        if committed:
            for hook in hooks:
                hook()
        return False


class Storage:
    """One connection per process, used under a lock. Write transactions exclude each other
    across processes (SQLite's BEGIN IMMEDIATE, or PostgreSQL's advisory lock), so every
    check-then-write below holds whatever the number of servers on one database."""

    def __init__(self, path: str = ":memory:", journal_limit: int = 10_000, callback_limit: int = 10_000,
                 schema: str | None = None):
        self.path = path
        self.journal_limit = journal_limit
        self.callback_limit = callback_limit
        self._lock = threading.RLock()
        self._depth = 0
        self._after_commit: list[Callable[[], None]] = []
        self._tokens: deque[int] = deque()  # this process's block of token serials
        self._on_rollback: list[Callable[[], None]] = []
        # Journal entries held back (journal_append), and this process's slot on the board.
        self._held: list[tuple] = []
        self._held_since = 0.0
        self._slot: int | None = None
        self._taken = self._written = 0
        self._pid = 0  # the process that claimed the slot
        self._since_prune = 0
        _STORAGES.add(self)
        self._db = connect(path, schema)
        self._board = self._db.board
        self.backend = self._db.name
        self._db.create(SCHEMA)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """A database made by an earlier version gains the columns added since."""
        with self.atomic():
            for table, columns in _ADDED_COLUMNS.items():
                present = self._db.columns(table)
                for name, declaration in columns.items():
                    if name not in present:
                        self._db.execute(self._db.ddl(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}"))

    def close(self) -> None:
        with self._lock:
            self.write_held()
            if self._slot is not None:
                self._release_slot()
                self._slot = None
            self._db.close()

    def drop_schema(self, schema: str) -> None:
        """PostgreSQL: a sandbox's tables go."""
        with self._lock:
            self._db.drop_schema(schema)

    # --- coverage: what a run exercised, kept across resets ---
    def count(self, kind: str, name: str, times: int = 1) -> None:
        with self.atomic():
            self._db.execute("INSERT INTO coverage (kind, name, count) VALUES (?, ?, ?) ON CONFLICT (kind, name) "
                             "DO UPDATE SET count = coverage.count + excluded.count", (kind, name, times))

    def coverage(self) -> dict[str, dict[str, int]]:
        self.settle_journal()  # coverage of API requests is counted as their entries are written
        found: dict[str, dict[str, int]] = {}
        for row in self._all("SELECT kind, name, count FROM coverage ORDER BY kind, name"):
            found.setdefault(row["kind"], {})[row["name"]] = row["count"]
        return found

    def clear_coverage(self) -> None:
        self.settle_journal()
        self._run("DELETE FROM coverage")

    # --- the sandboxes of this server (kept in the root database) ---
    def insert_sandbox(self, row: dict) -> None:
        self._run("INSERT INTO sandboxes (id, payment_key, search_key, created_at, last_used, idle_seconds) "
                  "VALUES (?, ?, ?, ?, ?, ?)", (row["id"], row["payment_key"], row["search_key"],
                                               row["created_at"], row["last_used"], row["idle_seconds"]))

    def sandbox(self, sandbox_id: str) -> dict | None:
        row = self._one("SELECT * FROM sandboxes WHERE id = ?", (sandbox_id,))
        return dict(row) if row else None

    def sandbox_with_key(self, key: str) -> dict | None:
        row = self._one("SELECT * FROM sandboxes WHERE payment_key = ? OR search_key = ?", (key, key))
        return dict(row) if row else None

    def sandboxes(self) -> list[dict]:
        return [dict(r) for r in self._all("SELECT * FROM sandboxes ORDER BY created_at")]

    def touch_sandbox(self, sandbox_id: str, now: float) -> None:
        self._run("UPDATE sandboxes SET last_used = ? WHERE id = ?", (now, sandbox_id))

    def delete_sandbox(self, sandbox_id: str) -> bool:
        return self._run("DELETE FROM sandboxes WHERE id = ?", (sandbox_id,)).rowcount == 1

    def idle_sandboxes(self, now: float) -> list[str]:
        return [r["id"] for r in self._all("SELECT id FROM sandboxes WHERE last_used + idle_seconds < ?", (now,))]

    def atomic(self, exclusive: bool = True) -> _Transaction:
        """A write transaction; nested uses join the outer one. `exclusive=False` (claims) only
        locks the rows it selects FOR UPDATE, where the database can (PostgreSQL)."""
        return _Transaction(self, exclusive)

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Call `hook` once what is being written is visible to every process: at the end of
        the transaction under way, or now when there is none (a rolled-back one drops it)."""
        with self._lock:
            if self._depth:
                self._after_commit.append(hook)
                return
        hook()

    def _all(self, sql: str, args=()) -> list:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _one(self, sql: str, args=()):
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def _run(self, sql: str, args=()):
        with self.atomic():
            return self._db.execute(sql, args)

    # --- counters and clock ---
    def next_value(self, name: str) -> int:
        with self.atomic():
            row = self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, 1) "
                "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value", (name,)).fetchone()
            return row[0]

    def next_token(self) -> int:
        """The next serial for a token (payment or cash receipt). Taken from the shared counter
        in blocks of TOKEN_BLOCK, so most payment requests write no counter: each process hands
        out its own block, so tokens stay unique, and ascend within a process."""
        with self._lock:
            if not self._tokens:
                with self.atomic():
                    last = self._db.execute(
                        "INSERT INTO counters (name, value) VALUES ('token', ?) "
                        "ON CONFLICT (name) DO UPDATE SET value = counters.value + ? RETURNING value",
                        (TOKEN_BLOCK, TOKEN_BLOCK)).fetchone()[0]
                    self._tokens.extend(range(last - TOKEN_BLOCK + 1, last + 1))
                    self._on_rollback.append(self._tokens.clear)  # rolled back: the block is no longer reserved
            return self._tokens.popleft()

    def shared_generation(self) -> int | None:
        """Changes whenever the shared state below does (None: unknown, read it)."""
        return None if self._board is None else self._board.generation()

    def _shared_state_changed(self) -> None:
        if self._board is not None:
            self.after_commit(self._board.bump_generation)

    def shared_state(self) -> tuple[ClockState | None, int, int, int | None]:
        """In one read: the clock and its version, the scenario's version, and when the next
        timed job is due (what every request brings up to date before it is handled)."""
        row = self._one('SELECT (SELECT "offset" FROM clock WHERE id = 1) AS clock_offset, '
                        '(SELECT frozen_at FROM clock WHERE id = 1) AS frozen_at, '
                        '(SELECT version FROM clock WHERE id = 1) AS clock_version, '
                        '(SELECT version FROM scenario WHERE id = 1) AS version, '
                        '(SELECT min(due_at) FROM jobs WHERE done = 0) AS next_job')
        clock = None if row["clock_offset"] is None else ClockState(row["clock_offset"], row["frozen_at"])
        return clock, row["clock_version"] or 0, row["version"] or 0, row["next_job"]

    def save_clock_state(self, state: ClockState) -> int:
        """Store the clock for every process; its version (counted across resets too)."""
        with self.atomic():
            version = self.next_value("clock")
            self._shared_state_changed()
            self._db.execute('INSERT INTO clock (id, "offset", frozen_at, version) VALUES (1, ?, ?, ?) '
                             'ON CONFLICT (id) DO UPDATE SET "offset" = excluded."offset", '
                             'frozen_at = excluded.frozen_at, version = excluded.version',
                             (state.offset, state.frozen_at, version))
            return version

    def reset(self) -> None:
        self.settle_journal()  # what was answered before the reset goes with it
        with self.atomic():
            self._shared_state_changed()
            for table in _STATE_TABLES:
                self._db.execute(f"DELETE FROM {table}")

    # --- payments ---
    def insert_payment(self, payment: Payment) -> None:
        self._run(_INSERT_PAYMENT, tuple(_payment_row(payment).values()))

    def save_payment(self, payment: Payment) -> None:
        row = _payment_row(payment)
        token = row.pop("token")
        assignments = ", ".join(f"{name} = ?" for name in row)
        self._run(f"UPDATE payments SET {assignments} WHERE token = ?", (*row.values(), token))

    def payment_by_token(self, token: int) -> Payment | None:
        return _payment(self._one("SELECT * FROM payments WHERE token = ?", (token,)))

    def payment_by_tid(self, tid: str) -> Payment | None:
        return _payment(self._one("SELECT * FROM payments WHERE tid = ?", (tid,)))

    def latest_payment_for_order(self, client_id: str, order_no: str) -> Payment | None:
        return _payment(self._one(
            "SELECT * FROM payments WHERE client_id = ? AND order_no = ? ORDER BY token DESC LIMIT 1",
            (client_id, order_no)))

    def payments(self, *, client_id: str | None = None, status: str | None = None,
                 limit: int = 1000) -> list[Payment]:
        where, args = _where(client_id=client_id, status=status)
        rows = self._all(f"SELECT * FROM payments {where} ORDER BY token LIMIT ?", (*args, limit))
        return [_payment(r) for r in rows]

    def payments_made_on(self, client_id: str, day: str, statuses: tuple[str, ...]) -> list[Payment]:
        """Payments of `client_id` whose transaction_date falls on `day` (YYYY-MM-DD), for listing:
        their `request` and `details` are left out (empty), as search rows show neither."""
        marks = ", ".join("?" for _ in statuses)
        rows = self._all(
            f"SELECT {_LISTED_COLUMNS} FROM payments WHERE client_id = ? AND substr(transaction_date, 1, 10) = ? "
            f"AND tid IS NOT NULL AND status IN ({marks}) ORDER BY transaction_date, token", (client_id, day, *statuses))
        return [Payment(**row, request={}, details={}) for row in map(dict, rows)]

    def payments_with_billkey(self, billkey: str) -> list[Payment]:
        rows = self._all("SELECT * FROM payments WHERE billkey = ? AND tid IS NOT NULL "
                         "ORDER BY transaction_date", (billkey,))
        return [_payment(r) for r in rows]

    # --- cancellations ---
    def record_cancellation(self, cancellation: Cancellation) -> Cancellation:
        """Inside `atomic()`: write the cancellation and the payment's new totals together."""
        with self.atomic():
            row = self._db.execute(
                "INSERT INTO cancellations (tid, amount, taxfree_amount, tax_amount, partial, cancel_date, ip_addr) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (cancellation.tid, cancellation.amount, cancellation.taxfree_amount, cancellation.tax_amount,
                 int(cancellation.partial), cancellation.cancel_date, cancellation.ip_addr)).fetchone()
            self._db.execute(
                "UPDATE payments SET cancelled_amount = cancelled_amount + ?, "
                "cancelled_taxfree_amount = cancelled_taxfree_amount + ?, "
                "cancelled_tax_amount = cancelled_tax_amount + ? WHERE tid = ?",
                (cancellation.amount, cancellation.taxfree_amount, cancellation.tax_amount, cancellation.tid))
            cancellation.id = row[0]
            return cancellation

    def cancellations_of(self, tid: str) -> list[Cancellation]:
        rows = self._all("SELECT * FROM cancellations WHERE tid = ? ORDER BY id", (tid,))
        return [_cancellation(r) for r in rows]

    def cancellations_on(self, client_id: str, day: str) -> list[tuple[Cancellation, Payment]]:
        rows = self._all(
            "SELECT c.id AS c_id, c.amount AS c_amount, c.taxfree_amount AS c_taxfree, c.tax_amount AS c_tax, "
            "c.partial AS c_partial, c.cancel_date AS c_date, c.ip_addr AS c_ip, p.* "
            "FROM cancellations c JOIN payments p ON p.tid = c.tid "
            "WHERE p.client_id = ? AND substr(c.cancel_date, 1, 10) = ? ORDER BY c.cancel_date, c.id",
            (client_id, day))
        return [(Cancellation(tid=r["tid"], amount=r["c_amount"], taxfree_amount=r["c_taxfree"],
                              tax_amount=r["c_tax"], partial=bool(r["c_partial"]), cancel_date=r["c_date"],
                              ip_addr=r["c_ip"], id=r["c_id"]), _payment(r)) for r in rows]

    # --- billkeys ---
    def insert_billkey(self, billkey: str, client_id: str, user_id: str, pgcode: str,
                       issued_at: str, amount: int) -> None:
        self._run("INSERT INTO billkeys VALUES (?, ?, ?, ?, ?, ?)",
                  (billkey, client_id, user_id, pgcode, issued_at, amount))

    def billkey(self, billkey: str) -> dict | None:
        row = self._one("SELECT * FROM billkeys WHERE billkey = ?", (billkey,))
        return dict(row) if row else None

    # --- cash receipts ---
    def insert_cash_receipt(self, token: int, tid: str, client_id: str, type_: str, tax_flag: str,
                            return_url: str, created_at: str) -> None:
        self._run("INSERT INTO cash_receipts VALUES (?, ?, ?, ?, ?, ?, 'requested', '{}', ?)",
                  (token, tid, client_id, type_, tax_flag, return_url, created_at))

    def cash_receipts_of(self, tid: str) -> list[dict]:
        rows = self._all("SELECT * FROM cash_receipts WHERE tid = ? ORDER BY token", (tid,))
        return [{**dict(r), "details": json.loads(r["details"])} for r in rows]

    def cash_receipt(self, token: int) -> dict | None:
        row = self._one("SELECT * FROM cash_receipts WHERE token = ?", (token,))
        return {**dict(row), "details": json.loads(row["details"])} if row else None

    def complete_cash_receipt(self, token: int, receipt: dict) -> None:
        """The requested cash receipt is issued: `receipt` is what callbacks and return fields carry."""
        self._run("UPDATE cash_receipts SET status = 'issued', details = ? WHERE token = ?",
                  (json.dumps(receipt, ensure_ascii=False), token))

    # --- callbacks ---
    def enqueue_callback(self, tid: str, url: str, body: dict, created_at: str, due: int | None,
                         warnings: list[str], fault: dict | None = None, status: str = "pending") -> int:
        """`due` None holds the callback until `release_held`."""
        with self.atomic():
            callback_id = self._db.execute(
                "INSERT INTO callbacks (tid, url, body, status, attempts, next_attempt_at, created_at, "
                "warnings, fault) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?) RETURNING id",
                (tid, url, json.dumps(body, ensure_ascii=False), status, due, created_at,
                 json.dumps(warnings, ensure_ascii=False), json.dumps(fault or {}, ensure_ascii=False))).fetchone()[0]
            if callback_id % 100 == 0:
                self._prune_callbacks(callback_id - self.callback_limit)
            return callback_id

    def _prune_callbacks(self, up_to_id: int) -> None:
        """Bounded like the journal: finished notifications older than the last `callback_limit`
        go, with their attempts; pending ones stay, however old."""
        self._db.execute("DELETE FROM callback_attempts WHERE callback_id IN "
                         "(SELECT id FROM callbacks WHERE id <= ? AND status <> 'pending')", (up_to_id,))
        self._db.execute("DELETE FROM callbacks WHERE id <= ? AND status <> 'pending'", (up_to_id,))

    def release_held(self, before_id: int, due: int) -> None:
        """Held callbacks queued before `before_id` fall due: they arrive after it."""
        self._run("UPDATE callbacks SET next_attempt_at = ? WHERE status = 'pending' AND next_attempt_at IS NULL "
                  "AND id < ?", (due, before_id))

    def callback(self, callback_id: int) -> dict | None:
        row = self._one("SELECT * FROM callbacks WHERE id = ?", (callback_id,))
        return _callback(row, self._attempts([callback_id])) if row else None

    def callbacks(self, *, tid: str | None = None, status: str | None = None) -> list[dict]:
        where, args = _where(tid=tid, status=status)
        rows = self._all(f"SELECT * FROM callbacks {where} ORDER BY id", args)
        attempts = self._attempts([r["id"] for r in rows])
        return [_callback(r, attempts) for r in rows]

    def claim_due_callbacks(self, now: float, wall: float, lease: float, limit: int) -> list[dict]:
        """Take up to `limit` pending callbacks due at emulator time `now` that no live claim
        holds. Each gets a claim of its own, good until wall time `wall + lease`: whoever
        holds it makes the next attempt, so no attempt is made twice, by any process."""
        with self.atomic(exclusive=False):
            rows = self._db.execute(
                "SELECT * FROM callbacks WHERE status = 'pending' AND next_attempt_at <= ? "
                "AND (claim_expires IS NULL OR claim_expires < ?) ORDER BY next_attempt_at, id LIMIT ?"
                + self._db.skip_locked, (now, wall, limit)).fetchall()
            return [self._claim(row, wall + lease) for row in rows]

    def claim_callback(self, callback_id: int, wall: float, lease: float) -> dict | None:
        """Claim one callback whatever its status (a resend); None while another claim holds it."""
        with self.atomic(exclusive=False):
            row = self._db.execute("SELECT * FROM callbacks WHERE id = ? "
                                   "AND (claim_expires IS NULL OR claim_expires < ?)" + self._db.skip_locked,
                                   (callback_id, wall)).fetchone()
            return self._claim(row, wall + lease) if row else None

    def _claim(self, row, expires: float) -> dict:
        claim = uuid.uuid4().hex
        self._db.execute("UPDATE callbacks SET claimed_by = ?, claim_expires = ? WHERE id = ?",
                         (claim, expires, row["id"]))
        return {**_callback(row, {}), "claim": claim}

    def finish_attempt(self, callback_id: int, claim: str, attempt: dict, status: str, attempts_made: int,
                       next_attempt_at: float | None, extra: dict | None = None) -> bool:
        """Record an attempt (and an `extra` one made under the same claim, a duplicate) and the
        callback's new state, if the claim still holds (a reset or an expired lease voids it:
        then nothing is recorded, and False comes back)."""
        with self.atomic():
            cur = self._db.execute(
                "UPDATE callbacks SET status = ?, attempts = ?, next_attempt_at = ?, claimed_by = NULL, "
                "claim_expires = NULL WHERE id = ? AND claimed_by = ?",
                (status, attempts_made, next_attempt_at, callback_id, claim))
            if cur.rowcount != 1:
                return False
            self._insert_attempt(callback_id, attempt)
            if extra is not None:
                self._insert_attempt(callback_id, extra)
            if attempt["kind"] in ("first", "retry") and status != "pending":
                self.count("callback", {"delivered": "first_try" if attempts_made == 1 else "retried"}.get(
                    status, "exhausted"))
            return True

    def _insert_attempt(self, callback_id: int, attempt: dict) -> None:
        self._db.execute(
            "INSERT INTO callback_attempts (callback_id, number, kind, scheduled_at, at, wall_time, "
            "http_status, response_body, error, latency_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (callback_id, attempt["number"], attempt["kind"], attempt["scheduled_at"], attempt["at"],
             attempt["wall_time"], attempt["http_status"], attempt["response_body"], attempt["error"],
             attempt["latency_ms"]))

    def callback_backlog(self, now: float, wall: float) -> dict:
        """Pending callbacks: how many are due or being sent, and when the next one falls due."""
        row = self._one(
            "SELECT count(*) AS pending, "
            "CAST(coalesce(sum(CASE WHEN next_attempt_at <= ? OR claim_expires >= ? THEN 1 ELSE 0 END), 0) "
            "AS INTEGER) AS busy, "
            "min(CASE WHEN next_attempt_at > ? THEN next_attempt_at END) AS next_due "
            "FROM callbacks WHERE status = 'pending'", (now, wall, now))
        return dict(row)

    def _attempts(self, ids: list[int]) -> dict[int, list[dict]]:
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        grouped: dict[int, list[dict]] = {i: [] for i in ids}
        for row in self._all(f"SELECT * FROM callback_attempts WHERE callback_id IN ({marks}) ORDER BY id", ids):
            attempt = dict(row)
            grouped[attempt.pop("callback_id")].append(attempt)
        return grouped

    # --- the scenario, its rules' counts, its timed jobs ---
    def scenario_document(self) -> dict | None:
        row = self._one("SELECT document FROM scenario WHERE id = 1")
        return json.loads(row["document"]) if row and row["document"] else None

    def save_scenario(self, document: dict | None) -> int:
        """Install a scenario for every process: a new version, every rule's count at zero."""
        with self.atomic():
            row = self._db.execute(
                "INSERT INTO scenario (id, document, version) VALUES (1, ?, 1) ON CONFLICT (id) DO UPDATE "
                "SET document = excluded.document, version = scenario.version + 1 RETURNING version",
                (json.dumps(document, ensure_ascii=False) if document else None,)).fetchone()
            self._db.execute("DELETE FROM rule_hits")
            self._shared_state_changed()
            return row[0]

    def take_rule_hit(self, rule: str, limit: int | None) -> bool:
        """Count one application of `rule`, unless it has had `limit` already."""
        with self.atomic():
            self._db.execute("INSERT INTO rule_hits (rule, hits) VALUES (?, 0) ON CONFLICT (rule) DO NOTHING", (rule,))
            cur = self._db.execute("UPDATE rule_hits SET hits = hits + 1 WHERE rule = ? "
                                   "AND (CAST(? AS INTEGER) IS NULL OR hits < ?)",
                                   (rule, limit, limit))
            if cur.rowcount == 1:
                self.count("rule", rule)
            return cur.rowcount == 1

    def rule_hits(self) -> dict[str, int]:
        return {r["rule"]: r["hits"] for r in self._all("SELECT rule, hits FROM rule_hits")}

    def add_job(self, due_at: int, kind: str, params: dict, origin: str) -> int:
        with self.atomic():
            self._shared_state_changed()
            return self._db.execute("INSERT INTO jobs (due_at, kind, params, origin) VALUES (?, ?, ?, ?) RETURNING id",
                                    (due_at, kind, json.dumps(params, ensure_ascii=False), origin)).fetchone()[0]

    def take_due_job(self, now: int) -> dict | None:
        """The earliest job due at `now`, taken by this caller alone."""
        with self.atomic():
            row = self._db.execute("SELECT * FROM jobs WHERE done = 0 AND due_at <= ? ORDER BY due_at, id LIMIT 1",
                                   (now,)).fetchone()
            if row is None:
                return None
            self._db.execute("UPDATE jobs SET done = 1 WHERE id = ?", (row["id"],))
            self._shared_state_changed()
            return {**dict(row), "params": json.loads(row["params"])}

    def drop_pending_jobs(self) -> None:
        with self.atomic():
            self._db.execute("DELETE FROM jobs WHERE done = 0")
            self._shared_state_changed()

    def finish_job(self, job_id: int, result: str) -> None:
        self._run("UPDATE jobs SET result = ? WHERE id = ?", (result, job_id))

    def jobs(self) -> list[dict]:
        return [{**dict(r), "params": json.loads(r["params"]), "done": bool(r["done"])}
                for r in self._all("SELECT * FROM jobs ORDER BY due_at, id")]

    def jobs_due(self, now: int) -> int:
        return self._one("SELECT count(*) FROM jobs WHERE done = 0 AND due_at <= ?", (now,))[0]

    # --- the request journal ---
    def journal_append(self, entry: dict) -> None:
        """Keep an entry. Where processes share a board (SQLite), entries are held back and
        written JOURNAL_BATCH at a time (within the transaction under way, if any), or by this
        process's journal writer within JOURNAL_HOLD seconds; a reader waits for them (settle_journal).
        PostgreSQL writes each at once."""
        item = (_journal_row(entry), entry.get("coverage", ()))
        if self._board is None:
            with self.atomic():
                self._write_journal([item])
            return
        with self._lock:
            if self._slot is None:
                with self.atomic():  # claims are made under the writers' lock
                    self._slot = self._board.claim()
                self._pid = os.getpid()
                self._release_slot = weakref.finalize(self, self._board.release, self._slot)
            if not self._held:
                self._held_since = time.monotonic()
            self._held.append(item)
            self._taken += 1
            self._board.progress(self._slot, self._pid, self._taken, self._written)
            if len(self._held) >= JOURNAL_BATCH:
                self.write_held()
            elif len(self._held) == 1:
                _JOURNAL_WRITER.nudge()

    def write_held(self, only_if_due: bool = False) -> None:
        """Write the entries held back: in one transaction, or in the one under way. They are
        counted as written once it commits; if it rolls back they are held again."""
        with self._lock:
            if not self._held:
                return
            if only_if_due and time.monotonic() - self._held_since < JOURNAL_HOLD:
                return
            batch, self._held = self._held, []
            taken = self._taken
            with self.atomic():
                self._write_journal(batch)
                self.after_commit(lambda: self._mark_written(taken))
                self._on_rollback.append(lambda: self._hold_again(batch))

    def _mark_written(self, taken: int) -> None:
        with self._lock:
            self._written = max(self._written, taken)
            if self._slot is not None:
                self._board.progress(self._slot, self._pid, self._taken, self._written)

    def _hold_again(self, batch: list) -> None:
        self._held[:0] = batch
        self._held_since = time.monotonic()
        _JOURNAL_WRITER.nudge()

    def settle_journal(self) -> None:
        """Before the journal is read: this process's entries written, and every other
        process's written as far as it had taken them (within JOURNAL_HOLD; processes that are
        gone are not waited for)."""
        self.write_held()
        if self._board is not None and not self._board.wait_for_others(self._slot, JOURNAL_WAIT):
            log.warning("another process did not write its journal entries within %s s", JOURNAL_WAIT)

    def _write_journal(self, batch: list) -> None:
        self._db.executemany(
            "INSERT INTO journal (at, method, path, query, client_id, request, status, response, warnings, error, "
            "rule) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [row for row, _ in batch])
        for (kind, name), times in Counter(pair for _, coverage in batch for pair in coverage).items():
            self.count(kind, name, times)
        # Bounded, so a long-running shared sandbox does not grow without end.
        self._since_prune += len(batch)
        if self._since_prune >= JOURNAL_PRUNE_EVERY:
            self._since_prune = 0
            self._db.execute("DELETE FROM journal WHERE id <= (SELECT max(id) FROM journal) - ?", (self.journal_limit,))

    def journal(self, limit: int = 1000) -> list[dict]:
        """Bodies are kept as the text that crossed the wire, and read back as JSON when they are."""
        self.settle_journal()
        rows = self._all("SELECT * FROM (SELECT * FROM journal ORDER BY id DESC LIMIT ?) AS latest ORDER BY id", (limit,))
        return [{**dict(r), "request": _body(r["request"]), "response": _body(r["response"]),
                 "warnings": json.loads(r["warnings"])} for r in rows]


def _journal_row(entry: dict) -> tuple:
    return (entry["at"], entry["method"], entry["path"], entry["query"], entry["client_id"], entry["request"],
            entry["status"], entry["response"], "[]" if not entry["warnings"] else _json(entry["warnings"]),
            entry.get("error", ""), entry.get("rule"))


def _body(text: str):
    if not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, cut, or too deep
        return text
    return value if "\\u" not in text or is_text(value) else text  # a lone surrogate escape stays text


def _where(**equal) -> tuple[str, tuple]:
    """A WHERE clause of `column = ?` for each filter that is set."""
    used = {column: value for column, value in equal.items() if value}
    if not used:
        return "", ()
    return "WHERE " + " AND ".join(f"{column} = ?" for column in used), tuple(used.values())


def _payment_row(payment: Payment) -> dict:
    # Not dataclasses.asdict: it deep-copies request and details only for them to be dumped.
    row = {name: getattr(payment, name) for name in _PAYMENT_COLUMNS}
    for name in _PAYMENT_JSON:
        row[name] = _json(row[name])
    return row


def _payment(row) -> Payment | None:
    if row is None:
        return None
    values = {name: row[name] for name in _PAYMENT_COLUMNS}
    for name in _PAYMENT_JSON:
        values[name] = json.loads(values[name])
    return Payment(**values)


def _cancellation(row) -> Cancellation:
    return Cancellation(tid=row["tid"], amount=row["amount"], taxfree_amount=row["taxfree_amount"],
                        tax_amount=row["tax_amount"], partial=bool(row["partial"]),
                        cancel_date=row["cancel_date"], ip_addr=row["ip_addr"], id=row["id"])


def _callback(row, attempts: dict[int, list[dict]]) -> dict:
    callback = dict(row)
    callback["body"] = json.loads(callback["body"])
    callback["warnings"] = json.loads(callback["warnings"])
    callback["fault"] = json.loads(callback["fault"])
    callback["attempts_made"] = callback.pop("attempts")
    callback["attempts"] = attempts.get(row["id"], [])
    return callback
