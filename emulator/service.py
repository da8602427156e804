"""The gateway itself: what each API call and each payer action does to the stored state.

Plain Python: no Flask, no SQL. The HTTP layer hands in validated values and renders what
comes back; every refusal is a GatewayError.
"""
from __future__ import annotations

import hmac
import math
import time
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Callable
from urllib.parse import quote, urlencode

from . import checkout
from .clock import KST, Clock, ClockState, iso, kst_date, kst_datetime, parse_kst_datetime
from .config import PAY_TEST, Client, Settings
from .domain import delivery, fields, identifiers, ledger, recurring, tax
from .domain.details import DetailMaker, expiry_moment, virtual_account_expiry
from .domain.methods import PaymentMethod, lookup
from .domain.payhash import sha256_hex
from .domain.rules import API, CALLBACK, PAYER, VIRTUAL_ACCOUNT, Rule
from .domain.payment import (ABANDONED, APPROVED, CREATED, FAILED, ISSUED, PAGE, PENDING, STATUS_CODES,
                             VERIFIED, Payment)
from .errors import GatewayError
from .scenario import EMPTY, Rulebook, Scenario
from .storage import Storage
from .validation import tolerate

DECLINE_CODE = "6001"
DECLINE_MESSAGE = "승인이 거절되었습니다. (declined)"
REQUEST_HEADERS = "request_headers"  # a payment's request keeps its headers (X-Emulator-Scenario) here
CASH_RECEIPT_FORM_TYPES = {"0": "1", "1": "1", "2": "2"}  # the reference's example: type 0 opens on 1
# Tokens carry 13-digit epoch milliseconds (from late 2001) and tids YYYYMMDD: the clock stays
# where both make sense.
CLOCK_RANGE = (datetime(2002, 1, 1, tzinfo=KST), datetime(2200, 1, 1, tzinfo=KST))
CLOCK_SPAN = 200 * 366 * 86400
RESYNC_SECONDS = 1.0  # the shared state is read at least this often, in case a process died mid-change


class Gateway:
    def __init__(self, storage: Storage, clock: Clock, settings: Settings, faker,
                 on_callback_queued: Callable[[], None] = lambda: None):
        self.storage = storage
        self.clock = clock
        self.settings = settings
        self.clients = {c.client_id: c for c in settings.clients}
        self.details = DetailMaker(faker)
        self.on_callback_queued = on_callback_queued  # the dispatcher's wake-up
        self.rules = Rulebook(storage)
        self._next_job: int | None = None
        self._synced: int | None = None  # the shared generation last read
        self._resync_at = 0.0
        self.on_scenario: Callable[[Scenario], None] = lambda scenario: None  # settings a scenario brings

    # --- shared pieces ---
    def sync_clock(self) -> None:
        """Take the clock and the scenario another process (or a restart) may have changed.
        They are read again when the storage's shared generation says they changed, and at
        least every RESYNC_SECONDS whatever it says."""
        generation = self.storage.shared_generation()
        if generation is not None and generation == self._synced and time.monotonic() < self._resync_at:
            return
        state, clock_version, version, self._next_job = self.storage.shared_state()
        self._synced, self._resync_at = generation, time.monotonic() + RESYNC_SECONDS
        self.clock.load(state or ClockState(), clock_version)
        if self.rules.sync(version):
            self.on_scenario(self.rules.scenario)

    def milliseconds(self) -> int:
        """The emulator's time as every process sees it, in epoch milliseconds."""
        self.sync_clock()
        return round(self.clock.timestamp() * 1000)

    # --- scenarios ---
    def install_scenario(self, document: dict | None) -> dict:
        """Put a scenario in force from now on: its settings, clock and timeline; every rule's
        count starts again."""
        scenario = self.rules.install(document)
        self.storage.drop_pending_jobs()
        for index, (at, kind, params) in enumerate(scenario.events):
            self.storage.add_job(round(at.timestamp() * 1000), kind, params, origin=f"timeline[{index}]")
        clock = scenario.settings.get("clock", {})
        if scenario.clock_start() is not None:
            self._save_clock(self.clock.set(scenario.clock_start()))
        if "frozen" in clock:
            self._save_clock(self.clock.freeze(clock["frozen"]))
        self.on_scenario(scenario)
        self.on_callback_queued()  # timed jobs may be due at once
        return self.rules.view()

    def decide_api(self, endpoint: str, client: Client, data, headers: Callable[[], dict]) -> Rule | None:
        """The scenario rule, if any, that decides this API request before it is checked."""
        if not self.rules.scenario.rules:
            return None
        context = {**(data if isinstance(data, dict) else {}), "endpoint": endpoint,
                   "client_id": client.client_id, "headers": headers()}
        return self.rules.decide(API, context, self.clock.now())

    def _decide(self, stage: str, payment: Payment, choices: dict | None = None) -> Rule | None:
        context = {"endpoint": "payments/request", "client_id": payment.client_id, "pgcode": payment.pgcode,
                   "amount": payment.amount, "user_id": payment.user_id, "order_no": payment.order_no,
                   "product_name": payment.product_name, "custom_parameter": payment.custom_parameter,
                   "headers": payment.request.get(REQUEST_HEADERS, {}),
                   "card_number": (choices or {}).get("card_number")}
        return self.rules.decide(stage, context, self.clock.now())

    def catch_up(self) -> None:
        """Run the timed jobs that are due now, if any."""
        self.run_jobs(round(self.clock.timestamp() * 1000))

    def run_jobs(self, now: int) -> int:
        """Run every timed job due at `now` (epoch ms), each at its own moment; how many ran.
        Whether any is due is known from the last sync_clock, so an idle round writes nothing."""
        if self._next_job is None or self._next_job > now:
            return 0
        ran = 0
        while True:
            # Taken, run and marked in one transaction: whoever looks next sees it done, and its effect.
            with self.storage.atomic():
                job = self.storage.take_due_job(now)
                if job is None:
                    return ran
                self.storage.finish_job(job["id"], self._run_job(job))
            ran += 1

    def _run_job(self, job: dict) -> str:
        params, at = job["params"], datetime.fromtimestamp(job["due_at"] / 1000, KST)
        try:
            tid = params.get("tid") or self._tid_of_order(params)
            if job["kind"] == "deposit":
                self.deposit(tid, params.get("amount"), at=at)
                return "deposited"
            self.expire(tid, at)
            return "expired"
        except GatewayError as exc:
            return f"refused: {exc.message}"

    def _tid_of_order(self, params: dict) -> str:
        client_id = params.get("client_id", PAY_TEST.client_id)
        payment = self.storage.latest_payment_for_order(client_id, params["order_no"])
        if payment is None or not payment.tid:
            raise GatewayError("order_unknown", order_no=params["order_no"], client_id=client_id)
        return payment.tid

    def expire(self, tid: str, at: datetime) -> dict:
        """The virtual account closes at `at`: a later deposit is refused."""
        with self.storage.atomic():
            payment = self._issued(tid)
            payment.details["expire_date"], payment.details["expire_time"] = at.strftime("%Y%m%d"), at.strftime("%H%M")
            self.storage.save_payment(payment)
        return self.payment_view(payment)

    def _token(self) -> int:
        return identifiers.token(int(self.clock.timestamp() * 1000), self.storage.next_token())

    def _method(self, pgcode: str) -> PaymentMethod:
        method = lookup(pgcode)
        if method is None:
            raise GatewayError("pgcode_unknown", pgcode=pgcode)
        return method

    def _client_payment(self, client: Client, tid: str) -> Payment:
        payment = self.storage.payment_by_tid(tid)
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

    # --- the gateway's API ---
    def request_payment(self, client: Client, values: dict, base_url: str, headers: dict | None = None) -> dict:
        method = self._method(values["pgcode"])
        if headers:  # kept for the scenario rules that match the payment's later moments
            values = {**values, REQUEST_HEADERS: headers}
        autopay = values.get("autopay_flag") == "Y"
        verification = values["amount"] == 0
        if verification and not autopay:
            raise GatewayError("verification_requires_autopay")
        if autopay and not method.recurring:
            raise GatewayError("recurring_not_supported", pgcode=method.pgcode)
        amounts = self._amounts(method, values, endpoint="payments/request", cup_allowed=method.cup_deposit,
                                verification=verification)
        if method.service_name_required and not values.get("service_name"):
            raise GatewayError("service_name_required", pgcode=method.pgcode)
        now = self.clock.now()
        if method.details == "account":
            self._check_expiry(values, now)
        payment = self._new_payment(client, method, values, now, amounts,
                                    kind="verification" if verification else "payment")
        self.storage.insert_payment(payment)  # one statement: the transaction holds the writers' lock no longer
        return {"token": payment.token, **payment_page_urls(base_url, payment.token)}

    def _new_payment(self, client: Client, method: PaymentMethod, values: dict, now: datetime,
                     amounts: tuple[int, int, int], **state) -> Payment:
        taxfree, vat, cup = amounts
        return Payment(
            token=self._token(), client_id=client.client_id, pgcode=method.pgcode, user_id=values["user_id"],
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
        method = self._method(values["pgcode"])
        if not method.recurring:
            raise GatewayError("recurring_not_supported", pgcode=method.pgcode)
        if values["amount"] <= 0:
            raise GatewayError("amount_not_positive", field="amount")
        amounts = self._amounts(method, values, endpoint="payments/autopay", cup_allowed=method.autopay_cup_deposit)
        with self.storage.atomic():
            billkey = self.storage.billkey(values["billkey"])
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
            self._approve_fields(payment, method, None, now, self.details.approval(method, payment.amount))
            self.storage.insert_payment(payment)
        return {"tid": payment.tid, "cid": payment.cid, "amount": payment.amount,
                "billkey": payment.billkey, "transaction_date": payment.transaction_date}

    def cancel(self, client: Client, values: dict, warnings: list[str], *, partial: bool) -> dict:
        with self.storage.atomic():
            payment = self._client_payment(client, values["tid"])
            if payment.user_id != values["user_id"]:
                raise GatewayError("user_mismatch", user_id=values["user_id"], tid=payment.tid)
            method = self._method(payment.pgcode)
            if values.get("pgcode", payment.pgcode) not in (payment.pgcode, payment.paid_pgcode):
                raise GatewayError("pgcode_mismatch", pgcode=values["pgcode"], tid=payment.tid,
                                   paid=payment.paid_pgcode)
            amount = values.get("amount")
            if amount is None:  # only payments/cancel gets here: its schema lets amount go
                tolerate("amount", "omitted on a full cancel; the whole remaining amount is cancelled",
                         strict=self.settings.strict, warnings=warnings)
                amount = payment.remaining
            cancellation = ledger.plan_cancellation(
                payment, method, amount=amount, partial=partial, at=self.clock.now(),
                taxfree_amount=values.get("taxfree_amount"), tax_amount=values.get("tax_amount"),
                ip_addr=values.get("ip_addr", ""))
            self.storage.record_cancellation(cancellation)
        return {"tid": payment.tid, "cid": payment.cid, "amount": cancellation.amount,
                "cancel_date": cancellation.cancel_date}

    def issue_cash_receipt(self, client: Client, tid: str, values: dict, base_url: str) -> dict:
        with self.storage.atomic():  # the payment is checked and the receipt kept in one transaction
            payment = self._client_payment(client, tid)
            method = self._method(payment.pgcode)
            reason = None
            if not method.cash_receipt:
                reason = f"{method.pgcode} is not a cash-type method"
            elif payment.status != APPROVED:
                reason = "it is not paid yet" if payment.status == ISSUED else f"it is {payment.status}"
            elif payment.remaining == 0:
                reason = "it is fully cancelled"
            if reason:
                raise GatewayError("cash_receipt_not_available", tid=tid, reason=reason)
            token = self._token()
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

        def wanted(payment: Payment) -> bool:
            # The method's code or the payer's pick (naverpay finds naverpoint payments too).
            return pgcode is None or pgcode in (payment.pgcode, payment.paid_pgcode)

        approvals = [p for p in self.storage.payments_made_on(client.client_id, day, (APPROVED,)) if wanted(p)]
        if values["date_type"] == "transaction":
            rows = [fields.transaction_row(p, self.storage.cancellations_of(p.tid) if p.cancelled_amount else [])
                    for p in approvals]
        else:
            cancellations = [(c, p) for c, p in self.storage.cancellations_on(client.client_id, day) if wanted(p)]
            rows = fields.settle_rows(approvals, cancellations)
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

    # --- the payer's side (hosted page or control API) ---
    def _pending(self, token: int) -> Payment:
        payment = self.storage.payment_by_token(token)
        if payment is None or payment.kind == "autopay":
            raise GatewayError("token_unknown", token=token)
        if payment.status not in PENDING:
            raise GatewayError("payment_not_pending", token=token, status=payment.status)
        return payment

    def _approve_fields(self, payment: Payment, method: PaymentMethod, option: str | None,
                        now: datetime, details: dict) -> None:
        payment.tid = identifiers.tid(payment.client_id, now, self.storage.next_value("tid"))
        payment.cid = identifiers.cid(method.cid, now, self.details.digits(7))
        payment.transaction_date = kst_datetime(now)
        payment.paid_pgcode = option or method.pgcode
        payment.details = details

    def _new_billkey(self, payment: Payment, now: datetime) -> str:
        billkey = identifiers.billkey(payment.client_id, now, self.storage.next_value("billkey"))
        self.storage.insert_billkey(billkey, payment.client_id, payment.user_id, payment.pgcode,
                                    kst_datetime(now), payment.amount)
        return billkey

    def approve(self, token: int, choices: dict) -> dict:
        """Finish a payment as the payer would: the return fields, the callback queued (and sent).
        A scenario rule may make the payer decline or abandon instead, or choose for them."""
        rule = self._decide(PAYER, self._pending(token), choices)
        if rule is not None and rule.outcome == "decline":
            return {**self.decline(token, rule.params.get("code"), rule.params.get("message")), "rule": rule.name}
        if rule is not None and rule.outcome == "abandon":
            return {**self.abandon(token), "rule": rule.name}
        if rule is not None:
            choices = {**choices, **rule.params}
        answer = self._approve(token, choices)
        return {**answer, "rule": rule.name} if rule is not None else answer

    def _approve(self, token: int, choices: dict) -> dict:
        callback_id = None
        with self.storage.atomic():
            payment = self._pending(token)
            method = self._method(payment.pgcode)
            option = _option(method, choices.get("option"))
            client = self.clients[payment.client_id]
            now = self.clock.now() - timedelta(days=choices.get("backdate_days", 0))
            details = self.details.approval(method, payment.amount, card_number=choices.get("card_number"),
                                            install=choices.get("install_month"), bank_code=choices.get("bank_code"))
            self.storage.count("pgcode", option or method.pgcode)
            if payment.kind == "verification":
                payment.paid_pgcode, payment.details = method.pgcode, details
                payment.billkey = self._new_billkey(payment, now)
                payment.status = VERIFIED
                self.storage.save_payment(payment)
                return {"return_url": payment.request["return_url"],
                        "fields": fields.return_verification(payment, client.payment_key)}
            self._approve_fields(payment, method, option, now, details)
            if payment.request.get("autopay_flag") == "Y":
                payment.billkey = self._new_billkey(payment, now)
            if method.details == "account":
                payment.details.update(self.details.virtual_account(payment.request, now, choices.get("bank_code")))
                payment.status = ISSUED
                self._plan_virtual_account(payment, now)
            else:
                payment.status = APPROVED
                callback_id = self._queue_callback(payment, client, now)
            self.storage.save_payment(payment)
        self._deliver(callback_id)
        return {"return_url": payment.request["return_url"],
                "fields": fields.return_success(payment, client.payment_key)}

    def decline(self, token: int, code: str | None, message: str | None) -> dict:
        with self.storage.atomic():
            payment = self._pending(token)
            payment.status = FAILED
            payment.details = {"failure": {"code": code or DECLINE_CODE, "message": message or DECLINE_MESSAGE}}
            self.storage.save_payment(payment)
        failure = payment.details["failure"]
        return {"return_url": payment.request["return_url"],
                "fields": fields.return_failure(payment, failure["code"], failure["message"])}

    def abandon(self, token: int) -> dict:
        with self.storage.atomic():
            payment = self._pending(token)
            payment.status = ABANDONED
            self.storage.save_payment(payment)
        method = self._method(payment.pgcode)
        redirect = None if method.no_cancel_redirect else payment.request.get("cancel_url")
        return {"redirect_url": redirect}

    def _plan_virtual_account(self, payment: Payment, now: datetime) -> None:
        """A scenario's deposit or expiry for a newly issued account, as a timed job."""
        rule = self._decide(VIRTUAL_ACCOUNT, payment)
        if rule is not None:
            due = now + timedelta(seconds=rule.params["after_seconds"])
            params = {"tid": payment.tid, **({"amount": rule.params["amount"]} if "amount" in rule.params else {})}
            self.storage.add_job(round(due.timestamp() * 1000), rule.outcome, params, origin=f"rule {rule.name}")

    def _issued(self, tid: str) -> Payment:
        payment = self.storage.payment_by_tid(tid)
        if payment is None:
            raise GatewayError("payment_unknown", tid=tid)
        if payment.status != ISSUED:
            raise GatewayError("not_virtual_account", tid=tid, status=payment.status)
        return payment

    def deposit(self, tid: str, amount: int | None, at: datetime | None = None) -> dict:
        """The payer deposits, now or at the moment a timed job was due."""
        with self.storage.atomic():
            payment = self._issued(tid)
            now = at or self.clock.now()
            expiry = expiry_moment(payment.details["expire_date"], payment.details["expire_time"])
            if now > expiry:
                raise GatewayError("virtual_account_expired", tid=tid, expiry=kst_datetime(expiry))
            if amount is not None and amount != payment.amount:
                raise GatewayError("deposit_amount_mismatch", tid=tid, expected=payment.amount, amount=amount)
            payment.status = APPROVED
            payment.details["issued_at"] = payment.transaction_date
            payment.transaction_date = kst_datetime(now)  # the payment happens at the deposit
            callback_id = self._queue_callback(payment, self.clients[payment.client_id], now)
            self.storage.save_payment(payment)
        self._deliver(callback_id)
        return self.payment_view(payment)

    def _queue_callback(self, payment: Payment, client: Client, now: datetime) -> int:
        """Into the outbox, in the payment's transaction: the dispatcher sends it once committed.
        A scenario rule may tamper with it, delay it, hold it, or drop it."""
        body = fields.callback_body(payment, client.payment_key)
        url = payment.request["callback_url"]
        warnings = delivery.reachability_warnings(url)
        rule = self._decide(CALLBACK, payment)
        fault = {"rule": rule.name, **rule.params} if rule is not None else {}
        body, due, status, note = delivery.apply_fault(body, fault, round(now.timestamp() * 1000),
                                                       wrong_key=client.payment_key[::-1])
        return self.storage.enqueue_callback(payment.tid, url, body, iso(now), due, warnings + note, fault, status)

    def _deliver(self, callback_id: int | None) -> None:
        """Wake the dispatcher once the queued callback is committed (it reads on a connection
        of its own, which would not see it before)."""
        if callback_id is not None:
            self.storage.after_commit(self.on_callback_queued)

    # --- what tests look at ---
    def payment_view(self, payment: Payment) -> dict:
        view = asdict(payment)
        view["status_code"] = STATUS_CODES[payment.status]
        view["remaining"] = payment.remaining if payment.tid else None
        view["cancellations"] = [asdict(c) for c in self.storage.cancellations_of(payment.tid)] if payment.tid else []
        view["cash_receipts"] = self.storage.cash_receipts_of(payment.tid) if payment.tid else []
        return view

    def reset(self) -> None:
        """Forget every payment; the scenario in force starts again (its clock and timeline too)."""
        self.storage.reset()
        self._save_clock(ClockState())
        if self.rules.scenario is not EMPTY:
            self.install_scenario(self.rules.scenario.document)

    def set_clock(self, change: dict) -> dict:
        if "freeze" in change:
            state = self.clock.freeze(change["freeze"])
        else:
            target = self._clock_target(change)
            if "set" in change:
                state = self.clock.set(target)
            else:
                state = self.clock.advance(change["advance_seconds"])
        self._save_clock(state)
        return self.clock_view()

    def _save_clock(self, state: ClockState) -> None:
        """Stored for every process, then taken here under the version it was stored with."""
        self.clock.load(state, self.storage.save_clock_state(state))

    def _clock_target(self, change: dict) -> datetime:
        """The moment a change moves the clock to, if it stays within CLOCK_RANGE."""
        if "set" in change:
            try:
                moment = datetime.fromisoformat(change["set"])
            except ValueError:
                raise GatewayError("clock_request_invalid",
                                   detail=f"set {change['set']!r} is not an ISO 8601 date and time") from None
            moment = moment if moment.tzinfo else moment.replace(tzinfo=KST)
        else:
            seconds = change["advance_seconds"]
            if not math.isfinite(seconds) or abs(seconds) > CLOCK_SPAN:
                raise GatewayError("clock_request_invalid", detail=f"advance_seconds {seconds} is out of range")
            moment = self.clock.now() + timedelta(seconds=seconds)
        first, last = CLOCK_RANGE
        if not first <= moment < last:
            raise GatewayError("clock_request_invalid", detail=f"{iso(moment)} is outside the years "
                                                               f"{first.year}-{last.year - 1}")
        return moment

    def clock_view(self) -> dict:
        return {"now": iso(self.clock.now()), "frozen": self.clock.frozen}

    # --- the payer's pages ---
    def page_payment(self, token: int) -> Payment:
        """The payment behind a payment page's token: still pending, the page not expired, and a
        return address a browser can be sent to."""
        payment = self._pending(token)
        deadline = parse_kst_datetime(payment.created_at) + checkout.PAGE_LIFETIME
        if self.clock.now() > deadline:
            raise GatewayError("page_expired", token=token, deadline=kst_datetime(deadline))
        target = checkout.return_target(payment)
        if not checkout.browser_can_go(target, app=target != payment.request["return_url"]):
            field = "return_url" if target == payment.request["return_url"] else "app_return_url"
            raise GatewayError("page_url_unusable", field=field, url=target)
        return payment

    def open_page(self, token: int) -> Payment:
        """The payer opens the payment page: payments/status says 2 (page entered) from now on."""
        with self.storage.atomic():
            payment = self.page_payment(token)
            if payment.status == CREATED:
                payment.status = PAGE
                self.storage.save_payment(payment)
        return payment

    def pay_on_page(self, token: int, entry: checkout.Entry) -> dict:
        """The page's pay button: the control API's decline or approve, so both make the same
        fields, callback and state. {"target", "fields"}: the fields go to return_url
        (app_return_url in an app); or {"cancel": url or None} when a scenario rule made the
        payer abandon instead. A declining test input is decided here, before any scenario rule."""
        payment = self.page_payment(token)
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
            payment = self._pending(token)
            payment.request[fields.PAYER_CASH_RECEIPT] = checkout.cash_receipt_result(
                asked, cid=self.details.digits(9), deal_no=payment.order_no or str(token))
            self.storage.save_payment(payment)

    def _record_page_cash_receipt(self, tid: str) -> None:
        """Listed with the payment's cash receipts, as one issued on the receipt form is."""
        with self.storage.atomic():
            payment = self.storage.payment_by_tid(tid)
            token = self._token()
            self.storage.insert_cash_receipt(token, tid, payment.client_id, "0", "N", payment.request["return_url"],
                                             kst_datetime(self.clock.now()))
            self.storage.complete_cash_receipt(token, fields.cash_receipt(payment))

    def cancel_on_page(self, token: int) -> str | None:
        """The page's cancel button: the control API's abandon; where the browser goes, if anywhere."""
        payment = self.page_payment(token)
        return self._page_cancel_target(payment, self.abandon(token)["redirect_url"])

    def _page_cancel_target(self, payment: Payment, redirect_url: str | None) -> str | None:
        target = checkout.cancel_target(payment, self._method(payment.pgcode), redirect_url)
        return target if target and checkout.browser_can_go(target, app=True) else None

    def receipt_view(self, receipt: str) -> dict:
        """The transaction receipt behind a receipt/info receipt_url."""
        payment = self.storage.payment_by_tid(checkout.receipt_tid(receipt) or "")
        client = self.clients.get(payment.client_id) if payment else None
        if client is None or not hmac.compare_digest(receipt_id(payment, client).encode(), receipt.encode()):
            raise GatewayError("receipt_unknown", id=receipt)
        return {"payment": payment, "method": self._method(payment.pgcode),
                "cancellations": self.storage.cancellations_of(payment.tid), "cash_receipt": fields.cash_receipt(payment)}

    def cash_receipt_request(self, token: int, tid: str) -> tuple[dict, Payment]:
        """The cashreceipt/issue request behind a receipt form, if its receipt can still be issued."""
        request = self.storage.cash_receipt(token)
        if request is None or request["tid"] != tid:
            raise GatewayError("cash_receipt_form_unknown", token=token, tid=tid)
        if request["status"] != "requested":
            raise GatewayError("cash_receipt_form_used", token=token)
        payment = self.storage.payment_by_tid(tid)
        if payment.remaining == 0:
            raise GatewayError("cash_receipt_not_available", tid=tid, reason="it is fully cancelled")
        if not checkout.browser_can_go(request["return_url"]):
            raise GatewayError("page_url_unusable", field="return_url", url=request["return_url"])
        return request, payment

    def issue_cash_receipt_on_form(self, token: int, tid: str, asked: dict) -> dict:
        """The receipt form is sent: the cash receipt is issued, later callbacks and return fields
        carry it, and its fields go to the request's return_url."""
        with self.storage.atomic():
            request, payment = self.cash_receipt_request(token, tid)
            receipt = checkout.cash_receipt_result(asked, cid=self.details.digits(9),
                                                   deal_no=payment.order_no or payment.tid)
            self.storage.complete_cash_receipt(token, receipt)
            payment.details["cash_receipt"] = receipt
            self.storage.save_payment(payment)
        return {"target": request["return_url"], "fields": {"tid": tid, **fields.cash_receipt_fields(receipt)}}


def payment_page_urls(base_url: str, token: int) -> dict:
    return {"online_url": f"{base_url}/pgsvc/hub.asp?location=online&token={token}",
            "mobile_url": f"{base_url}/pgsvc/hub.asp?location=mobile&token={token}"}


def receipt_id(payment: Payment, client: Client) -> str:
    """Opaque like the gateway's (`72720c...|001|4|3230...`): a keyed digest, then the tid in hex."""
    return f"{sha256_hex(payment.tid + client.payment_key)[:16].lower()}|001|4|{payment.tid.encode().hex()}"


def _option(method: PaymentMethod, picked: str | None) -> str | None:
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

