"""Reading a request the gateway's way: the PLKEY, the JSON body, the journal's notes."""
from __future__ import annotations

import hmac
import json
from urllib.parse import urlsplit

from flask import Request, current_app, g, request
from werkzeug.exceptions import ClientDisconnected

from ..engines import lenient_json
from ..config import Client
from ..domain.callback_policy import callback_url_refusal
from ..domain.text import is_text
from ..domain.errors import GatewayError
from ..engines.validation import tolerate

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


def find_client(em, environ: dict) -> tuple[Client, str] | None:
    """The client of `em` whose key the request carries, and the key's kind (PAYMENT or
    SEARCH); None if no key matches. Every key is compared, in constant time, so timing tells
    nothing about near misses; once per request and emulator."""
    found = environ.get("payletter.client")
    if found is not None and found[0] is em:
        return found[1]
    key = plkey(environ)
    match = None
    if key is not None:
        sent = key.encode()
        for client in em.settings.clients:
            for kind, known in (("PAYMENT", client.payment_key), ("SEARCH", client.search_key)):
                if hmac.compare_digest(known.encode(), sent):
                    match = (client, kind)
    environ["payletter.client"] = (em, match)
    return match


def why_no_client(environ: dict) -> str:
    """Which of the 998's three cases this is, for the journal (never the key itself)."""
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
    return "998: the key of `PLKEY <key>` is not a key of this emulator (nor of a sandbox)"


def authenticate(key_type: str, endpoint: str, em, sent: Request, notes) -> Client:
    """The client of `em` behind `Authorization: PLKEY <key>`; 401 or 403 otherwise. `sent` is
    the request, `notes` its `g` (the journal records the client)."""
    found = find_client(em, sent.environ)
    if found is None:
        notes.exception = why_no_client(sent.environ)  # the journal says why; the client sees the gateway's 998
        raise GatewayError("auth_missing")
    client, kind = found
    notes.client_id = client.client_id
    if key_type != "ANY" and kind != key_type:
        raise GatewayError("key_type_forbidden", endpoint=endpoint, needed=key_type, given=kind)
    return client


def body_bytes(sent: Request | None = None) -> bytes:
    """The request's body; one sent in chunks past the size limit is refused (413), not cut."""
    if sent is None:
        sent = request._get_current_object()
    raw = sent.get_data(cache=True)
    if sent.content_length is None:
        sent.stream.read(1)  # past a limit the stream stopped at, this raises RequestEntityTooLarge
    elif len(raw) < sent.content_length:  # a server that hands over what came (gunicorn) before the client left
        raise ClientDisconnected()
    return raw


def json_body(*, strict: bool, sent: Request | None = None):
    """The parsed body; an empty body reads as {} so the missing fields get named."""
    if sent is None:
        sent = request._get_current_object()
    raw = body_bytes(sent)
    if not raw.strip():
        return {}
    mimetype = sent.mimetype or "(none)"
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


def root_url(em=None) -> str:
    """The server's own address: --public-url, else the one the request came to."""
    public = (em or emulator()).settings.public_url
    if public:
        return public.rstrip("/")
    sent = request._get_current_object()
    return f"{sent.scheme}://{sent.host}".rstrip("/")


def base_url(em=None) -> str:
    """Where handed-out URLs start: a sandbox's keep its prefix, so a browser lands in it."""
    em = em or emulator()
    return f"{root_url(em)}/_sandbox/{em.sandbox}" if em.sandbox else root_url(em)


def check_callback_url(url: str, em=None) -> None:
    """Refuse (406) a callback_url the emulator would not call: not http(s), or its own control
    API at any of the addresses it answers at."""
    rule = callback_url_refusal(url, *_own_addresses(em or emulator(), request._get_current_object()))
    if rule is not None:
        raise GatewayError("field_invalid", field="callback_url", rule=rule)


def _own_addresses(em, sent: Request) -> tuple[set[str], set[int]]:
    """The names and ports this server answers at: its --host and the address it listens on,
    the address the request came to, the public URL."""
    hosts = {em.settings.host, sent.environ.get("SERVER_NAME", "")}
    ports = {int(port) for port in (sent.environ.get("SERVER_PORT", ""),) if port.isdigit()}
    for url in (f"{sent.scheme}://{sent.host}", em.settings.public_url):
        if url:
            parts = urlsplit(url)
            try:
                ports.add(parts.port or (443 if parts.scheme == "https" else 80))
            except ValueError:
                continue
            hosts.add(parts.hostname or "")
    return hosts, ports
