"""What every room of the service shares: the state it works on (storage, clock, settings and
clients, the scenario's rules, the fake-detail maker), the dispatcher's wake-up, and the few
steps more than one room takes."""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from random import Random
from typing import Callable

from ..domain.clock import Clock, kst_datetime
from ..config import Settings
from ..domain import identifiers
from ..domain.details import DetailMaker
from ..domain.methods import PaymentMethod, lookup
from ..domain.payment import STATUS_CODES, Payment
from ..domain.rules import Rule
from ..domain.errors import GatewayError
from ..engines.scenario import Rulebook, Scenario
from ..storage import Storage

REQUEST_HEADERS = "request_headers"  # a payment's request keeps its headers (X-Emulator-Scenario) here


class Context:
    """One emulator's shared state. `settings` and `clients` change when a scenario brings
    its own; the two hooks are set by whoever wires the emulator (instance.build)."""

    def __init__(self, storage: Storage, clock: Clock, settings: Settings, draws: Random,
                 on_callback_queued: Callable[[], None] = lambda: None):
        self.storage = storage
        self.clock = clock
        self.settings = settings
        self.clients = {c.client_id: c for c in settings.clients}
        self.details = DetailMaker(draws)
        self.rules = Rulebook(storage)
        self.on_callback_queued = on_callback_queued  # the dispatcher's wake-up: a callback queued, or time moved
        self.sender = None  # the dispatcher: a callback due at once is claimed for it where it is queued
        self.on_scenario: Callable[[Scenario], None] = lambda scenario: None  # settings a scenario brings

    def token(self) -> int:
        return identifiers.token(int(self.clock.timestamp() * 1000), self.storage.next_token(), frozen=self.clock.frozen)

    def decide(self, stage: str, payment: Payment, choices: dict | None = None) -> Rule | None:
        """The scenario rule, if any, that decides this moment of a payment."""
        context = {"gateway": "domestic", "endpoint": "payments/request", "client_id": payment.client_id, "pgcode": payment.pgcode,
                   "amount": payment.amount, "user_id": payment.user_id, "order_no": payment.order_no,
                   "product_name": payment.product_name, "custom_parameter": payment.custom_parameter,
                   "headers": payment.request.get(REQUEST_HEADERS, {}),
                   "card_number": (choices or {}).get("card_number")}
        return self.rules.decide(stage, context, self.clock.now())

    def approve_fields(self, payment: Payment, method: PaymentMethod, option: str | None,
                       now: datetime, details: dict) -> None:
        """What an approval gives a payment, whoever approves it (the payer, or an autopay)."""
        payment.tid = identifiers.tid(payment.client_id, now, self.storage.next_value("tid"))
        payment.cid = identifiers.cid(method.cid, now, self.details.digits(7), payment.tid)
        payment.transaction_date = kst_datetime(now)
        payment.paid_pgcode = option or method.pgcode
        payment.details = details

    def payment_view(self, payment: Payment) -> dict:
        """A payment as the control API shows it: with its cancellations and cash receipts."""
        view = asdict(payment)
        view["status_code"] = STATUS_CODES[payment.status]
        view["remaining"] = payment.remaining if payment.tid else None
        view["cancellations"] = [asdict(c) for c in self.storage.cancellations_of(payment.tid)] if payment.tid else []
        view["cash_receipts"] = self.storage.cash_receipts_of(payment.tid) if payment.tid else []
        return view


class Room:
    """A part of the service: it works on the state its context holds."""

    def __init__(self, context: Context):
        self.context = context
        self.storage = context.storage
        self.clock = context.clock


def known_method(pgcode: str) -> PaymentMethod:
    method = lookup(pgcode)
    if method is None:
        raise GatewayError("pgcode_unknown", pgcode=pgcode)
    return method
