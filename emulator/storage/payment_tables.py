"""The payments table and its cancellations: a payment as the service holds it (a Payment), kept
as one row with its request and details as JSON."""
from __future__ import annotations

import json
from dataclasses import fields

from ..domain.payment import Cancellation, ListedPayment, Payment
from .connection import _json, _where

_PAYMENT_JSON = ("request", "details")
_PAYMENT_COLUMNS = [f.name for f in fields(Payment)]
# A listed payment's last cancellation's date (looked up only if it has one).
_LAST_CANCEL_DATE = ("CASE WHEN p.cancelled_amount = 0 THEN '' ELSE (SELECT c.cancel_date FROM cancellations c "
                     "WHERE c.tid = p.tid ORDER BY c.id DESC LIMIT 1) END")
# A listed payment's columns, and that date.
_LISTED = ", ".join([*(f"p.{name}" for name in ListedPayment._fields[:-1]), _LAST_CANCEL_DATE])
_MADE_ON = ("FROM payments p WHERE p.client_id = ? AND substr(p.transaction_date, 1, 10) = ? "
            "AND p.tid IS NOT NULL AND p.status IN ({marks}) ORDER BY p.transaction_date, p.token")
_INSERT_PAYMENT = f"INSERT INTO payments ({', '.join(_PAYMENT_COLUMNS)}) VALUES ({', '.join('?' for _ in _PAYMENT_COLUMNS)})"


class PaymentTables:
    def insert_payment(self, payment: Payment) -> None:
        self._run(_INSERT_PAYMENT, tuple(_payment_row(payment).values()))

    def save_payment(self, payment: Payment) -> None:
        row = _payment_row(payment)
        token = row.pop("token")
        assignments = ", ".join(f"{name} = ?" for name in row)
        self._run(f"UPDATE payments SET {assignments} WHERE token = ?", (*row.values(), token))

    def payment_by_token(self, token: int, *, to_change: bool = False) -> Payment | None:
        """`to_change`: read by a rule that then changes it, in a write transaction, which keeps
        it from every other writer until it ends (connection.py's `_one_to_change`)."""
        read = self._one_to_change if to_change else self._one
        return _payment(read("SELECT * FROM payments WHERE token = ?", (token,)))

    def payment_by_tid(self, tid: str, *, to_change: bool = False) -> Payment | None:
        """`to_change`: as for payment_by_token."""
        read = self._one_to_change if to_change else self._one
        return _payment(read("SELECT * FROM payments WHERE tid = ?", (tid,)))

    def latest_payment_for_order(self, client_id: str, order_no: str) -> Payment | None:
        return _payment(self._one(
            "SELECT * FROM payments WHERE client_id = ? AND order_no = ? ORDER BY token DESC LIMIT 1",
            (client_id, order_no)))

    def payments(self, *, client_id: str | None = None, status: str | None = None,
                 limit: int = 1000, after: int | None = None) -> list[Payment]:
        """In token order, from the first token after `after` (a page's cursor)."""
        where, args = _where(client_id=client_id, status=status, token__after=after)
        rows = self._all(f"SELECT * FROM payments {where} ORDER BY token LIMIT ?", (*args, limit))
        return [_payment(r) for r in rows]

    def payments_made_on(self, client_id: str, day: str, statuses: tuple[str, ...]) -> list[ListedPayment]:
        """Payments of `client_id` whose transaction_date falls on `day` (YYYY-MM-DD), as
        transaction/list shows them, in one query."""
        made_on = _MADE_ON.format(marks=", ".join("?" for _ in statuses))
        rows = self._tuples(f"SELECT {_LISTED} {made_on}", (client_id, day, *statuses))
        return list(map(ListedPayment._make, rows))

    def payments_with_billkey(self, billkey: str) -> list[Payment]:
        rows = self._all("SELECT * FROM payments WHERE billkey = ? AND tid IS NOT NULL "
                         "ORDER BY transaction_date", (billkey,))
        return [_payment(r) for r in rows]

    def record_cancellation(self, cancellation: Cancellation) -> Cancellation:
        """Inside `atomic()`: write the cancellation and the payment's new totals together. Nothing is
        read back (its id stays unknown here), so on PostgreSQL both go with the COMMIT."""
        with self.atomic():
            self._db.execute(
                "INSERT INTO cancellations (tid, amount, taxfree_amount, tax_amount, partial, cancel_date, ip_addr) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (cancellation.tid, cancellation.amount, cancellation.taxfree_amount, cancellation.tax_amount,
                 int(cancellation.partial), cancellation.cancel_date, cancellation.ip_addr))
            self._db.execute(
                "UPDATE payments SET cancelled_amount = cancelled_amount + ?, "
                "cancelled_taxfree_amount = cancelled_taxfree_amount + ?, "
                "cancelled_tax_amount = cancelled_tax_amount + ? WHERE tid = ?",
                (cancellation.amount, cancellation.taxfree_amount, cancellation.tax_amount, cancellation.tid))
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
