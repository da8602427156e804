"""The hosted pages a payer's browser sees: the payment page (/pgsvc/hub.asp), the transaction
receipt and the cash-receipt form (/PGSVC/...). Thin: read the query and the form, let checkout
read what the payer typed, call the gateway, render a template (templates/, static/ is served by
the app at /static/). Errors are HTML pages with the error's HTTP status, never a traceback."""
from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from urllib.parse import quote, urlencode

from flask import Blueprint, Response, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from ..engines import checkout
from ..domain.details import BANKS
from ..domain.identifiers import is_token
from ..domain.methods import labels, lookup
from ..domain.errors import GatewayError
from .plumbing import emulator

log = logging.getLogger("payletter_emulator")
blueprint = Blueprint("pages", __name__)

PAYMENT_PAGE = "/pgsvc/hub.asp"
RECEIPT_PAGE = "/PGSVC/AllTheGate/Receipt_All.asp"
CASH_RECEIPT_PAGE = "/PGSVC/Receipt/ReceiptForm.asp"
LANGUAGES = ("ko", "en")


class NoCase(BaseConverter):
    """One path segment in any letter case: the gateway's pages are ASP on IIS, where
    /PGSVC/hub.asp and /pgsvc/HUB.asp are the same page."""

    part_isolating = True

    def __init__(self, url_map, word: str):
        super().__init__(url_map)
        self.regex = f"(?i:{re.escape(word)})"


blueprint.record(lambda state: state.app.url_map.converters.setdefault("nocase", NoCase))


def page(path: str, methods: list[str]):
    """Route a page at the gateway's path, matched without regard to case."""
    rule = "".join(f'/<nocase("{segment}"):_{i}>' for i, segment in enumerate(path.strip("/").split("/")))

    def wrap(view):
        blueprint.add_url_rule(rule, endpoint=view.__name__, view_func=lambda **_: view(), methods=methods)
        return view

    return wrap


def payer():
    return emulator().service.payer


# --- what every page shares ---------------------------------------------------------------------

@cache
def texts(name: str = "page_text.toml") -> dict:
    """The words of a page by language, from a TOML file beside this module (read once). The
    hosted pages' words include `methods`: each method's and option's label, from its row of the
    method table."""
    words = tomllib.loads(resources.files(__package__).joinpath(name).read_text("utf-8"))
    if name == "page_text.toml":
        for lang in LANGUAGES:
            words[lang]["methods"] = labels(lang)
    return words


@dataclass(frozen=True)
class Where:
    """Read from the page's query (names in any case, as ASP reads them)."""

    lang: str
    location: str
    args: dict

    @classmethod
    def read(cls) -> "Where":
        args = {name.lower(): value for name, value in request.args.items()}
        lang = args.get("lang", "ko").lower()
        location = args.get("location", "online").lower()
        return cls(lang if lang in LANGUAGES else "ko", location if location in checkout.LOCATIONS else "online",
                   args)

    def check_location(self) -> None:
        """The payment page's `location` must be the gateway's; other pages lay out as online."""
        given = self.args.get("location", "online").lower()
        if given not in checkout.LOCATIONS:
            raise GatewayError("page_request_invalid", detail=f"location {given!r} is not online or mobile")

    def token(self, name: str = "token") -> int:
        text = self.args.get(name, "")
        if not is_token(text):
            raise GatewayError("token_unknown", token=text or "(none)")
        return int(text)


def render(template: str, where: Where, http_status: int = 200, **context):
    t = texts()[where.lang]
    other = LANGUAGES[1 - LANGUAGES.index(where.lang)]
    query = {name: value for name, value in request.args.items() if name.lower() != "lang"}
    switch = request.path + "?" + urlencode({**query, "lang": other})
    return render_template(template, t=t, lang=where.lang, location=where.location, switch_url=switch,
                           won=lambda amount: t["won"].format(amount=f"{amount:,}"), **context), http_status


class _Redirect(Response):
    """A 303 to the merchant's URL as given: werkzeug's own would lowercase the "host" of an app URL
    (myshop://ISPCancel). Only what a header cannot carry (spaces, non-ASCII) is percent-encoded."""

    def __init__(self, target: str):
        super().__init__(status=303)
        self.target = quote(target, safe="!#$%&'()*+,-./:;=?@[]~_")
        self.headers["Location"] = self.target

    def get_wsgi_headers(self, environ):
        self.headers.remove("Location")  # werkzeug would rewrite it, and fail on a long IDN label percent-encoded
        headers = super().get_wsgi_headers(environ)
        headers["Location"] = self.target
        return headers


POLICY = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'self'"


@blueprint.after_request
def page_headers(response: Response) -> Response:
    return secured(response, POLICY)


def secured(response: Response, policy: str) -> Response:
    """A hosted page's headers: scripts and styles only from the emulator, as `policy` says (the
    pages carry merchant values); framed by no other site (a page of another site cannot overlay
    the pay button); never cached, so the back button does not show a form already used."""
    response.headers.setdefault("Content-Security-Policy", policy)
    response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@blueprint.errorhandler(GatewayError)
def gateway_error(error: GatewayError):
    return _error_page(error.kind, error.status, error.message)


@blueprint.errorhandler(Exception)
def unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return _error_page("other", exc.code or 500, exc.description or exc.name)
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _error_page("other", 500, "Internal server error")


def _error_page(kind: str, status: int, detail: str):
    known = kind if kind in texts()["ko"]["errors"] else "other"
    try:
        return render("error.html", Where.read(), status, kind=known, status=status, detail=detail)
    except Exception:  # the error page itself failed: still an HTML answer, never a traceback
        log.exception("could not render the error page for %s", kind)
        return f"<!doctype html><title>Error {status}</title><p data-testid=page-error>Error {status}</p>", status


# --- the payment page -------------------------------------------------------------------------

@page(PAYMENT_PAGE, ["GET", "POST"])
def payment_page():
    where = Where.read()
    where.check_location()
    token = where.token()
    if request.method == "GET":
        return _payment_form(where, payer().open_page(token))
    form = request.form.to_dict()
    if form.get("action") == "cancel":
        target = payer().cancel_on_page(token)
        return _Redirect(target) if target else render("cancelled.html", where)
    payment = payer().page_payment(token)
    reading = checkout.read_payment_form(lookup(payment.pgcode), payment, form, payer().clock.now())
    if reading.errors:
        return _payment_form(where, payment, reading, 422)
    if reading.app_step_due:
        return _payment_form(where, payment, reading, step="app")
    outcome = payer().pay_on_page(payment, reading.entry)
    if "cancel" in outcome:  # a scenario rule made the payer abandon
        return _Redirect(outcome["cancel"]) if outcome["cancel"] else render("cancelled.html", where)
    return render("return.html", where, target=outcome["target"], fields=outcome["fields"], outcome=_outcome(outcome))


def _payment_form(where: Where, payment, reading: checkout.Reading | None = None, http_status: int = 200,
                  step: str = "form"):
    method = lookup(payment.pgcode)
    return render("payment.html", where, http_status, payment=payment, method=method, step=step,
                  page_inputs=checkout.pages()[method.pgcode], values=reading.values if reading else {},
                  errors=reading.errors if reading else {}, banks=BANKS, carriers=checkout.CARRIERS,
                  installments=checkout.INSTALLMENT_OFFER if checkout.installments_offered(payment.amount) else (),
                  cash_receipt=checkout.asks_cash_receipt(method, payment),
                  declining=checkout.declining_inputs(method.pgcode),
                  action=request.full_path)


def _outcome(outcome: dict) -> str:
    fields = outcome["fields"]
    if fields.get("code", "0") != "0":
        return "failed"
    if "account_no" in fields:
        return "issued"
    return "paid" if "tid" in fields else "verified"


# --- receipts ---------------------------------------------------------------------------------

@page(RECEIPT_PAGE, ["GET"])
def receipt_page():
    where = Where.read()
    return render("receipt.html", where, **payer().receipt_page(where.args.get("id", "")))


@page(CASH_RECEIPT_PAGE, ["GET", "POST"])
def cash_receipt_page():
    where = Where.read()
    token, tid = where.token(), where.args.get("id", "")
    cash_request, payment = payer().cash_receipt_request(token, tid)
    usages = checkout.cash_receipt_form_usages(cash_request["type"])
    if request.method == "GET":
        return _cash_receipt_form(where, cash_request, payment, usages, {}, {})
    values, errors = checkout.read_cash_receipt(request.form.to_dict(), usages)
    if errors:
        return _cash_receipt_form(where, cash_request, payment, usages, values, errors, 422)
    asked = {"type": values["cash_receipt_type"], "payer_sid": values["cash_receipt_id"]}
    outcome = payer().issue_cash_receipt_on_form(token, tid, asked)
    return render("return.html", where, target=outcome["target"], fields=outcome["fields"], outcome="cash_receipt")


def _cash_receipt_form(where, cash_request, payment, usages, values, errors, http_status: int = 200):
    return render("cash_receipt.html", where, http_status, cash_request=cash_request, payment=payment,
                  method=lookup(payment.pgcode), usages=usages, values=values, errors=errors,
                  action=request.full_path)
