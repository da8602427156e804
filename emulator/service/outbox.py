"""How a callback leaves: queued in the payment's transaction, sent by the dispatcher once
that transaction has committed."""
from __future__ import annotations

from datetime import datetime

from ..clock import iso
from ..config import Client
from ..domain import delivery, fields
from ..domain.payment import Payment
from ..domain.rules import CALLBACK
from .context import Context


def queue_callback(context: Context, payment: Payment, client: Client, now: datetime) -> None:
    """Into the outbox, in the payment's transaction. A scenario rule may tamper with it,
    delay it, hold it, or drop it. The dispatcher is woken once it is committed (it reads on a
    connection of its own, which would not see it before)."""
    body = fields.callback_body(payment, client.payment_key)
    url = payment.request["callback_url"]
    warnings = delivery.reachability_warnings(url)
    rule = context.decide(CALLBACK, payment)
    fault = {"rule": rule.name, **rule.params} if rule is not None else {}
    body, due, status, note = delivery.apply_fault(body, fault, round(now.timestamp() * 1000),
                                                   wrong_key=client.payment_key[::-1])
    context.storage.enqueue_callback(payment.tid, url, body, iso(now), due, warnings + note, fault, status)
    context.storage.after_commit(context.on_callback_queued)
