"""Payletter Global's room: a payment requested (the merchant's server), paid or declined (the
payer, or a test through the control API), refunded in either generation; each paid or refunded
one notified through the same outbox as domestic callbacks, as a Global notification."""
from __future__ import annotations

from datetime import datetime

from ..config import GlobalStore
from ..domain import global_rules
from ..domain.clock import KST, iso, kst_datetime
from ..domain.global_rules import GATEWAY, NOTIFY_PAID, NOTIFY_REFUND, GlobalError
from ..domain.rules import CALLBACK, PAYER, Rule
from .context import REQUEST_HEADERS, Room
from .outbox import enqueue

REQUESTED, PAID, DECLINED, CANCELLED = "requested", "paid", "declined", "cancelled"
REFUNDABLE = (PAID, "partially_refunded")
TEST_CARD = "4111111111111111"  # what an approval without a card number pays with (a Visa test card)


class GlobalPayments(Room):
    # --- the merchant's server ---
    def request_payment(self, store: GlobalStore, values: dict, base_url: str, warnings: list[str],
                        headers: dict | None = None) -> dict:
        """A payment waiting for its payer: the token, and the hosted page's two URLs. Its request
        keeps `headers` (without credentials) for the scenario's rules, as a domestic payment's.
        A request carrying a `poqtoken` (a recurring charge) is 501/994: no public source shows how
        one is charged (docs/fidelity.md); `recurringtype=Y` issues one in the notification."""
        if "poqtoken" in values:
            raise GlobalError("not_implemented", "a recurring charge with a poqtoken is not emulated (no public "
                                                 "evidence of its API); recurringtype=Y issues a poqtoken in the "
                                                 "notification")
        pginfo = global_rules.canonical_pginfo(str(values["pginfo"]))
        if pginfo is None:
            raise GlobalError("business", f"pginfo {values['pginfo']!r} is not one of "
                                          f"{', '.join(global_rules.table()['pginfo'])}")
        if not global_rules.works_in_test(pginfo):
            if self.context.settings.strict:
                raise GlobalError("business", f"pginfo {pginfo} is not accepted for test payment "
                                              "(only PLCreditCard and PayPalExpressCheckout are)")
            warnings.append(f"pginfo: {pginfo} does not work in Payletter's test environment "
                            "(only PLCreditCard and PayPalExpressCheckout do); the emulator takes it")
        currency = values["currency"]
        amount = global_rules.amount_text(values["amount"])
        units = global_rules.minor_units(amount, currency)
        token = str(self.context.token())
        self.storage.insert_global_payment({
            "token": token, "store_id": store.store_id, "currency": currency, "order_no": values["storeorderno"],
            "amount": amount, "amount_units": units, "pginfo": pginfo,
            "service_name": values.get("servicename") or values.get("productname") or "", "status": REQUESTED,
            "request": {**values, REQUEST_HEADERS: headers} if headers else values,
            "created_at": iso(self.clock.now())})
        return {"token": token, "online_url": f"{base_url}/Web/Payment.aspx?token={token}",
                "mobile_url": f"{base_url}/Smart/Payment.aspx?token={token}"}

    def refund(self, store: GlobalStore, values: dict, generation: str) -> dict:
        """A refund of what is left of a paid payment (partial ones too), never past its amount;
        its notification (notifytype 2) queued in the same transaction. The answer's `data` is what
        the WooCommerce plugin looks for; its members are the emulator's own (docs/fidelity.md)."""
        paytoken, currency = str(values["paytoken"]), values["currency"]
        with self.storage.atomic():  # the payment read once, unchanged by anyone until refunded
            payment = self.storage.global_payment_by_paytoken(paytoken, to_change=True)
            if payment is None or payment["store_id"] != store.store_id:
                raise GlobalError("business", f"paytoken {paytoken!r} is no payment of store {store.store_id!r}")
            if payment["currency"] != currency:
                raise GlobalError("business", f"currency {currency} is not the payment's ({payment['currency']})")
            named = values.get("pginfo")
            if named is not None and global_rules.canonical_pginfo(str(named)) != payment["pginfo"]:
                raise GlobalError("business", f"pginfo {named!r} is not the payment's ({payment['pginfo']})")
            left = payment["amount_units"] - payment["refunded_units"]
            if payment["status"] not in REFUNDABLE or left <= 0:
                if payment["status"] == "refunded":
                    raise GlobalError("bad_request", f"paytoken {paytoken} is already refunded")
                raise GlobalError("business", f"paytoken {paytoken} is {payment['status']}, not paid")
            amount = global_rules.amount_text(values["amount"])
            units = global_rules.minor_units(amount, currency)
            if units > left:
                raise GlobalError("business", f"amount {amount} is more than what is left to refund "
                                              f"({global_rules.units_text(left, currency)} {currency})")
            now = self.clock.now()
            self.storage.record_global_refund(paytoken, amount, units, generation, kst_datetime(now))
            self._notify(payment, store, NOTIFY_REFUND, amount, now)
        return {"code": 0, "message": "", "data": {
            "storeid": store.store_id, "paytoken": paytoken, "currency": currency,
            "amount": global_rules.units_text(payment["amount_units"], currency), "refundamount": amount,
            "remainamount": global_rules.units_text(left - units, currency), "trantime": kst_datetime(now)}}

    def refund_by_token(self, token: str, amount=None) -> dict:
        """A test's refund through the control API, by the hosted page's token: what the merchant's
        refund does (the same rules and notification), `amount` as written or what is left."""
        payment = self.storage.global_payment(token)
        if payment is None:
            raise GlobalError("not_found", f"no Global payment has token {token!r}")
        if not payment["paytoken"]:
            raise GlobalError("business", f"the payment of token {token} is {payment['status']}, not paid")
        left = payment["amount_units"] - payment["refunded_units"]
        values = {"paytoken": payment["paytoken"], "currency": payment["currency"],
                  "amount": amount if amount is not None else global_rules.units_text(max(left, 0), payment["currency"])}
        return self.refund(self._store(payment), values, "control")

    # --- the payer (on the hosted page, or a test through the control API) ---
    def approve(self, token: str, card_number: str | None = None) -> dict:
        """Paid, and its notification queued; or declined when a card payment's number is none of
        the test cards (no notification: only successes are notified). A scenario rule of the
        payer's moment may decide otherwise (`rule` names it)."""
        with self.storage.atomic():
            payment, _, rule = self._finish(self._pending(token), card_number)
        return {**self.view(payment), **({"rule": rule.name} if rule else {})}

    def decline(self, token: str) -> dict:
        with self.storage.atomic():
            self._pending(token)
            self.storage.settle_global_payment(token, DECLINED, None, kst_datetime(self.clock.now()), "", "", "")
        return self.view(self.storage.global_payment(token))

    def page_payment(self, token: str) -> dict:
        """The payment a hosted page shows: still waiting for its payer (404/996 for no such
        token, 406/995 once paid, declined or cancelled)."""
        return self._pending(token, to_change=False)

    def pay_on_page(self, token: str, card_number: str | None = None, expiry: str | None = None) -> dict:
        """The payer's Pay (card pages: the number and the MM/YY typed, as global_rules.read_card
        took them; PayPal's and the other methods' pages: none). `{"target": returnurl, "fields":
        ..., "outcome": "paid" | "declined"}`: what the browser POSTs next. A number that is no
        test card, or an expiry passed on the emulator's clock (Korea's date), declines."""
        with self.storage.atomic():
            payment = self._pending(token)
            if expiry and global_rules.expired(expiry, self.clock.now().astimezone(KST).date()):
                payment, outcome = self._refuse(payment, DECLINED), "expired"
            else:
                payment, outcome, _ = self._finish(payment, card_number)
        return self._return(payment, outcome)

    def decline_on_page(self, token: str) -> dict:
        """The Decline of a page without a card (PayPal's, and the methods Payletter's test
        environment lacks): declined, nothing notified, the browser back at returnurl."""
        with self.storage.atomic():
            payment = self._refuse(self._pending(token), DECLINED)
        return self._return(payment, "declined")

    def cancel_on_page(self, token: str) -> dict:
        """The payer's Cancel: the payment cancelled, nothing notified. `{"backurl": ...}` when the
        request gave one (the browser goes there), else the POST to returnurl, with the cancel's
        retcode."""
        with self.storage.atomic():
            payment = self._refuse(self._pending(token), CANCELLED)
        backurl = payment["request"].get("backurl")
        if backurl:
            return {"backurl": backurl, "outcome": "cancelled"}
        return self._return(payment, "cancelled")

    def request_from_form(self, store: GlobalStore, form: dict, base_url: str, warnings: list[str],
                          headers: dict | None = None) -> dict:
        """The hosted form posted without an API call (its hash checked by the page): a payment
        requested as the API requests one, `payamt` its amount as written."""
        values = {name: value for name, value in form.items() if name not in ("hash", "payamt")}
        return self.request_payment(store, {**values, "amount": form["payamt"]}, base_url, warnings, headers)

    def _finish(self, payment: dict, card_number: str | None) -> tuple[dict, str | dict | None, Rule | None]:
        """Inside the caller's transaction: the payer's Pay, as the scenario's first rule of the
        payer's moment decides it (approve, with its card_number if it gives one; decline, with its
        code and message as retcode and retmsg; abandon, the payer's cancel), else as the card
        says. (the payment, the page's outcome as _return takes it, the rule)."""
        rule = self.context.rules.decide(PAYER, self.rule_context(payment, card_number), self.clock.now())
        if rule is None or rule.outcome == "approve":
            number = (rule.params.get("card_number") if rule else None) or card_number
            payment, outcome = self._settle(payment, number)
            return payment, outcome, rule
        if rule.outcome == "abandon":
            return self._refuse(payment, CANCELLED), "cancelled", rule
        default = global_rules.page_outcome("declined")
        said = {"retcode": str(rule.params.get("code", default["retcode"])),
                "retmsg": rule.params.get("message", f"Declined (scenario rule {rule.name!r})")}
        return self._refuse(payment, DECLINED), said, rule

    @staticmethod
    def rule_context(payment: dict, card_number: str | None = None) -> dict:
        """What a scenario rule matches a Global payment on: its request's own fields (storeid,
        storeorderno, amount as written, pginfo, ...), the headers of its request, the card typed."""
        request = payment["request"]
        return {"gateway": GATEWAY, "endpoint": global_rules.REQUEST, "client_id": payment["store_id"],
                "storeid": payment["store_id"], "storeorderno": payment["order_no"], "amount": payment["amount"],
                "pginfo": payment["pginfo"], "currency": payment["currency"], "payerid": request.get("payerid"),
                "payeremail": request.get("payeremail"), "servicename": payment["service_name"],
                "custom": request.get("custom"), "headers": request.get(REQUEST_HEADERS, {}),
                "card_number": card_number}

    def _settle(self, payment: dict, card_number: str | None) -> tuple[dict, str | None]:
        """Inside the caller's transaction: the payment paid with `card_number` (a card method's
        default is a Visa test card) and its notification queued, or declined when the number is
        none of the test cards. (the payment as it is now, the page's outcome: None if paid)."""
        token, now = payment["token"], self.clock.now()
        card = global_rules.table()["pginfo"][payment["pginfo"]]["card"]
        number = card_number or TEST_CARD
        kind = global_rules.card_kind(number) if card else ""
        if kind is None:
            return self._refuse(payment, DECLINED), "not_a_test_card"
        paytoken = f"PT{now.strftime('%Y%m%d')}{self.storage.next_value('global_paytoken'):010d}"
        poqtoken = f"POQ{paytoken[2:]}" if payment["request"].get("recurringtype") == "Y" else ""
        self.storage.settle_global_payment(token, PAID, paytoken, kst_datetime(now), poqtoken, kind,
                                           global_rules.mask_card(number) if card else "")
        paid = self.storage.global_payment(token)
        self.storage.count("global_pginfo", paid["pginfo"])  # coverage: the pginfo values a run paid with
        self._notify(paid, self._store(paid), NOTIFY_PAID, paid["amount"], now)
        return paid, None

    def _refuse(self, payment: dict, status: str) -> dict:
        """Inside the caller's transaction: the payment declined or cancelled (nothing notified)."""
        self.storage.settle_global_payment(payment["token"], status, None, kst_datetime(self.clock.now()), "", "", "")
        return self.storage.global_payment(payment["token"])

    def _return(self, payment: dict, outcome: str | dict | None) -> dict:
        """`outcome`: None (paid), a page ending's name, or a scenario's {retcode, retmsg} (declined)."""
        fields = global_rules.return_fields(payment, self._store(payment).key,
                                            timestamp=str(int(self.clock.now().timestamp())), outcome=outcome)
        return {"target": payment["request"].get("returnurl", ""), "fields": fields,
                "outcome": "paid" if outcome is None else ("cancelled" if outcome == "cancelled" else "declined")}

    # --- what the control API shows ---
    def payments(self, *, store_id: str | None, status: str | None, limit: int, after: str | None) -> list[dict]:
        return [self.view(payment) for payment in self.storage.global_payments(
            store_id=store_id, status=status, limit=limit, after=after)]

    def view(self, payment: dict) -> dict:
        """The payment with its refunds, and what was refunded and is left as the currency writes
        amounts ("2.50", "7.50"; the dashboard shows them), besides the counts in minor units; what is
        left is None until the payment is paid."""
        shown = dict(payment)
        shown["refunds"] = self.storage.global_refunds_of(payment["paytoken"]) if payment["paytoken"] else []
        currency, left = payment["currency"], payment["amount_units"] - payment["refunded_units"]
        shown["refunded_amount"] = global_rules.units_text(payment["refunded_units"], currency)
        shown["remaining_amount"] = global_rules.units_text(left, currency) if payment["paytoken"] else None
        return shown

    def _pending(self, token: str, *, to_change: bool = True) -> dict:
        payment = self.storage.global_payment(token, to_change=to_change)
        if payment is None:
            raise GlobalError("not_found", f"no Global payment has token {token!r}")
        if payment["status"] != REQUESTED:
            raise GlobalError("business", f"the payment of token {token} is {payment['status']}, not waiting for its payer")
        return payment

    def _store(self, payment: dict) -> GlobalStore:
        for store in self.context.settings.global_stores:
            if store.store_id == payment["store_id"]:
                return store
        raise GlobalError("forbidden", f"store {payment['store_id']!r} is no longer configured")

    def _notify(self, payment: dict, store: GlobalStore, notifytype: str, payamt: str, now: datetime) -> None:
        """Into the outbox, in the payment's transaction, as a Global notification (form-encoded,
        acknowledged by <RESULT>OK</RESULT>, its own retries: domain/callback_policy.py's GATEWAYS),
        with the fault of the scenario's callback rule if one matches. None without a notiurl."""
        url = payment["request"].get("notiurl")
        if not url:
            return
        notifyid = f"N{payment['paytoken']}{self.storage.next_value('global_notification'):06d}"
        body = global_rules.notification_body(payment, store.key, notifytype=notifytype, payamt=payamt,
                                              timestamp=str(int(now.timestamp())), notifyid=notifyid)
        rule = self.context.rules.decide(CALLBACK, self.rule_context(payment), now)
        enqueue(self.context, payment["paytoken"], url, body, now, rule, wrong_key=store.key[::-1] + "x",
                gateway=GATEWAY)
