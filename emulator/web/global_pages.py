"""Payletter Global's hosted page: /Web/Payment.aspx (a computer) and /Smart/Payment.aspx (a
phone), the paths of online_url and mobile_url. With `?token=` it is the payment's page (a card
form for the card methods, approve/decline for PayPal and the others); POSTed a hash-signed form
without a token (the WooCommerce plugin's flow, no API call), it requests the payment itself and
answers the `gopay` form that opens that page. Its end is a form the browser POSTs to `returnurl`
with the notification's fields. Thin: read the query and the form, call the Global room, render a
template; errors are HTML pages with the error's HTTP status and Global's code."""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging

from flask import Blueprint, Response, redirect, render_template, request
from werkzeug.exceptions import HTTPException

from ..domain import global_rules
from ..domain.errors import GatewayError
from ..domain.global_rules import GlobalError
from ..engines import checkout
from .gateway_api import request_headers
from .global_api import check
from .pages import NoCase, secured, texts
from .plumbing import base_url, emulator, warnings

log = logging.getLogger("payletter_emulator")
blueprint = Blueprint("global_pages", __name__)
blueprint.record(lambda state: state.app.url_map.converters.setdefault("nocase", NoCase))

LAYOUTS = {"web": "online", "smart": "mobile"}  # the path's first segment, and the page's layout
LANG = "en"
TEXTS = "global_page_text.toml"
# The one inline script, as the samples' pages end (a Django shop strips exactly this line):
# allowed by its hash, so the Content-Security-Policy stays closed to every other script.
GOPAY_SCRIPT = "document.gopay.submit();"
_GOPAY_HASH = base64.b64encode(hashlib.sha256(GOPAY_SCRIPT.encode()).digest()).decode()
POLICY = (f"default-src 'self'; script-src 'self' 'sha256-{_GOPAY_HASH}'; img-src 'self' data:; "
          "object-src 'none'; base-uri 'none'; frame-ancestors 'self'")


def room():
    return emulator().service.global_payments


def _page(view):
    """The view at /Web/Payment.aspx and /Smart/Payment.aspx, matched without regard to case (ASP
    on IIS); the view gets the layout."""
    for segment, layout in LAYOUTS.items():
        blueprint.add_url_rule(f'/<nocase("{segment}"):_0>/<nocase("payment.aspx"):_1>',
                               endpoint=f"{view.__name__}_{segment}", methods=["GET", "POST"],
                               view_func=lambda layout=layout, **_: view(layout))
    return view


def render(template: str, layout: str, http_status: int = 200, **context):
    return render_template(template, t=texts(TEXTS)[LANG], lang=LANG, layout=layout, gopay_script=GOPAY_SCRIPT,
                           **context), http_status


@blueprint.after_request
def page_headers(response: Response) -> Response:
    """As the domestic pages, but for the one gopay line its policy allows."""
    return secured(response, POLICY)


@blueprint.errorhandler(GatewayError)
def gateway_error(error: GatewayError):
    return _error_page(error.status, error.code, error.message)


@blueprint.errorhandler(Exception)
def unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return _error_page(exc.code or 500, 997, exc.description or exc.name)
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _error_page(500, 999, "Internal server error")


def _error_page(status: int, code, message: str):
    try:
        return render("global_error.html", _layout(), status, status=status, code=code, message=message)
    except Exception:  # the error page itself failed: still an HTML answer, never a traceback
        log.exception("could not render the Global error page")
        return f"<!doctype html><title>Error {status}</title><p data-testid=page-error>Error {status}</p>", status


def _layout() -> str:
    return LAYOUTS.get(request.path.strip("/").split("/")[0].lower(), "online")


# --- the page ---------------------------------------------------------------------------------

@_page
def global_payment_page(layout: str):
    token = next((value for name, value in request.args.items() if name.lower() == "token"), "")
    if request.method == "POST" and not token:
        return _hosted_form(layout)
    if not token:
        raise GlobalError("bad_request", "token is required (the token of /api/payment/request's answer), "
                                         "or POST the hash-signed form")
    payment = room().page_payment(token)
    _check_return(payment)
    if request.method == "GET":
        return _payment_form(layout, payment)
    form = request.form.to_dict()
    action = form.get("action", "pay")
    if action == "cancel":
        outcome = room().cancel_on_page(token)
        if "backurl" in outcome:
            return redirect(outcome["backurl"], 303)
    elif action == "decline" and not _is_card(payment):
        outcome = room().decline_on_page(token)
    elif _is_card(payment):
        values, errors = global_rules.read_card(form)
        if errors:
            return _payment_form(layout, payment, values, errors, 422)
        outcome = room().pay_on_page(token, values["card_number"], values["card_expiry"])
    else:
        outcome = room().pay_on_page(token)
    return render("global_return.html", layout, **outcome)


def _is_card(payment: dict) -> bool:
    return global_rules.table()["pginfo"][payment["pginfo"]]["card"]


def _check_return(payment: dict) -> None:
    """The page's end is a form whose action is `returnurl`: only an http(s) address."""
    for name in ("returnurl", "backurl"):
        url = payment["request"].get(name)
        if url and not checkout.browser_can_go(str(url)):
            raise GlobalError("business", f"{name} {str(url)[:80]!r} is not an absolute http(s) address")


def _payment_form(layout: str, payment: dict, values: dict | None = None, errors: dict | None = None,
                  http_status: int = 200):
    pginfo = global_rules.table()["pginfo"][payment["pginfo"]]
    return render("global_payment.html", layout, http_status, payment=payment, pginfo=payment["pginfo"],
                  label=pginfo["label"], card=pginfo["card"], works_in_test=pginfo["works_in_test"],
                  amount=f"{payment['currency']} {payment['amount']}", values=values or {}, errors=errors or {},
                  cards=global_rules.table()["cards"], action=request.full_path)


# --- the hosted form without an API call ------------------------------------------------------

def _hosted_form(layout: str):
    """The WooCommerce plugin's flow: the form checked (schemas/global/hosted_form.json), its hash
    verified with the store's key (401/998 otherwise), the payment requested; the answer is the
    samples' `gopay` form, submitted at once, that opens the payment's page."""
    instance = emulator()
    form = request.form.to_dict()
    store = next((s for s in instance.settings.global_stores if s.store_id == form.get("storeid")), None)
    if store is None:
        raise GlobalError("unauthorized", f"storeid {str(form.get('storeid', ''))[:50]!r} is no Global store")
    checked = check("hosted_form", form, instance.settings.strict)
    expected = global_rules.hosted_form_hash(checked, store.key)
    if not hmac.compare_digest(expected, str(checked["hash"]).lower()):
        raise GlobalError("unauthorized", "hash is not SHA-256 of storeid, currency, storeorderno, payamt, "
                                          "payerid, timestamp and the store's key")
    _check_return({"request": checked})  # before the payment exists: a refused form leaves nothing behind
    answer = room().request_from_form(store, checked, base_url(instance), warnings(), headers=request_headers())
    return render("global_gopay.html", layout, token=answer["token"])
