"""The control API's Payletter Global operations (/_emulator/global/...): a test completes a Global
payment without the hosted page, and lists them. Routed by control_api.control, so the control
API's guard (token, cross-site refusal) covers them."""
from __future__ import annotations

from flask import jsonify, request

from ..config import LIST_PAGE
from ..domain.errors import GatewayError
from ..delivery.dispatcher import callback_view
from ..domain.global_rules import GATEWAY, PAYMENT_STATUSES
from ..waits import LONG
from .control_api import CALLBACK_STATUSES, control, page_asked
from .plumbing import emulator

STATUSES = PAYMENT_STATUSES


def room():
    return emulator().service.global_payments


@control("/global/payments", "GET", "Payletter Global payments with their refunds (?store_id=, ?status=requested|"
                                    f"paid|declined|cancelled|partially_refunded|refunded), a page at a time (?limit= up to "
                                    f"{LIST_PAGE}, ?after=<next>)", work=LONG)
def global_payments():
    status = request.args.get("status") or None
    if status not in (None, *STATUSES):
        raise GatewayError("control_request_invalid", detail=f"status {status[:40]!r} is not one of {', '.join(STATUSES)}")
    limit, after = page_asked()
    found = room().payments(store_id=request.args.get("store_id") or None, status=status, limit=limit + 1,
                            after=str(after) if after is not None else None)
    return jsonify(payments=found[:limit], next=found[limit - 1]["token"] if len(found) > limit else None)


@control("/global/payments/{token}/approve", "POST", "A Payletter Global payment paid (card_number: a test card; "
                                                      "another number declines it); its notification queued",
         schema="global_approve")
def global_approve(token, values):
    return jsonify(room().approve(token, values.get("card_number")))


@control("/global/payments/{token}/decline", "POST", "A Payletter Global payment declined (no notification)")
def global_decline(token):
    return jsonify(room().decline(token))


@control("/global/payments/{token}/refund", "POST", "A paid Payletter Global payment refunded as the merchant would "
                                                     "(amount as written, default what is left); its notification "
                                                     "(notifytype 2) queued; the refund's answer", schema="global_refund")
def global_refund(token, values):
    return jsonify(room().refund_by_token(token, values.get("amount")))


@control("/global/notifications", "GET", "Payletter Global notifications with their attempts (?paytoken=, ?status="
                                         "pending|delivered|failed), oldest first, a page at a time (?limit= up to "
                                         f"{LIST_PAGE}, ?after=<next>)", work=LONG)
def global_notifications():
    status = request.args.get("status") or None
    if status not in (None, *CALLBACK_STATUSES):
        raise GatewayError("control_request_invalid", detail=f"status {status[:40]!r} is not one of "
                                                             f"{', '.join(CALLBACK_STATUSES)}")
    limit, after = page_asked()
    found = emulator().storage.callbacks(tid=request.args.get("paytoken") or None, status=status, gateway=GATEWAY,
                                         limit=limit + 1, after=after)
    return jsonify(notifications=[callback_view(c) for c in found[:limit]],
                   next=str(found[limit - 1]["id"]) if len(found) > limit else None)
