"""Cancellation windows: may a payment made at one moment still be cancelled at another?"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from .clock import KST

_DAYS = re.compile(r"^D\+(\d+)$")
KINDS = ("same_day", "same_month", "none", "client_policy")


def validate_window(spec: str) -> str:
    if spec in KINDS or _DAYS.match(spec):
        return spec
    raise ValueError(f"unknown cancellation window {spec!r}")


def last_cancel_day(spec: str, transaction: datetime):
    """The last calendar day (KST) on which cancellation is allowed, or None if there is no limit.

    Raises ValueError for "none" (never cancellable): callers check `cancellable` first.
    """
    day = transaction.astimezone(KST).date()
    match = _DAYS.match(spec)
    if match:
        return day + timedelta(days=int(match.group(1)))
    if spec == "same_day":
        return day
    if spec == "same_month":
        next_month = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        return next_month - timedelta(days=1)
    if spec == "client_policy":
        return None
    raise ValueError(f"window {spec!r} has no last day")


def within_window(spec: str, transaction: datetime, at: datetime) -> bool:
    """True if a cancellation at `at` falls inside the window opened at `transaction`."""
    if spec == "none":
        return False
    last = last_cancel_day(spec, transaction)
    return last is None or at.astimezone(KST).date() <= last


def describe(spec: str) -> str:
    match = _DAYS.match(spec)
    if match:
        return f"D+{match.group(1)}"
    return {
        "same_day": "the day of the transaction",
        "same_month": "within the month of the transaction",
        "none": "not cancellable",
        "client_policy": "following the client's policy (no limit)",
    }[spec]
