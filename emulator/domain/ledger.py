"""The cancellation rules: may this amount be taken back from this payment, now?"""
from __future__ import annotations

from datetime import datetime

from .clock import KST, kst_datetime, parse_kst_datetime
from .errors import GatewayError
from . import tax, windows
from .methods import PaymentMethod
from .payment import APPROVED, ISSUED, Cancellation, Payment

_STATUS_WORDS = {ISSUED: "awaiting deposit"}


def plan_cancellation(payment: Payment, method: PaymentMethod, *, amount: int, partial: bool,
                      at: datetime, taxfree_amount: int | None = None,
                      tax_amount: int | None = None, ip_addr: str = "") -> Cancellation:
    """The cancellation to record, or the GatewayError that forbids it."""
    tid = payment.tid
    if not method.cancel:
        raise GatewayError("cancel_not_supported", pgcode=method.pgcode)
    if payment.status != APPROVED:
        raise GatewayError("payment_not_approved", tid=tid,
                           status=_STATUS_WORDS.get(payment.status, payment.status))
    if payment.remaining == 0:
        raise GatewayError("already_cancelled", tid=tid)
    if partial and not method.partial_cancel:
        raise GatewayError("partial_cancel_not_supported", pgcode=method.pgcode)
    if partial and payment.disposable_cup_deposit:
        raise GatewayError("partial_with_cup_deposit", tid=tid)
    _check_window(payment, method, at)
    if amount <= 0:
        raise GatewayError("amount_not_positive", field="amount")
    if partial and amount >= payment.remaining:
        raise GatewayError("partial_amount_too_large", tid=tid, remaining=payment.remaining, amount=amount)
    if not partial and amount != payment.remaining:
        raise GatewayError("cancel_amount_mismatch", tid=tid, remaining=payment.remaining, amount=amount)
    if partial:
        taxfree, vat = _partial_parts(payment, amount, taxfree_amount, tax_amount)
    else:
        # A full cancel gives back what is left of each part.
        taxfree, vat = _left_of_parts(payment)
    return Cancellation(tid=tid, amount=amount, taxfree_amount=taxfree, tax_amount=vat,
                        partial=partial, cancel_date=kst_datetime(at), ip_addr=ip_addr)


def _partial_parts(payment: Payment, amount: int, taxfree_amount: int | None,
                   tax_amount: int | None) -> tuple[int, int]:
    """(taxfree, VAT) of a partial cancel: the checks of payments/request on its own amount, and
    never more of a part than the payment has left of it. A VAT left out is computed as on
    payments/request, but never above the VAT left."""
    if (taxfree_amount or 0) > amount:
        raise GatewayError("taxfree_exceeds_cancel", taxfree_amount=taxfree_amount, amount=amount)
    if tax_amount is not None and tax_amount > amount - (taxfree_amount or 0):
        raise GatewayError("tax_exceeds_taxable", tax_amount=tax_amount, taxable=amount - (taxfree_amount or 0))
    taxfree_left, vat_left = _left_of_parts(payment)
    if tax_amount is not None and tax_amount > vat_left:
        raise GatewayError("cancel_tax_exceeds_left", tax_amount=tax_amount, tid=payment.tid, left=vat_left,
                           vat=payment.tax_amount)
    if (taxfree_amount or 0) > taxfree_left:
        raise GatewayError("cancel_taxfree_exceeds_left", taxfree_amount=taxfree_amount, tid=payment.tid,
                           left=taxfree_left, taxfree=payment.taxfree_amount)
    taxfree, vat = tax.split(amount, taxfree_amount, tax_amount)
    return taxfree, min(vat, vat_left)


def _check_window(payment: Payment, method: PaymentMethod, at: datetime) -> None:
    spec = method.window_for(payment.paid_pgcode)
    made = parse_kst_datetime(payment.transaction_date)
    if not windows.within_window(spec, made, at):
        last = windows.last_cancel_day(spec, made)
        raise GatewayError("cancel_window_passed", tid=payment.tid, window=spec,
                           last_day=last.isoformat(), today=at.astimezone(KST).date().isoformat())


def _left_of_parts(payment: Payment) -> tuple[int, int]:
    return (max(payment.taxfree_amount - payment.cancelled_taxfree_amount, 0),
            max(payment.tax_amount - payment.cancelled_tax_amount, 0))
