"""Automatic re-payment rules for mobile billkeys (reference: "Mobile Phone Re-payment")."""
from __future__ import annotations

from datetime import datetime, timedelta

from .clock import KST
from .errors import GatewayError
from .payment import Payment

MOBILE_WAIT_DAYS = 30


def previous_month(at: datetime) -> str:
    """`YYYY-MM` of the calendar month (KST) before `at`."""
    first = at.astimezone(KST).date().replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def check_mobile_repayment(billkey: str, issued_at: datetime, history: list[Payment],
                           amount: int, at: datetime) -> None:
    """Not before 30 days after the billkey; the same amount as the last payment with it;
    and a payment with it in the previous calendar month."""
    first_day = issued_at.astimezone(KST).date() + timedelta(days=MOBILE_WAIT_DAYS)
    if at.astimezone(KST).date() < first_day:
        raise GatewayError("mobile_repay_too_early", billkey=billkey, first_day=first_day.isoformat())
    if history and history[-1].amount != amount:
        raise GatewayError("mobile_repay_amount_changed", billkey=billkey,
                           expected=history[-1].amount, amount=amount)
    month = previous_month(at)
    if not any(p.transaction_date.startswith(month) for p in history):
        raise GatewayError("mobile_repay_no_previous_month", billkey=billkey, month=month)
