"""The control API (/_emulator/...): what tests use to drive and inspect the emulator."""
from __future__ import annotations

import functools
import hmac
import json
import re
import time
from urllib.parse import urlsplit

import yaml

from flask import Blueprint, jsonify, request

from ..config import LIST_PAGE
from ..engines import scenario as scenario_files
from ..delivery.dispatcher import callback_view
from ..domain import global_rules
from ..domain.callback_policy import matches_any, own_name
from ..domain.identifiers import is_token
from ..domain.text import is_text
from ..domain.errors import GatewayError
from ..waits import ARRIVED, LONG
from ..engines.validation import refuse_nul
from .operations import Operation, register
from ..domain.methods import table as method_table
from ..domain.payment import STATUS_CODES
from .operations import OPERATIONS
from .plumbing import answer_later, body_bytes, emulator, json_body, request_host, root_url, sandboxes, shown

CALLBACK_STATUSES = ("pending", "delivered", "failed")
PAYMENT_STATUSES = tuple(STATUS_CODES)  # every status a payment can have, in its life's order

blueprint = Blueprint("control_api", __name__, url_prefix="/_emulator")


def control(path: str, method: str, summary: str, *, schema: str | None = None, status: str = "200",
            work: str | None = None):
    """Route one control operation; a body, when it has a schema, is checked strictly. `work`
    declares, for whoever serves it (serving/bridge.py), work that is long (waits.LONG): a page
    of a thousand entries, a scenario parsed, the other processes' journal waited for (a reset,
    coverage, the journal)."""
    register(Operation(path=f"/_emulator{path}", method=method, summary=summary,
                       request=f"control/{schema}" if schema else None, status=status))

    def wrap(handler):
        def view(**path_args):
            if schema:
                try:
                    values = emulator().schemas.check_request(
                        f"control/{schema}", json_body(strict=False), strict=True, endpoint=f"_emulator{path}").values
                except GatewayError as error:
                    raise _said_more(error, method, path, schema) from None
                path_args["values"] = values
            return handler(**path_args)

        flask_path = path.replace("{", "<").replace("}", ">")
        view.work = work
        blueprint.add_url_rule(flask_path, endpoint=handler.__name__, view_func=view, methods=[method])
        return view

    return wrap


def _said_more(error: GatewayError, method: str, path: str, schema: str) -> GatewayError:
    """The control API is ours, so its refusal of a field it does not take says more than the
    gateway's would: the field meant (`card` for `card_number`) and the fields it takes. The
    code and status stay."""
    if error.kind == "field_unknown":
        fields = ", ".join(emulator().schemas.documents[f"control/{schema}"].get("properties", {}))
        guess = error.details.get("suggestion")
        error.message = (f"{error.details['field']} is not a field of {method} /_emulator{path}"
                         + (f"; did you mean {guess}?" if guess else "") + f" (its fields: {fields})")
    return error


@blueprint.before_request
def guard():
    """Shared deployments switch the control API off, or put it behind a token; health stays open.
    A request a browser could send from another site's page, or from a page under a name that
    is not the emulator's, is refused, token or not."""
    if request.endpoint == "control_api.health":
        return
    check_access(request.headers.get("X-Emulator-Token", ""))
    refuse_cross_site(request._get_current_object())


# What a page of another site can send without the browser asking first (CORS "simple" requests);
# the emulator never answers such a question, so any other type can only come from the same origin.
SIMPLE_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
BODY_TYPES = ("application/json", "application/yaml", "application/x-yaml", "text/yaml")


def refuse_cross_site(http_request) -> None:
    """403 for a request that may come from another site's page: a body that is a form, text or
    untyped, an Origin that is not the emulator's, or a browser saying the page is cross-site."""
    mimetype = http_request.mimetype
    has_body = bool(http_request.content_length) or "chunked" in http_request.headers.get("Transfer-Encoding", "").lower()
    if mimetype in SIMPLE_TYPES or (has_body and mimetype not in BODY_TYPES):
        raise GatewayError("control_cross_site",
                           reason=f"a body of type {mimetype or '(none)'}, not application/json")
    origin = http_request.headers.get("Origin")
    if origin is not None:
        try:
            netloc = _netloc(origin)
        except ValueError:  # an unclosed [IPv6 address], a port past 65535
            raise GatewayError("header_invalid", header="Origin", value=shown(origin),
                               expected="scheme://host[:port]") from None
        if netloc not in _own_netlocs(http_request):
            raise GatewayError("control_cross_site", reason=f"Origin {origin[:100]!r} is not this emulator")
    if http_request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        raise GatewayError("control_cross_site", reason="Sec-Fetch-Site says cross-site")


def _netloc(url: str) -> str:
    """host[:port] of a URL, the scheme's port left out; ValueError if it cannot be read."""
    parts = urlsplit(url.strip())
    port = parts.port
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    host = (parts.hostname or "").lower()
    return host if port in (None, default) else f"{host}:{port}"


def _own_netlocs(http_request) -> set[str]:
    """The emulator's origins: where this request came to, and the public URL."""
    own = {_netloc(f"{http_request.scheme}://{request_host(http_request)}")}  # a readable Host (web/app.py)
    public = emulator().settings.public_url
    if public:
        try:
            own.add(_netloc(public))
        except ValueError:  # a public URL that cannot be read is nobody's origin
            pass
    return own


def _public_host(settings) -> str | None:
    """The host of --public-url, if it has one that can be read."""
    try:
        return urlsplit(settings.public_url).hostname if settings.public_url else None
    except ValueError:
        return None


# What a browser adds to every request it sends (Origin to all but a plain GET), and no other client does.
BROWSER_MARKS = ("HTTP_ORIGIN", "HTTP_SEC_FETCH_SITE", "HTTP_SEC_FETCH_MODE", "HTTP_SEC_FETCH_DEST",
                 "HTTP_SEC_FETCH_USER")


def refuse_foreign_host(http_request, settings) -> None:
    """403 for a browser's request whose Host is not a name the emulator answers to: a loopback
    name, the --host address (every address of this machine, and its name, when that is 0.0.0.0
    or ::), the host of --public-url, or an --allowed-host. A page whose name was made to resolve
    to this machine (DNS rebinding) is same-origin to the browser, so its Origin proves nothing;
    its Host does. CI scripts and SDKs send no browser marks and may use any name."""
    environ = http_request.environ
    if not any(mark in environ for mark in BROWSER_MARKS):
        return
    header = environ.get("HTTP_HOST", "")
    host = urlsplit(f"//{header}").hostname or ""  # a readable Host (web/app.py refused the others)
    if host and (own_name(host, settings.host) or host == _public_host(settings)
                 or matches_any(host, settings.allowed_hosts)):
        return
    raise GatewayError("control_cross_site", reason=f"Host {header[:100]!r} is not a name this emulator answers to "
                                                    f"(--allowed-host adds one)")


def check_access(given_token: str) -> None:
    """404 when the control API is off; 403 for a browser under a name the emulator does not
    answer to (refuse_foreign_host); 401 unless `given_token` is the control token (if any).
    The dashboard's guard is this one too."""
    settings = emulator().settings
    if not settings.control:
        raise GatewayError("not_found", path=request.path)
    refuse_foreign_host(request._get_current_object(), settings)
    expected = settings.control_token
    if expected is not None and not hmac.compare_digest(given_token.encode(), expected.encode()):
        raise GatewayError("control_token_missing")


def service():
    return emulator().service


def dispatcher():
    return emulator().dispatcher


def _token(text: str) -> int:
    if not is_token(text):
        raise GatewayError("token_unknown", token=text)
    return int(text)


def _is_number(text: str, most_digits: int) -> bool:
    """Plain ASCII digits, at most `most_digits` of them (str.isdigit also passes '²', which int() cannot read)."""
    return re.fullmatch(rf"[0-9]{{1,{most_digits}}}", text) is not None


@control("/health", "GET", "200 once ready; 503 while its database cannot be reached")
def health():
    """Ready once the database answers: a round trip (on PostgreSQL, on a new connection if the
    last one broke); while it cannot be reached, 503 saying why."""
    reason = emulator().storage.unreachable()
    if reason is not None:
        return jsonify(status="unavailable", reason=f"the database is unreachable ({reason}); the emulator "
                                                    "connects again at the next request"), 503
    return jsonify(status="ok")


@control("/reset", "POST", "Forget payments, callbacks and the journal; keep clients", work=LONG)
def reset():
    service().clock_jobs.reset()
    answer = {"status": "reset", "clock": service().clock_jobs.clock_view()}
    # Answered once the attempts in flight have ended, so that nothing from before the reset
    # reaches a merchant after it.
    return answer_later(dispatcher().in_flight_ended(), lambda ended: answer)


@control("/clock", "GET", "The emulator's time")
def clock():
    return jsonify(service().clock_jobs.clock_view())


@control("/clock", "POST", "Advance, set or freeze the clock", schema="clock")
def set_clock(values):
    if len(values) != 1:
        raise GatewayError("clock_request_invalid", detail="give exactly one of advance_seconds, set, freeze, real")
    return jsonify(service().clock_jobs.set_clock(values))


@control("/payments/{token}/approve", "POST", "Finish the payment as the payer would", schema="approve")
def approve(token, values):
    choices = {name: value for name, value in values.items() if name != "ignore_expiry"}
    return jsonify(service().payer.approve(_token(token), choices, ignore_expiry=values.get("ignore_expiry", False)))


@control("/payments/{token}/decline", "POST", "The payer's payment fails", schema="decline")
def decline(token, values):
    return jsonify(service().payer.decline(_token(token), values.get("code"), values.get("message")))


@control("/payments/{token}/abandon", "POST", "The payer presses cancel")
def abandon(token):
    return jsonify(service().payer.abandon(_token(token)))


@control("/payments", "GET", "Payments with their cancellations (?client_id=, ?status=created|page_entered|"
                              "awaiting_deposit|approved|verified|failed|abandoned), a page at a time "
                              f"(?limit= up to {LIST_PAGE}, ?after=<next>)", work=LONG)
def payments():
    status = request.args.get("status")
    if status not in (None, "", *PAYMENT_STATUSES):
        raise GatewayError("control_request_invalid",
                           detail=f"status {status[:40]!r} is not one of {', '.join(PAYMENT_STATUSES)}")
    limit, after = page_asked()
    found = emulator().storage.payments(client_id=request.args.get("client_id"), status=status or None,
                                        limit=limit + 1, after=after)
    return jsonify(payments=[service().context.payment_view(p) for p in found[:limit]],
                   next=str(found[limit - 1].token) if len(found) > limit else None)


@control("/payments/{ref}", "GET", "One payment, by tid or token")
def payment(ref):
    storage = emulator().storage
    found = storage.payment_by_token(int(ref)) if is_token(ref) else storage.payment_by_tid(ref)
    if found is None:
        raise GatewayError("payment_unknown", tid=ref)
    return jsonify(service().context.payment_view(found))


@control("/virtual-accounts/{tid}/deposit", "POST", "The payer deposits; fires the callback", schema="deposit")
def deposit(tid, values):
    return jsonify(service().virtual_accounts.deposit(tid, values.get("amount")))


@control("/callbacks", "GET", "Notifications with their attempts (?tid=, ?status=pending|delivered|failed), "
                               f"a page at a time (?limit= up to {LIST_PAGE}, ?after=<next>)", work=LONG)
def callbacks():
    status = request.args.get("status")
    if status not in (None, "", *CALLBACK_STATUSES):
        raise GatewayError("control_request_invalid",
                           detail=f"status {status!r} is not one of {', '.join(CALLBACK_STATUSES)}")
    limit, after = page_asked()
    found = emulator().storage.callbacks(tid=request.args.get("tid"), status=status, limit=limit + 1, after=after)
    return jsonify(callbacks=[callback_view(c) for c in found[:limit]],
                   next=str(found[limit - 1]["id"]) if len(found) > limit else None)


@control("/callbacks/{callback_id}", "GET", "One notification with its attempts")
def callback(callback_id):
    return jsonify(callback_view(_callback(callback_id)))


@control("/callbacks/flush", "POST", "Deliver everything due; return once nothing due is left", schema="flush")
def flush(values):
    arrived = request.environ.get(ARRIVED)
    left = max(0.0, values.get("max_seconds", 30) - (time.monotonic() - arrived if arrived else 0.0))
    return answer_later(dispatcher().flushing(left), lambda flushed: flushed)


@control("/callbacks/{callback_id}/resend", "POST", "Make one extra attempt now, whatever the status")
def resend(callback_id):
    _callback(callback_id)
    return answer_later(dispatcher().resending(int(callback_id)), functools.partial(_resent, callback_id))


def _resent(callback_id: str, resent: tuple[dict | None, dict | None]):
    attempt, callback = resent
    if attempt is None:
        raise GatewayError("callback_busy", id=callback_id)
    return {"attempt": attempt, "callback": callback_view(callback)}


def _callback(callback_id: str) -> dict:
    found = emulator().storage.callback(int(callback_id)) if _is_number(callback_id, 18) else None
    if found is None:
        raise GatewayError("callback_unknown", id=callback_id)
    return found


@control("/scenario", "GET", "The scenario in force, how often each rule applied, its timed jobs")
def scenario():
    return jsonify({**service().context.rules.rules_view(), "jobs": emulator().storage.jobs()})


@control("/scenario", "PUT", "Put a scenario in force (JSON, or YAML with Content-Type application/yaml; "
                             "at most 256 KiB)", work=LONG)
def put_scenario():
    """On a request thread: a document of 256 KiB takes a fifth of a second to read and check."""
    try:
        raw = _scenario_bytes().decode("utf-8")
        document = scenario_files.load_yaml(raw) if "yaml" in (request.mimetype or "") else json.loads(raw or "null")
        scenario_files.check(document, "the request body")  # first: it bounds what an alias can expand to
        if not is_text(document):
            raise ValueError("a \\u escape of a lone surrogate is not text")
    except scenario_files.ScenarioError as exc:
        raise GatewayError("scenario_invalid", problems="; ".join(exc.problems)) from None
    except (ValueError, yaml.YAMLError, RecursionError) as exc:  # UnicodeError is a ValueError
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:300]
        raise GatewayError("scenario_invalid", problems=f"not valid JSON or YAML: {reason}") from None
    refuse_nul(document)
    service().clock_jobs.install_scenario(document)
    return scenario()


@control("/scenario", "DELETE", "No scenario: the gateway's default behaviour")
def delete_scenario():
    service().clock_jobs.install_scenario(None)
    return scenario()


def _scenario_bytes() -> bytes:
    """The body of a request that carries a scenario; 413 past the scenario's size limit."""
    raw = body_bytes()
    if len(raw) > scenario_files.SIZE_LIMIT:
        raise GatewayError("scenario_too_large", size=len(raw), limit=scenario_files.SIZE_LIMIT)
    return raw


@control("/sandboxes", "POST", "A new sandbox: its own client and keys, state, clock and scenario", schema="sandbox",
         status="201", work=LONG)
def create_sandbox(values):
    _scenario_bytes()  # the body is mostly the scenario, if it has one
    scenario = values.get("scenario")
    if isinstance(scenario, str):
        scenario = _scenario_document(lambda: scenario_files.read(scenario), "scenario")
    elif scenario is not None:
        _scenario_document(lambda: scenario_files.check(scenario, "scenario") or scenario, "scenario")
    created = sandboxes().create(scenario, values.get("idle_seconds"))
    return jsonify(_with_base_url(created)), 201


@control("/sandboxes", "GET", "The sandboxes of this server")
def list_sandboxes():
    return jsonify(sandboxes=[_with_base_url(s) for s in sandboxes().list()])


@control("/sandboxes/{sandbox_id}", "DELETE", "Delete a sandbox and everything in it")
def delete_sandbox(sandbox_id):
    if not sandboxes().delete(sandbox_id):
        raise GatewayError("sandbox_unknown", id=sandbox_id)
    return jsonify(deleted=sandbox_id)


def _with_base_url(sandbox: dict) -> dict:
    return {**sandbox, "base_url": root_url() + sandbox["path"]}


def _scenario_document(read, source: str) -> dict:
    try:
        return read()
    except scenario_files.ScenarioError as exc:
        raise GatewayError("scenario_invalid", problems="; ".join(exc.problems)) from None


@control("/coverage", "GET", "What the run exercised: endpoints, pgcodes, error codes, rules, callback outcomes",
         work=LONG)
def coverage():
    """The root's coverage with every live sandbox's (deleted ones were folded into the root's)."""
    found: dict[str, dict[str, int]] = {}
    for part in _coverage_parts():
        for kind, names in part.storage.coverage().items():
            for name, count in names.items():
                found.setdefault(kind, {})[name] = found.get(kind, {}).get(name, 0) + count
    # Payletter Global's endpoints, pginfo values and codes are counted apart (its 998 is not the domestic 998).
    endpoints = sorted({op.path.removeprefix("/v1.0/").removesuffix("/{tid}") for op in OPERATIONS
                        if op.key and op.key != "GLOBAL"})
    callbacks = found.get("callback", {})
    return jsonify(endpoints=found.get("endpoint", {}), error_codes=found.get("error_code", {}),
                   pgcodes=found.get("pgcode", {}), rules=found.get("rule", {}),
                   callbacks={k: callbacks.get(k, 0) for k in ("first_try", "retried", "exhausted")},
                   global_endpoints=found.get("global_endpoint", {}), global_pginfo=found.get("global_pginfo", {}),
                   global_error_codes=found.get("global_error_code", {}),
                   never={"endpoints": [e for e in endpoints if e not in found.get("endpoint", {})],
                          "pgcodes": [p for p in method_table() if p not in found.get("pgcode", {})],
                          "global_endpoints": [e for e in global_rules.ENDPOINTS
                                               if e not in found.get("global_endpoint", {})],
                          "global_pginfo": [p for p in global_rules.table()["pginfo"] if global_rules.works_in_test(p)
                                            and p not in found.get("global_pginfo", {})]})


@control("/coverage", "DELETE", "Start counting coverage again", work=LONG)
def clear_coverage():
    for part in _coverage_parts():
        part.storage.clear_coverage()
    return jsonify(cleared=True)


def _coverage_parts() -> list:
    """A sandbox counts for itself; the root counts for the whole server."""
    instance = emulator()
    return [instance] if instance.sandbox else [instance, *sandboxes().open_instances()]


@control("/requests", "GET", f"The journal of API requests, newest last (?limit= up to {LIST_PAGE}), a page at a time "
                               "going back (?before=<earlier>)", work=LONG)
def requests_journal():
    limit, before = page_asked("before")
    found = emulator().storage.journal(limit + 1, before=before)
    return jsonify(requests=found[-limit:], earlier=str(found[-limit]["id"]) if len(found) > limit else None)


def page_asked(cursor: str = "after") -> tuple[int, int | None]:
    """?limit= (a count up to LIST_PAGE, refused above it; anything else reads as LIST_PAGE) and the
    cursor of the page asked for."""
    limit = request.args.get("limit", "")
    given = request.args.get(cursor)
    if given not in (None, "") and not _is_number(given, 19):
        raise GatewayError("control_request_invalid",
                           detail=f"{cursor} {given[:40]!r} is not a cursor this list handed out")
    if re.fullmatch("[0-9]+", limit) and int(limit) > LIST_PAGE:
        follow = "earlier (?before=)" if cursor == "before" else "next (?after=)"
        raise GatewayError("control_request_invalid",
                           detail=f"limit {limit[:40]} is more than {LIST_PAGE}, the most one page holds; "
                                  f"follow {follow} for the rest")
    count = int(limit) if _is_number(limit, 9) and int(limit) > 0 else LIST_PAGE
    return count, int(given) if given else None
