"""While PostgreSQL is down, callback delivery says so once, not in a traceback every round, and
once more when it answers again; what was pending then goes out. A server of this module's own,
stopped and started again as an administrator would."""
from __future__ import annotations

import logging
import threading

import pytest

from payletter_emulator.config import Settings
from payletter_emulator.delivery.dispatcher import DeliverySettings, Dispatcher
from payletter_emulator.domain.callback_policy import Outcome
from payletter_emulator.storage import Storage

from .conftest import until
from .databases import PostgresServer

pytestmark = pytest.mark.postgres
NOW = 1_000_000  # emulator time, epoch ms
ROUNDS_DOWN = 10  # the dispatcher's rounds seen while the server is down: each would have logged
GONE, BACK = "callback delivery waits: the database cannot be reached", "callback delivery goes on"


@pytest.fixture(scope="module")
def own_postgres():
    """A server this module stops and starts (the session's serves other tests)."""
    server = PostgresServer()
    yield server
    server.stop()


class Rounds:
    """The dispatcher's timed jobs, run first in each of its rounds: here they count the rounds."""

    def __init__(self):
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, now: int) -> int:
        with self._lock:
            self.count += 1
        return 0

    def after(self, more: int):
        wanted = self.count + more
        return lambda: self.count >= wanted


def test_an_outage_is_said_once_when_it_begins_and_once_when_it_ends(own_postgres, caplog):
    caplog.set_level(logging.WARNING, logger="payletter_emulator")
    storage = Storage(own_postgres.new_database())
    rounds, posts = Rounds(), []

    async def merchant(url, body, *, timeout, allowed_hosts=(), listening=None) -> Outcome:
        posts.append(body)
        return Outcome(200, '{"code": 0}', "", 1.0, acknowledged=True)

    callbacks = Dispatcher(storage, lambda: NOW, DeliverySettings.of(Settings()), send=merchant, jobs=rounds)
    try:
        callbacks.start()
        until(rounds.after(2), what="the dispatcher's first rounds")
        own_postgres.pause()
        try:
            until(rounds.after(ROUNDS_DOWN), what=f"{ROUNDS_DOWN} rounds while PostgreSQL is down")
        finally:
            own_postgres.resume()
        until(lambda: any(BACK in r.getMessage() for r in caplog.records), what="the line saying delivery goes on")
        storage.enqueue_callback("t1", "http://127.0.0.1:9/cb", {"tid": "t1"}, "2026-11-29T10:00:00+09:00", NOW, [])
        callbacks.wake()
        until(lambda: posts, what="the callback queued after the outage")

        said = [r for r in caplog.records if r.name.startswith("payletter_emulator.delivery")]
        messages = [r.getMessage() for r in said]
        assert len(said) == 2 and GONE in messages[0] and BACK in messages[1], messages
        assert [r.exc_info for r in said] == [None, None]  # no traceback
    finally:
        callbacks.stop()
        storage.close()
