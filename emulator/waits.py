"""Where a process waits: in its one event loop.

Each process has one event loop (`process_loop`): the serving process's (uvicorn's, given by
`serve_in` before the app is made), else one of the process's own on a thread. It owns every wait:
a callback's attempts, a flush, a reset waiting for the attempts in flight, a resend, a scenario's
latency. A request runs once, start to end, on a thread of a plain executor
(serving/bridge.py); a handler that must wait hands the loop what it waits for, as a future
(`soon`), and says so in its answer (`LATER`): the loop awaits it, holding no thread, then sends
the answer. Served by anything else (Flask's test client), the handler waits for it where it is.

The other waits here are the database's: a write that finds a lock another process holds (see
`attempt`)."""
from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import Future

ARRIVED = "payletter.arrived"  # environ key: time.monotonic() when the bridge had the request
# environ key: where the bridge serves a request, it puts None here; a handler that must wait puts
# there the future (`soon`) its answer waits for. The bridge awaits it in the loop, then reads the
# answer's body (which may be made from the future's result).
LATER = "payletter.later"
LONG = "long"  # a route whose work is long (a page of a thousand entries, a scenario parsed)

_lock = threading.Lock()
_loop: tuple[int, asyncio.AbstractEventLoop] | None = None  # (pid, this process's loop)


def serve_in(loop: asyncio.AbstractEventLoop) -> None:
    """This process's waits are in `loop`: the serving process's, given before its app is made."""
    global _loop
    with _lock:
        _loop = (os.getpid(), loop)


def process_loop() -> asyncio.AbstractEventLoop:
    """This process's loop: the one `serve_in` gave, or one of its own, started here on a daemon
    thread (a forked process starts its own)."""
    global _loop
    with _lock:
        if _loop is None or _loop[0] != os.getpid() or _loop[1].is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="payletter-loop", daemon=True).start()
            _loop = (os.getpid(), loop)
        return _loop[1]


def soon(coroutine) -> Future | asyncio.Future:
    """`coroutine` run in this process's loop: its future (a task, where the caller is the loop)."""
    loop = process_loop()
    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    if here is loop:
        return loop.create_task(coroutine)
    return asyncio.run_coroutine_threadsafe(coroutine, loop)


def declared(view) -> str | None:
    """How a route's view declares its work (LONG), or None: most are short."""
    return getattr(view, "work", None)


# Seconds a request's write waits for a lock another process holds (SQLite's write lock, a
# PostgreSQL row): then it is refused, 503 with the gateway's code 999 (`database_locked`).
LOCK_WAIT = 5.0
RERUN = "rerun"  # a write that finds the lock held raises Busy: the request is run again later
REFUSE = "refuse"  # ... is refused at once (the last run, once LOCK_WAIT has passed)

_run = threading.local()  # `on_lock`: the mode of the run of a request on this thread


class Busy(BaseException):
    """A write found the database locked by another process, or PostgreSQL ended its transaction
    in a conflict with another, having changed nothing (storage/connection.py), in a run of a
    request that may be run again (`attempt`): the bridge runs it again after a pause that holds
    no thread, until the lock is gone or LOCK_WAIT has passed. This is a transaction retried,
    not a wait: nothing of the run was written. A BaseException, so that Flask lets it through
    unanswered and unjournaled."""


class attempt:
    """Around one run of a request by the bridge: what a write that finds the database locked by
    another process does (RERUN or REFUSE), until the run commits a write. After that, and outside
    any such run (another server, the dispatcher), a write waits where it is, LOCK_WAIT at most:
    running the request again would do twice what was committed."""

    __slots__ = ("mode",)

    def __init__(self, mode: str = RERUN):
        self.mode = mode

    def __enter__(self) -> None:
        _run.on_lock = self.mode

    def __exit__(self, *exc) -> None:
        _run.on_lock = None


def on_lock() -> str | None:
    """RERUN, REFUSE, or None (wait where it is): see `attempt`."""
    return getattr(_run, "on_lock", None)


def committed() -> None:
    """A write has committed: from now on, this run of the request is not run again."""
    _run.on_lock = None


class Later:
    """What a request's answer waits for, put in its environ (LATER) for the bridge: `future`
    (`soon`'s), and, where the answer is made from its result, `answer(result) -> (status, JSON
    body)`; without it, the answer the handler gave, sent once the future is done."""

    __slots__ = ("future", "answer")

    def __init__(self, future: Future, answer=None):
        self.future = future
        self.answer = answer
