"""Delivers the callback outbox: each due attempt once, on the emulator's clock, from any
number of threads and processes sharing one database."""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Callable

from ..config import Settings
from ..domain.callback_policy import DUPLICATE, FIRST, RESEND, RETRY, Listening, Outcome, Policy, next_state
from ..domain.clock import KST, iso
from ..storage import Storage
from . import handover, sender

log = logging.getLogger("payletter_emulator.delivery.dispatcher")
POLL_SECONDS = 0.2  # how soon a clock moved by another process is noticed
# When a flush looks again at what other processes are sending (it is not told when they finish):
# soon at first, then less often, up to the second bound below.
LOOK_AGAIN_FIRST, LOOK_AGAIN_MOST = 0.0005, 0.005
LEASE_MARGIN = 5.0  # seconds a claim outlives the attempt's timeout


@dataclass(frozen=True)
class DeliverySettings:
    policy: Policy
    timeout: float
    concurrency: int
    allowed_hosts: tuple[str, ...]
    listening: Listening  # where no attempt may connect: the emulator itself

    @classmethod
    def of(cls, settings: Settings) -> DeliverySettings:
        """What delivery needs of the emulator's settings (their one home: config.py). The
        server's address is its --host and the port it listens on (`serve` puts the one it got
        for --port 0 in the settings); sandboxes share it."""
        return cls(Policy(settings.callback_interval, settings.callback_retries), settings.callback_timeout,
                   settings.callback_concurrency, settings.callback_hosts,
                   Listening(settings.host, (settings.port,) if settings.port else ()))

    @property
    def lease(self) -> float:
        return self.timeout + LEASE_MARGIN


class Dispatcher:
    """`now` gives the emulator's time (epoch milliseconds) as every process sees it; due
    times in the outbox are epoch milliseconds of emulator time, claims' expiries wall time.

    A background thread sends what falls due; `flush` sends everything due from the calling
    thread and returns once nothing due is left or being sent; `resend` makes one extra
    attempt now. All three claim a callback before sending it.
    """

    def __init__(self, storage: Storage, now: Callable[[], int], settings: DeliverySettings,
                 send=sender.send, wall: Callable[[], float] = time.time,
                 jobs: Callable[[int], int] = lambda now: 0, send_async=sender.send_async):
        self.storage = storage
        self.now = now
        self.settings = settings
        self.jobs = jobs  # runs the timed jobs due at a moment (a scenario's deposits); how many ran
        self._send = send
        self._send_async = send_async
        self._loop_senders: asyncio.Semaphore | None = None  # in the serving process's event loop
        self._wall = wall
        self._wake = threading.Event()
        self._in_flight = 0
        self._finished = 0  # attempts this process has finished: a flush waits for the count to move
        self._idle = threading.Condition()
        self._pid = None
        self._pool = None
        self.thread: threading.Thread | None = None  # the background thread of this process
        self._stopped = threading.Event()
        # Where every change is told (instance.py wires storage/pg_news.py's news to `wake`): how
        # long to wait for work instead of polling; None, until woken.
        self.until_next: Callable[[], float | None] | None = None

    # --- the background thread ---
    def start(self) -> None:
        """Start (again, in a forked worker) the pool and the background thread of this process."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="callback")
        self.thread = threading.Thread(target=self._run, name="callback-dispatcher", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def claim_expiry(self) -> float:
        """The wall time a claim taken now holds until."""
        return self._wall() + self.settings.lease

    def send_claimed(self, callback: dict) -> None:
        """A callback claimed where it was queued (due at once): its first attempt, made now,
        with no round of the background thread in between, once the answer that queued it has
        left: in the serving process's event loop where there is one, else by this process's
        senders. Once stopped, the claim lapses and whoever serves next sends it."""
        self.start()

        def submit():
            try:
                self._pool.submit(self._attempt_scheduled, callback)
            except RuntimeError:  # the pool was shut down (the emulator is closing)
                pass

        async def in_loop():
            if self._loop_senders is None:
                self._loop_senders = asyncio.Semaphore(self.settings.concurrency)
            async with self._loop_senders:
                await self._attempt(callback, *_scheduled(callback), self._send_async)

        handover.later(submit, in_loop)

    def wake(self) -> None:
        """Something was queued or the clock moved: look again now."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                if self.run_due():
                    continue
                wait = self._seconds_to_next_due()
            except RuntimeError as exc:
                if self._stopped.is_set() or "shutdown" in str(exc):  # the emulator or the interpreter is ending
                    return
                log.exception("callback dispatcher round failed")
                wait = POLL_SECONDS
            except Exception:  # a broken round must not stop delivery for good
                log.exception("callback dispatcher round failed")
                wait = POLL_SECONDS
            self._wake.wait(wait)
            self._wake.clear()

    def _seconds_to_next_due(self) -> float | None:
        if self.until_next is not None:
            return self.until_next()
        next_due = self.storage.next_callback_due(self.now())
        return POLL_SECONDS if next_due is None else max(0.0, min(POLL_SECONDS, (next_due - self.now()) / 1000))

    # --- delivering ---
    def run_due(self) -> int:
        """One round: the timed jobs due now, then the callbacks due now, sent in parallel; how
        many of both."""
        self.start()
        ran = self.jobs(self.now())
        claimed = self.storage.claim_due_callbacks(self.now(), self._wall(), self.settings.lease,
                                                   limit=self.settings.concurrency * 4)
        if claimed:
            list(self._pool.map(self._attempt_scheduled, claimed))
        return ran + len(claimed)

    def _attempt_scheduled(self, callback: dict) -> None:
        _run_through(self._attempt(callback, *_scheduled(callback), self._sending_now))

    async def _sending_now(self, url: str, body: dict, **options) -> Outcome:
        """The synchronous sender, as the coroutine `_attempt` awaits: it never suspends."""
        return self._send(url, body, **options)

    async def _attempt(self, callback: dict, kind: str, number: int, send) -> dict | None:
        """Make one attempt (`number` counts the policy's attempts) with `send` (a coroutine
        function: `send_async`, or `_sending_now` on a sender's thread) and record it; the
        attempt as recorded, or None if a reset took the notification back meanwhile."""
        with self._idle:
            self._in_flight += 1
        try:
            scheduled = callback["next_attempt_at"]
            attempt, outcome = await self._send_once(callback, kind, number,
                                                     _moment(scheduled) if kind != RESEND else None, send)
            if not outcome.sent:
                return None
            duplicate = None
            if outcome.acknowledged and kind != RESEND and callback["fault"].get("duplicate"):
                # Sent again while the claim still holds: nobody (a flush) sees this one idle before.
                duplicate, _ = await self._send_once(callback, DUPLICATE, number + 1, None, send)
            status, made, due = next_state(self.settings.policy, kind, callback["status"],
                                           callback["attempts_made"], scheduled, outcome)
            release = self.now() if outcome.acknowledged and kind != RESEND else None  # held ones arrive after it
            recorded = self.storage.finish_attempt(callback["id"], callback["claim"], attempt, status, made, due,
                                                   extra=duplicate, release_held_at=release)
            return _attempt_view(recorded) if recorded else None
        finally:
            with self._idle:
                self._in_flight -= 1
                self._finished += 1
                self._idle.notify_all()

    async def _send_once(self, callback: dict, kind: str, number: int, scheduled_at: str | None,
                         send) -> tuple[dict, Outcome]:
        """One POST; the attempt (on the ledger, as "sending", from the moment the connection
        is open and before the request leaves) and what it saw."""
        attempt = {"kind": kind, "at": _moment(self.now()), "wall_time": _wall_moment(self._wall()),
                   "scheduled_at": scheduled_at, "number": number}

        def on_connected() -> bool:
            started = self.storage.start_attempt(callback["id"], callback["claim"], attempt, self._wall(),
                                                 self.settings.lease)
            if started is not None:
                attempt.update(started)
            return started is not None

        outcome: Outcome = await send(callback["url"], callback["body"], timeout=self.settings.timeout,
                                      allowed_hosts=self.settings.allowed_hosts, listening=self.settings.listening,
                                      on_connected=on_connected)
        fault = callback["fault"]
        if kind in (FIRST, RETRY) and number <= fault.get("fail_first", 0) and outcome.acknowledged:
            # The merchant answered well, but the scenario says the gateway never heard it.
            outcome = replace(outcome, acknowledged=False,
                              error=f"scenario rule {fault['rule']!r}: attempt {number} of the first "
                                    f"{fault['fail_first']} counts as failed")
        attempt.update(http_status=outcome.http_status, response_body=outcome.response_body,
                       error=outcome.error, latency_ms=outcome.latency_ms)
        return attempt, outcome

    def flush(self, max_seconds: float = 30.0) -> dict:
        """Send everything due, waiting for what other threads or processes are sending,
        until nothing due is left or `max_seconds` have passed."""
        deadline = time.monotonic() + max_seconds
        look_again = LOOK_AGAIN_FIRST
        while True:
            with self._idle:
                # This process's attempts first: looking for more meanwhile only slows them down.
                self._idle.wait_for(lambda: self._in_flight == 0, timeout=max(0.0, deadline - time.monotonic()))
                finished = self._finished
            sent = self.run_due()
            handover.run_now()  # the first attempts of callbacks this round queued (timed jobs)
            backlog = self.storage.callback_backlog(self.now(), self._wall())
            idle = not backlog["busy"] and self.storage.jobs_due(self.now()) == 0
            if idle or time.monotonic() > deadline:
                break
            if not sent:  # what is left is being sent elsewhere: look again once this process's
                self._wait_for_an_attempt(finished, look_again)  # background thread finishes an attempt, or shortly
                look_again = min(2 * look_again, LOOK_AGAIN_MOST)
        return _flushed(idle, backlog)

    def flushed_already(self) -> dict | None:
        """What a flush would answer at once, without waiting or sending: nothing due, being sent
        or in a timed job due now, anywhere; None if there is."""
        with self._idle:
            if self._in_flight:
                return None
        backlog = self.storage.callback_backlog(self.now(), self._wall())
        if backlog["busy"] or self.storage.jobs_due(self.now()):
            return None
        return _flushed(True, backlog)

    def _wait_for_an_attempt(self, finished: int, longest: float) -> None:
        """Until this process has finished more than `finished` attempts, or `longest` seconds
        (what another process sends is only seen by looking again)."""
        with self._idle:
            self._idle.wait_for(lambda: self._finished != finished, timeout=longest)

    def resend(self, callback_id: int) -> dict | None:
        """One extra attempt now, whatever the notification's status; None while it is being sent."""
        self.start()
        callback = self.storage.claim_callback(callback_id, self._wall(), self.settings.lease)
        if callback is None:
            return None
        return _run_through(self._attempt(callback, RESEND, 0, self._sending_now))

    def wait_in_flight(self) -> None:
        """Until the attempts this process is making have finished (a reset waits for them, so
        that nothing from before it reaches a merchant after it)."""
        handover.run_now()
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=self.settings.lease)


def _flushed(idle: bool, backlog: dict) -> dict:
    return {"idle": idle, "pending": backlog["pending"], "next_attempt_at": _moment(backlog["next_due"])}


def _scheduled(callback: dict) -> tuple[str, int]:
    """The kind and number of a callback's next scheduled attempt."""
    made = callback["attempts_made"]
    return (FIRST if made == 0 else RETRY), made + 1


def _run_through(coroutine):
    """Run a coroutine that never suspends (its sender is synchronous) to its end, here."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return finished.value
    coroutine.close()
    raise RuntimeError("an attempt made on a sender's thread waited for an event loop")


def callback_view(callback: dict) -> dict:
    """A notification as tests see it: no claim bookkeeping, times as ISO 8601."""
    shown = {k: v for k, v in callback.items() if k not in ("claimed_by", "claim_expires", "claim")}
    shown["next_attempt_at"] = _moment(callback["next_attempt_at"]) if callback["status"] == "pending" else None
    shown["held"] = callback["status"] == "pending" and callback["next_attempt_at"] is None
    return shown


def _attempt_view(attempt: dict) -> dict:
    return {k: v for k, v in attempt.items() if k != "callback_id"}


def _wall_moment(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, KST).isoformat(timespec="milliseconds")


def _moment(milliseconds: int | None) -> str | None:
    return None if milliseconds is None else iso(datetime.fromtimestamp(milliseconds / 1000, KST))
