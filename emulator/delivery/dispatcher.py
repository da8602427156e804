"""Delivers the callback outbox: each due attempt once, on the emulator's clock, from any number of
processes sharing one database. A process makes every attempt in its one event loop
(waits.process_loop). A caller on any other thread (a flush, a reset or a resend on a request
thread, a test's client) hands its work to that loop and gets a future of it."""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Callable

from ..config import Settings
from ..domain.callback_policy import (DOMESTIC, DUPLICATE, FIRST, GATEWAYS, RESEND, RETRY, Listening, Outcome,
                                      Policy, next_state)
from ..domain.clock import KST, iso
from ..domain.errors import GatewayError
from ..storage import Storage
from ..waits import process_loop, soon
from . import sender

log = logging.getLogger("payletter_emulator.delivery.dispatcher")
POLL_SECONDS = 0.2  # how soon a clock moved by another process is noticed
# When a flush looks again at what other processes are sending (it is not told when they finish):
# soon at first, then less often, up to the second bound below.
LOOK_AGAIN_FIRST, LOOK_AGAIN_MOST = 0.0005, 0.005
LEASE_MARGIN = 5.0  # seconds a claim outlives the attempt's timeout
UNKNOWN = Outcome(None, "", "", 0.0, acknowledged=False)  # an attempt whose answer nobody recorded

_lock = threading.Lock()
_dispatchers: weakref.WeakSet[Dispatcher] = weakref.WeakSet()


async def finish() -> None:
    """In the loop of a serving process that stops: no attempt starts any more, and those in flight
    end (each within its deadline), so that none is left for a restart to make again."""
    here = [dispatcher for dispatcher in _dispatchers if dispatcher._pid == os.getpid()]
    for dispatcher in here:
        dispatcher._stopped = True
        if dispatcher._runner is not None:
            dispatcher._runner.cancel()
    attempts = {task for dispatcher in here for task in dispatcher._attempts}
    if attempts:
        await asyncio.wait(attempts, timeout=max(dispatcher.settings.lease for dispatcher in here))


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

    A task of the loop sends what falls due; `flush` sends everything due and returns once
    nothing due is left or being sent; `resend` makes one extra attempt now. Each claims a
    callback before sending it.
    """

    def __init__(self, storage: Storage, now: Callable[[], int], settings: DeliverySettings,
                 send=sender.send, wall: Callable[[], float] = time.time,
                 jobs: Callable[[int], int] = lambda now: 0):
        self.storage = storage
        self.now = now
        self.settings = settings
        self.jobs = jobs  # runs the timed jobs due at a moment (a scenario's deposits); how many ran
        self._send = send  # a coroutine function: sender.send
        self._wall = wall
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None  # made by `start`, once per process, as the two below
        self._senders: asyncio.Semaphore | None = None
        self._attempts: set[asyncio.Task] = set()  # this process's, in flight
        self._stopped = False
        self._unreachable = False  # the database was out of reach at the last look: said once, not every round
        # Where every change is told (instance.py wires storage/pg_news.py's news to `wake`): how
        # long to wait for work instead of polling; None, until woken.
        self.until_next: Callable[[], float | None] | None = None

    # --- in the loop, from any thread ---
    def start(self) -> None:
        """Start (again, in a forked worker) the task that sends what falls due, in this process's loop."""
        if self._pid == os.getpid():
            return
        with _lock:
            if self._pid == os.getpid():
                return
            self._loop = process_loop()
            self._wake, self._senders = asyncio.Event(), asyncio.Semaphore(self.settings.concurrency)
            self._attempts = set()
            _dispatchers.add(self)
            self._pid = os.getpid()
        self._soon(self._begin)

    def _begin(self) -> None:
        if not self._stopped:
            self._runner = self._loop.create_task(self._run())

    def stop(self) -> None:
        """No round and no attempt any more; those in flight are cancelled (the emulator closes)."""
        self._stopped = True
        if self._loop is not None:
            self._soon(self._cancel)

    def _cancel(self) -> None:
        for task in (self._runner, *self._attempts):
            if task is not None:
                task.cancel()

    def claim_expiry(self) -> float:
        """The wall time a claim taken now holds until."""
        return self._wall() + self.settings.lease

    def send_claimed(self, callback: dict) -> None:
        """A callback claimed where it was queued (due at once): its first attempt, started in the
        loop at its next turn (after the answer that queued it, when the loop is writing that
        answer). Once stopped, the claim lapses and whoever serves next sends it."""
        self.start()
        if _running_loop() is self._loop:  # in the loop: a task's first step waits for its next turn anyway
            self._launch(callback, *_scheduled(callback))
        else:
            self._soon(self._launch, callback, *_scheduled(callback))

    def wake(self) -> None:
        """Something was queued or the clock moved: look again now."""
        if self._loop is not None:
            self._soon(self._wake.set)

    def _soon(self, function, *args) -> None:
        """`function(*args)` at the loop's next turn, from any thread."""
        if _running_loop() is self._loop:
            self._loop.call_soon(function, *args)
            return
        try:
            self._loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the loop has closed (its process is ending): a claim lapses for the next
            pass

    def _in_loop(self, work, *args) -> Future:
        """`work(*args)`, a coroutine, run in this process's loop: its future, for another thread."""
        self.start()
        return soon(work(*args))

    # --- what falls due ---
    async def _run(self) -> None:
        while not self._stopped:
            try:
                started = self._round()
                if started:
                    self._reached()
                    await asyncio.wait(started)
                    continue
                wait = self._seconds_to_next_due()
                self._reached()
            except Exception as error:  # a broken round must not stop delivery for good
                if self._stopped:  # its storage closed under it: the emulator is closing
                    return
                self._failed(error, "callback dispatcher round failed")
                wait = POLL_SECONDS
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    def _failed(self, error: Exception, what: str) -> None:
        """A round or an attempt that failed. A database out of reach (PostgreSQL stopped, the
        network cut) is said in one line when it goes, not in a traceback every round while it
        stays away; anything else with its traceback, each time."""
        if isinstance(error, GatewayError) and error.kind == "database_unreachable":
            if not self._unreachable:
                self._unreachable = True
                log.warning("callback delivery waits: the database cannot be reached (%s); looking again every "
                            "%g s", error.details.get("reason", ""), POLL_SECONDS)
            return
        log.error(what, exc_info=error)

    def _reached(self) -> None:
        """A round read the database: if it was out of reach, say once that delivery goes on."""
        if self._unreachable:
            self._unreachable = False
            log.warning("callback delivery goes on: the database answers again")

    def _seconds_to_next_due(self) -> float | None:
        if self.until_next is not None:
            return self.until_next()
        next_due = self.storage.next_callback_due(self.now())
        return POLL_SECONDS if next_due is None else max(0.0, min(POLL_SECONDS, (next_due - self.now()) / 1000))

    def _round(self) -> list[asyncio.Task]:
        """The timed jobs due now, then the callbacks due now (as many as there are senders), each
        attempt started; those attempts."""
        if self._stopped:
            return []
        self.jobs(self.now())
        claimed = self.storage.claim_due_callbacks(self.now(), self._wall(), self.settings.lease,
                                                   limit=self.settings.concurrency)
        return [task for callback in claimed if (task := self._launch(callback, *_scheduled(callback)))]

    def _launch(self, callback: dict, kind: str, number: int) -> asyncio.Task | None:
        if self._stopped:
            return None
        task = self._loop.create_task(self._attempt(callback, kind, number))
        self._attempts.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task) -> None:
        self._attempts.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._failed(task.exception(), "a callback attempt failed")

    # --- one attempt ---
    async def _attempt(self, callback: dict, kind: str, number: int) -> dict | None:
        """Make one attempt (`number` counts the policy's attempts) and record it; the attempt as
        recorded, or None if none was made (the claim was lost, or the callback's scheduled
        attempt turned out to be one another process had started and never finished)."""
        async with self._senders:
            scheduled = callback["next_attempt_at"]
            unknown = [made for made in callback.get("unknown", ()) if made in (FIRST, RETRY)]
            if unknown:
                # That attempt counts as made, its answer unknown: the policy goes on from it, and
                # it is never made again as it was (the merchant may have had it).
                status, made, due = next_state(self._policy(callback), unknown[0], callback["status"],
                                               callback["attempts_made"], scheduled, UNKNOWN)
                if kind != RESEND:
                    self.storage.finish_attempt(callback["id"], callback["claim"], None, status, made, due)
                    return None
                callback = {**callback, "status": status, "attempts_made": made, "next_attempt_at": due}
                scheduled = due
            attempt, outcome = await self._send_once(callback, kind, number,
                                                     _moment(scheduled) if kind != RESEND else None)
            if outcome is None:
                return None
            duplicate = None
            if outcome.acknowledged and kind != RESEND and callback["fault"].get("duplicate"):
                # Sent again while the claim still holds: nobody (a flush) sees this one idle before.
                duplicate, again = await self._send_once(callback, DUPLICATE, number + 1, None)
                duplicate = duplicate if again is not None else None
            status, made, due = next_state(self._policy(callback), kind, callback["status"],
                                           callback["attempts_made"], scheduled, outcome)
            release = self.now() if outcome.acknowledged and kind != RESEND else None  # held ones arrive after it
            recorded = self.storage.finish_attempt(callback["id"], callback["claim"], attempt, status, made, due,
                                                   extra=duplicate, release_held_at=release)
            return _attempt_view(recorded) if recorded else None

    async def _send_once(self, callback: dict, kind: str, number: int,
                         scheduled_at: str | None) -> tuple[dict, Outcome | None]:
        """One POST, on the ledger (as "sending") before anything leaves; the attempt and what it
        saw, or no outcome, and nothing sent, if the claim no longer holds (a reset took it back)."""
        attempt = {"kind": kind, "at": _moment(self.now()), "wall_time": _wall_moment(self._wall()),
                   "scheduled_at": scheduled_at, "number": number}
        started = self.storage.start_attempt(callback["id"], callback["claim"], attempt, self._wall(),
                                             self.settings.lease)
        if started is None:
            return attempt, None
        attempt.update(started)
        gateway = callback.get("gateway", DOMESTIC)
        # A domestic callback is sent with the sender's defaults; another gateway's says whose it is.
        whose = {} if gateway == DOMESTIC else {"gateway": gateway}
        outcome: Outcome = await self._send(callback["url"], callback["body"], timeout=self.settings.timeout,
                                            allowed_hosts=self.settings.allowed_hosts,
                                            listening=self.settings.listening, **whose)
        fault = callback["fault"]
        if kind in (FIRST, RETRY) and number <= fault.get("fail_first", 0) and outcome.acknowledged:
            # The merchant answered well, but the scenario says the gateway never heard it.
            outcome = replace(outcome, acknowledged=False,
                              error=f"scenario rule {fault['rule']!r}: attempt {number} of the first "
                                    f"{fault['fail_first']} counts as failed")
        attempt.update(http_status=outcome.http_status, response_body=outcome.response_body,
                       error=outcome.error, latency_ms=outcome.latency_ms)
        return attempt, outcome

    def _policy(self, callback: dict) -> Policy:
        """The retries of a callback's gateway: fixed by it (Payletter Global's), else the settings'."""
        return GATEWAYS[callback.get("gateway", DOMESTIC)].policy or self.settings.policy

    # --- what another thread waits for: futures of the loop ---
    def flushing(self, max_seconds: float = 30.0) -> Future:
        """Send everything due, waiting for what other processes are sending, until nothing due
        is left or `max_seconds` have passed; the future's result: what is left (`_flushed`)."""
        return self._in_loop(self._flush, max_seconds)

    def flush(self, max_seconds: float = 30.0) -> dict:
        return self.flushing(max_seconds).result()

    async def _flush(self, max_seconds: float) -> dict:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_seconds
        look_again = LOOK_AGAIN_FIRST
        while True:
            await self._settled(deadline - loop.time())  # this process's attempts first: they end it soonest
            backlog = self.storage.callback_backlog(self.now(), self._wall())
            idle = not backlog["busy"] and self.storage.jobs_due(self.now()) == 0
            if idle or loop.time() > deadline:
                return _flushed(idle, backlog)
            if not self._round():  # what is left is being sent elsewhere, where nothing says when it ends
                await asyncio.sleep(look_again)
                look_again = min(2 * look_again, LOOK_AGAIN_MOST)

    async def _settled(self, timeout: float) -> None:
        """Until the attempts this process is making have ended, or `timeout` seconds."""
        if self._attempts:
            await asyncio.wait(set(self._attempts), timeout=max(0.0, timeout))

    def resending(self, callback_id: int) -> Future:
        """One extra attempt now, whatever the notification's status; the future's result: the
        attempt (None while the notification is being sent) and the notification after it."""
        return self._in_loop(self._resend, callback_id)

    async def _resend(self, callback_id: int) -> tuple[dict | None, dict | None]:
        callback = self.storage.claim_callback(callback_id, self._wall(), self.settings.lease)
        task = self._launch(callback, RESEND, 0) if callback is not None else None
        attempt = await task if task is not None else None
        return attempt, self.storage.callback(callback_id)

    def in_flight_ended(self) -> Future:
        """Done once the attempts this process is making have ended (a reset waits for them, so
        that nothing from before it reaches a merchant after it)."""
        return self._in_loop(self._settled, self.settings.lease)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _flushed(idle: bool, backlog: dict) -> dict:
    return {"idle": idle, "pending": backlog["pending"], "next_attempt_at": _moment(backlog["next_due"])}


def _scheduled(callback: dict) -> tuple[str, int]:
    """The kind and number of a callback's next scheduled attempt."""
    made = callback["attempts_made"]
    return (FIRST if made == 0 else RETRY), made + 1


def callback_view(callback: dict) -> dict:
    """A notification as tests see it: no claim bookkeeping, times as ISO 8601."""
    shown = {k: v for k, v in callback.items() if k not in ("claimed_by", "claim_expires", "claim", "unknown")}
    shown["next_attempt_at"] = _moment(callback["next_attempt_at"]) if callback["status"] == "pending" else None
    shown["held"] = callback["status"] == "pending" and callback["next_attempt_at"] is None
    return shown


def _attempt_view(attempt: dict) -> dict:
    return {k: v for k, v in attempt.items() if k != "callback_id"}


def _wall_moment(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, KST).isoformat(timespec="milliseconds")


def _moment(milliseconds: int | None) -> str | None:
    return None if milliseconds is None else iso(datetime.fromtimestamp(milliseconds / 1000, KST))
