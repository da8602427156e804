"""Payletter Global's tables: its payments (by the hosted page's token, and by paytoken once
paid) and their refunds. A refund and the payment's refunded total are written together, the
payment read to change, so no two refunds (from any process) go past its amount."""
from __future__ import annotations

import json

from .connection import _where

_COLUMNS = ("token", "store_id", "currency", "order_no", "amount", "amount_units", "refunded_units", "pginfo",
            "service_name", "status", "request", "created_at", "paytoken", "trantime", "poqtoken", "card_kind",
            "card_no")


class GlobalTables:
    def insert_global_payment(self, payment: dict) -> None:
        row = {**{name: payment.get(name) for name in _COLUMNS}, "request": json.dumps(payment["request"],
                                                                                         ensure_ascii=False)}
        row["refunded_units"] = row["refunded_units"] or 0
        for name in ("trantime", "poqtoken", "card_kind", "card_no"):
            row[name] = row[name] or ""
        marks = ", ".join("?" for _ in _COLUMNS)
        self._run(f"INSERT INTO global_payments ({', '.join(_COLUMNS)}) VALUES ({marks})", tuple(row.values()))

    def global_payment(self, token: str, *, to_change: bool = False) -> dict | None:
        """`to_change`: read by a rule that then changes it (connection.py's `_one_to_change`)."""
        read = self._one_to_change if to_change else self._one
        return _payment(read("SELECT * FROM global_payments WHERE token = ?", (token,)))

    def global_payment_by_paytoken(self, paytoken: str, *, to_change: bool = False) -> dict | None:
        read = self._one_to_change if to_change else self._one
        return _payment(read("SELECT * FROM global_payments WHERE paytoken = ?", (paytoken,)))

    def settle_global_payment(self, token: str, status: str, paytoken: str | None, trantime: str, poqtoken: str,
                              card_kind: str, card_no: str) -> None:
        """A pending payment paid (with its paytoken) or declined."""
        self._run("UPDATE global_payments SET status = ?, paytoken = ?, trantime = ?, poqtoken = ?, card_kind = ?, "
                  "card_no = ? WHERE token = ?", (status, paytoken, trantime, poqtoken, card_kind, card_no, token))

    def record_global_refund(self, paytoken: str, amount: str, units: int, generation: str, trantime: str) -> dict:
        """Inside the transaction that read the payment to change: the refund, and the payment's total."""
        with self.atomic():
            row = self._db.execute(
                "INSERT INTO global_refunds (paytoken, amount, amount_units, generation, trantime) "
                "VALUES (?, ?, ?, ?, ?) RETURNING *", (paytoken, amount, units, generation, trantime)).fetchone()
            self._db.execute("UPDATE global_payments SET refunded_units = refunded_units + ?, "
                             "status = CASE WHEN refunded_units + ? >= amount_units THEN 'refunded' "
                             "ELSE 'partially_refunded' END WHERE paytoken = ?", (units, units, paytoken))
            return dict(row)

    def global_refunds_of(self, paytoken: str) -> list[dict]:
        return [dict(row) for row in self._all("SELECT * FROM global_refunds WHERE paytoken = ? ORDER BY id",
                                               (paytoken,))]

    def global_payments(self, *, store_id: str | None = None, status: str | None = None, limit: int = 1000,
                        after: str | None = None) -> list[dict]:
        """In the order they were requested (tokens ascend), from the first token after `after`."""
        where, args = _where(store_id=store_id, status=status, token__after=after)
        rows = self._all(f"SELECT * FROM global_payments {where} ORDER BY token LIMIT ?", (*args, limit))
        return [_payment(row) for row in rows]


def _payment(row) -> dict | None:
    if row is None:
        return None
    payment = dict(row)
    payment["request"] = json.loads(payment["request"])
    return payment
