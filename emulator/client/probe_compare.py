"""How the probe compares two answers to one request, which differences are known, and how
keys are kept out of everything it shows or writes."""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import asdict, dataclass
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit


@dataclass(frozen=True)
class Answer:
    """What one side answered to one step: the HTTP status, the content type, the body as
    text (redacted), the body as JSON when it is JSON; or why there is no answer."""

    status: int | None = None
    content_type: str = ""
    text: str = ""
    json: object = None
    is_json: bool = False
    error: str = ""
    own_values: tuple[str, ...] = ()  # identifiers this side made earlier in the case (tokens, tids)
    made: bool = True  # False: the request could not be made (a template found nothing), so never sent


@dataclass(frozen=True)
class Difference:
    case: str
    step: str
    field: str  # status, $.code, $.message, $.list[].cid, $ (key order of the top object), ...
    kind: str  # status, code, message, value, missing, extra, type, format, order, body, error
    gateway: str
    emulator: str
    known: str = ""  # the Known differences row that explains it, when one does

    def as_dict(self) -> dict:
        return asdict(self)


# --- keys never shown -------------------------------------------------------------------------------

class Redactor:
    """Replaces each key, in every form it can take in a text (as given, base64-decoded,
    URL-encoded), by a name: the probe and the capture pass everything they print or write
    through it."""

    def __init__(self, keys: dict[str, str]):
        self._forms: list[tuple[str, str]] = []
        for label, key in keys.items():
            if not key:
                continue
            forms = {key, quote(key, safe=""), key.rstrip("=")}
            bare = key.rstrip("=")
            try:  # padding as the key has it or not: `==` too many is still this key
                decoded = base64.b64decode(bare + "=" * (-len(bare) % 4), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                decoded = ""
            if len(decoded) >= 8:
                forms |= {decoded, decoded.lower(), decoded.upper()}
            self._forms += [(form, f"[{label}]") for form in forms if len(form) >= 8]
        self._forms.sort(key=lambda item: -len(item[0]))  # the longest first: a form inside another

    def __call__(self, text: str) -> str:
        for form, label in self._forms:
            if form in text:
                text = text.replace(form, label)
        return text


def redact_url(url: str) -> str:
    """A URL without the user and password it may carry."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        return parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl()
    return url


# --- formats ----------------------------------------------------------------------------------------

_FORMATS = [
    ("empty", re.compile(r"")),
    ("tid", re.compile(r"t?[A-Za-z0-9_]+-\d{15}")),
    ("datetime", re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")),
    ("hex64 upper", re.compile(r"[0-9A-F]{64}")),
    ("hex64 lower", re.compile(r"[0-9a-f]{64}")),
]
_DIGITS = re.compile(r"\d+")


def text_format(value: str) -> str:
    """The shape of a text, which both sides must share though the values differ by nature:
    a tid, an 18-digit token, a date, an uppercase payhash, a URL's path and query names."""
    for name, pattern in _FORMATS:
        if pattern.fullmatch(value):
            return name
    if _DIGITS.fullmatch(value):
        return f"digits({len(value)})"
    if value.startswith(("http://", "https://")):
        parts = urlsplit(value)
        names = "&".join(name for name, _ in parse_qsl(parts.query, keep_blank_values=True))
        return f"url {parts.path.lower()}" + (f"?{names}" if names else "")
    return "text"


def number_format(value) -> str:
    if isinstance(value, float):
        return "decimal"
    return f"integer({len(str(abs(value)))} digits)" if abs(value) >= 10**12 else "integer"


def json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def value_format(value) -> str:
    if isinstance(value, str):
        return text_format(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return number_format(value)
    return ""


# --- one step's answers, compared -------------------------------------------------------------------

_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}")


def normalised_message(text: str, own_values: tuple[str, ...]) -> str:
    """A message with what differs by nature in it replaced: the side's own tokens and tids,
    moments."""
    for value in sorted(own_values, key=len, reverse=True):
        if value:
            text = text.replace(value, "<made by this side>")
    return _MOMENT.sub("<moment>", text)


def compare(case: str, step: str, gateway: Answer, emulator: Answer, equal: tuple[str, ...] = ()) -> list[Difference]:
    """Every difference between the two answers that the probe holds the emulator to."""
    found: list[Difference] = []

    def differ(field: str, kind: str, on_gateway, on_emulator) -> None:
        found.append(Difference(case, step, field, kind, _abridged(on_gateway), _abridged(on_emulator)))

    if gateway.error or emulator.error:
        if bool(gateway.error) != bool(emulator.error):
            differ("request", "error", gateway.error or "answered", emulator.error or "answered")
        return found
    if gateway.status != emulator.status:
        differ("status", "status", gateway.status, emulator.status)
    if gateway.is_json != emulator.is_json:
        differ("$", "body", "JSON" if gateway.is_json else f"not JSON ({gateway.content_type or 'no type'})",
               "JSON" if emulator.is_json else f"not JSON ({emulator.content_type or 'no type'})")
        return found
    if not gateway.is_json:
        return found
    g, e = gateway.json, emulator.json
    if isinstance(g, dict) and isinstance(e, dict):
        if "code" in g and "code" in e and g["code"] != e["code"]:
            differ("$.code", "code", g["code"], e["code"])
        if isinstance(g.get("message"), str) and isinstance(e.get("message"), str):
            if normalised_message(g["message"], gateway.own_values) != normalised_message(e["message"], emulator.own_values):
                differ("$.message", "message", g["message"], e["message"])
    for path in equal:
        on_gateway, on_emulator = _at(g, path), _at(e, path)
        if on_gateway != on_emulator:
            differ(path, "value", on_gateway, on_emulator)
    _shape("$", g, e, differ)
    return found


def _shape(path: str, g, e, differ) -> None:
    kind_g, kind_e = json_type(g), json_type(e)
    if kind_g != kind_e:
        differ(path, "type", f"{kind_g} {_abridged(g)}", f"{kind_e} {_abridged(e)}")
        return
    if kind_g == "object":
        missing = [key for key in g if key not in e]
        extra = [key for key in e if key not in g]
        for key in missing:
            differ(_child(path, key), "missing", f"{json_type(g[key])} {_abridged(g[key])}", "(absent)")
        for key in extra:
            differ(_child(path, key), "extra", "(absent)", f"{json_type(e[key])} {_abridged(e[key])}")
        shared_g = [key for key in g if key in e]
        shared_e = [key for key in e if key in g]
        if shared_g != shared_e:
            differ(path, "order", ", ".join(shared_g), ", ".join(shared_e))
        for key in shared_g:
            _shape(_child(path, key), g[key], e[key], differ)
    elif kind_g == "array":
        if g and e:  # how many rows is the data's business; what a row looks like is the gateway's
            _shape(path + "[]", g[0], e[0], differ)
    else:
        format_g, format_e = value_format(g), value_format(e)
        if format_g != format_e:
            differ(path, "format", f"{format_g}: {_abridged(g)}", f"{format_e}: {_abridged(e)}")


def _child(path: str, key: str) -> str:
    return f"{path}.{key}"


def _at(document, path: str):
    value = document
    for part in path.removeprefix("$").split(".")[1:] if path != "$" else []:
        if part.endswith("[]"):
            part = part[:-2]
            value = value.get(part) if isinstance(value, dict) else None
            value = value[0] if isinstance(value, list) and value else None
        else:
            value = value.get(part) if isinstance(value, dict) else None
    return value


def _abridged(value) -> str:
    text = value if isinstance(value, str) else repr(value) if not isinstance(value, (int, float)) else str(value)
    return text if len(text) <= 160 else text[:157] + "..."


# --- known differences ------------------------------------------------------------------------------

KNOWN_HEADING = "## Known differences"


@dataclass(frozen=True)
class Known:
    case: str  # a case id or a glob (request-*)
    field: str  # a field as the probe names it, or a glob
    why: str


def read_known(page: Path) -> list[Known]:
    """The rows of the page's "Known differences" table: `| case | field | difference | evidence |`."""
    text = page.read_text("utf-8")
    start = text.find(KNOWN_HEADING + "\n")
    if start < 0:
        raise ValueError(f"{page}: no section {KNOWN_HEADING!r}")
    section = text[start + len(KNOWN_HEADING):]
    end = section.find("\n## ")
    rows = []
    for line in (section if end < 0 else section[:end]).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3 or set(cells[0]) <= set("-: ") or cells[0] == "case":
            continue
        rows.append(Known(cells[0].strip("`"), cells[1].strip("`"), cells[2]))
    return rows


def explain(difference: Difference, known: list[Known]) -> Difference:
    for row in known:
        # `[]` in a field (`$.list[].cid`) is the field's own, not a glob's set of characters
        if fnmatch(difference.case, row.case) and fnmatch(difference.field, row.field.replace("[]", "[[]]")):
            return Difference(**{**difference.as_dict(), "known": row.why})
    return difference
