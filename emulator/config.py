"""Settings of one emulator: from arguments, the environment (PAYLETTER_EMULATOR_*), or defaults."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace

ENV_PREFIX = "PAYLETTER_EMULATOR_"


@dataclass(frozen=True)
class Client:
    """A merchant account: its id and its two API keys."""

    client_id: str
    payment_key: str
    search_key: str


# The reference's test client, built in.
PAY_TEST = Client("pay_test", "MTFBNTAzNTEwNDAxQUIyMjlCQzgwNTg1MkU4MkZENDA=",
                  "MUI3MjM0RUExQTgyRDA1ODZGRDUyOEM4OTY2QTVCN0Y=")


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    db: str = "payletter-emulator.db"
    public_url: str | None = None  # default: the address the request came to
    strict: bool = False
    callback_timeout: float = 5.0  # seconds one attempt may take, connection to last byte
    callback_interval: float = 300.0  # seconds of emulator time between attempts
    callback_retries: int = 20  # retries after the first attempt
    callback_concurrency: int = 8  # attempts in flight at once, per process
    callback_hosts: tuple[str, ...] = ()  # allow-list of callback hosts (`*.example`); empty: any
    scenario: tuple[str, ...] = ()  # scenario files (or names of shipped ones), merged in order
    workers: int | None = None  # processes serving; None: one per core where they can share the database
    journal_limit: int = 10_000  # API requests kept in the journal
    callback_limit: int = 10_000  # finished notifications kept, with their attempts; pending ones always stay
    faker_seed: int | None = None
    control: bool = True  # False: only /_emulator/health answers, for shared deployments
    control_token: str | None = None  # when set, the control API needs `X-Emulator-Token: <token>`
    tls: bool = False  # serve HTTPS with a certificate signed by a CA kept beside the database
    tls_cert: str | None = None  # one's own certificate (chain) instead; implies tls
    tls_key: str | None = None  # its private key; default: in tls_cert's file
    access_log: bool = False  # a line per request on stderr (the journal keeps the API's requests anyway)
    clients: tuple[Client, ...] = field(default=(PAY_TEST,))

    def __post_init__(self):
        if self.control_token == "":  # an empty token guards nothing: read as none, so the server warns
            object.__setattr__(self, "control_token", None)
        for name, low in (("callback_timeout", 0.1), ("callback_interval", 0), ("callback_retries", 0),
                          ("callback_concurrency", 1), ("journal_limit", 100), ("callback_limit", 100)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be at least {low}, not {getattr(self, name)}")
        if self.tls_key and not self.tls_cert:
            raise ValueError("tls_key needs tls_cert")

    @classmethod
    def from_env(cls, environ=os.environ, **overrides) -> "Settings":
        """Environment first, then explicit overrides (CLI flags) that are not None."""
        values = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is None or f.name == "clients":
                continue
            try:
                values[f.name] = _parse(f.name, raw)
            except ValueError as exc:  # the variable, its value and what it expects
                raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r} {exc}") from None
        if clients := environ.get(ENV_PREFIX + "CLIENTS"):
            try:
                values["clients"] = (PAY_TEST, *parse_clients(clients))
            except ValueError as exc:
                raise ValueError(f"{ENV_PREFIX}CLIENTS: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)


def parse_clients(text: str) -> tuple[Client, ...]:
    """`id:payment_key:search_key`, several separated by commas."""
    clients = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        parts = item.split(":")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"client {item!r} is not id:payment_key:search_key")
        clients.append(Client(*parts))
    return tuple(clients)


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _parse(name: str, raw: str):
    """A variable's text as its field's type; a ValueError says what was expected."""
    if name in ("port", "journal_limit", "callback_limit", "faker_seed", "callback_retries", "callback_concurrency",
                "workers"):
        try:
            return int(raw)
        except ValueError:
            raise ValueError("is not an integer") from None
    if name in ("callback_timeout", "callback_interval"):
        try:
            return float(raw)
        except ValueError:
            raise ValueError("is not a number (seconds)") from None
    if name in ("callback_hosts", "scenario"):
        return tuple(filter(None, (part.strip() for part in raw.split(","))))
    if name in ("strict", "control", "tls", "access_log"):
        word = raw.strip().lower()
        if word not in _TRUE + _FALSE:
            raise ValueError(f"is not a boolean ({'/'.join(_TRUE)} or {'/'.join(_FALSE[:-1])})")
        return word in _TRUE
    return raw
