"""One emulated gateway, wired: its storage, clock, service (its rooms), scenario and callback
dispatcher. The server runs one for the root and one per sandbox."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import cache, partial
from random import Random

from .engines import scenario as scenario_files
from .domain.clock import Clock
from .config import Settings
from .delivery.dispatcher import POLL_SECONDS, DeliverySettings, Dispatcher
from .resources import schemas_dir
from .engines.scenario import Scenario
from .service import Service
from .service.clock_jobs import ClockJobs
from .storage import Storage
from .engines.validation import Schemas

@cache
def schemas() -> Schemas:
    """The JSON Schemas, read once per process and shared by every instance."""
    return Schemas(schemas_dir())


@dataclass
class Emulator:
    """What a request handler reaches: the settings in force (the scenario's over the
    server's), the service's rooms, the schemas and the callback dispatcher."""

    settings: Settings
    service: Service
    schemas: Schemas
    dispatcher: Dispatcher
    sandbox: str | None = None  # None: the root emulator

    @property
    def storage(self) -> Storage:
        return self.service.context.storage

    def close(self) -> None:
        self.dispatcher.stop()
        if self.dispatcher.storage is not self.storage:
            self.dispatcher.storage.close()
        self.storage.close()


def build(settings: Settings, *, sandbox: str | None = None, schema: str | None = None,
          scenario: dict | None = None) -> Emulator:
    """An emulator on `settings.db` (in PostgreSQL, in `schema`). The scenario files of the
    settings, or `scenario`, are put in force unless the database already runs the same one."""
    draws = Random(settings.faker_seed)  # the generated details' digits (domain/details.py)
    connect = partial(Storage, settings.db, journal_limit=settings.journal_limit,
                      callback_limit=settings.callback_limit, schema=schema)
    storage = connect()
    service = Service(storage, Clock(), settings, draws)
    clock_jobs = service.clock_jobs
    # The senders record their claims and attempts on a connection of their own, so that a request
    # waits only for the database's lock (SQLite's writer, PostgreSQL's rows), not behind every
    # statement of theirs.
    outbox = storage if settings.db == ":memory:" else connect()
    dispatcher = Dispatcher(outbox, clock_jobs.milliseconds, DeliverySettings.of(settings), jobs=clock_jobs.run_jobs)
    service.context.on_callback_queued = dispatcher.wake
    service.context.sender = dispatcher
    if storage.backend == "postgresql":  # told of every change (storage/pg_news.py): nothing to poll
        storage.on_news(lambda table: dispatcher.wake())
        dispatcher.until_next = partial(until_next_work, outbox, clock_jobs)
    emulator = Emulator(settings, service, schemas(), dispatcher, sandbox)
    service.context.on_scenario = lambda chosen: _apply(emulator, settings, chosen, draws)
    clock_jobs.sync_clock()  # the clock and the scenario a previous run left in the database
    document = scenario if scenario is not None else scenario_files.load(settings.scenario)
    if document is not None and storage.scenario_document() != document:
        clock_jobs.install_scenario(document)
    dispatcher.start()  # what a previous run left due goes out now, before any request
    return emulator


# A callback due now that this process could not claim is being claimed by another: look again this soon.
LOOK_AGAIN = 0.05


def until_next_work(storage: Storage, clock_jobs: ClockJobs) -> float | None:
    """How long the dispatcher of a database that tells every change waits before it looks again:
    until a callback or a timed job falls due, or a claim lapses (its holder, another host, may
    have stopped); None, until woken by news, when nothing is scheduled. A clock standing still
    makes nothing due until it moves, which is news. While this process hears nothing (not yet
    listening, or listening again after a lost connection) it looks every POLL_SECONDS."""
    now, wall = clock_jobs.milliseconds(), time.time()
    due_now, next_due, next_lapse = storage.next_work(now, wall)
    waits = [LOOK_AGAIN] if due_now else []
    if not clock_jobs.clock.frozen:
        waits += [(moment - now) / 1000 for moment in (next_due, clock_jobs.next_job_due()) if moment is not None]
    if next_lapse is not None:
        waits.append(next_lapse - wall)
    if not storage.hears_every_change():
        waits.append(POLL_SECONDS)
    return max(0.0, min(waits)) if waits else None


def _apply(emulator: Emulator, base: Settings, scenario: Scenario, draws: Random) -> None:
    """The settings a scenario brings, over those the emulator was started with."""
    chosen, callbacks = scenario.settings, scenario.settings.get("callbacks", {})
    clients = {c.client_id: c for c in (*base.clients, *scenario.clients)}
    settings = replace(base, strict=chosen.get("strict", base.strict), clients=tuple(clients.values()),
                       callback_interval=callbacks.get("interval", base.callback_interval),
                       callback_retries=callbacks.get("retries", base.callback_retries),
                       callback_timeout=callbacks.get("timeout", base.callback_timeout))
    context = emulator.service.context
    emulator.settings = context.settings = settings
    context.clients = clients
    emulator.dispatcher.settings = DeliverySettings.of(settings)
    if "faker_seed" in chosen:
        draws.seed(chosen["faker_seed"])
