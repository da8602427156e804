"""The parts of an EmulatorClient (emulator/client.py) a test reaches through it: its clock
(`client.clock`), its callback ledger (`client.callbacks`) and the gateway's REST API with its
keys (`client.gateway`). Import them from payletter_emulator.client, as before."""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from .client import EmulatorClient, Reply


class CallbackWaitError(AssertionError):
    """`callbacks.wait` found no notification in the wanted state once nothing was due."""


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
                raise CallbackWaitError(_describe_wait(tid, status, found, flushed))


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


def _describe_wait(tid: str | None, status: str | None, found: list[dict], flushed: dict) -> str:
    which = f"tid {tid}" if tid else "any payment"
    if not found:
        return f"no notification for {which}: nothing was queued (was the payment approved, or deposited?)"
    lines = [f"no {status + ' ' if status else ''}notification for {which} once nothing was due:"]
    for callback in found:
        last = callback["attempts"][-1] if callback["attempts"] else None
        answer = ("no attempt yet" if last is None else
                  f"last attempt: {last.get('error') or 'HTTP ' + str(last.get('http_status'))}")
        nxt = f", next attempt at {callback['next_attempt_at']}" if callback.get("next_attempt_at") else ""
        lines.append(f"  #{callback['id']} {callback['status']}, {callback['attempts_made']} attempt(s); {answer}{nxt}")
    if not flushed["idle"]:
        lines.append("  attempts were still being made when the timeout passed")
    elif any(c["status"] == "pending" for c in found):
        lines.append("  a retry is due later on the emulator's clock: advance it (clock.advance(minutes=5)), then wait")
    return "\n".join(lines)
