"""The shop's own records in SQLite: orders, the payments that settled them (one per tid, so a
callback delivered twice is processed once), cancellations, and every notification received."""
from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_no TEXT PRIMARY KEY, product TEXT NOT NULL, amount INTEGER NOT NULL, pgcode TEXT NOT NULL,
    user_id TEXT NOT NULL, token TEXT, status TEXT NOT NULL DEFAULT 'created',
    failure TEXT, fulfilments INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS payments (
    tid TEXT PRIMARY KEY, order_no TEXT NOT NULL REFERENCES orders(order_no), pgcode TEXT NOT NULL,
    amount INTEGER NOT NULL, confirmed_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cancellations (
    id INTEGER PRIMARY KEY, tid TEXT NOT NULL REFERENCES payments(tid), amount INTEGER NOT NULL,
    cancel_date TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY, tid TEXT, order_no TEXT, accepted INTEGER NOT NULL, reason TEXT NOT NULL
);
"""


class Orders:
    def __init__(self, path: str):
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()  # one connection, shared by the server's threads
        self._db.executescript(SCHEMA)

    @contextmanager
    def _transaction(self):
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def create(self, order_no: str, product: str, amount: int, pgcode: str, user_id: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO orders (order_no, product, amount, pgcode, user_id) VALUES (?, ?, ?, ?, ?)",
                       (order_no, product, amount, pgcode, user_id))

    def set(self, order_no: str, **values) -> None:
        with self._transaction() as db:
            columns = ", ".join(f"{name} = ?" for name in values)
            db.execute(f"UPDATE orders SET {columns} WHERE order_no = ?", (*values.values(), order_no))

    def get(self, order_no: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM orders WHERE order_no = ?", (order_no,)).fetchone()
            if row is None:
                return None
            order = dict(row)
            order["payment"] = self._one("SELECT * FROM payments WHERE order_no = ?", order_no)
            tid = order["payment"]["tid"] if order["payment"] else None
            order["cancellations"] = [dict(r) for r in self._db.execute(
                "SELECT amount, cancel_date FROM cancellations WHERE tid = ? ORDER BY id", (tid,))]
            order["notifications"] = [dict(r) for r in self._db.execute(
                "SELECT tid, accepted, reason FROM notifications WHERE order_no = ? ORDER BY id", (order_no,))]
            return order

    def _one(self, sql: str, *args) -> dict | None:
        row = self._db.execute(sql, args).fetchone()
        return dict(row) if row else None

    def settle(self, order_no: str, tid: str, pgcode: str, amount: int, confirmed_by: str) -> bool:
        """Record the payment `tid` and fulfil its order, once: True the first time, False for
        a tid already recorded (the gateway retries; the return and the callback both come)."""
        with self._transaction() as db:
            try:
                db.execute("INSERT INTO payments (tid, order_no, pgcode, amount, confirmed_by) VALUES (?, ?, ?, ?, ?)",
                           (tid, order_no, pgcode, amount, confirmed_by))
            except sqlite3.IntegrityError:
                return False
            db.execute("UPDATE orders SET status = 'paid', fulfilments = fulfilments + 1 WHERE order_no = ?",
                       (order_no,))
            return True

    def add_cancellation(self, order_no: str, tid: str, amount: int, cancel_date: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO cancellations (tid, amount, cancel_date) VALUES (?, ?, ?)",
                       (tid, amount, cancel_date))
            cancelled, paid = db.execute(
                "SELECT COALESCE(SUM(c.amount), 0), p.amount FROM payments p "
                "LEFT JOIN cancellations c ON c.tid = p.tid WHERE p.tid = ?", (tid,)).fetchone()
            db.execute("UPDATE orders SET status = ? WHERE order_no = ?",
                       ("cancelled" if cancelled >= paid else "partially_cancelled", order_no))

    def note(self, tid: str | None, order_no: str | None, accepted: bool, reason: str) -> None:
        """Keep every notification received, accepted or not: what a support person looks at."""
        with self._transaction() as db:
            db.execute("INSERT INTO notifications (tid, order_no, accepted, reason) VALUES (?, ?, ?, ?)",
                       (tid, order_no, int(accepted), reason))
