"""The request journal: every gateway API request and its answer. Entries are held back per
process and written in batches (with a request's transaction, or by this process's writer
thread); a reader first asks every process on the database to write what it holds."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from collections import Counter
from contextlib import nullcontext

from ..domain.text import is_text
from ..waits import Busy
from .connection import _STORAGES, _json

JOURNAL_BATCH = 32  # journal entries held back at most, per process
JOURNAL_HOLD = 0.05  # seconds an entry is held back at most (what a reader may wait for another process)
JOURNAL_WAIT = 2.0  # seconds a reader of the journal waits at most for the other processes
JOURNAL_PRUNE_EVERY = 50  # entries written between two trims of the journal to its limit
log = logging.getLogger("payletter_emulator")


def _forget_held_in_child() -> None:
    """A forked process must not write its parent's journal entries, nor speak in its parent's slot."""
    for storage in _STORAGES:
        storage._held.clear()
        storage._slot = None
        storage._taken = storage._written = 0


if hasattr(os, "register_at_fork"):  # not on Windows, where nothing forks
    os.register_at_fork(after_in_child=_forget_held_in_child)


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


def write_all_held() -> None:
    """Every storage of this process writes the journal entries it holds back. A serving process
    that stops calls it once its last request is answered: its journal writer is a daemon thread,
    and a worker ends without running exit hooks, so what it held (a drained request's entry)
    would be lost."""
    for storage in list(_STORAGES):
        try:
            storage.write_held()
        except Exception:  # a closed or broken database: nothing more can be written to it
            log.exception("could not write held journal entries")


class JournalTables:
    def _hold_journal(self, journal_limit: int) -> None:
        """This process's entries held back (journal_append), and its slot on the board."""
        self.journal_limit = journal_limit
        self._held: list[tuple] = []
        self._held_since = 0.0
        self._slot: int | None = None
        self._taken = self._written = 0
        self._pid = 0  # the process that claimed the slot
        self._since_prune = 0

    def _leave_board(self) -> None:
        """Before the connection closes: what is held written, the slot given back."""
        self.write_held()
        if self._slot is not None:
            self._release_slot()
            self._slot = None

    def journal_append(self, entry: dict) -> None:
        """Keep an entry. Where processes share a board (SQLite), entries are held back and
        written JOURNAL_BATCH at a time (within the transaction under way, if any), or by this
        process's journal writer within JOURNAL_HOLD seconds; a reader waits for them (settle_journal).
        PostgreSQL writes each at once, in the transaction under way if any (`journaled`)."""
        item = (_journal_row(entry), entry.get("coverage", ()))
        if self._board is None:
            with self.atomic():
                self._write_journal([item])
            return
        if self._slot is None:
            with self.atomic():  # claims are made under the writers' lock (and not within `_lock`:
                if self._slot is None:  # a writer waiting for another process holds nothing)
                    self._slot = self._board.claim()
                    self._pid = os.getpid()
                    self._release_slot = weakref.finalize(self, self._board.release, self._slot)
        with self._lock:
            if not self._held:
                self._held_since = time.monotonic()
            self._held.append(item)
            self._taken += 1
            self._board.progress(self._slot, self._pid, self._taken, self._written)
            batch_full, first = len(self._held) >= JOURNAL_BATCH, len(self._held) == 1
        if batch_full:
            try:
                self.write_held(at_once=True)
            except Busy:  # another process holds the database: the journal writer writes them later
                _JOURNAL_WRITER.nudge()
        elif first:
            _JOURNAL_WRITER.nudge()

    def journaled(self):
        """Around a request whose answer the journal takes inside it (web/request_log.py's
        `journaled`): where each entry is written at once (PostgreSQL), the request's writes and
        its entry are one transaction, one commit; where entries are held back (SQLite), nothing."""
        return self.atomic() if self._board is None else nullcontext()

    def write_held(self, only_if_due: bool = False, at_once: bool = False) -> None:
        """Write the entries held back: in one transaction, or in the one under way. They are
        counted as written once it commits; if it rolls back they are held again. A database
        another process holds is waited for as `atomic` says, holding nothing meanwhile
        (`at_once`: not at all, waits.Busy is raised)."""
        with self._lock:
            if not self._held or (only_if_due and time.monotonic() - self._held_since < JOURNAL_HOLD):
                return
        with self.atomic(at_once=at_once):
            if not self._held:
                return
            batch, self._held = self._held, []
            taken = self._taken
            self._write_journal(batch)
            self.after_commit(lambda: self._mark_written(taken))
            self._work.on_rollback.append(lambda: self._hold_again(batch))

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
        if self._board is None:
            return
        settled = self._board.wait_for_others(self._slot, JOURNAL_WAIT)
        if not settled:
            log.warning("another process did not write its journal entries within %s s", JOURNAL_WAIT)

    def _write_journal(self, batch: list) -> None:
        self._db.executemany(
            "INSERT INTO journal (at, method, path, query, client_id, request, status, response, warnings, error, "
            "rule, taken) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [row for row, _ in batch])
        for (kind, name), times in Counter(pair for _, coverage in batch for pair in coverage).items():
            self.count(kind, name, times)
        # Bounded, so a long-running shared sandbox does not grow without end.
        self._since_prune += len(batch)
        if self._since_prune >= JOURNAL_PRUNE_EVERY:
            self._since_prune = 0
            self._db.execute("DELETE FROM journal WHERE id <= (SELECT max(id) FROM journal) - ?", (self.journal_limit,))

    def journal(self, limit: int = 1000, before: int | None = None) -> list[dict]:
        """The last `limit` entries (before the id `before`, a page's cursor), oldest first. Bodies
        are kept as the text that crossed the wire, and read back as JSON when they are."""
        self.settle_journal()
        # In the order the answers were given: processes write their entries in batches, so ids
        # follow the batches; `taken` is the wall-clock moment each entry was taken. A page's
        # cursor is an entry's id: the page holds the entries taken before that entry.
        where, args = "", ()
        if before is not None:
            where = "WHERE (COALESCE(taken, 0), id) < (SELECT COALESCE(taken, 0), id FROM journal WHERE id = ?)"
            args = (before,)
        rows = self._all(f"SELECT * FROM (SELECT * FROM journal {where} ORDER BY COALESCE(taken, 0) DESC, id DESC "
                         "LIMIT ?) AS latest ORDER BY COALESCE(taken, 0), id", (*args, limit))
        return [{**{k: r[k] for k in r.keys() if k != "taken"}, "request": _body(r["request"]),
                 "response": _body(r["response"]), "warnings": json.loads(r["warnings"])} for r in rows]


def _journal_row(entry: dict) -> tuple:
    return (entry["at"], entry["method"], entry["path"], entry["query"], entry["client_id"], entry["request"],
            entry["status"], entry["response"], "[]" if not entry["warnings"] else _json(entry["warnings"]),
            entry.get("error", ""), entry.get("rule"), time.time_ns())


def _body(text: str):
    if not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, cut, or too deep
        return text
    return value if "\\u" not in text or is_text(value) else text  # a lone surrogate escape stays text
