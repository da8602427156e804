"""Payletter Global's API on the same server, at its own paths: the payment request and the two
generations of refund. Authenticates `GPLKEY <key>` or `POQAPI <storeid>:<signature>:<nonce>:<timestamp>`,
reads a JSON body (leniently, as the domestic API does) or a form (UTF-8, or EUC-KR when its
Content-Type says so), checks it against schemas/global/, calls the Global room."""
from __future__ import annotations

import hmac
import json
from functools import cache
from urllib.parse import parse_qsl

from flask import Blueprint, Request, g, jsonify, request
from jsonschema import Draft202012Validator

from ..config import GlobalStore
from ..domain import global_rules
from ..domain.global_rules import AUTH_GPLKEY, AUTH_POQAPI, GATEWAY, GlobalError
from ..engines import lenient_json
from . import request_log
from .gateway_api import request_headers, scenario_rule
from .operations import Operation, register
from .plumbing import base_url, body_bytes, warnings

blueprint = Blueprint("global_api", __name__)
FORM_TYPE = "application/x-www-form-urlencoded"
CHARSETS = {"euc-kr": "euc-kr", "euckr": "euc-kr", "ks_c_5601-1987": "euc-kr", "utf-8": "utf-8", "utf8": "utf-8"}


def operation(name: str, summary: str, schema: str, response: str):
    """Route one Global operation (POST) at the path `name` (global_rules.ENDPOINTS), declared for
    /openapi.json. The handler gets (emulator, store, values, **path_args), values checked against
    schemas/global/<schema>.json; the scenario answers first, as for the domestic API."""
    path = "/" + name
    register(Operation(path=path, method="POST", summary=summary, key="GLOBAL", request=f"global/{schema}",
                       response=f"global/{response}"))

    def wrap(handler):
        def view(**path_args):
            instance, request_globals, http_request = g.instance, g._get_current_object(), request._get_current_object()
            request_globals.global_endpoint = name
            strict = instance.settings.strict
            raw = body_bytes(http_request)
            text, values, pairs = read_body(http_request, raw, strict)
            store = authenticate(instance.settings.global_stores, http_request, text, pairs)
            request_globals.client_id = store.store_id
            scenario_rule(instance, name, store.store_id, values, gateway=GATEWAY)
            checked = check(schema, values, strict)
            if str(checked.get("storeid")) != store.store_id:
                raise GlobalError("forbidden", f"storeid {str(checked.get('storeid'))[:50]!r} is not the store "
                                               f"of this key ({store.store_id!r})")
            return request_log.journaled(instance, lambda: jsonify(handler(instance, store, checked, **path_args)))

        view.__name__ = handler.__name__
        blueprint.add_url_rule(path.replace("{", "<").replace("}", ">"), endpoint=handler.__name__,
                               view_func=view, methods=["POST"])
        return view

    return wrap


# --- the body ---

def read_body(http_request: Request, raw: bytes, strict: bool) -> tuple[str, dict, list[tuple[str, str]] | None]:
    """(the body's text as received, its values, a form's pairs in order or None for JSON). JSON
    takes a trailing comma (a warning; 400 under --strict), as Payletter's PHP sample sends one."""
    charset = CHARSETS.get((http_request.mimetype_params.get("charset") or "utf-8").lower().strip())
    if charset is None:
        raise GlobalError("bad_request", f"charset {http_request.mimetype_params['charset'][:30]!r} is not "
                                         "utf-8 or euc-kr")
    try:
        text = raw.decode(charset + ("-sig" if charset == "utf-8" else ""))
    except UnicodeDecodeError as exc:
        raise GlobalError("bad_request", f"the body is not {charset} (byte {exc.start})") from None
    if http_request.mimetype == FORM_TYPE:
        try:
            pairs = parse_qsl(text, keep_blank_values=True, encoding=charset, errors="strict", max_num_fields=100)
        except (ValueError, UnicodeDecodeError) as exc:  # too many fields, or %xx that is not the charset
            raise GlobalError("bad_request", f"the form cannot be read ({str(exc)[:100]})") from None
        return text, dict(pairs), pairs
    if not text.strip():
        return text, {}, None
    try:
        reading = lenient_json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise GlobalError("bad_request", f"the body is neither JSON nor a form ({str(exc)[:100]})") from None
    for deviation in reading.deviations:
        if strict:
            raise GlobalError("bad_request", f"{deviation} (--strict)")
        warnings().append(f"body: {deviation}")
    if not isinstance(reading.value, dict):
        raise GlobalError("bad_request", "the body must be a JSON object")
    return text, reading.value, None


@cache
def _validator(schema: str) -> tuple[Draft202012Validator, dict]:
    from ..instance import schemas

    document = schemas().documents[f"global/{schema}"]
    return Draft202012Validator(document), document


def check(schema: str, values: dict, strict: bool) -> dict:
    """406/995 naming the first field that breaks its rule; an unknown field is a warning, or
    refused under --strict (so is productname, read as servicename)."""
    validator, document = _validator(schema)
    for name in values:
        if "\x00" in str(name) or "\x00" in str(values[name]):
            raise GlobalError("business", f"{str(name)[:40]!r} must not contain the NUL character")
    errors = sorted(validator.iter_errors(values), key=lambda e: (list(e.path), e.validator))
    if errors:
        raise GlobalError("business", _said(errors[0], document))
    properties = document["properties"]
    for name in values:
        if name == "productname" and "productname" in properties:
            if strict:
                raise GlobalError("business", "productname is not a field of the gateway (send servicename; --strict)")
            warnings().append("productname: read as servicename (the samples send servicename)")
        elif name not in properties:
            if strict:
                raise GlobalError("business", f"{str(name)[:40]} is not a field of this request (--strict)")
            warnings().append(f"{str(name)[:40]}: not a field of this request; ignored")
    return values


def _said(error, document: dict) -> str:
    if error.validator == "required":
        missing = [name for name in document["required"] if name not in error.instance]
        return f"{missing[0]} is required"
    field = ".".join(str(part) for part in error.path) or "the body"
    rule = {"enum": f"must be one of {', '.join(map(str, error.validator_value))}",
            "type": "must be " + " or ".join(error.validator_value if isinstance(error.validator_value, list)
                                             else [error.validator_value]),
            "maxLength": f"must be at most {error.validator_value} characters",
            "minLength": "must not be empty"}.get(error.validator, error.message[:100])
    return f"{field} {rule}"


# --- who sends it ---

def authenticate(stores: tuple[GlobalStore, ...], http_request: Request, text: str,
                 pairs: list[tuple[str, str]] | None) -> GlobalStore:
    """The store behind `GPLKEY <key>`, or behind a POQAPI signature that verifies over the URL
    called or the canonical https://dev-api.payletter.com (or api.payletter.com) one, and over the
    body as received or its pairs joined again decoded; 401/998 otherwise."""
    scheme, _, credentials = http_request.headers.get("Authorization", "").strip().partition(" ")
    credentials = credentials.strip()
    if scheme.upper() == AUTH_GPLKEY and credentials:
        for store in stores:
            if hmac.compare_digest(store.key.encode(), credentials.encode()):
                return store
        g.exception = "998: the key of `GPLKEY <key>` is no Global store's key"
        raise GlobalError("unauthorized")
    if scheme.upper() == AUTH_POQAPI:
        signed = global_rules.read_poqapi(credentials)
        store = next((s for s in stores if signed and s.store_id == signed.store_id), None)
        if signed is None or store is None:
            g.exception = "998: POQAPI is not storeid:signature:nonce:timestamp of a Global store"
            raise GlobalError("unauthorized")
        bodies = [text] + ([] if pairs is None else ["&".join(f"{k}={v}" for k, v in pairs)])
        for url in signed_urls(http_request):
            for body in bodies:
                expected = global_rules.poqapi_signature(store.store_id, store.key, http_request.method, url,
                                                         signed.timestamp, signed.nonce, body)
                if hmac.compare_digest(expected, signed.signature.lower()):
                    warnings().append(f"POQAPI signature verified over {url}")
                    return store
        g.exception = "998: the POQAPI signature matches neither the URL called nor the canonical URLs"
        raise GlobalError("unauthorized")
    g.exception = "998: no `GPLKEY <key>` or `POQAPI ...` Authorization header"
    raise GlobalError("unauthorized")


def signed_urls(http_request: Request) -> list[str]:
    """The URLs a client may have signed: the one it called, and the gateway's own hosts'."""
    path = http_request.path
    return [http_request.base_url, *(f"https://{host}{path}" for host in global_rules.table()["api_hosts"])]


# --- the operations ---

@operation(global_rules.REQUEST, "Payletter Global: payment request (GPLKEY JSON or POQAPI form)",
           "payment_request", "payment_request_answer")
def global_payment_request(instance, store, values):
    return instance.service.global_payments.request_payment(store, values, base_url(instance), warnings(),
                                                            headers=request_headers())


@operation(global_rules.REFUND, "Payletter Global: refund, newer (GPLKEY JSON)", "refund", "refund_answer")
def global_refund(instance, store, values):
    return instance.service.global_payments.refund(store, values, "newer")


@operation(global_rules.OLDER_REFUND, "Payletter Global: refund, older (POQAPI form, charset=euc-kr taken)",
           "refund", "refund_answer")
def global_refund_older(instance, store, values, pginfo):
    if global_rules.canonical_pginfo(pginfo) is None:
        raise GlobalError("not_found", f"no refund for pginfo {pginfo[:50]!r}")
    named = values.get("pginfo")
    if named is not None and global_rules.canonical_pginfo(str(named)) != global_rules.canonical_pginfo(pginfo):
        raise GlobalError("business", f"pginfo {str(named)[:50]!r} is not the path's ({pginfo[:50]})")
    return instance.service.global_payments.refund(store, {"pginfo": pginfo, **values}, "older")
