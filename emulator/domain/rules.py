"""Scenario rules as plain values: what a rule matches, which outcome it picks, and at which
moment of a payment's life that outcome applies."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import re2

# The moment an outcome applies: each request of the gateway's API, the payer finishing on the
# page (or through the control API), a callback being queued, a virtual account being issued.
API, PAYER, CALLBACK, VIRTUAL_ACCOUNT = "api", "payer", "callback", "virtual_account"
STAGES = {
    "api_error": API, "latency": API, "drop_connection": API, "billkey_refused": API,
    "approve": PAYER, "decline": PAYER, "abandon": PAYER,
    "callback": CALLBACK,
    "deposit": VIRTUAL_ACCOUNT, "expire": VIRTUAL_ACCOUNT,
}
TEXT_FIELDS = ("gateway", "endpoint", "client_id", "pgcode", "user_id", "order_no", "product_name", "custom_parameter",
               "card_number",
               # Payletter Global's own fields: a rule that names one matches Global requests and payments only
               "storeid", "storeorderno", "pginfo", "currency", "payerid", "payeremail", "servicename", "custom")
GATEWAYS = ("domestic", "global")  # what `gateway` matches: the rule's moment is the domestic gateway's or Global's
ALWAYS = None
_RE2 = re2.Options()
_RE2.log_errors = False  # a refused pattern is the scenario's problem, told to its author, not RE2's log line
RE2_HINT = "RE2's syntax, matched in linear time: no backreferences (\\1) or lookarounds ((?=, (?!); \\Z is \\z"


def regex(pattern: str):
    """A scenario's `{regex: ...}`, compiled by RE2, which matches in time linear in the value
    whatever the pattern (Python's `re` backtracks: `^(a+)+$` took seconds against 27 a's and a
    `!`, holding up every request of the process). ValueError says why RE2 refuses a pattern."""
    try:
        return re2.compile(pattern, _RE2)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"{reason} ({RE2_HINT})") from None


class Matcher:
    """One condition: equal to a value, any of a list, a regex, a range, or the last digits."""

    def __init__(self, spec):
        self.spec = spec
        self._regex = regex(spec["regex"]) if isinstance(spec, dict) and "regex" in spec else None

    def __call__(self, value) -> bool:
        spec = self.spec
        if value is None:
            return False
        if isinstance(spec, list):
            return any(_same(value, item) for item in spec)
        if not isinstance(spec, dict):
            return _same(value, spec)
        if self._regex is not None:
            return self._regex.search(str(value)) is not None
        if "ends_with" in spec:
            return str(value).endswith(spec["ends_with"])
        number = _number(value)
        return number is not None and spec.get("min", number) <= number <= spec.get("max", number)


def _same(value, expected) -> bool:
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return _number(value) == expected
    return str(value) == str(expected)


def _number(value) -> int | Decimal | None:
    """Amounts arrive as numbers or, from lenient clients, as strings; Payletter Global's with
    decimals ("10.00" is 10)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    return Decimal(text) if re.fullmatch(r"-?[0-9]+\.[0-9]+", text) else None


@dataclass
class Rule:
    name: str
    outcome: str
    params: dict
    times: int | None = ALWAYS
    conditions: dict[str, Matcher] = field(default_factory=dict)
    headers: dict[str, Matcher] = field(default_factory=dict)
    window: tuple[datetime | None, datetime | None] = (None, None)

    @property
    def stage(self) -> str:
        return STAGES[self.outcome]

    def matches(self, context: dict, now: datetime) -> bool:
        """`context` holds the request's (or payment's) values, `headers` (lower-cased names)."""
        start, end = self.window
        if (start and now < start) or (end and now >= end):
            return False
        if not all(match(context.get(name)) for name, match in self.conditions.items()):
            return False
        headers = context.get("headers") or {}
        return all(match(headers.get(name)) for name, match in self.headers.items())


def compile_rule(spec: dict, parse_moment) -> Rule:
    """A rule of a scenario document (already checked against schemas/scenario.json)."""
    [(outcome, params)] = spec["then"].items()
    when = spec.get("when", {})
    times = spec.get("times", "always")
    window = when.get("time", {})
    return Rule(
        name=spec["name"], outcome=outcome, params=params or {},
        times=None if times == "always" else times,
        conditions={name: Matcher(when[name]) for name in (*TEXT_FIELDS, "amount") if name in when},
        headers={name.lower(): Matcher(m) for name, m in when.get("header", {}).items()},
        window=tuple(parse_moment(window[k]) if k in window else None for k in ("from", "until")))
