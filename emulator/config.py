"""Settings of one emulator, each declared once: its field of `Settings` gives the name, the type
and the default, and `declare` adds the bound and the help text. The environment variable
(PAYLETTER_EMULATOR_<NAME>), `Settings.from_env`, the checks of `Settings`, the options of
`payletter-emulator serve` and docs/configuration.md's table are all made from these declarations."""
from __future__ import annotations

import functools
import math
import os
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Callable

ENV_PREFIX = "PAYLETTER_EMULATOR_"
# Entries of a control list (/_emulator/payments, /callbacks, /requests) in one answer: the default,
# and the most `?limit=` may ask for; the rest is a `next` (or `earlier`) page away. A page of a
# thousand payments takes about a tenth of a second to read and write out.
LIST_PAGE = 1000


@functools.cache
def package_version() -> str:
    """pyproject.toml's version, the one place it is written; read when first asked, so that
    importing the package (as the pytest plugin does in every run) reads no package metadata."""
    from importlib.metadata import version

    return version("payletter-emulator")


def is_loopback_host(host: str) -> bool:
    """Whether `host` (a --host, a URL's host) names this machine's loopback only: nobody else
    can reach what listens there."""
    import ipaddress

    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Client:
    """A merchant account: its id and its two API keys."""

    client_id: str
    payment_key: str
    search_key: str


# The reference's test client, built in.
PAY_TEST = Client("pay_test", "MTFBNTAzNTEwNDAxQUIyMjlCQzgwNTg1MkU4MkZENDA=",
                  "MUI3MjM0RUExQTgyRDA1ODZGRDUyOEM4OTY2QTVCN0Y=")


def parse_clients(text: str) -> tuple[Client, ...]:
    """`id:payment_key:search_key`, several separated by commas."""
    clients = []
    for item in split(text):
        parts = item.split(":")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"client {item!r} is not id:payment_key:search_key")
        clients.append(Client(*parts))
    return tuple(clients)


def _more_clients(text: str) -> tuple[Client, ...]:
    return (PAY_TEST, *parse_clients(text))  # the variable adds clients; pay_test stays


@dataclass(frozen=True)
class GlobalStore:
    """A Payletter Global store: its id and its one key, which authenticates `GPLKEY`, signs
    `POQAPI` and hashes the notification (docs/fidelity.md, "Payletter Global")."""

    store_id: str
    key: str


# Payletter Global's built-in test store: as in Payletter's own samples, its key is its id.
GLOBAL_TEST = GlobalStore("global_test", "global_test")


def parse_global_stores(text: str) -> tuple[GlobalStore, ...]:
    """`storeid:key`, several separated by commas."""
    stores = []
    for item in split(text):
        store_id, colon, key = item.partition(":")
        if not (store_id and colon and key) or ":" in key:
            raise ValueError(f"Global store {item.partition(':')[0]!r} is not storeid:key")
        stores.append(GlobalStore(store_id, key))
    return tuple(stores)


def _more_global_stores(text: str) -> tuple[GlobalStore, ...]:
    return (GLOBAL_TEST, *parse_global_stores(text))  # the variable adds stores; global_test stays


def split(text: str) -> tuple[str, ...]:
    """A comma-separated variable's values, without blanks."""
    return tuple(filter(None, (part.strip() for part in text.split(","))))


@dataclass(frozen=True)
class Setting:
    """One setting as declared: a field of `Settings` and what `declare` says of it."""

    name: str
    kind: type  # of one value: str, int, float, bool (or what `parse` makes)
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    many: bool = False  # a tuple: a repeatable option, a comma-separated variable
    option: str | None = None  # the option of `serve`; None: the environment only
    off: str | None = None  # a boolean option's flag that turns it off
    shown_default: str | None = None  # the default in words, where its value alone does not say it
    unit: str = ""  # what a number counts
    file: bool = False  # names a file `serve` reads, so `serve` refuses one that is not there
    secret: bool = False  # a refusal does not repeat the value (it holds keys)
    parse: Callable[[str], Any] | None = None  # reads a variable whose value is none of the kinds
    metavar: str = ""  # how the value is written, where the kind does not say it

    @property
    def variable(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def bound(self) -> str:
        """The rule a value must follow, in words ("" when any value of its kind will do)."""
        if self.low is not None and self.high is not None:
            return f"from {self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"at least {self.low:g}"
        return f"at most {self.high:g}" if self.high is not None else ""

    @property
    def value_name(self) -> str:
        """What one value is: `integer`, `seconds`, `file`, ..."""
        if self.metavar:
            return self.metavar
        if self.file:
            return "file"
        return {int: "integer", float: self.unit or "number", bool: "boolean"}.get(self.kind, "text")

    @property
    def default_text(self) -> str:
        """The default as `serve --help` and docs/configuration.md tell it."""
        if self.shown_default is not None:
            return self.shown_default
        if self.kind is bool:
            return self.option if self.default else self.off
        return str(self.default)

    def read(self, text: str) -> Any:
        """A variable's text as this setting's value, checked; a ValueError says what was expected."""
        if self.parse:
            return self.parse(text)
        if self.many:
            return tuple(self.read_one(part) for part in split(text))
        return self.read_one(text)

    def read_one(self, text: str) -> Any:
        """One value's text (an option's, or one of a list's), checked."""
        if self.kind is bool:
            word = text.strip().lower()
            if word not in _TRUE + _FALSE:
                raise ValueError(f"is not a boolean ({'/'.join(_TRUE)} or {'/'.join(_FALSE)})")
            return word in _TRUE
        value: Any = text
        if self.kind is int:
            try:
                value = int(text)
            except ValueError:
                raise ValueError("is not an integer") from None
        elif self.kind is float:
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):  # nan and inf pass every bound; no setting means them
                raise ValueError(f"is not a number ({self.unit})" if self.unit else "is not a number")
        self.check(value)
        return value

    def check(self, value: Any) -> None:
        """A ValueError naming the rule when a value breaks the bound."""
        if value is None or self.many or not self.bound:
            return
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ValueError(f"must be {self.bound}")

    def refusal(self, text: str, reason: str) -> str:
        """The one line refusing a variable's value: the variable, the value and the rule."""
        return f"{self.variable}: {reason}" if self.secret else f"{self.variable}={text!r} {reason}"


def declare(default: Any, help: str, **rule: Any) -> Any:
    """A field of `Settings` with the rest of its declaration (the keywords of `Setting`); the
    option is `--<name>` unless `option` says otherwise (None: the environment only)."""
    return field(default=default, metadata={"setting": {"help": help, **rule}})


@dataclass(frozen=True)
class Settings:
    """What one emulator is set to: each field a setting, declared once (`declare`)."""

    host: str = declare("127.0.0.1", "Address to listen on.")
    port: int = declare(8080, "Port to listen on; 0 picks a free one (and the first line says which).",
                        low=0, high=65535)
    db: str = declare("payletter-emulator.db",
                      "SQLite file, `:memory:` for a throwaway run (one process), or "
                      "`postgresql://user@host/db` for servers on several hosts "
                      "(`pip install 'payletter-emulator[postgres]'`).")
    fresh: bool = declare(False, "Start with an empty database: delete what the SQLite file (and its "
                                 "sandboxes) held; not for PostgreSQL.", shown_default="keep the data")
    public_url: str | None = declare(None, "Base of every URL handed out (`online_url`, `mobile_url`, "
                                           "`receipt_url`), behind Docker or a proxy.",
                                     shown_default="the address the request came to")
    strict: bool = declare(False, "Reject what the real gateway tolerates.", off="--lenient")
    callback_timeout: float = declare(5.0, "Seconds a callback attempt may take, name lookup to last byte.",
                                      low=0.1, unit="seconds")
    callback_interval: float = declare(300.0, "Seconds of emulator time between callback attempts.",
                                       low=0, unit="seconds")
    callback_retries: int = declare(20, "Retries after the first callback attempt.", low=0)
    callback_concurrency: int = declare(8, "Callback attempts in flight at once, per process.", low=1)
    callback_hosts: tuple[str, ...] = declare((), "Send callbacks only to this host (`*.shop.example` "
                                                  "matches its subdomains).",
                                              option="--callback-host", shown_default="any host")
    scenario: tuple[str, ...] = declare((), "Scenario file, or the name of a shipped one; merged in order.",
                                        shown_default="none")
    workers: int | None = declare(None, "Processes serving, sharing the database (a file or PostgreSQL); "
                                        "gunicorn forks them (Linux, macOS).", low=1, shown_default="1")
    journal_limit: int = declare(10_000, "API requests kept in the journal.", low=100)
    callback_limit: int = declare(10_000, "Finished notifications kept with their attempts; pending ones "
                                          "always stay.", low=100)
    faker_seed: int | None = declare(None, "Seed for generated data (card numbers, banks, approval numbers).",
                                     option="--seed", shown_default="random")
    control: bool = declare(True, "Serve the control API `/_emulator/...`; `/_emulator/health` always "
                                  "answers (switch it off for shared deployments).", off="--no-control")
    control_token: str | None = declare(None, "Require `X-Emulator-Token: <token>` on the control API (the "
                                              "server warns at start when it listens beyond loopback "
                                              "without one).", shown_default="none")
    allowed_hosts: tuple[str, ...] = declare((), "Let browsers use the dashboard and the control API under this "
                                                 "name too (`*.example` matches its subdomains); under a name not "
                                                 "the emulator's, a browser is refused (DNS rebinding). Clients "
                                                 "that are not browsers need none.",
                                             option="--allowed-host",
                                             shown_default="loopback names, the `--host` address, the host of "
                                                           "`--public-url`")
    tls: bool = declare(False, "Serve HTTPS (TLS 1.2 or newer) with a certificate for this host, signed by "
                               "a CA kept beside the database.", off="--no-tls")
    tls_cert: str | None = declare(None, "Serve HTTPS with this certificate (PEM, chain first) instead; "
                                         "implies `--tls`.", file=True, shown_default="none")
    tls_key: str | None = declare(None, "The private key of `--tls-cert`.", file=True,
                                  shown_default="in the `--tls-cert` file")
    intercept: int | None = declare(None, "Also listen on this port as an HTTPS proxy (`HTTPS_PROXY=http://"
                                          "127.0.0.1:<port>`): a CONNECT to the gateway's hosts "
                                          "(testpgapi.payletter.com, pgapi.payletter.com) is answered by this "
                                          "emulator, with a certificate signed by its CA; any other host is "
                                          "refused, nothing is forwarded. 0 picks a free port.",
                                    low=0, high=65535, shown_default="off", metavar="port")
    access_log: bool = declare(False, "Log a line per request on stderr, the value of any `token=` query "
                                      "parameter replaced by `[redacted]` (the journal keeps every API "
                                      "request either way).", off="--no-access-log")
    # No option: keys on a command line show in every process listing.
    clients: tuple[Client, ...] = declare((PAY_TEST,), "More clients besides pay_test.", option=None,
                                          parse=_more_clients, secret=True, shown_default="pay_test only",
                                          metavar="`id:payment_key:search_key`, comma separated")
    global_stores: tuple[GlobalStore, ...] = declare((GLOBAL_TEST,), "More Payletter Global stores besides "
                                                     "global_test (docs/global.md).", option=None,
                                                     parse=_more_global_stores, secret=True,
                                                     shown_default="global_test only",
                                                     metavar="`storeid:key`, comma separated")

    def __post_init__(self):
        if self.control_token == "":  # an empty token guards nothing: read as none, so the server warns
            object.__setattr__(self, "control_token", None)
        for setting in SETTINGS.values():
            value = getattr(self, setting.name)
            try:
                setting.check(value)
            except ValueError as exc:
                raise ValueError(f"{setting.name} {exc}, not {value!r}") from None
        if self.tls_key and not self.tls_cert:
            raise ValueError("tls_key needs tls_cert")

    @classmethod
    def from_env(cls, environ=os.environ, **overrides) -> "Settings":
        """The environment's PAYLETTER_EMULATOR_* variables (an empty one is unset, as click reads
        it), then the overrides (options given) that are not None. A value that cannot be read is
        refused in one line naming the variable, the value and the rule."""
        values = {}
        for setting in SETTINGS.values():
            text = environ.get(setting.variable)
            if not text:
                continue
            try:
                values[setting.name] = setting.read(text)
            except ValueError as exc:
                raise ValueError(setting.refusal(text, str(exc))) from None
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)


def _declared(cls) -> dict[str, Setting]:
    """Every field's declaration: the name, the kind and the default from the field, the rest from `declare`."""
    hints = typing.get_type_hints(cls)
    declared = {}
    for f in fields(cls):
        if "setting" not in f.metadata:
            raise TypeError(f"Settings.{f.name} is not declared with declare()")
        rule = dict(f.metadata["setting"])
        rule.setdefault("option", "--" + f.name.replace("_", "-"))
        kind = hints[f.name]
        if type(None) in typing.get_args(kind):  # X | None: None means "decided where it is used"
            kind = next(k for k in typing.get_args(kind) if k is not type(None))
        many = typing.get_origin(kind) is tuple
        declared[f.name] = Setting(f.name, typing.get_args(kind)[0] if many else kind, f.default, many=many, **rule)
    return declared


SETTINGS: dict[str, Setting] = _declared(Settings)


def unknown_variables(environ=os.environ, others=()) -> list[str]:
    """A warning for each PAYLETTER_EMULATOR_* variable that no setting declares (nor `others`, the
    variables the client's commands read), with the declared one it was probably meant to be:
    an unknown variable is otherwise ignored without a word."""
    import difflib

    known = [setting.variable for setting in SETTINGS.values()] + list(others)
    warnings = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in known:
            continue
        # Compared without the prefix, which every name shares and which would make any two look alike.
        close = difflib.get_close_matches(name[len(ENV_PREFIX):], [k[len(ENV_PREFIX):] for k in known], n=1)
        hint = f"did you mean {ENV_PREFIX}{close[0]}?" if close else "`payletter-emulator serve --help` lists the settings"
        warnings.append(f"{name} is not a setting of payletter-emulator and is ignored; {hint}")
    return warnings
