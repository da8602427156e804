"""The payer's side: the hosted pages (payment page, transaction receipt, cash-receipt form)
and their control-API twins (approve, decline, abandon), which take the same path to the same
fields, callback and state."""
from __future__ import annotations

import hmac
from datetime import datetime, timedelta

from ..engines import checkout
from ..domain.clock import kst_datetime, parse_kst_datetime
from ..domain import fields, identifiers
from ..domain.methods import PaymentMethod
from ..domain.payment import ABANDONED, APPROVED, CREATED, FAILED, PAGE, PENDING, VERIFIED, Payment
from ..domain.rules import PAYER
from ..domain.errors import GatewayError
from .context import Context, Room, known_method
from .merchant_api import receipt_id
from .outbox import queue_callback
from .virtual_accounts import VirtualAccounts

DECLINE_CODE = "6001"
DECLINE_MESSAGE = "승인이 거절되었습니다. (declined)"


class Payer(Room):
    def __init__(self, context: Context, virtual_accounts: VirtualAccounts):
        super().__init__(context)
        self.virtual_accounts = virtual_accounts  # where a payment by virtual account goes on

    # --- the payer's actions (a page's buttons, or the control API) ---
    def _pending(self, token: int, to_change: bool = False) -> Payment:
        """`to_change`: kept from every other writer until the transaction ends (storage's `to_change`)."""
        payment = self.storage.payment_by_token(token, to_change=to_change)
        if payment is None or payment.kind == "autopay":
            raise GatewayError("token_unknown", token=token)
        if payment.status not in PENDING:
            raise GatewayError("payment_not_pending", token=token, status=payment.status)
        return payment

    def _new_billkey(self, payment: Payment, now: datetime) -> str:
        billkey = identifiers.billkey(payment.client_id, now, self.storage.next_value("billkey"))
        self.storage.insert_billkey(billkey, payment.client_id, payment.user_id, payment.pgcode,
                                    kst_datetime(now), payment.amount)
        return billkey

    def approve(self, token: int, choices: dict, *, ignore_expiry: bool = False) -> dict:
        """Finish a payment as the payer would: the return fields, the callback queued (and sent).
        A scenario rule may make the payer decline or abandon instead, or choose for them. Once
        its page has expired it is refused, as the page is, unless `ignore_expiry`."""
        with self.storage.atomic():  # the payment read once, and unchanged by anyone until approved
            self.storage.foresee_value("tid")  # read with the payment: its tid takes no read of its own
            payment = self._pending(token, to_change=True)
            if not ignore_expiry:
                self._refuse_expired(payment, hint="; ignore_expiry (--ignore-expiry) approves it all the same")
            refused = checkout.refused_choice(known_method(payment.pgcode), payment, choices, self.clock.now())
            if refused is not None:  # what the page would not take, before any test input declines
                raise GatewayError("field_invalid", field=refused[0], rule=refused[1])
            if (failure := checkout.declining_input(payment.pgcode, choices)) is not None:  # first, as on the page
                return self.decline(token, failure.code, failure.message)
            rule = self.context.decide(PAYER, payment, choices)
            if rule is not None and rule.outcome == "decline":
                return {**self.decline(token, rule.params.get("code"), rule.params.get("message")), "rule": rule.name}
            if rule is not None and rule.outcome == "abandon":
                return {**self.abandon(token), "rule": rule.name}
            if rule is not None:
                choices = {**choices, **rule.params}
            answer = self._approve(payment, choices)
        return {**answer, "rule": rule.name} if rule is not None else answer

    def _approve(self, payment: Payment, choices: dict) -> dict:
        """Inside the payment's transaction: approve it (verify, for a verification only)."""
        method = known_method(payment.pgcode)
        option = _chosen_option(method, choices.get("option"))
        client = self.context.clients[payment.client_id]
        now = self.clock.now() - timedelta(days=choices.get("backdate_days", 0))
        details = self.context.details.approval(
            method, payment.amount, card_number=choices.get("card_number"), install=choices.get("install_month"),
            bank_code=choices.get("bank_code"))
        self.storage.count("pgcode", option or method.pgcode)
        if payment.kind == "verification":
            payment.paid_pgcode, payment.details = method.pgcode, details
            payment.billkey = self._new_billkey(payment, now)
            payment.status = VERIFIED
            self.storage.save_payment(payment)
            return {"return_url": payment.request["return_url"],
                    "fields": fields.return_verification(payment, client.payment_key)}
        self.context.approve_fields(payment, method, option, now, details)
        if payment.request.get("autopay_flag") == "Y":
            payment.billkey = self._new_billkey(payment, now)
        if method.details == "account":
            self.virtual_accounts.issue(payment, now, choices.get("bank_code"))
        else:
            payment.status = APPROVED
            queue_callback(self.context, payment, client, now)
        self.storage.save_payment(payment)
        return {"return_url": payment.request["return_url"],
                "fields": fields.return_success(payment, client.payment_key)}

    def decline(self, token: int, code: str | None, message: str | None) -> dict:
        with self.storage.atomic():
            payment = self._pending(token, to_change=True)
            payment.status = FAILED
            payment.details = {"failure": {"code": code or DECLINE_CODE, "message": message or DECLINE_MESSAGE}}
            self.storage.save_payment(payment)
        failure = payment.details["failure"]
        return {"return_url": payment.request["return_url"],
                "fields": fields.return_failure(payment, failure["code"], failure["message"])}

    def abandon(self, token: int) -> dict:
        with self.storage.atomic():
            payment = self._pending(token, to_change=True)
            payment.status = ABANDONED
            self.storage.save_payment(payment)
        method = known_method(payment.pgcode)
        redirect = None if method.no_cancel_redirect else payment.request.get("cancel_url")
        return {"redirect_url": redirect}

    # --- the payer's pages ---
    def page_payment(self, token: int, to_change: bool = False) -> Payment:
        """The payment behind a payment page's token: still pending, the page not expired, and a
        return address a browser can be sent to."""
        payment = self._pending(token, to_change)
        self._refuse_expired(payment)
        target = checkout.return_target(payment)
        if not checkout.browser_can_go(target, app=target != payment.request["return_url"]):
            field = "return_url" if target == payment.request["return_url"] else "app_return_url"
            raise GatewayError("page_url_unusable", field=field, url=target)
        return payment

    def _refuse_expired(self, payment: Payment, hint: str = "") -> None:
        """410 once the payment page is past its lifetime on the emulator's clock."""
        deadline = parse_kst_datetime(payment.created_at) + checkout.PAGE_LIFETIME
        if self.clock.now() > deadline:
            error = GatewayError("page_expired", token=payment.token, deadline=kst_datetime(deadline))
            error.message += hint  # the control API's way past it, which the page has not
            raise error

    def open_page(self, token: int) -> Payment:
        """The payer opens the payment page: payments/status says 2 (page entered) from now on."""
        with self.storage.atomic():
            payment = self.page_payment(token, to_change=True)
            if payment.status == CREATED:
                payment.status = PAGE
                self.storage.save_payment(payment)
        return payment

    def pay_on_page(self, payment: Payment, entry: checkout.Entry) -> dict:
        """The page's pay button, on the payment the page read (`page_payment`, not read again:
        the approval reads it again, locked): the control API's decline or approve, so both make
        the same fields, callback and state. {"target", "fields"}: the fields go to return_url
        (app_return_url in an app); or {"cancel": url or None} when a scenario rule made the
        payer abandon instead. A declining test input is decided here, before any scenario rule."""
        token = payment.token
        if entry.failure is not None:
            answer = self.decline(token, entry.failure.code, entry.failure.message)
        else:
            if entry.cash_receipt is not None:
                self._ask_cash_receipt(token, entry.cash_receipt)
            answer = self.approve(token, entry.choices)
        if "redirect_url" in answer:
            return {"cancel": self._page_cancel_target(payment, answer["redirect_url"])}
        if entry.cash_receipt is not None and answer["fields"]["code"] == "0":
            self._record_page_cash_receipt(answer["fields"]["tid"])
        return {"target": checkout.return_target(payment), "fields": answer["fields"]}

    def _ask_cash_receipt(self, token: int, asked: dict) -> None:
        """Kept with the request, so the approval's return fields and callback carry it."""
        with self.storage.atomic():
            payment = self._pending(token, to_change=True)
            payment.request[fields.PAYER_CASH_RECEIPT] = checkout.cash_receipt_result(
                asked, cid=self.context.details.digits(9), deal_no=payment.order_no or str(token))
            self.storage.save_payment(payment)

    def _record_page_cash_receipt(self, tid: str) -> None:
        """Listed with the payment's cash receipts, as one issued on the receipt form is."""
        with self.storage.atomic():
            payment = self.storage.payment_by_tid(tid, to_change=True)
            token = self.context.token()
            self.storage.insert_cash_receipt(token, tid, payment.client_id, "0", "N", payment.request["return_url"],
                                             kst_datetime(self.clock.now()))
            self.storage.complete_cash_receipt(token, fields.cash_receipt(payment))

    def cancel_on_page(self, token: int) -> str | None:
        """The page's cancel button: the control API's abandon; where the browser goes, if anywhere."""
        payment = self.page_payment(token)
        return self._page_cancel_target(payment, self.abandon(token)["redirect_url"])

    def _page_cancel_target(self, payment: Payment, redirect_url: str | None) -> str | None:
        target = checkout.cancel_target(payment, known_method(payment.pgcode), redirect_url)
        return target if target and checkout.browser_can_go(target, app=True) else None

    def receipt_page(self, receipt: str) -> dict:
        """The transaction receipt behind a receipt/info receipt_url."""
        payment = self.storage.payment_by_tid(checkout.receipt_tid(receipt) or "")
        client = self.context.clients.get(payment.client_id) if payment else None
        if client is None or not hmac.compare_digest(receipt_id(payment, client).encode(), receipt.encode()):
            raise GatewayError("receipt_unknown", id=receipt)
        return {"payment": payment, "method": known_method(payment.pgcode),
                "cancellations": self.storage.cancellations_of(payment.tid), "cash_receipt": fields.cash_receipt(payment)}

    def cash_receipt_request(self, token: int, tid: str, to_change: bool = False) -> tuple[dict, Payment]:
        """The cashreceipt/issue request behind a receipt form, if its receipt can still be issued
        (`to_change`: it and its payment kept from every other writer until the transaction ends)."""
        request = self.storage.cash_receipt(token, to_change=to_change)
        if request is None or request["tid"] != tid:
            raise GatewayError("cash_receipt_form_unknown", token=token, tid=tid)
        if request["status"] != "requested":
            raise GatewayError("cash_receipt_form_used", token=token)
        payment = self.storage.payment_by_tid(tid, to_change=to_change)
        if payment.remaining == 0:
            raise GatewayError("cash_receipt_not_available", tid=tid, reason="it is fully cancelled")
        if not checkout.browser_can_go(request["return_url"]):
            raise GatewayError("page_url_unusable", field="return_url", url=request["return_url"])
        return request, payment

    def issue_cash_receipt_on_form(self, token: int, tid: str, asked: dict) -> dict:
        """The receipt form is sent: the cash receipt is issued, later callbacks and return fields
        carry it, and its fields go to the request's return_url."""
        with self.storage.atomic():
            request, payment = self.cash_receipt_request(token, tid, to_change=True)
            receipt = checkout.cash_receipt_result(asked, cid=self.context.details.digits(9),
                                                   deal_no=payment.order_no or payment.tid)
            self.storage.complete_cash_receipt(token, receipt)
            payment.details["cash_receipt"] = receipt
            self.storage.save_payment(payment)
        return {"target": request["return_url"], "fields": {"tid": tid, **fields.cash_receipt_fields(receipt)}}


def _chosen_option(method: PaymentMethod, picked: str | None) -> str | None:
    if picked is None:
        option = method.option(None)
        return option.pgcode if option else None
    try:
        option = method.option(picked) if method.options else None
    except KeyError:
        option = None
    if option is None:
        raise GatewayError("option_invalid", option=picked, pgcode=method.pgcode,
                           choices=", ".join(o.pgcode for o in method.options) or "none")
    return option.pgcode
