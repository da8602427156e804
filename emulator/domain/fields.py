"""What the gateway sends: return_url fields, the callback body, search rows. Pure functions."""
from __future__ import annotations

from .payhash import billkey_payhash, payhash
from .payment import Cancellation, ListedPayment, Payment

VIRTUAL_ACCOUNT_FIELDS = ("account_no", "account_name", "account_holder", "bank_code", "bank_name",
                          "issue_tid", "expire_date", "expire_time")
# The real test gateway's successful return carries an empty message (docs/fidelity.md).
APPROVED_MESSAGE = ""
VERIFIED_MESSAGE = ""
# Keys of newer real callbacks and returns, which real handlers read; no public capture shows
# their values, so they say "nothing": no coupon, no point (docs/fidelity.md entry 17). card_code
# is the card's company (domain/card_companies.toml), among what the approval made.
NEWER_KEYS = {"coupon_amount": 0, "method_info": "", "pointuse_flag": "", "receipt_possible_amount": 0}
# A virtual account's callback carries a cash receipt even when none was asked: "no need to
# issue" (06), as in a captured callback of the real test gateway.
NO_CASH_RECEIPT = {"cid": "", "code": "0", "deal_no": "", "issue_type": "1", "message": "", "payer_sid": "",
                   "type": "06"}
# The cash receipt a payer asks for on the payment page (receipt_flag=Y) is kept with the payment's
# request under this name until the approval builds the return fields and the callback from it.
PAYER_CASH_RECEIPT = "payer_cash_receipt"


def _identity(payment: Payment) -> dict:
    return {"user_id": payment.user_id, "user_name": payment.user_name, "order_no": payment.order_no,
            "service_name": payment.service_name, "product_name": payment.product_name,
            "custom_parameter": payment.custom_parameter}


def _amounts(payment: Payment) -> dict:
    return {"amount": payment.amount, "taxfree_amount": payment.taxfree_amount,
            "tax_amount": payment.tax_amount, "nonsettle_amount": 0, "discount_amount": 0,
            "disposable_cup_deposit": payment.disposable_cup_deposit}


def _paid(payment: Payment) -> dict:
    """What the approval made: identifiers and the method's details (install_month is "" where
    installments do not apply; card_code "" but for a card, and in a payment approved before
    card codes were kept)."""
    d = payment.details
    return {"tid": payment.tid, "cid": payment.cid, "pay_info": d["pay_info"], "pgcode": payment.paid_pgcode,
            "billkey": payment.billkey, "domestic_flag": d["domestic_flag"],
            "transaction_date": payment.transaction_date, "install_month": d["install_month"],
            "card_info": d["card_info"], "card_code": d.get("card_code", "")}


def _text(values: dict) -> dict:
    """The return POST is form-encoded: every value is text."""
    return {k: str(v) for k, v in values.items()}


def payment_payhash(payment: Payment, payment_key: str) -> str:
    return payhash(payment.user_id, payment.amount, payment.tid, payment_key)


def return_success(payment: Payment, payment_key: str) -> dict:
    d = payment.details
    fields = {"code": "0", "message": APPROVED_MESSAGE, **_identity(payment), **_paid(payment),
              **_amounts(payment), **NEWER_KEYS}
    if "account_no" in d:
        # A virtual account is issued, not paid: no payhash until the deposit's callback.
        fields.update({name: d[name] for name in VIRTUAL_ACCOUNT_FIELDS})
    else:
        fields["payhash"] = payment_payhash(payment, payment_key)
    fields.update(cash_receipt_fields(sent_cash_receipt(payment)))
    return _text(fields)


def return_verification(payment: Payment, payment_key: str) -> dict:
    d = payment.details
    return _text({"code": "0", "message": VERIFIED_MESSAGE, **_identity(payment),
                  "pay_info": d["pay_info"], "pgcode": payment.paid_pgcode, "billkey": payment.billkey,
                  "card_info": d["card_info"],
                  "payhash": billkey_payhash(payment.user_id, payment.billkey, payment_key)})


def return_failure(payment: Payment, code: str, message: str) -> dict:
    identity = _identity(payment)
    del identity["user_name"]
    return _text({"code": code, "message": message, **identity})


def callback_body(payment: Payment, payment_key: str) -> dict:
    """The callback's JSON, its keys in alphabetical order as in real callbacks."""
    body = {**_identity(payment), **_paid(payment), **_amounts(payment), **NEWER_KEYS,
            "payhash": payment_payhash(payment, payment_key)}
    if receipt := sent_cash_receipt(payment):
        body["cash_receipt"] = dict(receipt)
    return dict(sorted(body.items()))


def cash_receipt(payment: Payment) -> dict | None:
    """The payment's cash receipt: one issued later on the receipt form, else the one the payer
    asked for on the payment page."""
    return payment.details.get("cash_receipt") or payment.request.get(PAYER_CASH_RECEIPT)


def sent_cash_receipt(payment: Payment) -> dict | None:
    """The cash receipt the return fields and the callback carry: the payment's, or for a virtual
    account with none, "no need to issue"."""
    receipt = cash_receipt(payment)
    if receipt is None and "account_no" in payment.details:
        return NO_CASH_RECEIPT
    return receipt


def cash_receipt_fields(receipt: dict | None) -> dict:
    """The return POST flattens the callback's cash_receipt object into cash_receipt_* fields."""
    if not receipt:
        return {}
    return {"cash_receipt_code": receipt["code"], "cash_receipt_message": receipt["message"],
            "cash_receipt_type": receipt["type"], "cash_receipt_issue_type": receipt["issue_type"],
            "cash_receipt_cid": receipt["cid"], "cash_receipt_payer_sid": receipt["payer_sid"],
            "cash_receipt_deal_no": receipt["deal_no"]}


def list_row(payment: Payment | ListedPayment, *, status_code: int, amount: int, taxfree_amount: int,
             tax_amount: int, cancel_date: str) -> dict:
    """One row of transaction/list. Its tax split is that of its `amount`: the payment's, or what
    was cancelled (the Korean documentation's rows carry both, after `amount`)."""
    return {"pgcode": payment.paid_pgcode, "user_id": payment.user_id, "user_name": payment.user_name,
            "tid": payment.tid, "cid": payment.cid, "amount": amount, "taxfree_amount": taxfree_amount,
            "tax_amount": tax_amount, "order_no": payment.order_no,
            "product_name": payment.product_name, "status_code": status_code,
            "transaction_date": payment.transaction_date, "cancel_date": cancel_date}


def _approval_row(payment: Payment | ListedPayment) -> dict:
    return list_row(payment, status_code=0, amount=payment.amount, taxfree_amount=payment.taxfree_amount,
                    tax_amount=payment.tax_amount, cancel_date="")


def transaction_row(payment: ListedPayment) -> dict:
    """date_type=transaction: the payment with its present status; a cancelled one shows
    the amount cancelled (and its tax split) and the last cancellation's date."""
    status = payment.list_status
    if status == 0:
        return _approval_row(payment)
    return list_row(payment, status_code=status, amount=payment.cancelled_amount,
                    taxfree_amount=payment.cancelled_taxfree_amount, tax_amount=payment.cancelled_tax_amount,
                    cancel_date=payment.last_cancel_date)


def settle_rows(approvals: list[ListedPayment], cancellations: list[tuple[Cancellation, Payment]]) -> list[dict]:
    """date_type=settle: approvals on their date, each cancellation on its own date."""
    rows = [_approval_row(p) for p in approvals]
    rows += [list_row(p, status_code=c.list_status, amount=c.amount, taxfree_amount=c.taxfree_amount,
                      tax_amount=c.tax_amount, cancel_date=c.cancel_date)
             for c, p in cancellations]
    return sorted(rows, key=lambda r: r["cancel_date"] or r["transaction_date"])
