"""The control API (/_emulator/...): what tests use to drive and inspect the emulator."""
from __future__ import annotations

import hmac

from flask import Blueprint, jsonify, request

from ..errors import GatewayError
from .operations import Operation, register
from .plumbing import emulator, json_body

blueprint = Blueprint("control_api", __name__, url_prefix="/_emulator")


def control(path: str, method: str, summary: str, *, schema: str | None = None):
    """Route one control operation; a body, when it has a schema, is checked strictly."""
    register(Operation(path=f"/_emulator{path}", method=method, summary=summary,
                       request=f"control/{schema}" if schema else None))

    def wrap(handler):
        def view(**path_args):
            if schema:
                values = emulator().schemas.check_request(
                    f"control/{schema}", json_body(strict=False), strict=True, endpoint=f"_emulator{path}").values
                path_args["values"] = values
            return handler(**path_args)

        flask_path = path.replace("{", "<").replace("}", ">")
        blueprint.add_url_rule(flask_path, endpoint=handler.__name__, view_func=view, methods=[method])
        return view

    return wrap


@blueprint.before_request
def guard():
    """Shared deployments switch the control API off, or put it behind a token; health stays open."""
    if request.endpoint == "control_api.health":
        return
    settings = emulator().settings
    if not settings.control:
        raise GatewayError("not_found", path=request.path)
    if settings.control_token is not None:
        given = request.headers.get("X-Emulator-Token", "")
        if not hmac.compare_digest(given.encode(), settings.control_token.encode()):
            raise GatewayError("control_token_missing")


def gateway():
    return emulator().gateway


def _token(text: str) -> int:
    if not text.isdigit():
        raise GatewayError("token_unknown", token=text)
    return int(text)


@control("/health", "GET", "200 once ready")
def health():
    return jsonify(status="ok")


@control("/reset", "POST", "Forget payments, callbacks and the journal; keep clients")
def reset():
    gateway().reset()
    return jsonify(status="reset", clock=gateway().clock_view())


@control("/clock", "GET", "The emulator's time")
def clock():
    return jsonify(gateway().clock_view())


@control("/clock", "POST", "Advance, set or freeze the clock", schema="clock")
def set_clock(values):
    if len(values) != 1:
        raise GatewayError("clock_request_invalid", detail="give exactly one of advance_seconds, set, freeze")
    return jsonify(gateway().set_clock(values))


@control("/payments/{token}/approve", "POST", "Finish the payment as the payer would", schema="approve")
def approve(token, values):
    return jsonify(gateway().approve(_token(token), values))


@control("/payments/{token}/decline", "POST", "The payer's payment fails", schema="decline")
def decline(token, values):
    return jsonify(gateway().decline(_token(token), values.get("code"), values.get("message")))


@control("/payments/{token}/abandon", "POST", "The payer presses cancel")
def abandon(token):
    return jsonify(gateway().abandon(_token(token)))


@control("/payments", "GET", "Payments with their cancellations (?client_id=, ?status=)")
def payments():
    found = gateway().storage.payments(client_id=request.args.get("client_id"),
                                       status=request.args.get("status"))
    return jsonify(payments=[gateway().payment_view(p) for p in found])


@control("/payments/{ref}", "GET", "One payment, by tid or token")
def payment(ref):
    storage = gateway().storage
    found = storage.payment_by_token(int(ref)) if ref.isdigit() else storage.payment_by_tid(ref)
    if found is None:
        raise GatewayError("payment_unknown", tid=ref)
    return jsonify(gateway().payment_view(found))


@control("/virtual-accounts/{tid}/deposit", "POST", "The payer deposits; fires the callback", schema="deposit")
def deposit(tid, values):
    return jsonify(gateway().deposit(tid, values.get("amount")))


@control("/callbacks", "GET", "Notifications with their attempts (?tid=, ?status=)")
def callbacks():
    return jsonify(callbacks=gateway().storage.callbacks(tid=request.args.get("tid"),
                                                         status=request.args.get("status")))


@control("/requests", "GET", "The journal of API requests, newest last (?limit=)")
def requests_journal():
    limit = request.args.get("limit", "1000")
    return jsonify(requests=gateway().storage.journal(int(limit) if limit.isdigit() else 1000))
