"""What a payment and a cancellation are: plain records, their statuses and derived numbers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

# Life of a payment request. The number is payments/status's status_code.
CREATED, PAGE, ISSUED, FAILED, ABANDONED, APPROVED, VERIFIED = (
    "created", "page_entered", "awaiting_deposit", "failed", "abandoned", "approved", "verified")
STATUS_CODES = {CREATED: 1, PAGE: 2, ISSUED: 3, FAILED: 4, ABANDONED: 4, APPROVED: 5, VERIFIED: 5}
PENDING = (CREATED, PAGE)

# transaction/list status_code
LIST_APPROVED, LIST_CANCELLED, LIST_PARTIAL = 0, 1, 2


@dataclass
class Payment:
    token: int
    client_id: str
    pgcode: str
    user_id: str
    amount: int
    product_name: str
    request: dict
    created_at: str
    status: str = CREATED
    kind: str = "payment"  # payment | verification | autopay
    user_name: str = ""
    order_no: str = ""
    service_name: str = ""
    custom_parameter: str = ""
    taxfree_amount: int = 0
    tax_amount: int = 0
    disposable_cup_deposit: int = 0
    tid: str | None = None
    cid: str = ""
    paid_pgcode: str = ""
    transaction_date: str = ""
    billkey: str = ""
    details: dict = field(default_factory=dict)
    cancelled_amount: int = 0
    cancelled_taxfree_amount: int = 0
    cancelled_tax_amount: int = 0

    @property
    def remaining(self) -> int:
        return self.amount - self.cancelled_amount

    @property
    def list_status(self) -> int:
        return list_status(self.amount, self.cancelled_amount)


class ListedPayment(NamedTuple):
    """A paid payment as transaction/list shows it: only the columns its rows use (a light
    record, as a day may hold tens of thousands), and the date of its last cancellation."""

    tid: str
    pgcode: str
    paid_pgcode: str
    user_id: str
    user_name: str
    cid: str
    amount: int
    taxfree_amount: int
    tax_amount: int
    order_no: str
    product_name: str
    transaction_date: str
    cancelled_amount: int
    cancelled_taxfree_amount: int
    cancelled_tax_amount: int
    last_cancel_date: str  # "" if never cancelled

    @property
    def list_status(self) -> int:
        return list_status(self.amount, self.cancelled_amount)


def list_status(amount: int, cancelled_amount: int) -> int:
    """transaction/list's status_code of a payment: approved, cancelled or partly cancelled."""
    if cancelled_amount == 0:
        return LIST_APPROVED
    return LIST_CANCELLED if cancelled_amount == amount else LIST_PARTIAL


@dataclass
class Cancellation:
    tid: str
    amount: int
    taxfree_amount: int
    tax_amount: int
    partial: bool
    cancel_date: str
    ip_addr: str = ""
    id: int | None = None

    @property
    def list_status(self) -> int:
        return LIST_PARTIAL if self.partial else LIST_CANCELLED
