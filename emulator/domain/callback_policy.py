"""The callback policy: what acknowledges a notification, when it is tried again, when it is
given up, where the real test environment would not reach, and which addresses are the
emulator's own. Plain values, no I/O but one: whether an address is this machine's is asked by
binding a socket to it (nothing is sent)."""
from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Callable
from urllib.parse import unquote, urlsplit

from . import global_rules
from .payhash import payhash

DELIVERED, PENDING, FAILED = "delivered", "pending", "failed"
FIRST, RETRY, RESEND, DUPLICATE = "first", "retry", "resend", "duplicate"
GATEWAY_PORTS = (80, 443)  # the test environment calls callback_url on these ports only


def acknowledged(status: int | None, body: bytes) -> bool:
    """Only HTTP 200 with a JSON body whose code is 0 (number or "0") acknowledges."""
    if status != 200:
        return False
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    code = answer.get("code") if isinstance(answer, dict) else None
    return code == "0" or (type(code) is int and code == 0)


@dataclass(frozen=True)
class Policy:
    """A first attempt, then `retries` more, each `interval` seconds after the one scheduled
    before it (the gateway's, 20 retries every 5 minutes, are the settings' defaults:
    config.py). Schedules count whole milliseconds, so twenty steps land exactly where one jump
    of the clock does."""

    interval: float
    retries: int

    @property
    def attempts(self) -> int:
        return 1 + self.retries

    def after_failure(self, attempts_made: int, scheduled_at: int) -> int | None:
        """When (epoch ms) the next attempt is due, or None when the notification is given up."""
        if attempts_made >= self.attempts:
            return None
        return scheduled_at + round(self.interval * 1000)


@dataclass(frozen=True)
class Gateway:
    """How one gateway's notifications travel: the body's encoding, what acknowledges one, what a
    failed attempt is told, and the policy when the gateway fixes it (None: the settings', which
    are the domestic gateway's)."""

    form: bool  # form-encoded (Payletter Global) rather than JSON
    acknowledged: Callable[[int | None, bytes], bool]
    expected: str
    policy: Policy | None = None


DOMESTIC = "domestic"
GATEWAYS = {
    DOMESTIC: Gateway(form=False, acknowledged=acknowledged, expected='HTTP 200 with {"code": 0} expected'),
    # Payletter Global: every 5 minutes, up to 10 times, until the page says <RESULT>OK</RESULT>.
    global_rules.GATEWAY: Gateway(
        form=True, acknowledged=global_rules.acknowledged,
        expected=f"a 2xx whose body is exactly {global_rules.table()['notification']['acknowledgement']} expected",
        policy=Policy(global_rules.table()["notification"]["interval_seconds"],
                      global_rules.table()["notification"]["retries"])),
}


@dataclass(frozen=True)
class Outcome:
    """What one attempt saw."""

    http_status: int | None
    response_body: str
    error: str
    latency_ms: float
    acknowledged: bool
    blocked: bool = False  # never sent: the host is not allowed; retrying cannot help


def next_state(policy: Policy, kind: str, status: str, attempts_made: int, scheduled_at: int | None,
               outcome: Outcome) -> tuple[str, int, int | None]:
    """(status, scheduled attempts made, next due) once an attempt of `kind` has `outcome`.

    A resend is an extra attempt: it can deliver a notification, but it neither counts
    against the policy nor moves its schedule.
    """
    if kind == RESEND:
        return (DELIVERED if outcome.acknowledged or status == DELIVERED else status), attempts_made, scheduled_at
    made = attempts_made + 1
    if outcome.acknowledged:
        return DELIVERED, made, None
    due = None if outcome.blocked else policy.after_failure(made, scheduled_at)
    return (FAILED, made, None) if due is None else (PENDING, made, due)


def apply_fault(body: dict, fault: dict, now: int, *, wrong_key: str,
                gateway: str = DOMESTIC) -> tuple[dict, int | None, str, list[str]]:
    """What a scenario's callback fault makes of a new notification: (the body sent, when its
    first attempt is due or None while held, its status, notes for its warnings). A Global
    notification's signature is its `hash` and its amount `payamt`."""
    body, due, status, notes = dict(body), now, PENDING, []
    if fault.get("wrong_payhash"):
        if gateway == global_rules.GATEWAY:
            body["hash"] = global_rules.notification_hash(body["storeid"], body["currency"], body["storeorderno"],
                                                          body["payamt"], body["payerid"], body["timestamp"], wrong_key)
        else:
            body["payhash"] = payhash(body["user_id"], body["amount"], body["tid"], wrong_key)
    if "tampered_amount" in fault:  # the signature still covers the real amount
        if gateway == global_rules.GATEWAY:
            body["payamt"] = str(fault["tampered_amount"])
        else:
            body["amount"] = fault["tampered_amount"]
    if "delay_seconds" in fault:
        due = now + round(fault["delay_seconds"] * 1000)
    if fault.get("out_of_order"):
        due = None
    if fault.get("never"):
        due, status = None, FAILED
        notes.append(f"scenario rule {fault['rule']!r}: never delivered")
    return body, due, status, notes


def host_allowed(url: str, allowed: tuple[str, ...]) -> bool:
    """An empty allow-list allows every host; otherwise the host must match one pattern
    (`shop.example`, `*.example`). A URL whose host cannot be read matches none."""
    return not allowed or matches_any(_hostname(url) or "", allowed)


def matches_any(host: str, patterns: tuple[str, ...]) -> bool:
    """Whether a host name matches one of `patterns` (`shop.example`, `*.example`)."""
    return any(fnmatch(host.lower(), pattern.lower()) for pattern in patterns)


def _hostname(url: str) -> str | None:
    """The URL's host, or None when it has none or cannot be read (`http://[::1:80/`)."""
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def reachability_warnings(url: str) -> list[str]:
    """Why the real test environment would not reach this URL, though the emulator does."""
    warnings = []
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return [f"callback_url {url!r} is not a URL with a valid host and port"]
    if port not in GATEWAY_PORTS:
        warnings.append(f"the gateway calls callback_url only on ports 80 and 443; it would not reach port {port}")
    host = parts.hostname or ""
    if _private(host):
        warnings.append(f"the gateway calls from its own fixed IP addresses over the internet; "
                        f"it would not reach the private host {host}")
    return warnings


def _private(host: str) -> bool:
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global


CALLBACK_SCHEMES = ("http", "https")
CONTROL_SEGMENT = "_emulator"  # /_emulator/... and a sandbox's /_sandbox/<id>/_emulator/...


def callback_url_refusal(url: str, own_hosts: set[str], own_ports: set[int]) -> str | None:
    """Why the emulator will not take `url` as a callback_url, or None. `own_hosts` and
    `own_ports` are the names and ports the server answers at (its --host, the request's Host,
    the public URL); loopback and unspecified addresses count as its own on those ports. Names
    are compared as written: no name is looked up."""
    try:
        parts = urlsplit(url.strip())
        hostname = parts.hostname
    except ValueError as exc:  # an unclosed or invalid [IPv6 address]
        return f"must be an absolute http:// or https:// URL ({exc})"
    if parts.scheme.lower() not in CALLBACK_SCHEMES or not hostname:
        return "must be an absolute http:// or https:// URL"
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        return "must have a port between 0 and 65535"
    host = hostname.lower().rstrip(".")
    own = host in {h.lower().strip("[]").rstrip(".") for h in own_hosts if h} or _local(host)
    if own and port in own_ports and CONTROL_SEGMENT in _segments(parts.path):
        return ("must not lead to the emulator's own control API (/_emulator/...): "
                "the callback would drive the emulator itself")
    return None


def _segments(path: str) -> list[str]:
    """The path's segments as the server will route them: percent-decoded, dots resolved."""
    resolved: list[str] = []
    for segment in unquote(path).replace("\\", "/").split("/"):
        if segment == "..":
            resolved = resolved[:-1]
        elif segment not in ("", "."):
            resolved.append(segment)
    return resolved


def _local(host: str) -> bool:
    """This machine by any spelling: localhost, a loopback or unspecified address (127.1 and
    2130706433 too, as the socket library reads them)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))  # 127.1, 0x7f000001, 2130706433
        except (OSError, ValueError):  # ValueError: not ASCII, or a NUL
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


@dataclass(frozen=True)
class Listening:
    """Where the emulator listens: the address it is bound to (--host) and its ports (HTTP, or
    HTTPS on the same port; sandboxes share them). No ports: it listens nowhere (an app used
    in-process)."""

    host: str
    ports: tuple[int, ...]

    def reached_by(self, peer: str, port: int) -> bool:
        """Whether a connection whose peer is `peer` (an IP address, as a socket reports it) on
        `port` is one to the emulator: any loopback address, the bound address and, bound to
        every interface (0.0.0.0, ::) or to a name, every address of this machine."""
        if port not in self.ports:
            return False
        address = ip(peer)
        if address is None:
            return False
        if address.is_loopback or address.is_unspecified:
            return True
        bound = ip(self.host)
        if bound is not None and not bound.is_unspecified:
            return address == bound
        return this_machine(address)


def own_name(host: str, bound: str) -> bool:
    """Whether a name or address as written (a Host header's) is the emulator's, bound to
    `bound` (--host), without looking a name up: localhost by any spelling, the bound address
    and, bound to every interface, this machine's name and every address of this machine."""
    host = host.lower().strip("[]").rstrip(".")
    if _local(host) or host == bound.lower().strip("[]").rstrip("."):
        return True
    address, bound_address = ip(host), ip(bound)
    if bound_address is not None and not bound_address.is_unspecified:
        return False
    if address is not None:
        return this_machine(address)
    return host == socket.gethostname().lower()


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address as written (brackets and an IPv4-mapped IPv6 form read as the address
    they hold), or None for a name."""
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def this_machine(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `address` is one of this machine's: a socket can be bound to it."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True
