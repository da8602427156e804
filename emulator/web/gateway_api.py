"""The gateway's REST API (/v1.0/...): authenticate, validate against schemas/, call the service."""
from __future__ import annotations

import asyncio
import functools
import socket

from flask import Blueprint, Response, abort, g, jsonify, request

from ..domain.callback_policy import DOMESTIC
from ..domain.endpoints import BY_NAME, PREFIX
from ..domain.errors import GatewayError
from ..waits import soon
from . import request_log
from .operations import Operation, register
from .plumbing import answer_after, authenticate, base_url, check_callback_url, check_urls, is_credential, json_body, warnings

blueprint = Blueprint("gateway_api", __name__, url_prefix=PREFIX)


def endpoint(name: str):
    """Route the gateway endpoint `name` as domain/endpoints.py declares it. The handler gets
    (emulator, client, values, **path_args), values already checked against
    schemas/requests/<schema>.json; the journal takes the answer in the transaction of its writes
    (request_log.journaled)."""
    declared = BY_NAME[name]
    path, key, schema, query = declared.path, declared.key, declared.schema, declared.query
    in_messages = path.lstrip("/")  # how the refusals name it: receipt/info/{tid}
    register(Operation(path=PREFIX + path, method=declared.method, summary=declared.summary, key=key,
                       request=f"requests/{schema}", response=f"responses/{declared.response or schema}",
                       query=query))

    def wrap(handler):
        @functools.wraps(handler)
        def view(**path_args):
            instance, request_globals, http_request = g.instance, g._get_current_object(), request._get_current_object()
            request_globals.endpoint = name
            client = authenticate(key, in_messages, instance, http_request, request_globals)
            strict = instance.settings.strict
            data = http_request.args.to_dict() if query else json_body(strict=strict, http_request=http_request)
            scenario_rule(instance, name, client.client_id, data)
            checked = instance.schemas.check_request(f"requests/{schema}", data, strict=strict,
                                                     endpoint=in_messages, from_query=query)
            if checked.warnings:
                warnings().extend(checked.warnings)
            if checked.values.get("client_id") != client.client_id:
                raise GatewayError("client_forbidden", client_id=checked.values.get("client_id"))
            return request_log.journaled(instance, lambda: jsonify(handler(instance, client, checked.values,
                                                                           **path_args)))

        flask_path = path.replace("{tid}", "<tid>")
        blueprint.add_url_rule(flask_path, endpoint=handler.__name__, view_func=view, methods=[declared.method])
        return view

    return wrap


def scenario_rule(instance, endpoint: str, client_id: str, data, gateway: str = DOMESTIC) -> None:
    """The scenario's answer to this request (the domestic gateway's, or Payletter Global's),
    decided by the service before the gateway looks at it, in HTTP: the error's envelope, the
    answer given late, or the connection dropped. The journal records the rule."""
    answer = instance.service.clock_jobs.decide_api(endpoint, client_id, data, request_headers, gateway=gateway)
    if answer is None:
        return
    g.rule = answer.rule
    if answer.error is not None:
        g.rule_error = answer.error  # the reason names the rule that answered
        raise answer.error
    if answer.late_seconds is not None:  # the answer, whatever it is, leaves that late
        answer_after(soon(asyncio.sleep(answer.late_seconds)))
    if answer.drop:
        drop_connection()


def request_headers() -> dict:
    """The request's headers for scenario rules, lower-cased, without credentials (made once,
    from the WSGI environ as werkzeug's Headers read it: HTTP_* and the two CONTENT_ ones). A
    payment keeps them: the database, the control API and the dashboard never see a credential."""
    environ = request.environ
    headers = environ.get("payletter.headers")
    if headers is None:
        headers = {_header_name(key): value[:200] for key, value in environ.items()
                   if key[:5] == "HTTP_" and _kept(key)}
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[_header_name(key)] = environ[key][:200]
        environ["payletter.headers"] = headers
    return headers


@functools.lru_cache(maxsize=1024)
def _header_name(key: str) -> str:
    """HTTP_X_EMULATOR_SCENARIO -> x-emulator-scenario; CONTENT_TYPE -> content-type."""
    return key.removeprefix("HTTP_").replace("_", "-").lower()


@functools.lru_cache(maxsize=1024)
def _kept(key: str) -> bool:
    """Credentials (Authorization, Cookie, X-Emulator-Token, *-Key, ...) are never kept; werkzeug
    reads HTTP_CONTENT_* from CONTENT_* instead."""
    return key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH") and not is_credential(_header_name(key))


def drop_connection():
    """Close the connection under the request: the client sees it closed, with no answer."""
    drop = request.environ.get("payletter.drop")  # set by emulator/serving/bridge.py
    sock = request.environ.get("werkzeug.socket") or request.environ.get("gunicorn.socket")
    if drop is not None:
        drop()
    elif sock is not None:
        sock.shutdown(socket.SHUT_RDWR)
    abort(Response(status=500))


@endpoint("payments/request")
def payments_request(instance, client, values):
    check_callback_url(values["callback_url"], instance)
    check_urls(values)
    return instance.service.merchant_api.request_payment(client, values, base_url(instance), headers=request_headers())


@endpoint("payments/autopay")
def payments_autopay(instance, client, values):
    return instance.service.merchant_api.autopay(client, values)


@endpoint("payments/cancel")
def payments_cancel(instance, client, values):
    return instance.service.merchant_api.cancel(client, values, warnings(), partial=False)


@endpoint("payments/cancel/partial")
def payments_cancel_partial(instance, client, values):
    return instance.service.merchant_api.cancel(client, values, warnings(), partial=True)


@endpoint("cashreceipt/issue")
def cashreceipt_issue(instance, client, values, tid):
    check_urls(values)
    return instance.service.merchant_api.issue_cash_receipt(client, tid, values, base_url(instance))


@endpoint("payments/transaction/list")
def transaction_list(instance, client, values):
    return instance.service.merchant_api.transaction_list(client, values)


@endpoint("receipt/info")
def receipt_info(instance, client, values, tid):
    return instance.service.merchant_api.receipt_info(client, tid, values, base_url(instance))


@endpoint("payments/status")
def payments_status(instance, client, values):
    return instance.service.merchant_api.payment_status(client, values)
