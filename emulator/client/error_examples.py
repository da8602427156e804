"""Each error kind's example as the emulator really answers it: the request declared beside the kind
in emulator/domain/error_codes.toml is sent to an emulator with a frozen clock, and what came back
is kept for docs/error-codes.md (docgen.py). tests/test_docs.py sends the same requests to a
running `payletter-emulator serve` and compares.

An example's keys (`example.<key>` in the kind's row; a step of `given` takes the same ones):
  request   "METHOD /path?query". `{name}` is a value kept by a step of `given`. An absolute URL
            (one an answer handed out) is sent to the emulator's address.
  given     what happens first, in order: the name of a step list of GIVENS, or a step.
  based_on  a body of BODIES to start from; `body` (a JSON object) adds to it or replaces it,
            `without` leaves fields out.
  text      the body as text instead (`encoding`, UTF-8 unless said; `content_type`, JSON unless
            said); `form`: the body as a form. `pad_to`: the body padded with spaces to that size.
  headers   more headers. `key`: the PLKEY sent (PAYMENT, SEARCH or none); by default the one the
            gateway's endpoint takes, none off the gateway's API.
  keep      (a step of `given`) values of its answer to keep: {tid = "fields.tid"}.
  settings  what the emulator is started with (fields of config.Settings): {strict = true}.

Answers are deterministic: every example starts on a reset emulator without a scenario, its clock
frozen at MOMENT, generated data seeded with SEED. Tokens and tids count on across examples (a reset
keeps the counters), so an example's identifiers are those its place in the catalog gives it.
"""
from __future__ import annotations

import contextlib
import html
import json
import re
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import urlencode, urlsplit

from ..config import PAY_TEST, SETTINGS
from ..domain.endpoints import GATEWAY, PREFIX
from ..domain.errors import ErrorKind, catalog
from .control_client import EmulatorClient, Reply

MOMENT = "2026-11-29T12:00:00+09:00"  # where every example's clock stands, frozen
SEED = 1  # --seed: card numbers, banks and approval numbers are the same in every run
ADDRESS = "127.0.0.1:8080"  # the emulator's address as answers show it, wherever it really listened
KEYS = {"PAYMENT": PAY_TEST.payment_key, "SEARCH": PAY_TEST.search_key}
REASON_HEADER = "X-Emulator-Reason"

# The bodies examples start from (`based_on`): the least each endpoint takes. The callback goes to
# the discard port, refused at once: no example waits on a merchant.
BODIES: dict[str, dict[str, Any]] = {
    "payment request": {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "user_1", "amount": 1000,
                        "product_name": "test product", "return_url": "https://merchant.example/result",
                        "callback_url": "http://127.0.0.1:9/callback"},
    "cancel": {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "user_1", "tid": "{tid}", "amount": 1000,
               "ip_addr": "127.0.0.1"},
    "autopay": {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "user_1", "amount": 1000,
                "product_name": "test product", "billkey": "{billkey}", "ip_addr": "127.0.0.1"},
}

_APPROVE = {"request": "POST /_emulator/payments/{token}/approve", "keep": {"tid": "fields.tid"}}

# What examples name in `given`: step lists a reader meets more than once.
GIVENS: dict[str, list[dict[str, Any]]] = {
    "a payment request": [
        {"request": "POST /v1.0/payments/request", "based_on": "payment request", "keep": {"token": "token"}}],
    "approved by the payer": [_APPROVE],
    "a card payment": [
        {"request": "POST /v1.0/payments/request", "based_on": "payment request", "keep": {"token": "token"}},
        _APPROVE],
    "a virtual account awaiting deposit": [
        {"request": "POST /v1.0/payments/request", "based_on": "payment request",
         "body": {"pgcode": "virtualaccount", "amount": 10000}, "keep": {"token": "token"}},
        _APPROVE],
    "the deposit": [{"request": "POST /_emulator/virtual-accounts/{tid}/deposit"}],
    "a bank transfer": [
        {"request": "POST /v1.0/payments/request", "based_on": "payment request",
         "body": {"pgcode": "banktransfer"}, "keep": {"token": "token"}},
        _APPROVE],
    "a cash receipt requested": [
        {"request": "POST /v1.0/cashreceipt/issue/{tid}",
         "body": {"client_id": "pay_test", "return_url": "https://merchant.example/receipt"},
         "keep": {"receipt_url": "receipt_url"}}],
    "a card billkey": [
        {"request": "POST /v1.0/payments/request", "based_on": "payment request", "body": {"autopay_flag": "Y"},
         "keep": {"token": "token"}},
        {**_APPROVE, "keep": {"tid": "fields.tid", "billkey": "fields.billkey"}}],
    "a mobile billkey": [
        {"request": "POST /v1.0/payments/request", "based_on": "payment request",
         "body": {"pgcode": "mobile", "autopay_flag": "Y"}, "keep": {"token": "token"}},
        {**_APPROVE, "keep": {"tid": "fields.tid", "billkey": "fields.billkey"}}],
}


class ExampleError(Exception):
    """An example that cannot be run as declared: a given step refused, a value never kept, a key unknown."""


@dataclass(frozen=True)
class Sent:
    """A request as it went, with 127.0.0.1:8080 standing for the emulator's address."""

    method: str
    target: str  # /path?query, or an absolute URL
    headers: tuple[tuple[str, str], ...]
    body: bytes
    shown_body: str  # the body as the page writes it: text, however it was encoded or padded
    note: str = ""  # what the shown body does not show: its encoding, its padding

    @property
    def line(self) -> str:
        return f"{self.method} {self.target}"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]  # the ones a reader needs: Content-Type, X-Emulator-Reason
    body: str

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    @property
    def is_page(self) -> bool:
        return (self.header("Content-Type") or "").startswith("text/html")

    def code(self) -> int | None:
        """The envelope's code (None for a page)."""
        return None if self.is_page else json.loads(self.body)["code"]

    def message(self) -> str:
        """The envelope's message, or what a page's error says after its status."""
        if self.is_page:
            return self.page_error()[1].partition(" · ")[2]
        return json.loads(self.body)["message"]

    def page_error(self) -> tuple[str, str]:
        """A hosted page's error: its kind (`data-error`) and its detail line."""
        kind = re.search(r'data-error="([^"]*)"', self.body)
        detail = re.search(r'data-testid="error-detail">(.*?)</p>', self.body, re.S)
        if kind is None or detail is None:
            raise ExampleError(f"HTTP {self.status}: an HTML answer that is not the error page")
        return html.unescape(kind.group(1)), html.unescape(detail.group(1)).strip()


@dataclass(frozen=True)
class Exchange:
    """One example as it ran: what came first (`given`, as the page lists it), the request, the answer."""

    kind: str
    settings: tuple[tuple[str, Any], ...]
    given: tuple[str, ...]
    sent: Sent
    answer: Answer


# --- which examples there are ----------------------------------------------------------------------

def shown_kinds() -> list[ErrorKind]:
    """The kinds with an example, in the catalog's order; a kind with neither an example nor
    `no_example` is refused here, so that it cannot be left out by accident."""
    shown = []
    for kind in catalog().values():
        if kind.example is None and not kind.no_example:
            raise ExampleError(f"{kind.name}: declare the request that provokes it (example.request = ...) in "
                               f"error_codes.toml, or why none can (no_example = ...)")
        if kind.example is not None:
            _check(kind.name, kind.example)
            shown.append(kind)
    return shown


STEP_KEYS = {"request", "based_on", "body", "without", "text", "encoding", "content_type", "form", "pad_to",
             "headers", "key", "keep"}


def _check(name: str, example: dict) -> None:
    """An example's keys, its givens' and its settings' are ones this module reads: a misspelt one
    would otherwise be left out of the request without a word."""
    steps = [example, *(step for entry in example.get("given", []) for step in _steps(entry))]
    for step in steps:
        unknown = set(step) - STEP_KEYS - ({"given", "settings"} if step is example else set())
        if unknown or "request" not in step:
            raise ExampleError(f"{name}: a step needs `request` and takes {', '.join(sorted(STEP_KEYS))}; "
                               f"not {', '.join(sorted(unknown)) or 'without request'}")
        if step.get("based_on", next(iter(BODIES))) not in BODIES:
            raise ExampleError(f"{name}: based_on {step['based_on']!r} is none of {', '.join(BODIES)}")
    unknown = set(example.get("settings", {})) - set(SETTINGS)
    if unknown:
        raise ExampleError(f"{name}: {', '.join(sorted(unknown))} is not a setting (config.Settings)")


def settings_of(kind: ErrorKind) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((kind.example or {}).get("settings", {}).items()))


def groups() -> dict[tuple[tuple[str, Any], ...], list[ErrorKind]]:
    """The examples by the settings they need: one emulator each, run in the catalog's order."""
    found: dict[tuple[tuple[str, Any], ...], list[ErrorKind]] = {}
    for kind in shown_kinds():
        found.setdefault(settings_of(kind), []).append(kind)
    return found


def serve_args(settings) -> list[str]:
    """`payletter-emulator serve`'s options for `settings`, and the seed every example runs with."""
    return ["--seed", str(SEED), *options(settings)]


def options(settings) -> list[str]:
    """`payletter-emulator serve`'s options for `settings` (fields of config.Settings)."""
    args = []
    for name, value in dict(settings).items():
        setting = SETTINGS[name]
        if setting.kind is bool:
            args.append(setting.option if value else setting.off)
        else:
            args += [setting.option, str(value)]
    return args


# --- running them ----------------------------------------------------------------------------------

def in_process() -> dict[str, Exchange]:
    """Every example's exchange, from in-process apps."""
    done: dict[str, Exchange] = {}
    for settings, kinds in groups().items():
        with _emulator(dict(settings)) as client:
            done.update(run(client, kinds))
    return done


@contextlib.contextmanager
def _emulator(settings: dict) -> Iterator[EmulatorClient]:
    token = settings.get("control_token")
    from .. import create_app

    app = create_app(db=":memory:", faker_seed=SEED, **settings)
    client = EmulatorClient.for_app(app, base_url=f"http://{ADDRESS}", control_token=token)
    try:
        yield client
    finally:
        app.extensions["payletter"].dispatcher.stop()


def run(client: EmulatorClient, kinds: list[ErrorKind]) -> dict[str, Exchange]:
    """Each kind's example on `client`'s emulator, in order, each from a fresh start."""
    done = {}
    for kind in kinds:
        _fresh(client)
        refs: dict[str, str] = {}
        given = tuple(_given(client, entry, refs, kind.name) for entry in kind.example.get("given", []))
        sent = request(kind.example, refs, kind.name)
        done[kind.name] = Exchange(kind.name, settings_of(kind), given, sent, send(client, sent))
    return done


def _given(client: EmulatorClient, entry: str | dict, refs: dict[str, str], kind: str) -> str:
    """Run a given (its name, or one step), keeping what its steps keep in `refs`; how the page tells it."""
    for step in _steps(entry):
        sent = request(step, refs, kind)
        answer = send(client, sent, control=True)
        if not 200 <= answer.status < 400:
            raise ExampleError(f"{kind}: {sent.line} answered {answer.status}: {answer.body[:300]}")
        for name, path in step.get("keep", {}).items():
            refs[name] = _kept(answer, path, kind)
    if isinstance(entry, str):
        return entry
    return f"`{sent.line}`" + (f" `{sent.shown_body}`" if sent.shown_body else "")


def _steps(entry) -> list[dict]:
    if isinstance(entry, str):
        if entry not in GIVENS:
            raise ExampleError(f"no given named {entry!r} (error_examples.GIVENS has {', '.join(GIVENS)})")
        return GIVENS[entry]
    return [entry]


def _fresh(client: EmulatorClient) -> None:
    """No payment, no scenario, the clock frozen at MOMENT."""
    client.clear_scenario()
    client.reset()
    client.clock.freeze()
    client.clock.set(MOMENT)


def request(step: dict, refs: dict[str, str] | None, kind: str = "") -> Sent:
    """The request a step declares, its `{name}`s filled from `refs` (None: left as written)."""
    method, _, target = step["request"].partition(" ")
    target = _fill(target, refs, kind)
    headers: dict[str, str] = {}
    key = step.get("key", _endpoint_key(urlsplit(target).path))
    if key != "none":
        headers["Authorization"] = f"PLKEY {KEYS[key]}"
    text, content_type = None, step.get("content_type", "application/json")
    if "based_on" in step or "body" in step:
        values = {**BODIES.get(step.get("based_on"), {}), **step.get("body", {})}
        for name in step.get("without", ()):
            values.pop(name)
        text = json.dumps(_fill(values, refs, kind), ensure_ascii=False)
    elif "text" in step:
        text = _fill(step["text"], refs, kind)
    elif "form" in step:
        text, content_type = urlencode(_fill(step["form"], refs, kind)), "application/x-www-form-urlencoded"
    if text is None:
        return Sent(method, target, _ordered(headers, step), b"", "")
    headers["Content-Type"] = content_type
    encoding, notes = step.get("encoding", "utf-8"), []
    body = text.encode(encoding)
    if encoding != "utf-8":
        notes.append(f"encoded in {encoding.upper()}")
    if "pad_to" in step:
        body = body.ljust(step["pad_to"], b" ")
        notes.append(f"padded with spaces to {step['pad_to']:,} bytes")
    return Sent(method, target, _ordered(headers, step), body, text, ", ".join(notes))


def _ordered(headers: dict[str, str], step: dict) -> tuple[tuple[str, str], ...]:
    return tuple({**headers, **step.get("headers", {})}.items())


def _endpoint_key(path: str) -> str:
    """The PLKEY the gateway's endpoint at `path` takes (PAYMENT where either does); none elsewhere."""
    path = re.sub(r"^/_sandbox/[^/]*", "", path)
    if not path.startswith(PREFIX + "/"):
        return "none"
    for endpoint in GATEWAY:
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", PREFIX + endpoint.path), path):
            return "SEARCH" if endpoint.key == "SEARCH" else "PAYMENT"
    return "PAYMENT"


_REF = re.compile(r"\{(\w+)\}")


def _fill(value, refs: dict[str, str] | None, kind: str = ""):
    """`value` with each `{name}` in its text replaced by the value kept under that name."""
    if refs is None:
        return value
    if isinstance(value, dict):
        return {key: _fill(item, refs, kind) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, refs, kind) for item in value]
    if not isinstance(value, str):
        return value

    def kept(match: re.Match) -> str:
        if match.group(1) not in refs:
            raise ExampleError(f"{kind}: {{{match.group(1)}}} is not a value a given step kept ({', '.join(refs) or 'none'})")
        return refs[match.group(1)]

    return _REF.sub(kept, value)


def _kept(answer: Answer, path: str, kind: str) -> str:
    value: Any = json.loads(answer.body)
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ExampleError(f"{kind}: the answer has no {path}: {answer.body[:300]}")
        value = value[part]
    return str(value)


def send(client: EmulatorClient, sent: Sent, *, control: bool = False) -> Answer:
    """`sent` to `client`'s emulator (its control token too, for a given step of the control API);
    the answer with the emulator's address written as 127.0.0.1:8080."""
    headers = dict(sent.headers)
    actual = urlsplit(client.base_url).netloc
    if control and client.control_token and urlsplit(sent.target).path.startswith("/_emulator/"):
        headers["X-Emulator-Token"] = client.control_token
    target = sent.target
    if target.startswith(("http://", "https://")):  # a URL an answer handed out
        target = target.split(urlsplit(target).netloc, 1)[1]
    return _answer(client.send(sent.method, target, root=True, headers=headers, data=sent.body or None), actual)


def _answer(reply: Reply, actual: str) -> Answer:
    def ours(text: str) -> str:
        return text.replace(actual, ADDRESS)

    kept = tuple((name, ours(reply.headers[name])) for name in ("Content-Type", REASON_HEADER)
                 if reply.headers.get(name) is not None)
    return Answer(reply.status_code, kept, ours(reply.content.decode("utf-8", "replace")).rstrip("\n"))
