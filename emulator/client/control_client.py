"""A small Python client for the control API (/_emulator/...), usable with or without pytest.

    from payletter_emulator.client import EmulatorClient

    emulator = EmulatorClient("http://127.0.0.1:8080")
    fields = emulator.approve(token)["fields"]
    emulator.clock.advance(minutes=5)
    emulator.callbacks.wait(tid=fields["tid"], status="delivered")

Every method is one control operation of the README's table; a refusal raises `EmulatorError`
with the envelope's `code` and `message`. A client talks to one emulator, or to one sandbox of it
(`sandbox=`): then its payments, clock, scenario, callbacks and journal are the sandbox's own.
"""
from __future__ import annotations

import json as jsonlib
import math
import os
import time
from datetime import datetime, timedelta
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Union
from urllib.parse import urlsplit

from ..config import LIST_PAGE


__all__ = ["EmulatorClient", "EmulatorError", "CallbackWaitError", "Sandbox", "Reply", "PAY_TEST"]

# The reference's test client, built into every emulator: (client_id, payment key, search key).
PAY_TEST = ("pay_test", "MTFBNTAzNTEwNDAxQUIyMjlCQzgwNTg1MkU4MkZENDA=",
            "MUI3MjM0RUExQTgyRDA1ODZGRDUyOEM4OTY2QTVCN0Y=")

ScenarioRef = Union[str, "os.PathLike[str]", Mapping[str, Any]]


class EmulatorError(Exception):
    """The emulator refused a control request; `status`, `code` and `message` come from its
    `{"code", "message"}` envelope (`code` is None when the answer was not an envelope)."""

    def __init__(self, method: str, path: str, status: int, code: int | None, message: str):
        self.method, self.path, self.status, self.code, self.message = method, path, status, code, message
        super().__init__(f"{method} {path}: HTTP {status}" + (f", code {code}" if code is not None else "")
                         + f": {message}")


@dataclass(frozen=True)
class Reply:
    """An HTTP answer, the same whether it came over the network or from the in-process app."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


@dataclass(frozen=True)
class Sandbox:
    """What `POST /_emulator/sandboxes` hands out: a client with fresh keys and its own state."""

    id: str
    client_id: str
    payment_key: str
    search_key: str
    base_url: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> "Sandbox":
        return cls(body["id"], body["client_id"], body["payment_key"], body["search_key"], body["base_url"])


class _Network:
    """Requests over HTTP(S), with one connection pool per client."""

    def __init__(self, verify: bool | str, timeout: float):
        import requests  # here, not at import: `serve` loads this module with its commands, and needs no HTTP client

        self.session = requests.Session()
        self.session.trust_env = False  # a CI proxy must not sit between a test and its emulator
        self.verify, self.timeout = verify, timeout

    def send(self, method: str, url: str, *, headers: Mapping[str, str], json: Any = None,
             data: bytes | None = None, params: Mapping[str, Any] | None = None, timeout: float | None = None) -> Reply:
        response = self.session.request(method, url, headers=dict(headers), json=json, data=data, params=params,
                                        verify=self.verify, timeout=timeout or self.timeout, allow_redirects=False)
        return Reply(response.status_code, response.headers, response.content)

    def close(self) -> None:
        self.session.close()


class _InProcess:
    """The same requests, handed to a Flask app's test client (no server, no port)."""

    def __init__(self, app):
        self.app = app
        self.test_client = app.test_client()

    def send(self, method: str, url: str, *, headers: Mapping[str, str], json: Any = None,
             data: bytes | None = None, params: Mapping[str, Any] | None = None, timeout: float | None = None) -> Reply:
        parts = urlsplit(url)
        kwargs: dict[str, Any] = {"json": json} if json is not None else {"data": data}
        if params:
            kwargs["query_string"] = params
        elif parts.query:  # a query written in the URL goes as written, as over the network
            kwargs["query_string"] = parts.query
        response = self.test_client.open(parts.path, method=method, headers=dict(headers),
                                         base_url=f"{parts.scheme}://{parts.netloc}", **kwargs)
        return Reply(response.status_code, dict(response.headers), response.get_data())

    def close(self) -> None:
        pass


class EmulatorClient:
    """Drives one emulator (or one sandbox of it) through its control API.

    `base_url` is where the emulator answers (`http://127.0.0.1:8080`). `sandbox` binds the
    client to a sandbox, by id or by the `Sandbox` that `create_sandbox` returned: the gateway's
    API and the control API are then reached under `{base_url}/_sandbox/<id>`. `control_token`
    is sent as `X-Emulator-Token` (servers started with `--control-token`); `verify` is
    requests' (False, or a CA bundle's path for an emulator serving HTTPS with its own
    certificate). `.url`, `.client_id`, `.payment_key` and `.search_key` are what merchant code
    under test should be configured with.
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8080", *, sandbox: str | Sandbox | None = None,
                 control_token: str | None = None, verify: bool | str = True, timeout: float = 30.0,
                 _transport=None):
        self.base_url = base_url.rstrip("/")
        self.control_token = control_token
        self.verify = verify
        self.timeout = timeout
        self._transport = _transport or _Network(verify, timeout)
        self._sandbox_info = sandbox if isinstance(sandbox, Sandbox) else None
        self.sandbox: str | None = sandbox.id if isinstance(sandbox, Sandbox) else sandbox
        self.clock = Clock(self)
        self.callbacks = Callbacks(self)
        self.gateway = Gateway(self)

    @classmethod
    def for_app(cls, app, *, sandbox: str | Sandbox | None = None, control_token: str | None = None,
                base_url: str = "http://localhost") -> "EmulatorClient":
        """A client of an in-process app (`payletter_emulator.create_app(db=":memory:")`), through
        Flask's test client: no server, no port; `.app` and `.test_client` are at hand. The requests
        name `base_url`'s host (their Host header), which the URLs the app hands out start with."""
        return cls(base_url, sandbox=sandbox, control_token=control_token, _transport=_InProcess(app))

    def __repr__(self) -> str:
        return f"EmulatorClient({self.url!r})"

    # --- what merchant code under test is configured with -------------------------------------
    @property
    def url(self) -> str:
        """The base URL of the gateway's API for this client: the sandbox's, or the root."""
        return f"{self.base_url}/_sandbox/{self.sandbox}" if self.sandbox else self.base_url

    @property
    def client_id(self) -> str:
        return self._keys()[0]

    @property
    def payment_key(self) -> str:
        return self._keys()[1]

    @property
    def search_key(self) -> str:
        return self._keys()[2]

    def _keys(self) -> tuple[str, str, str]:
        if not self.sandbox:
            return PAY_TEST
        if self._sandbox_info is None:
            found = [s for s in self.sandboxes() if s.id == self.sandbox]
            if not found:
                raise EmulatorError("GET", "/_emulator/sandboxes", 404, None, f"no sandbox {self.sandbox}")
            self._sandbox_info = found[0]
        info = self._sandbox_info
        return info.client_id, info.payment_key, info.search_key

    @property
    def ca_file(self) -> str | None:
        """The CA certificate this client trusts an HTTPS emulator with (give it to merchant code
        under test as its `verify=`); None when it uses the system's."""
        return self.verify if isinstance(self.verify, str) else None

    @property
    def app(self):
        """The Flask app of an in-process client (`for_app`)."""
        return getattr(self._transport, "app", None)

    @property
    def test_client(self):
        """The Flask test client of an in-process client (`for_app`)."""
        return getattr(self._transport, "test_client", None)

    def close(self) -> None:
        self._transport.close()

    # --- plumbing ------------------------------------------------------------------------------
    def send(self, method: str, path: str, *, root: bool = False, headers: Mapping[str, str] | None = None,
             json: Any = None, data: bytes | None = None, params: Mapping[str, Any] | None = None,
             timeout: float | None = None) -> Reply:
        """One request to `path` under this client's URL (the emulator's root with `root=True`)."""
        url = (self.base_url if root else self.url) + path
        return self._transport.send(method, url, headers=headers or {}, json=json, data=data,
                                    params={k: v for k, v in (params or {}).items() if v is not None},
                                    timeout=timeout)

    def control(self, method: str, path: str, body: Any = None, *, root: bool = False,
                params: Mapping[str, Any] | None = None, data: bytes | None = None,
                content_type: str | None = None, timeout: float | None = None) -> Any:
        """One control operation (`path` under /_emulator); the decoded JSON answer, or
        EmulatorError for anything but a 2xx."""
        headers = {"X-Emulator-Token": self.control_token} if self.control_token else {}
        if content_type:
            headers["Content-Type"] = content_type
        if body is None and data is None and method in ("POST", "PUT"):
            body = {}
        reply = self.send(method, "/_emulator" + path, root=root, headers=headers, json=body, data=data,
                          params=params, timeout=timeout)
        if not 200 <= reply.status_code < 300:
            try:
                envelope = reply.json()
                code, message = envelope["code"], envelope["message"]
            except (ValueError, KeyError, TypeError):
                code, message = None, reply.text[:500] or "(empty answer)"
            raise EmulatorError(method, "/_emulator" + path, reply.status_code, code, message)
        return reply.json() if reply.content else None

    # --- the payer -----------------------------------------------------------------------------
    def approve(self, token: int | str, *, ignore_expiry: bool = False, **choices: Any) -> dict:
        """Finish the payment as the payer would (`option`, `card_number`, `install_month`,
        `bank_code`); `{"return_url", "fields"}`: what the browser would POST to return_url.
        Once the payment page has expired (30 minutes after the request, on the emulator's
        clock) it is refused with 410, as the page is, unless `ignore_expiry=True`.
        The callback's first attempt follows in the background (see `callbacks.wait`)."""
        body = {**choices, "ignore_expiry": True} if ignore_expiry else choices
        return self.control("POST", f"/payments/{token}/approve", body)

    def decline(self, token: int | str, code: str | int | None = None, message: str | None = None) -> dict:
        """The payer's payment fails (default code 6001; `6002` or `"6002"`: a code is text on
        the wire, as in the return fields); the same shape as `approve`."""
        body = {k: v for k, v in (("code", None if code is None else str(code)), ("message", message))
                if v is not None}
        return self.control("POST", f"/payments/{token}/decline", body)

    def abandon(self, token: int | str) -> dict:
        """The payer presses cancel; `{"redirect_url"}`."""
        return self.control("POST", f"/payments/{token}/abandon")

    def deposit(self, tid: str, amount: int | None = None) -> dict:
        """The payer deposits into a virtual account (the amount due unless told); the payment.
        The callback follows in the background."""
        return self.control("POST", f"/virtual-accounts/{tid}/deposit", {} if amount is None else {"amount": amount})

    # --- state ---------------------------------------------------------------------------------
    def payment(self, ref: int | str) -> dict:
        """One payment with its cancellations, by tid or token."""
        return self.control("GET", f"/payments/{ref}")

    def payments(self, *, client_id: str | None = None, status: str | None = None) -> list[dict]:
        """Every payment, in token order (all the pages)."""
        return self.pages("/payments", "payments", {"client_id": client_id, "status": status})

    def requests(self, limit: int | None = None) -> list[dict]:
        """The journal of gateway API requests and responses, newest last: the last `limit`
        entries, or every entry kept; page by page (the server answers LIST_PAGE at most at once)."""
        entries: list[dict] = []
        params: dict[str, Any] = {}
        while limit is None or len(entries) < limit:
            if limit is not None:
                params["limit"] = min(limit - len(entries), LIST_PAGE)
            page = self.control("GET", "/requests", params=params)
            entries[:0] = page["requests"]
            if not page.get("earlier"):
                break
            params["before"] = page["earlier"]
        return entries

    def assert_requested(self, path: str, times: int | None = None, **fields: Any) -> list[dict]:
        """Assert that the journal holds requests to `path` ("payments/cancel", or
        "/v1.0/payments/cancel") whose body has these field values (a GET: its query parameters),
        `times` of them (at least one when None); the matching entries. On a miss, the
        AssertionError shows the closest requests the journal holds, each with what differs."""
        from .journal_tools import assert_requested

        return assert_requested(self.requests(), path, times, fields)

    def pages(self, path: str, key: str, params: Mapping[str, Any]) -> list[dict]:
        """Every item of a control list, following its `next` cursor page by page."""
        items: list[dict] = []
        params = dict(params)
        while True:
            page = self.control("GET", path, params=params)
            items.extend(page[key])
            if not page.get("next"):
                return items
            params["after"] = page["next"]

    def reset(self) -> dict:
        """Forget payments, callbacks and the journal; the clock returns to real time."""
        return self.control("POST", "/reset")

    def health(self) -> dict:
        return self.control("GET", "/health", root=True)

    # --- scenarios -----------------------------------------------------------------------------
    def use_scenario(self, *scenarios: ScenarioRef) -> dict:
        """Put a scenario in force: the name of a shipped one (`"flaky-callbacks"`), a file's
        path, or a document (a dict); several are merged in order. Files are read and checked
        here, so a broken one fails with its file, place and rule. The scenario's view."""
        return self.control("PUT", "/scenario", scenario_document(scenarios))

    def clear_scenario(self) -> dict:
        """Back to the gateway's default behaviour."""
        return self.control("DELETE", "/scenario")

    def scenario(self) -> dict:
        """The scenario in force, how often each rule applied, its timed jobs."""
        return self.control("GET", "/scenario")

    # --- sandboxes and the run's coverage (the emulator's root) ----------------------------------
    def create_sandbox(self, scenario: ScenarioRef | Iterable[ScenarioRef] | None = None) -> Sandbox:
        """A new sandbox: its own client and keys, payments, clock, scenario, callbacks, journal."""
        body = {} if scenario is None else {"scenario": scenario_document(_as_list(scenario))}
        return Sandbox.from_json(self.control("POST", "/sandboxes", body, root=True))

    def new_sandbox(self, scenario: ScenarioRef | Iterable[ScenarioRef] | None = None) -> "EmulatorClient":
        """`create_sandbox`, and a client bound to it (same server, token and transport)."""
        return self.bound_to(self.create_sandbox(scenario))

    def bound_to(self, sandbox: str | Sandbox) -> "EmulatorClient":
        """A client of the same emulator, bound to `sandbox`."""
        return EmulatorClient(self.base_url, sandbox=sandbox, control_token=self.control_token, verify=self.verify,
                              timeout=self.timeout, _transport=self._transport)

    def sandboxes(self) -> list[Sandbox]:
        body = self.control("GET", "/sandboxes", root=True)
        return [Sandbox.from_json(s) for s in (body["sandboxes"] if isinstance(body, dict) else body)]

    def delete_sandbox(self, sandbox: str | Sandbox) -> None:
        self.control("DELETE", f"/sandboxes/{sandbox.id if isinstance(sandbox, Sandbox) else sandbox}", root=True)

    def coverage(self) -> dict:
        """What the run exercised (endpoints, error codes, pgcodes, rules, callback outcomes)."""
        return self.control("GET", "/coverage", root=True)

    def clear_coverage(self) -> None:
        self.control("DELETE", "/coverage", root=True)


def scenario_document(scenarios: Iterable[ScenarioRef]) -> dict:
    """One scenario document from names of shipped scenarios, file paths and documents, merged
    in order; files are checked here (payletter_emulator.engines.scenario.ScenarioError names what is wrong)."""
    from ..engines import scenario as scenario_files  # YAML and JSON Schema only when a scenario is used

    documents = [dict(s) if isinstance(s, Mapping) else scenario_files.read(os.fspath(s)) for s in scenarios]
    if not documents:
        raise ValueError("name at least one scenario")
    return documents[0] if len(documents) == 1 else scenario_files.merge(documents)


def _as_list(scenario) -> list:
    if isinstance(scenario, (str, os.PathLike, Mapping)):
        return [scenario]
    return list(scenario)


class CallbackWaitError(AssertionError):
    """`callbacks.wait` found no notification in the wanted state once nothing was due; the
    message says what each notification went through (the merchant's last answer) and, when a
    retry is due later, how far to advance the clock (`retry_in` seconds, or None)."""

    def __init__(self, tid: str | None, status: str | None, found: list[dict], flushed: dict,
                 retry_in: float | None = None, command: str | None = None):
        self.tid, self.status, self.found, self.flushed, self.retry_in = tid, status, found, flushed, retry_in
        super().__init__(describe_wait(tid, status, found, flushed, retry_in, command))

    def for_command(self, command: str) -> "CallbackWaitError":
        """The same refusal, its clock advance written as `command` (the CLI's) rather than Python."""
        return CallbackWaitError(self.tid, self.status, self.found, self.flushed, self.retry_in, command)


class Clock:
    """The emulator's clock (`client.clock`): the only time payments, expiries and callback
    retries follow. Moving it makes due at once what the new time reaches."""

    def __init__(self, client: EmulatorClient):
        self._client = client

    def state(self) -> dict:
        """`{"now": "<ISO 8601>", "frozen": bool}`."""
        return self._client.control("GET", "/clock")

    def now(self) -> datetime:
        return datetime.fromisoformat(self.state()["now"])

    @property
    def frozen(self) -> bool:
        return self.state()["frozen"]

    def advance(self, seconds: float | timedelta = 0, *, minutes: float = 0, hours: float = 0,
                days: float = 0) -> datetime:
        """Move forward (`advance(minutes=5)`, `advance(timedelta(days=3))`); the new time.
        Callbacks and timed jobs the new time makes due go out right away; `callbacks.flush()`
        or `callbacks.wait(...)` returns once they have."""
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        total = seconds + 60 * minutes + 3600 * hours + 86400 * days
        return self._moment(self._client.control("POST", "/clock", {"advance_seconds": total}))

    def set(self, moment: datetime | str) -> datetime:
        """Jump to `moment` (a datetime, or ISO 8601; without an offset it is read as KST)."""
        text = moment.isoformat() if isinstance(moment, datetime) else moment
        return self._moment(self._client.control("POST", "/clock", {"set": text}))

    def freeze(self) -> datetime:
        """Time stands still until moved or unfrozen (a reset unfreezes it)."""
        return self._moment(self._client.control("POST", "/clock", {"freeze": True}))

    def unfreeze(self) -> datetime:
        return self._moment(self._client.control("POST", "/clock", {"freeze": False}))

    def real(self) -> datetime:
        """Back to real time (no offset, not frozen), without a reset."""
        return self._moment(self._client.control("POST", "/clock", {"real": True}))

    @staticmethod
    def _moment(state: dict) -> datetime:
        return datetime.fromisoformat(state["now"])


class Callbacks:
    """The callback ledger (`client.callbacks`): every notification with its attempts."""

    def __init__(self, client: EmulatorClient):
        self._client = client

    def list(self, tid: str | None = None, status: str | None = None) -> list[dict]:
        """Notifications, oldest first (`status`: pending, delivered or failed), all the pages."""
        return self._client.pages("/callbacks", "callbacks", {"tid": tid, "status": status})

    def get(self, callback_id: int) -> dict:
        return self._client.control("GET", f"/callbacks/{callback_id}")

    def flush(self, max_seconds: float = 30.0) -> dict:
        """Send every attempt due now; returns once none is left (or `max_seconds` passed):
        `{"idle", "pending", "next_attempt_at"}`. A test never needs to sleep for a callback."""
        return self._client.control("POST", "/callbacks/flush", {"max_seconds": max_seconds},
                                    timeout=max_seconds + self._client.timeout)

    def resend(self, callback_id: int) -> dict:
        """One extra attempt now, whatever the status; `{"attempt", "callback"}`."""
        return self._client.control("POST", f"/callbacks/{callback_id}/resend")

    def wait(self, tid: str | None = None, status: str | None = "delivered", timeout: float = 10.0) -> dict:
        """The first notification (of `tid`, if given) whose status is `status`, once every
        attempt due now has been made.

        It flushes (sending what is due on the emulator's clock and waiting for attempts in
        flight, up to `timeout` seconds), then looks. It never moves the clock: a retry is due
        5 minutes of emulator time after the last attempt, so if your endpoint refused the first
        attempt, advance the clock (`clock.advance(minutes=5)`) before waiting. When nothing
        matches once nothing is due, it raises CallbackWaitError describing each notification.
        """
        deadline = time.monotonic() + timeout
        while True:
            flushed = self.flush(max_seconds=max(0.0, deadline - time.monotonic()))
            found = self.list(tid=tid)
            matching = [c for c in found if status is None or c["status"] == status]
            if matching:
                return matching[0]
            if flushed["idle"] or time.monotonic() >= deadline:
                retry_in = self._retry_in(found) if flushed["idle"] else None
                raise CallbackWaitError(tid, status, found, flushed, retry_in)

    def _retry_in(self, found: list[dict]) -> float | None:
        """Seconds of emulator time until the first retry due, if any is scheduled."""
        due = [datetime.fromisoformat(c["next_attempt_at"]) for c in found
               if c["status"] == "pending" and c.get("next_attempt_at")]
        if not due:
            return None
        return max(0.0, (min(due) - self._client.clock.now()).total_seconds())


class Gateway:
    """The gateway's REST API as merchant code calls it (`client.gateway`), with this client's
    keys: handy with an in-process emulator, where there is no URL to give merchant code."""

    def __init__(self, client: EmulatorClient):
        self._client = client

    def post(self, path: str, body: Any = None, *, key: str | None = None) -> Reply:
        """POST JSON to `path` (`/v1.0/payments/request`) with `PLKEY <payment key>` (or `key`)."""
        key = self._client.payment_key if key is None else key
        return self._client.send("POST", path, headers={"Authorization": f"PLKEY {key}"}, json=body)

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, key: str | None = None) -> Reply:
        """GET `path` with `PLKEY <search key>` (or `key`)."""
        key = self._client.search_key if key is None else key
        return self._client.send("GET", path, headers={"Authorization": f"PLKEY {key}"}, params=params)


def attempt_outcome(attempt: dict, body_chars: int = 240) -> str:
    """What one attempt came to, as a person reads it: the merchant's status and body when it
    answered (a 400 with its reason is why a callback is not acknowledged), else what went wrong."""
    status = attempt.get("http_status")
    if status is None:
        return attempt.get("error") or "no answer yet"
    body = (attempt.get("response_body") or "").strip()
    if len(body) > body_chars:
        body = body[:body_chars] + "..."
    answer = f"HTTP {status} " + (body or "(empty body)")
    return answer + (f" ({attempt['error']})" if attempt.get("error") else "")


def advance_hint(seconds: float, command: str | None = None) -> str:
    """How to move the emulator's clock by at least `seconds`: the client's call, or `command`
    (the CLI's `payletter-emulator clock advance`) with its DURATION."""
    if seconds > 60:  # whole minutes, rounded up: a little further is harmless, and reads as the policy's delays
        minutes = math.ceil(seconds / 60)
        return f"{command} {minutes}m" if command else f"clock.advance(minutes={minutes})"
    whole = max(1, math.ceil(seconds))
    return f"{command} {whole}s" if command else f"clock.advance({whole})"


def describe_wait(tid: str | None, status: str | None, found: list[dict], flushed: dict,
                  retry_in: float | None, command: str | None = None) -> str:
    """Why `callbacks.wait` found nothing: each notification, its merchant's last answer, and how
    to go on (the clock advance written for the client, or as the CLI's `command`)."""
    which = f"tid {tid}" if tid else "any payment"
    if not found:
        return f"no notification for {which}: nothing was queued (was the payment approved, or deposited?)"
    lines = [f"no {status + ' ' if status else ''}notification for {which} once nothing was due:"]
    for callback in found:
        last = callback["attempts"][-1] if callback["attempts"] else None
        answer = "no attempt yet" if last is None else f"last attempt: {attempt_outcome(last)}"
        nxt = f", next attempt at {callback['next_attempt_at']}" if callback.get("next_attempt_at") else ""
        lines.append(f"  #{callback['id']} {callback['status']}, {callback['attempts_made']} attempt(s); {answer}{nxt}")
    if not flushed["idle"]:
        lines.append("  attempts were still being made when the timeout passed")
    elif retry_in is not None:
        lines.append(f"  a retry is due later on the emulator's clock: advance it ({advance_hint(retry_in, command)}), "
                     "then wait")
    return "\n".join(lines)
