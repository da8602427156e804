"""The dispatcher on a real SQLite file, with a sender the test holds: when a flush returns."""
from __future__ import annotations

import threading

from payletter_emulator.delivery import handover
from payletter_emulator.delivery import dispatcher as dispatching
from payletter_emulator.config import Settings
from payletter_emulator.delivery.dispatcher import DeliverySettings, Dispatcher
from payletter_emulator.domain.callback_policy import Outcome
from payletter_emulator.storage import Storage

NOW = 1_000_000  # emulator time, epoch ms


class HeldSender:
    """A merchant that answers only once the test lets it: `started` is set when a POST arrives."""

    def __init__(self):
        self.started = threading.Event()
        self.answer = threading.Event()
        self.posts = 0

    def __call__(self, url, body, *, timeout, allowed_hosts=(), listening=None, on_connected=lambda: True) -> Outcome:
        if not on_connected():
            return Outcome(None, "", "not sent", 0.0, acknowledged=False, sent=False)
        self.posts += 1
        self.started.set()
        self.answer.wait(30)
        return Outcome(200, '{"code": 0}', "", 1.0, acknowledged=True)


def test_a_flush_returns_as_soon_as_the_background_thread_delivers_not_at_a_poll_tick(tmp_path, monkeypatch):
    """The approval wakes the background thread, which takes the callback; a flush coming in
    meanwhile waits for that attempt to finish, woken by it: with the look-again interval made an
    hour, the flush still returns, idle, once the merchant answers."""
    monkeypatch.setattr(dispatching, "LOOK_AGAIN_FIRST", 3600.0)
    monkeypatch.setattr(dispatching, "LOOK_AGAIN_MOST", 3600.0)
    storage = Storage(str(tmp_path / "outbox.db"))
    sender = HeldSender()
    callbacks = Dispatcher(storage, lambda: NOW, DeliverySettings.of(Settings()), send=sender)
    storage.enqueue_callback("T1", "http://127.0.0.1:9/cb", {"tid": "T1"}, "2026-11-29T10:00:00+09:00", NOW, [])
    try:
        callbacks.start()
        callbacks.wake()
        assert sender.started.wait(30)  # the background thread is sending it
        flushed = {}
        flushing = threading.Thread(target=lambda: flushed.update(callbacks.flush(max_seconds=3600)))
        flushing.start()
        sender.answer.set()
        flushing.join(60)
        assert not flushing.is_alive(), "the flush waited for a poll tick, not for the attempt"
        assert flushed == {"idle": True, "pending": 0, "next_attempt_at": None}
        assert sender.posts == 1
        assert [c["status"] for c in storage.callbacks()] == ["delivered"]
    finally:
        sender.answer.set()
        callbacks.stop()
        storage.close()


class CountingSender:
    """A merchant that answers at once; `posts` counts what reached it."""

    def __init__(self):
        self.posts = 0

    def __call__(self, url, body, *, timeout, allowed_hosts=(), listening=None, on_connected=lambda: True) -> Outcome:
        if not on_connected():
            return Outcome(None, "", "not sent", 0.0, acknowledged=False, sent=False)
        self.posts += 1
        return Outcome(200, '{"code": 0}', "", 1.0, acknowledged=True)


def _claimed(storage: Storage, callbacks: Dispatcher, tid: str) -> dict:
    return storage.enqueue_claimed_callback(tid, "http://127.0.0.1:9/cb", {"tid": tid}, "2026-11-29T10:00:00+09:00",
                                            NOW, [], {}, callbacks.claim_expiry())


def test_a_callback_claimed_where_it_was_queued_leaves_after_the_answer_once(tmp_path):
    """Queued due at once with a claim (an approval): no other sender takes it, and under the
    server's bridge its first attempt starts only once the answer has left."""
    storage = Storage(str(tmp_path / "outbox.db"))
    sender = CountingSender()
    callbacks = Dispatcher(storage, lambda: NOW, DeliverySettings.of(Settings()), send=sender)
    try:
        with handover.collecting() as later:
            callbacks.send_claimed(_claimed(storage, callbacks, "T1"))
            assert len(later) == 1 and sender.posts == 0  # held until the answer has left
            assert callbacks.run_due() == 0  # the claim keeps the background thread's round off it
        for work, _ in later:
            work()
        assert callbacks.flush(max_seconds=30)["idle"]
        assert sender.posts == 1
        assert [(c["status"], len(c["attempts"])) for c in storage.callbacks()] == [("delivered", 1)]
    finally:
        callbacks.stop()
        storage.close()


def test_a_flush_sends_what_its_own_request_queued_instead_of_waiting_for_its_answer(tmp_path):
    """A flush that queues callbacks itself (timed jobs it runs, such as a deposit) must not wait
    for its own answer to leave before they are sent: it would wait out max_seconds."""
    storage = Storage(str(tmp_path / "outbox.db"))
    sender = CountingSender()
    callbacks = Dispatcher(storage, lambda: NOW, DeliverySettings.of(Settings()), send=sender)
    try:
        with handover.collecting():
            callbacks.send_claimed(_claimed(storage, callbacks, "T1"))
            flushed = callbacks.flush(max_seconds=5)
        assert flushed == {"idle": True, "pending": 0, "next_attempt_at": None}
        assert sender.posts == 1
    finally:
        callbacks.stop()
        storage.close()


def test_the_background_thread_ends_quietly_when_its_senders_are_gone(tmp_path, caplog):
    """At the interpreter's exit the senders' pool refuses new work before the background thread
    stops: the thread ends without a traceback in the log."""
    storage = Storage(str(tmp_path / "outbox.db"))
    callbacks = Dispatcher(storage, lambda: NOW, DeliverySettings.of(Settings()), send=CountingSender())
    try:
        callbacks.start()
        callbacks._pool.shutdown()  # as the interpreter's exit does, before the thread stops
        storage.enqueue_callback("T1", "http://127.0.0.1:9/cb", {"tid": "T1"}, "2026-11-29T10:00:00+09:00", NOW, [])
        background = callbacks.thread  # this dispatcher's (other tests' emulators have theirs)
        callbacks.wake()
        background.join(10)
        assert not background.is_alive()
        assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    finally:
        callbacks.stop()
        storage.close()
