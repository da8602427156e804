"""The request journal: every gateway API request and its answer, as `GET /_emulator/requests`
shows them. Each answer, errors included, is taken once it is made, before it is sent: a gateway
endpoint's answer within the transaction of its writes (`journaled`), so that on PostgreSQL both
commit together; an error's once the transaction has been rolled back. Storage decides when
entries are written (in batches on SQLite) and makes every read see all of them. No header is
kept, and the value of a query parameter named like a credential is kept as [redacted]."""
from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import unquote_plus

from flask import Flask, Request, Response, g, request

from ..domain import global_rules
from ..domain.clock import iso
from ..domain.errors import GatewayError
from .plumbing import REDACTED, is_credential

log = logging.getLogger("payletter_emulator")
JOURNALED = "/v1.0/"
JOURNAL_BODY = 16 * 1024


def install(app: Flask) -> None:
    @app.after_request
    def journal(response: Response) -> Response:
        request_globals = g._get_current_object()
        if (request_globals.get("instance") is not None and not request_globals.get("unjournaled")
                and not request_globals.get("journaled")):
            http_request = request._get_current_object()
            if http_request.path.startswith(JOURNALED) or global_rules.is_api_path(http_request.path):
                _record(response, request_globals, http_request)
        return response


def journaled(instance, answer: Callable[[], Response]) -> Response:
    """`answer()`, its entry taken in the same transaction as the writes that made it (storage's
    `journaled`: one commit on PostgreSQL). If that transaction fails, nothing of it is kept, and
    the error it becomes is journaled as any error is (the after_request hook)."""
    request_globals, http_request = g._get_current_object(), request._get_current_object()
    with instance.storage.journaled():
        response = answer()
        _record(response, request_globals, http_request)
    request_globals.journaled = True
    return response


def _record(response: Response, request_globals, http_request: Request) -> None:
    """Append the request and `response` to the journal of the request's emulator (`request_globals`
    is the request's `g`). The journal never turns an answer into a failure:
    a problem writing it is logged."""
    instance = request_globals.instance
    # Payletter Global's requests are counted apart: its endpoints and its codes (998 is both gateways').
    prefix = "global_" if global_rules.is_api_path(http_request.path) else ""
    endpoint = request_globals.get("global_endpoint" if prefix else "endpoint")
    coverage = [(f"{prefix}endpoint", endpoint)] if endpoint else []
    status = response.status_code
    if status != 200:
        body = response.get_json(silent=True)
        if isinstance(body, dict) and "code" in body:
            coverage.append((f"{prefix}error_code", str(body["code"])))
    try:
        instance.storage.journal_append({
            "at": iso(instance.service.context.clock.now()), "method": http_request.method,
            "path": http_request.path.replace("\x00", "\ufffd"),
            "query": _query(http_request.query_string.decode("latin-1")),
            "client_id": request_globals.get("client_id", ""),
            "request": _kept(http_request.get_data(cache=True)), "status": status,
            "response": _kept(response.get_data()),
            "warnings": request_globals.get("warnings", []), "error": request_globals.get("exception", ""), "rule": request_globals.get("rule"),
            "coverage": coverage,
        })
    except GatewayError as error:  # the database unreachable or locked: said in one line
        log.warning("could not write the journal: %s", error.message)
    except Exception:
        log.exception("could not write the journal")


def _query(query: str) -> str:
    """The query string as the journal keeps it: a credential's value (`?api_key=`) replaced."""
    if not query:
        return query
    return "&".join(f"{name}={REDACTED}" if equals and is_credential(unquote_plus(name)) else name + equals + value
                    for name, equals, value in (pair.partition("=") for pair in query.split("&")))


def _kept(raw: bytes) -> str:
    """A body as the journal keeps it: the text as it crossed the wire, at most JOURNAL_BODY
    bytes of it (a search of 10,000 rows must not fill the disk); the Authorization header
    is never kept."""
    if len(raw) <= JOURNAL_BODY:
        return raw.decode("utf-8", "replace").replace("\x00", "\ufffd")  # raw NUL: no database text holds it
    return raw[:JOURNAL_BODY].decode("utf-8", "ignore").replace("\x00", "\ufffd") + f"... (cut: {len(raw)} bytes in all)"
