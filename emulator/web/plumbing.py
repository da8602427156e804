"""Reading a request the gateway's way: the PLKEY, the JSON body, the journal's notes."""
from __future__ import annotations

import hmac
import json

from flask import current_app, g, request

from ..config import Client
from ..errors import GatewayError
from ..validation import tolerate

JSON_TYPES = ("application/json",)


def emulator():
    """The emulator this request talks to: a sandbox, or the root."""
    return g.get("instance") or current_app.extensions["payletter"]


def sandboxes():
    return current_app.extensions["payletter_sandboxes"]


def warnings() -> list[str]:
    """This request's leniency warnings; the journal records them."""
    return g.setdefault("warnings", [])


def plkey() -> str | None:
    """The key of `Authorization: PLKEY <key>`, or None (read once per request)."""
    environ = request.environ
    if "payletter.plkey" not in environ:
        scheme, _, key = environ.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
        environ["payletter.plkey"] = (key.strip() or None) if scheme.upper() == "PLKEY" else None
    return environ["payletter.plkey"]


def authenticate(key_type: str, endpoint: str, em=None) -> Client:
    """The client behind `Authorization: PLKEY <key>`; 401 or 403 otherwise."""
    key = plkey()
    if key is None:
        raise GatewayError("auth_missing")
    found = None
    for client in (em or emulator()).settings.clients:
        # Compare every key, in constant time, so timing tells nothing about near misses.
        for kind, known in (("PAYMENT", client.payment_key), ("SEARCH", client.search_key)):
            if hmac.compare_digest(known.encode(), key.encode()):
                found = (client, kind)
    if found is None:
        raise GatewayError("auth_missing")
    client, kind = found
    g.client_id = client.client_id
    if key_type != "ANY" and kind != key_type:
        raise GatewayError("key_type_forbidden", endpoint=endpoint, needed=key_type, given=kind)
    return client


def body_bytes() -> bytes:
    """The request's body; one sent in chunks past the size limit is refused (413), not cut."""
    sent = request._get_current_object()
    raw = sent.get_data(cache=True)
    if sent.content_length is None:
        sent.stream.read(1)  # past a limit the stream stopped at, this raises RequestEntityTooLarge
    return raw


def json_body(*, strict: bool):
    """The parsed body; an empty body reads as {} so the missing fields get named."""
    raw = body_bytes()
    if not raw.strip():
        return {}
    mimetype = request.mimetype or "(none)"
    if mimetype not in JSON_TYPES:
        tolerate("Content-Type", f"Content-Type is {mimetype}, expected application/json",
                 strict=strict, warnings=warnings())
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GatewayError("malformed_json", detail=f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GatewayError("malformed_json", detail=str(exc)) from None
    except RecursionError:
        raise GatewayError("malformed_json", detail="nested too deeply") from None
    if "\\u" in text and not _is_text(value):
        raise GatewayError("malformed_json", detail="a \\u escape of a lone surrogate is not text")
    return value


def _is_text(value) -> bool:
    """JSON may escape half of a surrogate pair (\\ud800), which no UTF-8 text can hold."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def root_url(em=None) -> str:
    """The server's own address: --public-url, else the one the request came to."""
    return ((em or emulator()).settings.public_url or f"{request.scheme}://{request.host}").rstrip("/")


def base_url() -> str:
    """Where handed-out URLs start: a sandbox's keep its prefix, so a browser lands in it."""
    em = emulator()
    return f"{root_url(em)}/_sandbox/{em.sandbox}" if em.sandbox else root_url(em)
