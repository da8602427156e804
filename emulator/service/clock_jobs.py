"""The emulator's clock, the scenario in force and its timed jobs: what every process reads
before a request, what the control API moves, and what falls due as time passes."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from ..domain.clock import KST, ClockState, iso
from ..config import PAY_TEST
from ..domain.callback_policy import DOMESTIC
from ..domain.rules import API, Rule
from ..domain.errors import GatewayError
from ..engines.scenario import EMPTY
from .context import Context, Room
from .virtual_accounts import VirtualAccounts

# Tokens carry 13-digit epoch milliseconds (from late 2001) and tids YYYYMMDD: the clock stays
# where both make sense.
CLOCK_RANGE = (datetime(2002, 1, 1, tzinfo=KST), datetime(2200, 1, 1, tzinfo=KST))
CLOCK_SPAN = 200 * 366 * 86400
# The shared state is read at least this often, in case a process died mid-change (SQLite's page of
# memory); not where every change is told as it commits (PostgreSQL's news, storage/pg_news.py).
RESYNC_SECONDS = 1.0


@dataclass(frozen=True)
class ApiAnswer:
    """What a scenario rule makes of an API request: the gateway's answer is `error`, or it is
    given `late_seconds` late, or the connection is dropped (`drop`) without one."""

    rule: str
    error: GatewayError | None = None
    late_seconds: float | None = None
    drop: bool = False


def api_answer(rule: Rule, data) -> ApiAnswer:
    """What each outcome of an API request (domain/rules.py's API stage) means."""
    params = rule.params
    if rule.outcome == "latency":
        return ApiAnswer(rule.name, late_seconds=params["ms"] / 1000)
    if rule.outcome == "drop_connection":
        return ApiAnswer(rule.name, drop=True)
    if rule.outcome == "billkey_refused":  # the gateway's own refusal, unless the rule words it
        refused = GatewayError("billkey_refused", billkey=data.get("billkey", "") if isinstance(data, dict) else "")
        return ApiAnswer(rule.name, error=GatewayError.answer(
            refused.status, params.get("code", refused.code), params.get("message", refused.message)))
    if rule.outcome == "api_error":
        return ApiAnswer(rule.name, error=GatewayError.answer(
            params["status"], params["code"], params.get("message", f"scenario rule {rule.name!r}")))
    raise ValueError(f"{rule.outcome!r} is not an outcome of an API request")


class ClockJobs(Room):
    def __init__(self, context: Context, virtual_accounts: VirtualAccounts):
        super().__init__(context)
        self.virtual_accounts = virtual_accounts  # what the timed jobs do
        self._next_job: int | None = None
        self._synced: int | tuple[int, int] | None = None  # the shared generation last read
        self._resync_at = 0.0

    # --- the clock ---
    def sync_clock(self) -> None:
        """Take the clock and the scenario another process (or a restart) may have changed.
        They are read again when the storage's shared generation says they changed, and at
        least every RESYNC_SECONDS whatever it says."""
        generation = self.storage.shared_generation()
        if generation is not None and generation == self._synced and (
                time.monotonic() < self._resync_at or self.storage.hears_every_change()):
            return
        state, clock_version, version, self._next_job = self.storage.shared_state()
        self._synced, self._resync_at = generation, time.monotonic() + RESYNC_SECONDS
        self.clock.load(state or ClockState(), clock_version)
        rules = self.context.rules
        if rules.sync(version):
            self.context.on_scenario(rules.scenario)

    def milliseconds(self) -> int:
        """The emulator's time as every process sees it, in epoch milliseconds."""
        self.sync_clock()
        return round(self.clock.timestamp() * 1000)

    def set_clock(self, change: dict) -> dict:
        if "real" in change:
            state = self.clock.real()
        elif "freeze" in change:
            state = self.clock.freeze(change["freeze"])
        else:
            target = self._clock_target(change)
            if "set" in change:
                state = self.clock.set(target)
            else:
                state = self.clock.advance(change["advance_seconds"])
        self._save_clock(state)
        return self.clock_view()

    def _save_clock(self, state: ClockState) -> None:
        """Stored for every process, then taken here under the version it was stored with. Every
        move of the clock (set, advance, freeze, a scenario's, a reset) passes here, so here it
        wakes delivery: what the new time makes due goes out at once."""
        self.clock.load(state, self.storage.save_clock_state(state))
        self.storage.after_commit(self.context.on_callback_queued)

    def _clock_target(self, change: dict) -> datetime:
        """The moment a change moves the clock to, if it stays within CLOCK_RANGE."""
        if "set" in change:
            try:
                moment = datetime.fromisoformat(change["set"])
            except ValueError:
                raise GatewayError("clock_request_invalid",
                                   detail=f"set {change['set']!r} is not an ISO 8601 date and time") from None
            moment = moment if moment.tzinfo else moment.replace(tzinfo=KST)
        else:
            seconds = change["advance_seconds"]
            if not math.isfinite(seconds) or abs(seconds) > CLOCK_SPAN:
                raise GatewayError("clock_request_invalid", detail=f"advance_seconds {seconds} is out of range")
            moment = self.clock.now() + timedelta(seconds=seconds)
        first, last = CLOCK_RANGE
        if not first <= moment < last:
            raise GatewayError("clock_request_invalid", detail=f"{iso(moment)} is outside the years "
                                                               f"{first.year}-{last.year - 1}")
        return moment

    def clock_view(self) -> dict:
        return {"now": iso(self.clock.now()), "frozen": self.clock.frozen}

    # --- the scenario ---
    def install_scenario(self, document: dict | None) -> dict:
        """Put a scenario in force from now on: its settings, clock and timeline; every rule's
        count starts again."""
        rules = self.context.rules
        scenario = rules.install(document)
        self.storage.drop_pending_jobs()
        for index, (at, kind, params) in enumerate(scenario.events):
            self.storage.add_job(round(at.timestamp() * 1000), kind, params, origin=f"timeline[{index}]")
        clock, start = scenario.settings.get("clock", {}), scenario.clock_start()
        # Frozen (or thawed) first, then set: a clock frozen at its start is at that very instant,
        # not at whatever time passed between the two.
        if "frozen" in clock:
            state = self.clock.freeze(clock["frozen"])
        if start is not None:
            state = self.clock.set(start)
        if "frozen" in clock or start is not None:
            self._save_clock(state)
        self.context.on_scenario(scenario)
        self.context.on_callback_queued()  # its timed jobs may be due at once, the clock moved or not
        return rules.rules_view()

    def decide_api(self, endpoint: str, client_id: str, data, headers: Callable[[], dict], *,
                   gateway: str = DOMESTIC) -> ApiAnswer | None:
        """What the scenario does to this API request before it is checked, if anything: the
        rule that decides it (counted once here), and what its outcome means. A Global request
        (`gateway`) is matched on its own fields (storeid, storeorderno, ...) as sent."""
        rules = self.context.rules
        if not rules.scenario.rules:
            return None
        context = {**(data if isinstance(data, dict) else {}), "endpoint": endpoint, "gateway": gateway,
                   "client_id": client_id, "headers": headers()}
        rule = rules.decide(API, context, self.clock.now())
        return api_answer(rule, data) if rule is not None else None

    def reset(self) -> None:
        """Forget every payment; the scenario in force starts again (its clock and timeline too)."""
        self.storage.reset()
        self._save_clock(ClockState())
        if self.context.rules.scenario is not EMPTY:
            self.install_scenario(self.context.rules.scenario.document)

    # --- the timed jobs ---
    def next_job_due(self) -> int | None:
        """When the next timed job falls due (epoch ms of emulator time), as last read."""
        return self._next_job

    def catch_up(self) -> None:
        """Run the timed jobs that are due now, if any."""
        self.run_jobs(round(self.clock.timestamp() * 1000))

    def run_jobs(self, now: int) -> int:
        """Run every timed job due at `now` (epoch ms), each at its own moment; how many ran.
        Whether any is due is known from the last sync_clock, so an idle round writes nothing."""
        if self._next_job is None or self._next_job > now:
            return 0
        ran = 0
        while True:
            # Taken, run and marked in one transaction: whoever looks next sees it done, and its effect.
            with self.storage.atomic():
                job = self.storage.take_due_job(now)
                if job is None:
                    return ran
                self.storage.finish_job(job["id"], self._run_job(job))
            ran += 1

    def _run_job(self, job: dict) -> str:
        params, at = job["params"], datetime.fromtimestamp(job["due_at"] / 1000, KST)
        try:
            tid = params.get("tid") or self._tid_of_order(params)
            if job["kind"] == "deposit":
                self.virtual_accounts.deposit(tid, params.get("amount"), at=at)
                return "deposited"
            self.virtual_accounts.expire(tid, at)
            return "expired"
        except GatewayError as exc:
            return f"refused: {exc.message}"

    def _tid_of_order(self, params: dict) -> str:
        client_id = params.get("client_id", PAY_TEST.client_id)
        payment = self.storage.latest_payment_for_order(client_id, params["order_no"])
        if payment is None or not payment.tid:
            raise GatewayError("order_unknown", order_no=params["order_no"], client_id=client_id)
        return payment.tid
