"""How a callback leaves: queued in the payment's transaction, sent by the dispatcher once
that transaction has committed."""
from __future__ import annotations

from datetime import datetime

from ..domain.clock import iso
from ..config import Client
from ..domain import callback_policy, fields
from ..domain.payment import Payment
from ..domain.rules import CALLBACK, Rule
from .context import Context


def queue_callback(context: Context, payment: Payment, client: Client, now: datetime) -> None:
    """Into the outbox, in the payment's transaction. A scenario rule may tamper with it,
    delay it, hold it, or drop it."""
    url = payment.request["callback_url"]
    enqueue(context, payment.tid, url, fields.callback_body(payment, client.payment_key), now,
            context.decide(CALLBACK, payment), wrong_key=client.payment_key[::-1],
            warnings=callback_policy.reachability_warnings(url))


def enqueue(context: Context, tid: str, url: str, body: dict, now: datetime, rule: Rule | None, *, wrong_key: str,
            warnings: list[str] = (), gateway: str = callback_policy.DOMESTIC) -> None:
    """A notification of either gateway into the outbox, in the caller's transaction, with the
    fault of the scenario `rule` that decided it (callback_policy.apply_fault; `wrong_key` signs a
    wrong signature). One due at once is claimed in that transaction and handed to this
    process's senders once it has committed (the claim keeps every other sender off it);
    otherwise the dispatcher is woken then (it reads on a connection of its own, which would not
    see it before)."""
    fault = {"rule": rule.name, **rule.params} if rule is not None else {}
    moment = round(now.timestamp() * 1000)
    body, due, status, note = callback_policy.apply_fault(body, fault, moment, wrong_key=wrong_key, gateway=gateway)
    sender = context.sender
    if sender is not None and status == "pending" and due is not None and due <= moment:
        claimed = context.storage.enqueue_claimed_callback(tid, url, body, iso(now), due, [*warnings, *note],
                                                           fault, sender.claim_expiry(), gateway=gateway)
        context.storage.after_commit(lambda: sender.send_claimed(claimed))
        return
    context.storage.enqueue_callback(tid, url, body, iso(now), due, [*warnings, *note], fault, status, gateway=gateway)
    context.storage.after_commit(context.on_callback_queued)
