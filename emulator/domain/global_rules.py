"""Payletter Global's rules as pure functions: the POQAPI signature, the notification hash, the
amounts per currency, the pginfo values, the test cards, the notification's body and what
acknowledges it, and the gateway's error envelope. The data is global_gateway.toml."""
from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from urllib.parse import quote_plus

from .errors import GatewayError

GATEWAY = "global"  # how the outbox names a Global notification (domestic ones are "domestic")
# What a Global payment can be, in the order it lives them (the control API's and the CLI's ?status=).
PAYMENT_STATUSES = ("requested", "paid", "declined", "cancelled", "partially_refunded", "refunded")
AUTH_GPLKEY, AUTH_POQAPI = "GPLKEY", "POQAPI"
# The Global API's endpoints, named by their paths (the routes, the journal, coverage and scenario
# rules' `endpoint` use these names).
REQUEST, REFUND, OLDER_REFUND = "api/payment/request", "api/payment/refund", "payment/{pginfo}/refund"
ENDPOINTS = (REQUEST, REFUND, OLDER_REFUND)
PATH_PREFIXES = ("/api/", "/payment/")  # where the Global API lives: its 404s and 405s are its own, and journaled


def is_api_path(path: str) -> bool:
    return path.startswith(PATH_PREFIXES)
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
_BOM = "\ufeff"


@cache
def table() -> dict:
    """global_gateway.toml, read once."""
    return tomllib.loads(resources.files(__package__).joinpath("global_gateway.toml").read_text("utf-8"))


class GlobalError(GatewayError):
    """An answer of the Global API: its status, its code and its message, from the samples' error
    table (`kind`: a key of [errors]), with the detail after a colon. Rendered by the same handler
    as every GatewayError: `{"code", "message"}`."""

    def __init__(self, kind: str, detail: str = ""):
        entry = table()["errors"][kind]
        message = f"{entry['message']}: {detail}" if detail else entry["message"]
        self.kind = f"global_{kind}"
        self.code, self.status, self.message = entry["code"], entry["status"], message
        self.details = {"detail": detail}
        Exception.__init__(self, message)


# --- the two formulas ---

def encode_url(url: str) -> str:
    """The URL as POQAPI signs it: PHP's urlencode (every character but letters, digits, `-`,
    `_` and `.` percent-encoded, a space `+`), then lower-cased whole."""
    return quote_plus(url, safe="").replace("~", "%7E").lower()


def poqapi_signature(store_id: str, key: str, method: str, url: str, timestamp: str, nonce: str, body: str) -> str:
    """SHA-256, in lower-case hex, over store id, key, method in capitals, the encoded URL, the
    timestamp, the nonce and the body, joined with nothing between them."""
    text = f"{store_id}{key}{method.upper()}{encode_url(url)}{timestamp}{nonce}{body}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def poqapi_header(store_id: str, signature: str, nonce: str, timestamp: str) -> str:
    return f"{AUTH_POQAPI} {store_id}:{signature}:{nonce}:{timestamp}"


@dataclass(frozen=True)
class Poqapi:
    """What `Authorization: POQAPI {storeid}:{signature}:{nonce}:{timestamp}` carries."""

    store_id: str
    signature: str
    nonce: str
    timestamp: str


def read_poqapi(credentials: str) -> Poqapi | None:
    """The four parts after `POQAPI `, or None when they are not there. The nonce is the client's
    choice (a GUID in braces, 64 hex characters, a UUID): whatever lies between the signature and
    the last colon."""
    store_id, _, rest = credentials.partition(":")
    signature, _, rest = rest.partition(":")
    nonce, _, timestamp = rest.rpartition(":")
    if not (store_id and signature and nonce and timestamp):
        return None
    return Poqapi(store_id, signature, nonce, timestamp)


def notification_hash(storeid: str, currency: str, storeorderno: str, payamt: str, payerid: str,
                      timestamp: str, key: str) -> str:
    """The notification's (and the hosted form's) `hash`: SHA-256 in lower-case hex of those
    strings as they travel, joined with nothing between them."""
    text = f"{storeid}{currency}{storeorderno}{payamt}{payerid}{timestamp}{key}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sandbox_store_key(sandbox_secret: str) -> str:
    """A sandbox's Global key: 32 lower-case hex characters (the shape of newer stores' keys), made
    from the sandbox's own secret so that nothing more need be kept."""
    return hashlib.sha256(f"payletter-global:{sandbox_secret}".encode()).hexdigest()[:32]


# --- amounts, methods, cards ---

def currencies() -> tuple[str, ...]:
    return tuple(table()["currencies"])


def amount_text(value) -> str:
    """An amount as the notification echoes it: a string as written, a JSON number without an
    exponent or trailing zeros (1 -> "1", 10.5 -> "10.5")."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int):
        return str(value)
    return format(Decimal(repr(value)).normalize(), "f")


def minor_units(text: str, currency: str, field: str = "amount") -> int:
    """An amount's text in the currency's smallest unit (cents for USD); 406 naming the rule when
    it is not a positive decimal number with at most the currency's decimals."""
    decimals = table()["currencies"][currency]["decimals"]
    if not _DECIMAL.fullmatch(text):
        raise GlobalError("business", f"{field} must be a positive decimal number, not {text[:40]!r}")
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern lets only numbers through
        raise GlobalError("business", f"{field} must be a decimal number") from None
    places = -value.normalize().as_tuple().exponent
    if places > decimals:
        raise GlobalError("business", f"{field} in {currency} has at most {decimals} decimals, not {text!r}"
                          if decimals else f"{field} in {currency} must be a whole number, not {text!r}")
    units = int(value.scaleb(decimals))
    if units <= 0:
        raise GlobalError("business", f"{field} must be greater than 0")
    return units


def units_text(units: int, currency: str) -> str:
    """An amount in the smallest unit, written with the currency's decimals ("10.00", "1000")."""
    decimals = table()["currencies"][currency]["decimals"]
    return f"{Decimal(units).scaleb(-decimals):.{decimals}f}"


def canonical_pginfo(value: str) -> str | None:
    """The pginfo named, matched without regard to case (`PLCreditCardmpi` is PLCreditCardMpi);
    None for an unknown one."""
    by_lower = {name.lower(): name for name in table()["pginfo"]}
    return by_lower.get(value.strip().lower())


def works_in_test(pginfo: str) -> bool:
    return table()["pginfo"][pginfo]["works_in_test"]


def card_kind(number: str) -> str | None:
    """The brand a test card number's prefix names (VISA, MASTER, JCB, AMEX), or None: a number
    of 12 to 19 digits (spaces and dashes ignored) whose longest matching prefix decides."""
    digits = re.sub(r"[ -]", "", number)
    if not (digits.isdigit() and 12 <= len(digits) <= 19):
        return None
    found = [(len(prefix), card["kind"]) for card in table()["cards"] for prefix in card["prefixes"]
             if digits.startswith(prefix)]
    return max(found)[1] if found else None


def mask_card(number: str) -> str:
    """Masked but for the last four digits, as the notification's `cardno`."""
    digits = re.sub(r"[ -]", "", number)
    return "*" * (len(digits) - 4) + digits[-4:]


# --- the notification ---

NOTIFY_PAID, NOTIFY_REFUND = "1", "2"


def notification_body(payment: dict, key: str, *, notifytype: str, payamt: str, timestamp: str,
                      notifyid: str) -> dict:
    """The form a notification posts to `notiurl`: the 21 fields of the samples and `notifyid`
    (the same on every attempt of one notification), its `hash` over the strings sent."""
    request = payment["request"]
    body = {
        "storeid": payment["store_id"], "countrycode": "US", "currency": payment["currency"],
        "storeorderno": payment["order_no"], "payamt": payamt, "payerid": request.get("payerid", ""),
        "payeremail": request.get("payeremail", ""), "servicename": payment["service_name"],
        "custom": request.get("custom", ""), "payinfo": "", "pginfo": payment["pginfo"],
        "timestamp": timestamp, "hash": "", "notifytype": notifytype, "paytoken": payment["paytoken"],
        "trantime": payment["trantime"], "poqtoken": payment["poqtoken"], "cardkind": payment["card_kind"],
        "cardno": payment["card_no"], "retcode": "0", "retmsg": "success", "notifyid": notifyid,
    }
    body["hash"] = notification_hash(body["storeid"], body["currency"], body["storeorderno"], payamt,
                                     body["payerid"], timestamp, key)
    return body


def acknowledged(status: int | None, body: bytes) -> bool:
    """A 2xx whose body, stripped of surrounding whitespace and a byte-order mark, is exactly
    `<RESULT>OK</RESULT>` (case and all)."""
    if status is None or not 200 <= status < 300:
        return False
    text = body.decode("utf-8", "replace").strip().lstrip(_BOM).strip()
    return text == table()["notification"]["acknowledgement"]


# --- the hosted page ---

_EXPIRY = re.compile(r"(0[1-9]|1[0-2]) ?/ ?([0-9]{2})")


def read_card(form: dict) -> tuple[dict, dict]:
    """What the payer typed on the card page, cleaned (`card_number` digits only, `card_expiry`
    MM/YY, `card_cvv`), and each field's error (a key of the page's `invalid` words): a number of
    12 to 19 digits, a month and a two-digit year, a CVV of 3 or 4 digits. Which numbers pay is
    not decided here (`card_kind`), nor whether the date has passed (`expired`)."""
    number = re.sub(r"[ -]", "", str(form.get("card_number", "")))
    expiry = str(form.get("card_expiry", "")).strip()
    cvv = str(form.get("card_cvv", "")).strip()
    values, errors = {"card_number": number, "card_expiry": expiry, "card_cvv": cvv}, {}
    if not (number.isascii() and number.isdigit() and 12 <= len(number) <= 19):
        errors["card_number"] = "card_number"
    if not _EXPIRY.fullmatch(expiry):
        errors["card_expiry"] = "card_expiry"
    if not (cvv.isascii() and cvv.isdigit() and 3 <= len(cvv) <= 4):
        errors["card_cvv"] = "card_cvv"
    return values, errors


def expired(expiry: str, today) -> bool:
    """Whether a card whose expiry is MM/YY (as read_card took it) can no longer pay on `today`
    (a date): a card is good through the last day of its month."""
    month, year = _EXPIRY.fullmatch(expiry.strip()).groups()
    return (2000 + int(year), int(month)) < (today.year, today.month)


def page_outcome(name: str) -> dict:
    """retcode and retmsg of a page's ending that is not a payment (global_gateway.toml's [page])."""
    return table()["page"]["outcomes"][name]


def return_fields(payment: dict, key: str, *, timestamp: str, outcome: str | dict | None = None) -> dict:
    """What the browser POSTs to `returnurl` when the page ends: the notification's fields (its
    `hash` too, so the return can be checked as the notification is), for the payment as it
    stands; `outcome` names a decline or a cancel (page_outcome) or gives its retcode and retmsg
    (a scenario's decline), None a payment made. No `notifyid`: that names a notification, and
    this is none."""
    body = notification_body({**payment, "paytoken": payment.get("paytoken") or ""}, key, notifytype=NOTIFY_PAID,
                             payamt=payment["amount"], timestamp=timestamp, notifyid="")
    del body["notifyid"]
    if outcome is not None:
        body.update(outcome if isinstance(outcome, dict) else page_outcome(outcome))
    return body


def hosted_form_hash(form: dict, key: str) -> str:
    """The hash a merchant signs the hosted form with (the WooCommerce plugin, a Django shop): the
    notification's formula over the form's own strings, `payamt` as posted."""
    return notification_hash(str(form.get("storeid", "")), str(form.get("currency", "")),
                             str(form.get("storeorderno", "")), str(form.get("payamt", "")),
                             str(form.get("payerid", "")), str(form.get("timestamp", "")), key)
