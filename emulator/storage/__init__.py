"""All state, in SQLite or PostgreSQL: every SQL statement and every transaction boundary of the
emulator. `Storage` is one object made of a table family per module (payments, billkeys_receipts,
callbacks, clock_jobs, journal, sandboxes, Payletter Global's), all speaking through one connection (connection.py),
which alone begins and ends transactions; every table is declared in schema.py."""
from __future__ import annotations

from .billkey_receipt_tables import BillkeyAndReceiptTables
from .callback_tables import CallbackTables
from .clock_job_tables import ClockAndJobTables
from .connection import TOKEN_BLOCK, Connection
from .global_tables import GlobalTables
from .journal_tables import JOURNAL_BATCH, JournalTables
from .payment_tables import PaymentTables
from .sandbox_tables import SandboxTables
from .schema import PENDING_CALLBACKS, SCHEMA, STATE_TABLES

__all__ = ["JOURNAL_BATCH", "SCHEMA", "TOKEN_BLOCK", "Storage"]


class Storage(PaymentTables, BillkeyAndReceiptTables, CallbackTables, ClockAndJobTables, JournalTables,
              SandboxTables, GlobalTables, Connection):
    """One connection per process (SQLite's used under a lock for a statement or a whole transaction;
    PostgreSQL's taken by a thread's transaction from its first round trip to its end, each
    thread's transaction its own). Every check-then-write holds whatever the
    number of servers on one database: SQLite's write transactions exclude each other (BEGIN
    IMMEDIATE); PostgreSQL's lock the rows they change and those they read to change (FOR UPDATE),
    and identifiers come from counter rows changed in one statement (UPDATE ... RETURNING)."""

    def __init__(self, path: str = ":memory:", journal_limit: int = 10_000, callback_limit: int = 10_000,
                 schema: str | None = None):
        self.callback_limit = callback_limit
        self._since_callback_prune = 0  # callbacks queued since the finished ones were last pruned
        self._hold_journal(journal_limit)
        self._open(path, schema)

    def close(self) -> None:
        with self._lock:
            self._leave_board()
            self._db.close()

    def reset(self) -> None:
        """Every table of state emptied at once (counters, coverage and sandboxes stay)."""
        self.settle_journal()  # what was answered before the reset goes with it
        with self.atomic():
            self._shared_state_changed()
            for table in STATE_TABLES:
                self._db.execute(f"DELETE FROM {table}")
            self._db.execute("UPDATE counters SET value = 0 WHERE name = ?", (PENDING_CALLBACKS,))
