"""The merchant's side of the gateway: what each API call (payments/request, autopay, cancel,
cash receipt, transaction list, receipt info, payment status) does to the stored state.

Plain Python: no Flask, no SQL. The HTTP layer hands in validated values and renders what
comes back; every refusal is a GatewayError.
"""
from __future__ import annotations

from datetime import datetime
from urllib.parse import quote, urlencode

from ..domain.clock import kst_date, kst_datetime, parse_kst_datetime
from ..config import Client
from ..domain import fields, ledger, recurring, tax
from ..domain.details import virtual_account_expiry
from ..domain.methods import PaymentMethod, verification_methods
from ..domain.payhash import sha256_hex
from ..domain.payment import APPROVED, ISSUED, STATUS_CODES, ListedPayment, Payment
from ..domain.errors import GatewayError
from ..engines.validation import tolerate
from .context import REQUEST_HEADERS, Room, known_method

CASH_RECEIPT_FORM_TYPES = {"0": "1", "1": "1", "2": "2"}  # the reference's example: type 0 opens on 1


class MerchantApi(Room):
    def request_payment(self, client: Client, values: dict, base_url: str, headers: dict | None = None) -> dict:
        method = known_method(values["pgcode"])
        if headers:  # kept for the scenario rules that match the payment's later moments
            values = {**values, REQUEST_HEADERS: headers}
        autopay = values.get("autopay_flag") == "Y"
        verification = values["amount"] == 0
        if verification and not autopay:
            raise GatewayError("verification_requires_autopay")
        if autopay and not method.recurring:
            raise GatewayError("recurring_not_supported", pgcode=method.pgcode)
        if verification and not method.verification:
            raise GatewayError("verification_not_supported", pgcode=method.pgcode,
                               offered=", ".join(verification_methods()))
        amounts = self._amounts(method, values, endpoint="payments/request", cup_allowed=method.cup_deposit,
                                verification=verification)
        if method.service_name_required and not values.get("service_name"):
            raise GatewayError("service_name_required", pgcode=method.pgcode)
        now = self.clock.now()
        if method.details == "account":
            self._check_expiry(values, now)
        payment = self._new_payment(client, method, values, now, amounts,
                                    kind="verification" if verification else "payment")
        self.storage.insert_payment(payment)
        return {"token": payment.token, **payment_page_urls(base_url, payment.token)}

    def _new_payment(self, client: Client, method: PaymentMethod, values: dict, now: datetime,
                     amounts: tuple[int, int, int], **state) -> Payment:
        taxfree, vat, cup = amounts
        return Payment(
            token=self.context.token(), client_id=client.client_id, pgcode=method.pgcode, user_id=values["user_id"],
            amount=values["amount"], product_name=values["product_name"], request=values,
            created_at=kst_datetime(now), user_name=values.get("user_name", ""),
            order_no=values.get("order_no", ""), service_name=values.get("service_name", ""),
            custom_parameter=values.get("custom_parameter", ""), taxfree_amount=taxfree, tax_amount=vat,
            disposable_cup_deposit=cup, **state)

    @staticmethod
    def _check_expiry(values: dict, now: datetime) -> None:
        if "expire_date" not in values and "expire_time" not in values:
            return
        expiry_text = f"{values.get('expire_date', now.strftime('%Y%m%d'))} {values.get('expire_time', '2359')}"
        try:
            expiry = virtual_account_expiry({"expire_date": now.strftime("%Y%m%d"), **values}, now)
        except ValueError:
            raise GatewayError("expiry_invalid", expiry=expiry_text, rule="is not a real date and time") from None
        if expiry <= now:
            raise GatewayError("expiry_invalid", expiry=expiry_text,
                               rule=f"is already past (now {kst_datetime(now)})")

    def autopay(self, client: Client, values: dict) -> dict:
        method = known_method(values["pgcode"])
        if not method.recurring:
            raise GatewayError("recurring_not_supported", pgcode=method.pgcode)
        if values["amount"] <= 0:
            raise GatewayError("amount_not_positive", field="amount")
        amounts = self._amounts(method, values, endpoint="payments/autopay", cup_allowed=method.autopay_cup_deposit)
        with self.storage.atomic():
            billkey = self.storage.billkey(values["billkey"], to_change=True)
            if billkey is None or billkey["client_id"] != client.client_id:
                raise GatewayError("billkey_unknown", billkey=values["billkey"], client_id=client.client_id)
            if billkey["user_id"] != values["user_id"]:
                raise GatewayError("billkey_user_mismatch", billkey=billkey["billkey"], user_id=values["user_id"])
            if billkey["pgcode"] != method.pgcode:
                raise GatewayError("billkey_pgcode_mismatch", billkey=billkey["billkey"],
                                   issued=billkey["pgcode"], pgcode=method.pgcode)
            now = self.clock.now()
            if method.monthly_repayment:
                recurring.check_mobile_repayment(
                    billkey["billkey"], parse_kst_datetime(billkey["issued_at"]),
                    self.storage.payments_with_billkey(billkey["billkey"]), values["amount"], now)
            payment = self._new_payment(client, method, values, now, amounts, status=APPROVED, kind="autopay",
                                        billkey=billkey["billkey"])
            details = self.context.details.approval(method, payment.amount)
            self.context.approve_fields(payment, method, None, now, details)
            self.storage.insert_payment(payment)
        return {"tid": payment.tid, "cid": payment.cid, "amount": payment.amount,
                "billkey": payment.billkey, "transaction_date": payment.transaction_date}

    def cancel(self, client: Client, values: dict, warnings: list[str], *, partial: bool) -> dict:
        with self.storage.atomic():
            payment = self._client_payment(client, values["tid"], to_change=True)
            if payment.user_id != values["user_id"]:
                raise GatewayError("user_mismatch", user_id=values["user_id"], tid=payment.tid)
            method = known_method(payment.pgcode)
            if values.get("pgcode", payment.pgcode) not in (payment.pgcode, payment.paid_pgcode):
                raise GatewayError("pgcode_mismatch", pgcode=values["pgcode"], tid=payment.tid,
                                   paid=payment.paid_pgcode)
            amount = values.get("amount")
            if amount is None:  # only payments/cancel gets here: its schema lets amount go
                tolerate("amount", "omitted on a full cancel; the whole remaining amount is cancelled",
                         strict=self.context.settings.strict, warnings=warnings)
                amount = payment.remaining
            cancellation = ledger.plan_cancellation(
                payment, method, amount=amount, partial=partial, at=self.clock.now(),
                taxfree_amount=values.get("taxfree_amount"), tax_amount=values.get("tax_amount"),
                ip_addr=values["ip_addr"])
            self.storage.record_cancellation(cancellation)
        return {"tid": payment.tid, "cid": payment.cid, "amount": cancellation.amount,
                "cancel_date": cancellation.cancel_date}

    def issue_cash_receipt(self, client: Client, tid: str, values: dict, base_url: str) -> dict:
        with self.storage.atomic():  # the payment is checked and the receipt kept in one transaction
            payment = self._client_payment(client, tid, to_change=True)
            method = known_method(payment.pgcode)
            reason = None
            if not method.cash_receipt:
                reason = f"{method.pgcode} is not a cash-type method"
            elif payment.status != APPROVED:
                reason = "it is not paid yet" if payment.status == ISSUED else f"it is {payment.status}"
            elif payment.remaining == 0:
                reason = "it is fully cancelled"
            if reason:
                raise GatewayError("cash_receipt_not_available", tid=tid, reason=reason)
            token = self.context.token()
            kind = values.get("type", "0")
            tax_flag = values.get("tax_flag", "N")
            self.storage.insert_cash_receipt(token, tid, client.client_id, kind, tax_flag, values["return_url"],
                                             kst_datetime(self.clock.now()))
        query = urlencode({"id": tid, "type": CASH_RECEIPT_FORM_TYPES[kind], "taxflag": tax_flag,
                           "returnurl": values["return_url"], "token": token}, safe=":/", quote_via=quote)
        return {"receipt_url": f"{base_url}/PGSVC/Receipt/ReceiptForm.asp?{query}"}

    def transaction_list(self, client: Client, values: dict) -> dict:
        try:
            day = datetime.strptime(values["date"], "%Y%m%d").strftime("%Y-%m-%d")
        except ValueError:
            raise GatewayError("field_invalid", field="date", rule="is not a real date (YYYYMMDD)") from None
        pgcode = values.get("pgcode")

        def wanted(payment: Payment | ListedPayment) -> bool:
            # The method's code or the payer's pick (naverpay finds naverpoint payments too).
            return pgcode is None or pgcode in (payment.pgcode, payment.paid_pgcode)

        def approvals() -> list[ListedPayment]:
            return [p for p in self.storage.payments_made_on(client.client_id, day, (APPROVED,)) if wanted(p)]

        if values["date_type"] == "transaction":
            rows = [fields.transaction_row(p) for p in approvals()]
        else:
            cancellations = [(c, p) for c, p in self.storage.cancellations_on(client.client_id, day) if wanted(p)]
            rows = fields.settle_rows(approvals(), cancellations)
        return {"total_count": len(rows), "list": rows}

    def receipt_info(self, client: Client, tid: str, values: dict, base_url: str) -> dict:
        payment = self._client_payment(client, tid)
        if payment.status != APPROVED:
            raise GatewayError("payment_not_approved", tid=tid, status=payment.status)
        paid_on = kst_date(parse_kst_datetime(payment.transaction_date))
        for name, given, expected in (("amount", values["amount"], payment.amount),
                                      ("transaction_date", values["transaction_date"], paid_on)):
            if given != expected:
                raise GatewayError("receipt_mismatch", field=name, given=str(given), tid=tid, expected=expected)
        return {"receipt_url": f"{base_url}/PGSVC/AllTheGate/Receipt_All.asp?id={receipt_id(payment, client)}"}

    def payment_status(self, client: Client, values: dict) -> dict:
        payment = self.storage.latest_payment_for_order(client.client_id, values["order_no"])
        if payment is None:
            raise GatewayError("order_unknown", order_no=values["order_no"], client_id=client.client_id)
        return {"code": 0, "message": "ok", "client_id": client.client_id, "order_no": payment.order_no,
                "token": str(payment.token), "tid": payment.tid or "", "status_code": STATUS_CODES[payment.status]}

    def _client_payment(self, client: Client, tid: str, to_change: bool = False) -> Payment:
        """`to_change`: kept from every other writer until the transaction ends (storage's `to_change`)."""
        payment = self.storage.payment_by_tid(tid, to_change=to_change)
        if payment is None or payment.client_id != client.client_id:
            raise GatewayError("tid_unknown", tid=tid, client_id=client.client_id)
        return payment

    def _amounts(self, method: PaymentMethod, values: dict, *, endpoint: str, cup_allowed: bool,
                 verification: bool = False) -> tuple[int, int, int]:
        """(taxfree_amount, tax_amount, disposable_cup_deposit) once the amount rules pass."""
        amount = values["amount"]
        if not verification and amount < method.minimum:
            raise GatewayError("amount_below_minimum", amount=amount, minimum=method.minimum,
                               pgcode=method.pgcode)
        cup = values.get("disposable_cup_deposit", 0)
        if cup and not cup_allowed:
            raise GatewayError("cup_deposit_not_allowed", pgcode=method.pgcode, endpoint=endpoint)
        if cup > amount:
            raise GatewayError("cup_deposit_exceeds_amount", deposit=cup, amount=amount)
        taxfree = values.get("taxfree_amount", 0)
        if taxfree > amount:
            raise GatewayError("taxfree_exceeds_amount", taxfree_amount=taxfree, amount=amount)
        if values.get("tax_amount", 0) > amount - taxfree:
            raise GatewayError("tax_exceeds_taxable", tax_amount=values["tax_amount"], taxable=amount - taxfree)
        return (*tax.split(amount, taxfree, values.get("tax_amount")), cup)


def payment_page_urls(base_url: str, token: int) -> dict:
    return {"online_url": f"{base_url}/pgsvc/hub.asp?location=online&token={token}",
            "mobile_url": f"{base_url}/pgsvc/hub.asp?location=mobile&token={token}"}


def receipt_id(payment: Payment, client: Client) -> str:
    """Opaque like the gateway's (`72720c...|001|4|3230...`): a keyed digest, then the tid in hex."""
    return f"{sha256_hex(payment.tid + client.payment_key)[:16].lower()}|001|4|{payment.tid.encode().hex()}"
