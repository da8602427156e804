"""Reading a request the gateway's way: the PLKEY, the JSON body, the Host, what the journal and
the database may keep of it (never a credential)."""
from __future__ import annotations

import functools
import hmac
import ipaddress
import json
import re
from urllib.parse import quote, urlsplit

from flask import Request, current_app, g, request
from werkzeug.exceptions import ClientDisconnected

from ..engines import lenient_json
from ..config import Client
from ..domain.callback_policy import callback_url_refusal
from ..domain.text import is_text
from ..domain.endpoints import GATEWAY, PREFIX
from ..domain.errors import GatewayError
from ..domain.methods import table as method_table
from ..engines.validation import closest, tolerate
from ..waits import LATER, Later
from .operations import OPERATIONS

JSON_TYPES = ("application/json",)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def emulator():
    """The emulator this request talks to: a sandbox, or the root."""
    return g.get("instance") or current_app.extensions["payletter"]


def sandboxes():
    return current_app.extensions["payletter_sandboxes"]


def warnings() -> list[str]:
    """This request's leniency warnings; the journal records them."""
    return g.setdefault("warnings", [])


def plkey(environ: dict) -> str | None:
    """The key of `Authorization: PLKEY <key>`, or None (read once per request)."""
    if "payletter.plkey" not in environ:
        scheme, _, key = environ.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
        environ["payletter.plkey"] = (key.strip() or None) if scheme.upper() == "PLKEY" else None
    return environ["payletter.plkey"]


def find_client(instance, environ: dict) -> tuple[Client, str] | None:
    """The client of `instance` whose key the request carries, and the key's kind (PAYMENT or
    SEARCH); None if no key matches. Every key is compared, in constant time, so timing tells
    nothing about near misses; once per request and emulator."""
    found = environ.get("payletter.client")
    if found is not None and found[0] is instance:
        return found[1]
    key = plkey(environ)
    match = None
    if key is not None:
        presented = key.encode()
        for client in instance.settings.clients:
            for kind, known in (("PAYMENT", client.payment_key), ("SEARCH", client.search_key)):
                if hmac.compare_digest(known.encode(), presented):
                    match = (client, kind)
    environ["payletter.client"] = (instance, match)
    return match


def why_no_client(environ: dict, instance=None) -> str:
    """Which of the 998's cases this is, for the journal and X-Emulator-Reason (never the key
    itself): no header, not `PLKEY <key>`, a key of another emulator of this server (the root's
    sent into a sandbox, a sandbox's to the root or to another sandbox), or no key at all."""
    header = environ.get("HTTP_AUTHORIZATION", "").strip()
    if not header:
        return "998: no Authorization header"
    if plkey(environ) is None:
        scheme = header.partition(" ")[0]
        if scheme.upper() == "PLKEY":
            return "998: the Authorization header is `PLKEY` without a key"
        if scheme == header:  # one word: likely the key alone, which the journal does not keep
            return "998: the Authorization header is not `PLKEY <key>` (the value has no `PLKEY ` before it)"
        return f"998: the Authorization header is not `PLKEY <key>` (it starts with {scheme[:20]!r})"
    if instance is not None and (owner := _key_owner(plkey(environ), instance)) is not None:
        return f"998: the key is {owner}, but this request is for {_addressed(instance, environ)}"
    return "998: the key of `PLKEY <key>` is not a key of this emulator (nor of a sandbox)"


def _client_with_key(instance, key: str) -> tuple[Client, str] | None:
    """The client of `instance` holding `key`, and the key's kind; only asked once a key missed."""
    for client in instance.settings.clients:
        for kind, known in (("PAYMENT", client.payment_key), ("SEARCH", client.search_key)):
            if hmac.compare_digest(known.encode(), key.encode()):
                return client, kind
    return None


def _key_owner(key: str, instance) -> str | None:
    """Whose key `key` is when it is not one of `instance`'s: the root's client's or a sandbox's."""
    root = emulator_root()
    found, other = (_client_with_key(root, key), root) if instance is not root else (None, None)
    if found is None:
        other = sandboxes().with_key(key)
        found = _client_with_key(other, key) if other is not None and other is not instance else None
    if found is None:
        return None
    (client, kind), whose = found, f"sandbox {other.sandbox}" if other.sandbox else "the root emulator"
    return f"the {kind} key of {whose}'s client {client.client_id!r}"


def _addressed(instance, environ: dict) -> str:
    """Which emulator a request went to, and what sent it there."""
    if not instance.sandbox:
        return "the root emulator, which takes only its own clients' keys"
    how = (f"its path prefix /_sandbox/{instance.sandbox}/" if environ.get("payletter.sandbox")
           else "the X-Emulator-Sandbox header")
    return f"sandbox {instance.sandbox} (by {how}), which takes only its own client's keys"


def authenticate(key_type: str, endpoint: str, instance, http_request: Request, request_globals) -> Client:
    """The client of `instance` behind `Authorization: PLKEY <key>`; 401 or 403 otherwise.
    `request_globals` is the request's `g`: the journal records the client there."""
    found = find_client(instance, http_request.environ)
    if found is None:
        request_globals.exception = why_no_client(http_request.environ, instance)  # the journal says why; the client sees the gateway's 998
        raise GatewayError("auth_missing")
    client, kind = found
    request_globals.client_id = client.client_id
    if key_type != "ANY" and kind != key_type:
        raise GatewayError("key_type_forbidden", endpoint=endpoint, needed=key_type, given=kind)
    return client


def body_bytes(http_request: Request | None = None) -> bytes:
    """The request's body; one sent in chunks past the size limit is refused (413), not cut."""
    if http_request is None:
        http_request = request._get_current_object()
    raw = http_request.get_data(cache=True)
    if http_request.content_length is None:
        http_request.stream.read(1)  # past a limit the stream stopped at, this raises RequestEntityTooLarge
    elif len(raw) < http_request.content_length:  # a server that hands over what came (gunicorn) before the client left
        raise ClientDisconnected()
    return raw


def json_body(*, strict: bool, http_request: Request | None = None):
    """The parsed body; an empty body reads as {} so the missing fields get named."""
    if http_request is None:
        http_request = request._get_current_object()
    raw = body_bytes(http_request)
    if not raw.strip():
        return {}
    mimetype = http_request.mimetype or "(none)"
    if mimetype not in JSON_TYPES:
        tolerate("Content-Type", f"Content-Type is {mimetype}, expected application/json",
                 strict=strict, warnings=warnings())
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        _not_a_form(mimetype)
        # The real gateway's answer, its .NET decoder's words: the first bad byte and its offset.
        raise GatewayError("body_not_utf8", index=exc.start, byte=f"{exc.object[exc.start]:02X}") from None
    try:
        reading = lenient_json.loads(text)
    except json.JSONDecodeError as exc:
        _not_a_form(mimetype)
        raise GatewayError("malformed_json", detail=str(exc)) from None
    except RecursionError:
        raise GatewayError("malformed_json", detail="nested too deeply") from None
    for deviation in reading.deviations:
        tolerate("body", deviation, strict=strict, warnings=warnings())
    value = reading.value
    if "\\u" in text and not is_text(value):
        raise GatewayError("malformed_json", detail="a \\u escape of a lone surrogate is not text")
    return value


def _not_a_form(mimetype: str) -> None:
    """A form (what an HTML form or `curl -d a=b` sends) is not what the gateway reads: say so,
    rather than quote the JSON parser. JSON sent with a form's Content-Type still parses above."""
    if mimetype in FORM_TYPES:
        raise GatewayError("form_body", mimetype=mimetype)


def root_url(instance=None) -> str:
    """The server's own address: --public-url, else the one the request came to."""
    public = (instance or emulator()).settings.public_url
    if public:
        return public.rstrip("/")
    http_request = request._get_current_object()
    return f"{http_request.scheme}://{request_host(http_request)}".rstrip("/")


def request_host(http_request: Request) -> str:
    """host[:port] the request came to: werkzeug's reading, else the Host header as
    `host_problem` let it through (werkzeug reads a Docker name with `_` as no host)."""
    return http_request.host or http_request.environ.get("HTTP_HOST", "")


# host[:port] as a handed-out URL may hold it: a name (letters, digits, . _ ~ -), or an IPv6 address in brackets.
_HOST = re.compile(r"(?P<host>[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{0,5}))?")


def host_problem(value: str) -> str | None:
    """Why a Host header is not `host[:port]`, in words, or None."""
    match = _HOST.fullmatch(value)
    if match is None:
        return "host[:port]"
    if match["port"] and int(match["port"]) > 65535:
        return "host[:port] (a port up to 65535)"
    if match["host"].startswith("["):
        try:
            ipaddress.IPv6Address(match["host"][1:-1])
        except ValueError:
            return "host[:port] (in brackets, an IPv6 address)"
    return None


def shown(value: str) -> str:
    """A header's value as an error message quotes it: at most 100 characters."""
    return repr(value[:100])


REDACTED = "[redacted]"  # what stands for a credential's value wherever a request is kept or logged


@functools.lru_cache(maxsize=1024)
def is_credential(name: str) -> bool:
    """Whether a header (or query parameter) is named like a credential, whose value is never
    kept: Authorization, Cookie, the control token, *-Token, *-Key, *Secret*, *Password*."""
    name = name.lower().replace("_", "-")
    return (name in ("authorization", "proxy-authorization", "cookie", "set-cookie", "token", "key")
            or name.endswith(("-token", "-key")) or "secret" in name or "password" in name)


def base_url(instance=None) -> str:
    """Where handed-out URLs start: a sandbox's keep its prefix, so a browser lands in it."""
    instance = instance or emulator()
    return f"{root_url(instance)}/_sandbox/{instance.sandbox}" if instance.sandbox else root_url(instance)


def check_callback_url(url: str, instance=None) -> None:
    """Refuse (406) a callback_url the emulator would not call: not http(s), or its own control
    API at any of the addresses it answers at."""
    rule = callback_url_refusal(url, *_own_addresses(instance or emulator(), request._get_current_object()))
    if rule is not None:
        raise GatewayError("field_invalid", field="callback_url", rule=rule)


URL_FIELDS = ("callback_url", "return_url", "cancel_url", "app_return_url", "app_cancel_url")


def check_urls(values: dict) -> None:
    """Refuse (406, naming the field) a URL that the URL parser cannot read (an unclosed or
    invalid [IPv6 address], a port past 65535): the pages, their redirects and the sender read it."""
    for field in URL_FIELDS:
        url = values.get(field)
        if isinstance(url, str) and (problem := url_problem(url)) is not None:
            raise GatewayError("field_invalid", field=field, rule=f"must be a URL that can be read ({problem})")


def url_problem(url: str) -> str | None:
    """Why the URL parser cannot read `url` (its host and port included), or None."""
    try:
        parts = urlsplit(url)
        parts.hostname, parts.port
    except ValueError as exc:
        return str(exc)
    return None


def _own_addresses(instance, http_request: Request) -> tuple[set[str], set[int]]:
    """The names and ports this server answers at: its --host and the address it listens on,
    the address the request came to, the public URL."""
    hosts = {instance.settings.host, http_request.environ.get("SERVER_NAME", "")}
    ports = {int(port) for port in (http_request.environ.get("SERVER_PORT", ""),) if port.isdigit()}
    for url in (f"{http_request.scheme}://{request_host(http_request)}", instance.settings.public_url):
        if url:
            try:
                parts = urlsplit(url)
                ports.add(parts.port or (443 if parts.scheme == "https" else 80))
            except ValueError:
                continue
            hosts.add(parts.hostname or "")
    return hosts, ports


# --- Near misses: which case a refused answer was (X-Emulator-Reason and the journal) ---

EXPLAINED = (401, 403, 404, 406)  # the answers whose case X-Emulator-Reason names
REASON_HEADER = "X-Emulator-Reason"
REASON_CHARS = 500  # a sentence; a long path or value it quotes is cut here, in the journal and the header alike
_HEADER_SAFE = "".join(chr(c) for c in range(32, 127) if chr(c) != "%")


def reason(error: GatewayError, request_globals, http_request: Request) -> str:
    """Which case a refused answer was, starting with its code: the near miss when there is one
    (whose key it was, which client, pgcode, path or field was meant, every field missing), else
    the message. The body stays the gateway's; this is for the header and the journal."""
    text = _near_miss(error, request_globals, http_request) or error.message
    return f"{error.code}: {text}"[:REASON_CHARS]


def header_value(text: str) -> str:
    """A reason as a header carries it: ASCII only, so anything outside printable ASCII (and `%`
    itself) is percent-encoded as UTF-8; `urllib.parse.unquote` gives the journal's text back."""
    return quote(text, safe=_HEADER_SAFE)


def _near_miss(error: GatewayError, request_globals, http_request: Request) -> str | None:
    details = error.details
    if error is request_globals.get("rule_error"):
        return f"scenario rule {request_globals.get('rule')!r} answered this: {error.message}"
    if error.kind == "key_type_forbidden":
        return (f"a {details['given']} key (of client {request_globals.get('client_id')!r}) on {details['endpoint']}, "
                f"which takes the {details['needed']} key: each client has one of each")
    if error.kind == "client_forbidden":
        return _other_client(str(details["client_id"]), request_globals)
    if error.kind == "pgcode_unknown":
        guess = closest(str(details["pgcode"]), method_table(), prefixes=False)
        return f"{error.message}; did you mean {guess!r}?" if guess else None
    if error.kind == "field_missing" and len(details.get("missing", ())) > 1:
        missing = details["missing"]
        return (f"{len(missing)} required fields are missing: {', '.join(missing)} "
                f"(the gateway's message names only the first)")
    if error.kind == "field_unknown" and details.get("suggestion") and "did you mean" not in error.message:
        return f"{error.message}; did you mean {details['suggestion']}?"
    if error.kind == "not_found":
        return _no_route(http_request)
    if error.kind == "sandbox_unknown":
        how = "its path prefix" if http_request.environ.get("payletter.sandbox") else "the X-Emulator-Sandbox header"
        return f"{error.message}; it was named by {how}"
    return None


def _other_client(given: str, request_globals) -> str:
    """client_id `given` is not the key's client: whose it is, if anyone's of this server."""
    instance, own = request_globals.instance, request_globals.get("client_id")
    start = f"the key is of client {own!r} and the body's client_id is {given!r}"
    if any(client.client_id == given for client in instance.settings.clients):
        return f"{start}, another client of this emulator: send {given!r}'s own key, or client_id {own!r}"
    if instance.sandbox and any(client.client_id == given for client in emulator_root().settings.clients):
        return f"{start}, a client of the root emulator, not of sandbox {instance.sandbox}: use the sandbox's client_id {own!r}"
    if any(row["client_id"] == given for row in sandboxes().list()):
        return f"{start}, the client of sandbox {given}: send that sandbox's key, or client_id {own!r}"
    guess = closest(given, [client.client_id for client in instance.settings.clients], prefixes=False)
    return f"{start}, no client of this emulator" + (f"; did you mean {guess!r}?" if guess else "")


def emulator_root():
    """The root emulator, whatever emulator this request talks to."""
    return current_app.extensions["payletter"]


def _no_route(http_request: Request) -> str:
    """A 404 for a path: the route it may misspell (the gateway's and the control API's), or why
    there is none (the control API switched off)."""
    path = http_request.path
    shown_path = path[:200]
    if path.startswith("/_emulator") and not emulator().settings.control:
        return f"there is no route at {shown_path}: this server runs with --no-control, so only /_emulator/health answers"
    routes = [PREFIX + endpoint.path for endpoint in GATEWAY] + ["/openapi.json"]
    if emulator().settings.control:
        routes += [operation.path for operation in OPERATIONS if operation.path.startswith("/_emulator/")]
    guess = closest(path.rstrip("/") or "/", {_filled(route, path) for route in routes}, cutoff=0.85, prefixes=False)
    if guess is None:
        return f"there is no route at {shown_path}, nor one a letter or two from it (GET /openapi.json lists them)"
    return f"there is no route at {shown_path}; did you mean {http_request.script_root}{guess}?"


def _filled(route: str, path: str) -> str:
    """`route` (/v1.0/receipt/info/{tid}) with its placeholders taken from `path`, when the two
    have as many segments: so a misspelt fixed part is compared, not the tid."""
    parts, given = route.split("/"), path.rstrip("/").split("/")
    if len(parts) != len(given):
        return route
    return "/".join(value if part.startswith("{") else part for part, value in zip(parts, given))


def answer_later(future, respond):
    """The answer made of what `future` (waits.soon's) gives: `respond(result)`, a JSON body, or
    the gateway's error it raises. Where the bridge serves (it put LATER in the environ), the
    process's loop awaits the future, holding no thread, then sends that answer; anywhere else
    (Flask's test client), it is waited for here."""
    dumps = current_app.json.dumps

    def answer(result) -> tuple[int, bytes]:
        try:
            return 200, dumps(respond(result)).encode()
        except GatewayError as error:
            return error.status, dumps(error.body()).encode()

    if LATER in request.environ:
        request.environ[LATER] = Later(future, answer)
        return current_app.response_class(status=204)  # stands in for the answer, never sent
    status, content = answer(future.result())
    return current_app.response_class(content, status=status, mimetype="application/json")


def answer_after(future) -> None:
    """This request's answer, whatever it is, is sent once `future` (waits.soon's) is done: by
    the loop, where the bridge serves; anywhere else, after a wait here."""
    if LATER in request.environ:
        request.environ[LATER] = Later(future)
    else:
        future.result()
