"""Billkeys (what an automatic payment pays with) and cash receipts (requested, then issued on
the receipt form or the payment page)."""
from __future__ import annotations

import json


class BillkeyAndReceiptTables:
    def insert_billkey(self, billkey: str, client_id: str, user_id: str, pgcode: str,
                       issued_at: str, amount: int) -> None:
        self._run("INSERT INTO billkeys VALUES (?, ?, ?, ?, ?, ?)",
                  (billkey, client_id, user_id, pgcode, issued_at, amount))

    def billkey(self, billkey: str, *, to_change: bool = False) -> dict | None:
        """`to_change`: read by a rule that then pays with it (the month's repayment checked
        against the payments made with it), kept from every other writer until the transaction ends."""
        read = self._one_to_change if to_change else self._one
        row = read("SELECT * FROM billkeys WHERE billkey = ?", (billkey,))
        return dict(row) if row else None

    def insert_cash_receipt(self, token: int, tid: str, client_id: str, type_: str, tax_flag: str,
                            return_url: str, created_at: str) -> None:
        self._run("INSERT INTO cash_receipts VALUES (?, ?, ?, ?, ?, ?, 'requested', '{}', ?)",
                  (token, tid, client_id, type_, tax_flag, return_url, created_at))

    def cash_receipts_of(self, tid: str) -> list[dict]:
        rows = self._all("SELECT * FROM cash_receipts WHERE tid = ? ORDER BY token", (tid,))
        return [{**dict(r), "details": json.loads(r["details"])} for r in rows]

    def cash_receipt(self, token: int, *, to_change: bool = False) -> dict | None:
        """`to_change`: read to be issued, kept from every other writer until the transaction ends."""
        read = self._one_to_change if to_change else self._one
        row = read("SELECT * FROM cash_receipts WHERE token = ?", (token,))
        return {**dict(row), "details": json.loads(row["details"])} if row else None

    def complete_cash_receipt(self, token: int, receipt: dict) -> None:
        """The requested cash receipt is issued: `receipt` is what callbacks and return fields carry."""
        self._run("UPDATE cash_receipts SET status = 'issued', details = ? WHERE token = ?",
                  (json.dumps(receipt, ensure_ascii=False), token))
