"""The dispatcher on a real SQLite file, with a sender the test holds: when a flush returns, and what
two processes' dispatchers (here two dispatchers, each with a wall clock of its own) do with one
claim: an attempt is made once, and recorded as it went, however long its sender stood still."""
from __future__ import annotations

import asyncio
import threading

from payletter_emulator.config import Settings
from payletter_emulator.delivery import dispatcher as dispatching
from payletter_emulator.delivery.dispatcher import DeliverySettings, Dispatcher
from payletter_emulator.domain.callback_policy import Outcome
from payletter_emulator.storage import Storage

NOW = 1_000_000  # emulator time, epoch ms
WALL = 2_000_000_000.0  # wall time, epoch seconds
SETTINGS = DeliverySettings.of(Settings())
ACK = Outcome(200, '{"code": 0}', "", 1.0, acknowledged=True)


class Merchant:
    """A sender whose merchant answers at once, or, `held`, only once the test lets it: `started`
    is set when a POST arrives; `posts` counts them."""

    def __init__(self, held: bool = False):
        self.started = threading.Event()
        self.answer = threading.Event()
        if not held:
            self.answer.set()
        self.posts = 0

    async def __call__(self, url, body, *, timeout, allowed_hosts=(), listening=None) -> Outcome:
        self.posts += 1
        self.started.set()
        await asyncio.get_running_loop().run_in_executor(None, self.answer.wait, 30)
        return ACK


def _queued(storage: Storage, tid: str = "T1") -> None:
    storage.enqueue_callback(tid, "http://127.0.0.1:9/cb", {"tid": tid}, "2026-11-29T10:00:00+09:00", NOW, [])


def _claimed(storage: Storage, holder: Dispatcher, tid: str = "T1") -> dict:
    """Queued due at once and claimed for `holder`, as an approval queues it."""
    return storage.enqueue_claimed_callback(tid, "http://127.0.0.1:9/cb", {"tid": tid}, "2026-11-29T10:00:00+09:00",
                                            NOW, [], {}, holder.claim_expiry())


def _ledger(storage: Storage) -> list[tuple]:
    return [(c["status"], [(a["number"], a["kind"], a["state"], a["http_status"]) for a in c["attempts"]])
            for c in storage.callbacks()]


def test_a_flush_returns_as_soon_as_the_loop_delivers_not_at_a_poll_tick(tmp_path, monkeypatch):
    """The dispatcher's own round takes the callback; a flush coming in meanwhile waits for that
    attempt to end, told by it: with the look-again interval made an hour, the flush still
    returns, idle, once the merchant answers."""
    monkeypatch.setattr(dispatching, "LOOK_AGAIN_FIRST", 3600.0)
    monkeypatch.setattr(dispatching, "LOOK_AGAIN_MOST", 3600.0)
    storage = Storage(str(tmp_path / "outbox.db"))
    merchant = Merchant(held=True)
    callbacks = Dispatcher(storage, lambda: NOW, SETTINGS, send=merchant)
    _queued(storage)
    try:
        callbacks.start()
        callbacks.wake()
        assert merchant.started.wait(30)  # the round is sending it
        flushed = {}
        flushing = threading.Thread(target=lambda: flushed.update(callbacks.flush(max_seconds=3600)))
        flushing.start()
        merchant.answer.set()
        flushing.join(60)
        assert not flushing.is_alive(), "the flush waited for a poll tick, not for the attempt"
        assert flushed == {"idle": True, "pending": 0, "next_attempt_at": None}
        assert merchant.posts == 1 and _ledger(storage) == [("delivered", [(1, "first", "done", 200)])]
    finally:
        merchant.answer.set()
        callbacks.stop()
        storage.close()


def test_a_callback_claimed_where_it_was_queued_is_sent_once_by_its_holder(tmp_path):
    storage = Storage(str(tmp_path / "outbox.db"))
    merchant = Merchant()
    callbacks = Dispatcher(storage, lambda: NOW, SETTINGS, send=merchant)
    try:
        callbacks.send_claimed(_claimed(storage, callbacks))
        assert callbacks.flush(max_seconds=30) == {"idle": True, "pending": 0, "next_attempt_at": None}
        assert merchant.posts == 1 and _ledger(storage) == [("delivered", [(1, "first", "done", 200)])]
    finally:
        callbacks.stop()
        storage.close()


def test_a_claim_lapsed_before_its_attempt_began_is_sent_by_the_next_holder_only(tmp_path):
    """The holder of a claim stood still before it began its attempt: another takes the lapsed claim
    and sends it; the first, going on, finds its claim gone and sends nothing."""
    storage = Storage(str(tmp_path / "outbox.db"))
    first, second = Merchant(), Merchant()
    stalled = Dispatcher(storage, lambda: NOW, SETTINGS, send=first, wall=lambda: WALL)
    later = Dispatcher(storage, lambda: NOW, SETTINGS, send=second, wall=lambda: WALL + SETTINGS.lease + 1)
    try:
        claimed = _claimed(storage, stalled)
        assert later.flush(max_seconds=30)["idle"]
        stalled.send_claimed(claimed)
        assert stalled.flush(max_seconds=30)["idle"]
        assert (first.posts, second.posts) == (0, 1)
        assert _ledger(storage) == [("delivered", [(1, "first", "done", 200)])]
    finally:
        stalled.stop()
        later.stop()
        storage.close()


def test_an_attempt_whose_sender_stood_still_past_its_claim_is_never_made_again(tmp_path):
    """The attempt has left and its sender stands still past its claim: the next holder records it
    as unknown (it may have reached the merchant), counts it, and schedules the retry the policy
    says, sending nothing. The sender then comes back with the merchant's acknowledgement: the
    attempt is recorded as it went, and the notification is delivered; the retry never goes out."""
    storage = Storage(str(tmp_path / "outbox.db"))
    held, other = Merchant(held=True), Merchant()
    clock = {"now": NOW}
    stalled = Dispatcher(storage, lambda: NOW, SETTINGS, send=held, wall=lambda: WALL)
    later = Dispatcher(storage, lambda: clock["now"], SETTINGS, send=other, wall=lambda: WALL + SETTINGS.lease + 1)
    try:
        stalled.send_claimed(_claimed(storage, stalled))
        assert held.started.wait(30)
        assert later.flush(max_seconds=30) == {"idle": True, "pending": 1, "next_attempt_at": "1970-01-01T09:21:40+09:00"}
        [taken] = storage.callbacks()
        assert (taken["attempts_made"], taken["attempts"][0]["state"]) == (1, "unknown")
        assert taken["attempts"][0]["error"].startswith("outcome unknown")
        held.answer.set()  # the merchant's answer is read at last
        assert stalled.flush(max_seconds=30)["idle"]
        assert _ledger(storage) == [("delivered", [(1, "first", "done", 200)])]
        clock["now"] = NOW + 300_000  # when the retry was due
        assert later.flush(max_seconds=30) == {"idle": True, "pending": 0, "next_attempt_at": None}
        assert (held.posts, other.posts) == (1, 0)
    finally:
        held.answer.set()
        stalled.stop()
        later.stop()
        storage.close()


def test_a_stopped_dispatcher_sends_nothing_more(tmp_path, caplog):
    storage = Storage(str(tmp_path / "outbox.db"))
    merchant = Merchant()
    callbacks = Dispatcher(storage, lambda: NOW, SETTINGS, send=merchant)
    try:
        callbacks.start()
        callbacks.stop()
        _queued(storage)
        callbacks.wake()
        assert callbacks.flush(max_seconds=0.2)["idle"] is False  # due, and nobody here sends it
        assert merchant.posts == 0 and [r for r in caplog.records if r.levelname == "ERROR"] == []
    finally:
        storage.close()
